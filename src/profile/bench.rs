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
    /// Kernel variant per node name (a compiled plan, see `compile::stored`); nodes not
    /// listed get the heuristic.
    pub choices: std::collections::HashMap<String, crate::runtime::Variant>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { batch: None, threads: 0, warmup: 5, iters: 50, seed: 0, choices: Default::default() }
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

/// Dim 0 of the first input (1 when there is none or it is not known).
pub fn batch_of(g: &Graph) -> usize {
    g.inputs().first().and_then(|&i| g.fact(i).shape.first().and_then(|d| d.known())).unwrap_or(1)
}

/// The median (upper middle for an even count) of a non-empty list.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// The runtime for `graph` at `opts.batch` with seeded random inputs, after `opts.warmup`
/// untimed runs; also returns the batch size.
fn warmed_up(graph: &Graph, opts: &BenchOptions) -> Result<(Runtime, Vec<Tensor>, usize)> {
    let g = concrete(graph, opts.batch)?;
    let batch = batch_of(&g);
    let inputs = random_inputs(&g, opts.seed)?;
    let rt =
        Runtime::with_choices(g, RunOptions { threads: opts.threads, optimize: true }, opts.choices.clone())?;
    for _ in 0..opts.warmup {
        rt.run(inputs.clone())?;
    }
    Ok((rt, inputs, batch))
}

/// Measures `graph` at the given batch size on the pare runtime.
pub fn bench(graph: &Graph, opts: &BenchOptions) -> Result<BenchResult> {
    if opts.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let (rt, inputs, batch) = warmed_up(graph, opts)?;
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

/// Median time of one plan step over the profiled runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepTime {
    /// Step name (fused steps: the nodes' names joined by `+`).
    pub name: String,
    /// Op type (fused steps: the ops joined by `+`).
    pub op: String,
    /// Median wall time in milliseconds.
    pub median_ms: f64,
}

/// Per-step medians of `graph` on the pare runtime: `opts.warmup` untimed runs, then
/// `opts.iters` profiled runs (each step timed on its own, so the sum is slightly above a
/// plain run's latency). Steps are in plan order.
pub fn profile_steps(graph: &Graph, opts: &BenchOptions) -> Result<Vec<StepTime>> {
    if opts.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let (rt, inputs, _) = warmed_up(graph, opts)?;
    let mut runs: Vec<Vec<crate::runtime::NodeTime>> = Vec::with_capacity(opts.iters);
    for _ in 0..opts.iters {
        runs.push(rt.profile(inputs.clone())?.1);
    }
    let steps = runs[0].len();
    let mut out = Vec::with_capacity(steps);
    for i in 0..steps {
        let mut t: Vec<f64> = runs.iter().map(|r| r[i].time.as_secs_f64() * 1e3).collect();
        t.sort_by(|a, b| a.total_cmp(b));
        out.push(StepTime {
            name: runs[0][i].name.clone(),
            op: runs[0][i].op.clone(),
            median_ms: percentile(&t, 0.5),
        });
    }
    Ok(out)
}

/// A profile as text: the steps sorted by time (at most `top`, 0 = all) with their share of
/// the total, then the total per op type.
pub fn profile_table(steps: &[StepTime], top: usize) -> String {
    use std::fmt::Write;
    let total: f64 = steps.iter().map(|s| s.median_ms).sum::<f64>().max(1e-12);
    let mut s = String::new();
    let mut order: Vec<&StepTime> = steps.iter().collect();
    order.sort_by(|a, b| b.median_ms.total_cmp(&a.median_ms));
    let shown = if top == 0 { order.len() } else { top.min(order.len()) };
    let _ = writeln!(s, "{:<44} {:<22} {:>10} {:>7}", "step", "op", "ms", "share");
    for st in &order[..shown] {
        let name = if st.name.chars().count() > 44 {
            format!("{}…", st.name.chars().take(43).collect::<String>())
        } else {
            st.name.clone()
        };
        let _ = writeln!(
            s,
            "{name:<44} {:<22} {:>10.4} {:>6.1}%",
            st.op,
            st.median_ms,
            100.0 * st.median_ms / total
        );
    }
    if shown < order.len() {
        let rest: f64 = order[shown..].iter().map(|s| s.median_ms).sum();
        let _ = writeln!(
            s,
            "{:<44} {:<22} {rest:>10.4} {:>6.1}%",
            format!("({} more steps)", order.len() - shown),
            "",
            100.0 * rest / total
        );
    }
    let mut by_op: Vec<(String, f64, usize)> = Vec::new();
    for st in steps {
        match by_op.iter_mut().find(|(o, _, _)| *o == st.op) {
            Some(e) => {
                e.1 += st.median_ms;
                e.2 += 1;
            }
            None => by_op.push((st.op.clone(), st.median_ms, 1)),
        }
    }
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    let _ = writeln!(s, "\nby op                                  steps         ms   share");
    for (op, t, n) in by_op {
        let _ = writeln!(s, "{op:<38} {n:>5} {t:>10.4} {:>6.1}%", 100.0 * t / total);
    }
    let _ = writeln!(s, "total (sum of step medians)                  {total:>10.4} ms");
    s
}
