//! Latency, throughput and memory measurement of a model on the pare runtime.

use crate::ir::Graph;
use crate::runtime::{RunOptions, Runtime};
use crate::tensor::{DType, Data, Tensor};
use anyhow::{Result, bail};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;
use serde::Serialize;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Batch size (dim 0 of every input); `None` keeps fixed batch dims and uses 1 for symbolic ones.
    pub batch: Option<usize>,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs.
    pub iters: usize,
    /// Seed for the random inputs.
    pub seed: u64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { batch: None, threads: 0, warmup: 5, iters: 50, seed: 0 }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Measured performance.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Latency of one run (one batch).
    pub latency_ms: Percentiles,
    /// Samples per second at the median latency.
    pub throughput_per_s: f64,
    /// Peak heap bytes during the timed runs (weights + activations + runtime),
    /// when the counting allocator is installed.
    pub peak_memory_bytes: Option<u64>,
    /// Batch size.
    pub batch: usize,
    /// Threads used.
    pub threads: usize,
    /// Timed runs.
    pub iters: usize,
}

/// Random inputs for every graph input: standard normal floats, small non-negative integers,
/// random booleans. Symbolic dims must have been made concrete.
pub fn random_inputs(g: &Graph, seed: u64) -> Result<Vec<Tensor>> {
    let mut rng = StdRng::seed_from_u64(seed);
    g.inputs()
        .iter()
        .map(|&v| {
            let val = g.value(v);
            let Some(shape) = val.fact.concrete_shape() else {
                bail!("input \"{}\" has unknown dims {}; give a batch size", val.name, val.fact)
            };
            let n = crate::tensor::checked_numel(&shape)
                .map_err(|e| anyhow::anyhow!("input \"{}\": {e}", val.name))?;
            let normal = |rng: &mut StdRng| -> f32 { rng.sample(StandardNormal) };
            let data = match val.fact.dtype {
                DType::F32 => Data::F32((0..n).map(|_| normal(&mut rng)).collect()),
                DType::F64 => Data::F64((0..n).map(|_| normal(&mut rng) as f64).collect()),
                DType::F16 => Data::F16((0..n).map(|_| half::f16::from_f32(normal(&mut rng))).collect()),
                DType::Bool => Data::Bool((0..n).map(|_| rng.random::<bool>()).collect()),
                other => {
                    let ints: Vec<i64> = (0..n).map(|_| rng.random_range(0..10)).collect();
                    return Ok(Tensor::from_vec(shape, ints).cast(other));
                }
            };
            Ok(Tensor::new(shape, data)?)
        })
        .collect()
}

/// Makes every input dim concrete: with `Some(n)`, dim 0 of every input becomes `n`
/// (`passes::set_batch`, which also handles models exported with a fixed batch);
/// remaining symbolic dims become 1.
pub fn concrete(g: &Graph, batch: Option<usize>) -> Result<Graph> {
    match batch {
        Some(n) => crate::passes::set_batch(g, n)?.with_batch(1),
        None => g.with_batch(1),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Measures `graph` at the given batch size on the pare runtime.
pub fn bench(graph: &Graph, opts: &BenchOptions) -> Result<BenchResult> {
    if opts.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let g = concrete(graph, opts.batch)?;
    let batch =
        g.inputs().first().and_then(|&i| g.fact(i).shape.first().and_then(|d| d.known())).unwrap_or(1);
    let inputs = random_inputs(&g, opts.seed)?;
    let rt = Runtime::new(g, RunOptions { threads: opts.threads, optimize: true })?;
    for _ in 0..opts.warmup {
        rt.run(inputs.clone())?;
    }
    super::reset_peak();
    let mut times = Vec::with_capacity(opts.iters);
    for _ in 0..opts.iters {
        let t0 = Instant::now();
        let out = rt.run(inputs.clone())?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        drop(out);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let p50 = percentile(&times, 0.5);
    Ok(BenchResult {
        latency_ms: Percentiles { p50, p90: percentile(&times, 0.9), p99: percentile(&times, 0.99) },
        throughput_per_s: batch as f64 / (p50 / 1e3),
        peak_memory_bytes: super::peak_bytes().map(|b| b as u64),
        batch,
        threads: rt.threads(),
        iters: opts.iters,
    })
}
