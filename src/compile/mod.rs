//! Compiling a graph for this CPU: pare's graph optimisations, then a kernel variant chosen
//! per layer by measurement on this machine, with a tuning cache shared by every model and
//! the chosen plan stored in the exported model.
//!
//! The tuner measures each tunable layer (convs, constant-weight matrix products) with each
//! variant that applies to it, inside the whole model (so caches and the fused epilogue are
//! as in a real run): round `r` runs the model with every unmeasured layer on its `r`-th
//! candidate and times every plan step. It then keeps the fastest per layer and checks the
//! whole model, tuned against heuristic, in interleaved runs; when the tuned plan is not
//! faster it keeps the heuristic one and says so.

pub mod cache;
pub mod cpu;
pub mod stored;

use crate::ir::Graph;
use crate::profile::{batch_of, concrete, interleaved_medians, median, random_inputs};
use crate::runtime::{Layer, RunOptions, Runtime, Variant};
use crate::tensor::Tensor;
use anyhow::Result;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to compile for.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Batch size (dim 0 of the inputs); `None`: the model's own, 1 where symbolic.
    pub batch: Option<usize>,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Time the tuner may spend measuring; zero means heuristics only (no measurement, no
    /// cache).
    pub budget: Duration,
    /// Tuning cache file; `None`: no cache (every layer is measured, nothing is saved).
    pub cache: Option<PathBuf>,
    /// Seed of the random inputs used for timing.
    pub seed: u64,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            batch: None,
            threads: 0,
            budget: Duration::from_secs(30),
            cache: cache::default_dir().map(|d| cache::file_for(&d, &cpu::CpuId::detect())),
            seed: 0,
        }
    }
}

/// Where a layer's choice came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Source {
    /// Measured in this compile.
    Measured,
    /// Found in the tuning cache.
    Cached,
    /// Only one variant applies.
    Only,
    /// Not measured (budget 0, or the budget ran out first).
    Heuristic,
}

/// The outcome for one layer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerChoice {
    /// Node name (the key of the choice).
    pub node: String,
    /// Signature (op, shapes, attributes, epilogue, dtype).
    pub signature: String,
    /// The heuristic's variant.
    pub heuristic: Variant,
    /// The variant kept.
    pub chosen: Variant,
    /// Median step time with the heuristic's variant (ms), where measured or cached.
    pub before_ms: Option<f64>,
    /// Median step time with the chosen variant (ms), where measured or cached.
    pub after_ms: Option<f64>,
    /// Every measured variant's median (ms).
    pub times_ms: BTreeMap<String, f64>,
    /// Where the choice came from.
    pub source: Source,
}

/// The result of [`compile`].
#[derive(Debug)]
pub struct Compiled {
    /// The optimised graph, at the input's own batch dims (what `pare compile` writes).
    pub graph: Graph,
    /// Variant per node name where it differs from the heuristic (empty when the
    /// heuristic plan was kept).
    pub choices: HashMap<String, Variant>,
    /// Per tunable layer, in plan order.
    pub layers: Vec<LayerChoice>,
    /// Whole-model median latency with heuristic kernels (ms), when checked.
    pub heuristic_ms: Option<f64>,
    /// Whole-model median latency with the tuned kernels (ms), when checked.
    pub tuned_ms: Option<f64>,
    /// Whether the tuned choices were kept (false: the whole-model check found them no
    /// faster, or nothing differed from the heuristic).
    pub kept_tuned: bool,
    /// Batch and threads tuned for.
    pub batch: usize,
    /// Threads tuned for.
    pub threads: usize,
    /// Warnings for the user (cache problems, budget exhausted, plan not paying).
    pub warnings: Vec<String>,
    /// Wall time of the whole compile.
    pub elapsed: Duration,
}

/// How much faster (as a fraction) a variant must measure than the heuristic's to replace it.
const MARGIN: f64 = 0.03;

