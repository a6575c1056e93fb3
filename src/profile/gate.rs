//! The speedup gate: every technique's claim of "faster" and "smaller" is a measurement of the
//! model before and after its transform, at the user's batch and threads.
//!
//! [`speedup_gate`] runs both graphs on the pare runtime in interleaved runs (so drift in the
//! machine's speed hits both alike), optionally times both in onnxruntime too, weighs both
//! as ONNX bytes, and says plainly when the transform does not pay.

use super::ort::{OrtTiming, ort_latency};
use super::{concrete, random_inputs};
use crate::ir::Graph;
use crate::runtime::{RunOptions, Runtime};
use crate::tensor::Tensor;
use anyhow::{Context, Result, bail};
use std::time::Instant;

/// How to measure.
#[derive(Clone, Debug)]
pub struct GateOptions {
    /// Batch size (dim 0 of the inputs); `None`: the model's own, 1 where symbolic.
    pub batch: Option<usize>,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Untimed runs of each graph first.
    pub warmup: usize,
    /// Timed runs of each graph (interleaved).
    pub runs: usize,
    /// The speedup (before / after latency) from which the transform counts as paying.
    pub min_speedup: f64,
    /// Also time both graphs in onnxruntime (an error there is reported, not fatal).
    pub onnxruntime: bool,
    /// Let pare's runtime apply its own graph passes to both (as `pare run` does); off to
    /// time each graph as it stands, for a transform that is itself a graph pass.
    pub pare_passes: bool,
    /// Seed of the random inputs.
    pub seed: u64,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            batch: None,
            threads: 0,
            warmup: 3,
            runs: 21,
            min_speedup: 1.02,
            onnxruntime: false,
            pare_passes: true,
            seed: 0,
        }
    }
}

/// Before and after, side by side.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GateReport {
    /// Median pare latency before (ms).
    pub before_ms: f64,
    /// Median pare latency after (ms).
    pub after_ms: f64,
    /// `before_ms / after_ms`.
    pub speedup: f64,
    /// onnxruntime before and after, when asked for and available.
    pub ort: Option<(OrtTiming, OrtTiming)>,
    /// Why onnxruntime was not timed, when asked for.
    pub ort_error: Option<String>,
    /// Size of each graph as an ONNX file (bytes).
    pub before_bytes: u64,
    /// Size after (bytes).
    pub after_bytes: u64,
    /// Largest absolute difference between the two graphs' f32 outputs on the timing input.
    pub max_abs_diff: Option<f32>,
    /// Batch measured.
    pub batch: usize,
    /// Threads used.
    pub threads: usize,
    /// Timed runs of each.
    pub runs: usize,
    /// Whether the speedup reaches [`GateOptions::min_speedup`].
    pub pays: bool,
}

impl GateReport {
    /// A few lines for the user: both latencies, both sizes, and a warning when the
    /// transform is not faster.
    pub fn summary(&self, what: &str) -> String {
        let mut s = format!(
            "{what}: pare {:.3} ms -> {:.3} ms ({:.2}x) at batch {}, {} threads (medians of {} interleaved runs); \
             {} -> {} on disk",
            self.before_ms,
            self.after_ms,
            self.speedup,
            self.batch,
            self.threads,
            self.runs,
            super::human_bytes(self.before_bytes),
            super::human_bytes(self.after_bytes)
        );
        if let Some((b, a)) = &self.ort {
            s += &format!(
                "\n  onnxruntime {}: {:.3} ms -> {:.3} ms ({:.2}x)",
                a.version,
                b.median_ms,
                a.median_ms,
                b.median_ms / a.median_ms
            );
        }
        if let Some(e) = &self.ort_error {
            s += &format!("\n  onnxruntime not timed: {e}");
        }
        if !self.pays {
            s += &format!(
                "\n  warning: {what} does not pay in latency here ({:.2}x at batch {}, {} threads)",
                self.speedup, self.batch, self.threads
            );
        }
        s
    }
}

/// Whole-run median latencies (ms) of two runtimes on the same inputs, `runs` runs each,
/// interleaved and alternating which goes first, so neither always runs on a warmer cache
/// and drift in the machine's speed hits both alike.
pub(crate) fn interleaved_medians(
    a: &Runtime,
    b: &Runtime,
    inputs: &[Tensor],
    runs: usize,
) -> Result<(f64, f64)> {
    let (mut ta, mut tb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        let order: [(&Runtime, &mut Vec<f64>); 2] =
            if i % 2 == 0 { [(a, &mut ta), (b, &mut tb)] } else { [(b, &mut tb), (a, &mut ta)] };
        for (rt, t) in order {
            let t0 = Instant::now();
            drop(rt.run(inputs.to_vec())?);
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((super::bench::median(ta), super::bench::median(tb)))
}

/// Measures `before` and `after` (the same model before and after a transform; each may
/// carry a stored plan, which is used). Both must take inputs of the same names and shapes.
pub fn speedup_gate(before: &Graph, after: &Graph, opts: &GateOptions) -> Result<GateReport> {
    if opts.runs == 0 {
        bail!("the speedup gate needs at least one timed run");
    }
    let (gb, ga) = (concrete(before, opts.batch)?, concrete(after, opts.batch)?);
    let sig = |g: &Graph| -> Vec<String> {
        g.inputs().iter().map(|&v| format!("{} {}", g.value(v).name, g.fact(v))).collect()
    };
    if sig(&gb) != sig(&ga) {
        bail!(
            "the speedup gate compares graphs with the same inputs; before: [{}], after: [{}]",
            sig(&gb).join(", "),
            sig(&ga).join(", ")
        );
    }
    let batch = super::batch_of(&gb);
    let inputs = random_inputs(&gb, opts.seed)?;
    let runtime = |orig: &Graph, g: &Graph| -> Result<Runtime> {
        let (choices, _) = crate::compile::stored::choices_for(orig, opts.threads);
        Runtime::with_choices(
            g.clone(),
            RunOptions { threads: opts.threads, optimize: opts.pare_passes },
            choices,
        )
    };
    let rb = runtime(before, &gb).context("before")?;
    let ra = runtime(after, &ga).context("after")?;
    let yb = rb.run(inputs.clone()).context("running the graph before the transform")?;
    let ya = ra.run(inputs.clone()).context("running the graph after the transform")?;
    let max_abs_diff = (yb.len() == ya.len())
        .then(|| {
            yb.iter().zip(&ya).try_fold(0f32, |m, (p, q)| {
                let (p, q) = (p.f32s().ok()?, q.f32s().ok()?);
                (p.len() == q.len()).then(|| p.iter().zip(q).fold(m, |m, (u, v)| m.max((u - v).abs())))
            })
        })
        .flatten();
    for _ in 0..opts.warmup {
        rb.run(inputs.clone())?;
        ra.run(inputs.clone())?;
    }
    let (before_ms, after_ms) = interleaved_medians(&rb, &ra, &inputs, opts.runs)?;
    let speedup = before_ms / after_ms.max(1e-12);
    let (mut ort, mut ort_error) = (None, None);
    if opts.onnxruntime {
        let time = |g: &Graph| ort_latency(None, g, g, &inputs, opts.threads, opts.warmup, opts.runs);
        match time(&gb).and_then(|b| Ok((b, time(&ga)?))) {
            Ok(p) => ort = Some(p),
            Err(e) => ort_error = Some(format!("{e:#}")),
        }
    }
    Ok(GateReport {
        before_ms,
        after_ms,
        speedup,
        ort,
        ort_error,
        before_bytes: crate::onnx::to_bytes(before)?.len() as u64,
        after_bytes: crate::onnx::to_bytes(after)?.len() as u64,
        max_abs_diff,
        batch,
        threads: rb.threads(),
        runs: opts.runs,
        pays: speedup >= opts.min_speedup,
    })
}