/// Progress callback: `(what, done, total)`.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// Per-step median times (ms) of `iters` profiled runs, keyed by step name.
fn step_medians(rt: &Runtime, inputs: &[Tensor], iters: usize) -> Result<HashMap<String, f64>> {
    let mut per: HashMap<String, Vec<f64>> = HashMap::new();
    for _ in 0..iters {
        for nt in rt.profile(inputs.to_vec())?.1 {
            per.entry(nt.name).or_default().push(nt.time.as_secs_f64() * 1e3);
        }
    }
    Ok(per.into_iter().map(|(k, v)| (k, median(v))).collect())
}

/// Optimises `graph` and chooses a kernel variant per layer by measurement (see the module
/// documentation). `progress` is told what is being measured.
pub fn compile(graph: &Graph, opts: &CompileOptions, progress: Progress) -> Result<Compiled> {
    let start = Instant::now();
    let mut optimized = graph.clone();
    crate::passes::optimize(&mut optimized)?;
    let g = concrete(&optimized, opts.batch)?;
    let batch = batch_of(&g);
    let inputs = random_inputs(&g, opts.seed)?;
    let run_opts = RunOptions { threads: opts.threads, optimize: true };
    let heur = Runtime::new(g.clone(), run_opts.clone())?;
    let threads = heur.threads();
    let layers: Vec<Layer> = heur.layers(&inputs)?;
    let mut warnings = Vec::new();

    let tuning = !opts.budget.is_zero();
    let mut cache = match (&opts.cache, tuning) {
        (Some(p), true) => {
            let c = cache::TuneCache::open(p, &cpu::CpuId::detect());
            warnings.extend(c.warnings.iter().cloned());
            Some(c)
        }
        _ => None,
    };

    let mut out: Vec<LayerChoice> = layers
        .iter()
        .map(|l| {
            let cands = Variant::candidates(&l.shape);
            let mut c = LayerChoice {
                node: l.node.clone(),
                signature: l.signature.clone(),
                heuristic: l.variant,
                chosen: l.variant,
                before_ms: None,
                after_ms: None,
                times_ms: BTreeMap::new(),
                source: if cands.len() <= 1 { Source::Only } else { Source::Heuristic },
            };
            if c.source == Source::Heuristic
                && tuning
                && let Some((best, e)) = cache.as_ref().and_then(|k| k.get(threads, &l.signature))
                && best.applies(&l.shape)
            {
                c.chosen = best;
                c.times_ms = e.times_ms.clone();
                c.source = Source::Cached;
            }
            c
        })
        .collect();

    // Choices are keyed by node name: layers whose name is not unique (files with unnamed
    // nodes) cannot carry one, and stay on the heuristic.
    let mut named: HashMap<&str, usize> = HashMap::new();
    for l in &layers {
        *named.entry(l.node.as_str()).or_default() += 1;
    }
    let shared = |i: usize| named[layers[i].node.as_str()] > 1;
    let n_shared = (0..layers.len()).filter(|&i| shared(i)).count();
    if tuning && n_shared > 0 {
        warnings.push(format!(
            "{n_shared} tunable layers share their node names with others (e.g. \"{}\"); they keep \
             heuristic kernels (give the nodes unique names to tune them)",
            layers[(0..layers.len()).find(|&i| shared(i)).unwrap_or(0)].node
        ));
    }
    for (i, c) in out.iter_mut().enumerate() {
        if shared(i) && c.source == Source::Cached {
            c.source = Source::Heuristic;
            c.chosen = c.heuristic;
            c.times_ms.clear();
        }
    }
    // Layers to measure, with their candidates.
    let pending: Vec<(usize, Vec<Variant>)> = if tuning {
        out.iter()
            .enumerate()
            .filter(|(i, c)| c.source == Source::Heuristic && !shared(*i))
            .map(|(i, _)| (i, Variant::candidates(&layers[i].shape)))
            .collect()
    } else {
        Vec::new()
    };
    // Distinct signatures are measured once per round: layers sharing one are timed
    // together and their medians pooled.
    let rounds = pending.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    if rounds > 0 {
        // One profiled run tells how many runs a round can afford.
        for _ in 0..2 {
            heur.run(inputs.clone())?;
        }
        let t0 = Instant::now();
        heur.profile(inputs.clone())?;
        let one = t0.elapsed().as_secs_f64().max(1e-6);
        let left = opts.budget.saturating_sub(start.elapsed()).as_secs_f64() * 0.75;
        let iters = ((left / (rounds as f64 * (one * 1.3))) as usize).clamp(3, 25);
        let total = (rounds * (iters + 2)) as u64;
        let mut measured: HashMap<usize, BTreeMap<Variant, Vec<f64>>> = HashMap::new();
        for r in 0..rounds {
            if start.elapsed() > opts.budget {
                warnings.push(format!(
                    "the tuning budget ({:.0} s) ran out after {r} of {rounds} rounds; unmeasured variants \
                     were not considered (raise --budget)",
                    opts.budget.as_secs_f64()
                ));
                break;
            }
            progress(&format!("round {}/{rounds}", r + 1), (r * (iters + 2)) as u64, total);
            let mut choices: HashMap<String, Variant> = out
                .iter()
                .filter(|c| c.source == Source::Cached)
                .map(|c| (c.node.clone(), c.chosen))
                .collect();
            let mut timed = Vec::new();
            for (i, cands) in &pending {
                let v = cands[r.min(cands.len() - 1)];
                choices.insert(layers[*i].node.clone(), v);
                if r < cands.len() {
                    timed.push((*i, v));
                }
            }
            let rt = Runtime::with_choices(g.clone(), run_opts.clone(), choices)?;
            let names: HashMap<String, String> =
                rt.layers(&inputs)?.into_iter().map(|l| (l.node, l.step_name)).collect();
            for _ in 0..2 {
                rt.run(inputs.clone())?;
            }
            let med = step_medians(&rt, &inputs, iters)?;
            for (i, v) in timed {
                let Some(t) = names.get(&layers[i].node).and_then(|s| med.get(s)) else { continue };
                measured.entry(i).or_default().entry(v).or_default().push(*t);
            }
        }
        progress("measured", total, total);
        // Pool layers of equal signature, then pick the fastest per signature.
        let mut by_sig: HashMap<&str, BTreeMap<Variant, Vec<f64>>> = HashMap::new();
        for (i, m) in &measured {
            let e = by_sig.entry(layers[*i].signature.as_str()).or_default();
            for (v, t) in m {
                e.entry(*v).or_default().extend(t);
            }
        }
        for (i, cands) in &pending {
            let Some(m) = by_sig.get(layers[*i].signature.as_str()) else { continue };
            let times: BTreeMap<String, f64> =
                m.iter().map(|(v, t)| (v.name().to_string(), median(t.clone()))).collect();
            let Some(mut best) = m.keys().copied().min_by(|a, b| times[a.name()].total_cmp(&times[b.name()]))
            else {
                continue;
            };
            // Timing noise is a few percent: the heuristic keeps its place unless beaten by more.
            let h = layers[*i].variant;
            if let Some(th) = times.get(h.name())
                && times[best.name()] * (1.0 + MARGIN) > *th
            {
                best = h;
            }
            let c = &mut out[*i];
            c.chosen = best;
            c.times_ms = times.clone();
            c.source = Source::Measured;
            if m.len() == cands.len()
                && let Some(k) = cache.as_mut()
            {
                k.put(threads, &c.signature, cache::Entry { best: best.name().to_string(), times_ms: times });
            }
        }
    }
    for c in &mut out {
        c.before_ms = c.times_ms.get(c.heuristic.name()).copied();
        c.after_ms = c.times_ms.get(c.chosen.name()).copied();
    }
    // Whole-model check: the tuned plan must beat the heuristic one.
    let choices: HashMap<String, Variant> =
        out.iter().filter(|c| c.chosen != c.heuristic).map(|c| (c.node.clone(), c.chosen)).collect();
    let (mut heuristic_ms, mut tuned_ms, mut kept_tuned) = (None, None, false);
    if !choices.is_empty() {
        let mut sorted: Vec<String> = choices.iter().map(|(k, v)| format!("{k}={}", v.name())).collect();
        sorted.sort();
        let key = format!("t{threads} b{batch} {} {}", stored::fingerprint(&g)?, sorted.join(","));
        let (h, t, runs) = match cache.as_ref().and_then(|k| k.get_model(&key)) {
            Some(e) => (e.heuristic_ms, e.tuned_ms, e.runs),
            None => {
                let tuned = Runtime::with_choices(g.clone(), run_opts.clone(), choices.clone())?;
                for _ in 0..2 {
                    tuned.run(inputs.clone())?;
                    heur.run(inputs.clone())?;
                }
                let t0 = Instant::now();
                tuned.run(inputs.clone())?;
                let one = t0.elapsed().as_secs_f64().max(1e-6);
                let left = opts.budget.saturating_sub(start.elapsed()).as_secs_f64().max(0.5);
                let runs = ((left / (2.0 * one)) as usize).clamp(7, 51);
                progress("whole-model check", 0, 1);
                let (h, t) = interleaved_medians(&heur, &tuned, &inputs, runs)?;
                progress("whole-model check", 1, 1);
                if let Some(k) = cache.as_mut() {
                    k.put_model(&key, cache::ModelEntry { heuristic_ms: h, tuned_ms: t, runs });
                }
                (h, t, runs)
            }
        };
        heuristic_ms = Some(h);
        tuned_ms = Some(t);
        kept_tuned = t < h;
        if !kept_tuned {
            warnings.push(format!(
                "the tuned plan is not faster on the whole model ({t:.3} ms vs {h:.3} ms with heuristic \
                 kernels, medians of {runs} interleaved runs); keeping the heuristic plan"
            ));
        }
    }
    if let Some(k) = &cache
        && let Err(e) = k.save()
    {
        warnings.push(format!("cannot save the tuning cache: {e:#}"));
    }
    if !kept_tuned {
        for c in &mut out {
            c.chosen = c.heuristic;
            c.after_ms = c.before_ms;
        }
    }
    Ok(Compiled {
        graph: optimized,
        choices: if kept_tuned { choices } else { HashMap::new() },
        layers: out,
        heuristic_ms,
        tuned_ms,
        kept_tuned,
        batch,
        threads,
        warnings,
        elapsed: start.elapsed(),
    })
}

/// The per-layer table: layer, chosen variant, time before (heuristic) and after, speedup,
/// and where the choice came from.
pub fn layer_table(c: &Compiled) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<40} {:<12} {:<12} {:>10} {:>10} {:>8}  source",
        "layer", "heuristic", "chosen", "before ms", "after ms", "speedup"
    );
    let ms = |t: Option<f64>| t.map(|t| format!("{t:.4}")).unwrap_or_else(|| "-".into());
    for l in &c.layers {
        let name = if l.node.chars().count() > 40 {
            format!("{}…", l.node.chars().take(39).collect::<String>())
        } else {
            l.node.clone()
        };
        let speedup = match (l.before_ms, l.after_ms) {
            (Some(b), Some(a)) if a > 0.0 => format!("{:.2}x", b / a),
            _ => "-".into(),
        };
        let src = match l.source {
            Source::Measured => "measured",
            Source::Cached => "cache",
            Source::Only => "only variant",
            Source::Heuristic => "heuristic",
        };
        let _ = writeln!(
            s,
            "{name:<40} {:<12} {:<12} {:>10} {:>10} {speedup:>8}  {src}",
            l.heuristic.name(),
            l.chosen.name(),
            ms(l.before_ms),
            ms(l.after_ms)
        );
    }
    s
}
