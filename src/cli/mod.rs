//! Argument parsing and the commands; the work itself lives in the library.

mod demo;
mod train;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use pare::ir::Graph;
use pare::profile::{self, BenchOptions};
use pare::runtime::{RunOptions, Runtime};
use pare::tensor::{self, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "pare",
    version,
    about = "Make trained neural networks smaller and faster (ONNX in, ONNX out)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Per-layer table of a model: op, output shape, params, MACs, weight and activation bytes.
    Inspect {
        /// ONNX model.
        model: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Batch size (dim 0 of the inputs); default: the model's own, 1 where symbolic.
        #[arg(long)]
        batch: Option<usize>,
        /// Show the graph after pare's optimisation passes (BN folding, fusion).
        #[arg(long)]
        optimized: bool,
    },
    /// Run a model once and write every output as DIR/<name>.npy.
    Run {
        /// ONNX model.
        model: PathBuf,
        /// Input as NAME=FILE.npy (repeatable), or one FILE.npz holding all inputs by name.
        /// Inputs not given are random.
        #[arg(long = "input", value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// Seed for random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where to write outputs.
        #[arg(long, default_value = "pare-out")]
        output_dir: PathBuf,
        /// Batch size for random inputs (dim 0); default: the model's own, 1 where symbolic.
        #[arg(long)]
        batch: Option<usize>,
        /// Worker threads (0: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Measure latency percentiles, throughput and peak memory.
    Bench {
        /// ONNX model.
        model: PathBuf,
        /// Batch size (dim 0 of the inputs); default: the model's own, 1 where symbolic.
        #[arg(long)]
        batch: Option<usize>,
        /// Worker threads (0: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Untimed runs.
        #[arg(long, default_value_t = 10)]
        warmup: usize,
        /// Timed runs.
        #[arg(long, default_value_t = 100)]
        iters: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Time every plan step (fused steps as one) and print where the time goes.
        #[arg(long)]
        profile: bool,
        /// With --profile: show the slowest N steps (0: all).
        #[arg(long, default_value_t = 25)]
        top: usize,
        /// Also time the same file in onnxruntime (python3 package), with the same threads,
        /// inputs, warm-up and runs, and print the ratio.
        #[arg(long)]
        compare_ort: bool,
    },
    /// Optimise a model and choose each layer's kernel by measurement on this machine; write
    /// the model with the chosen plan stored in its metadata (`pare run` and `pare bench` use it).
    Compile {
        /// Input ONNX model (never overwritten).
        model: PathBuf,
        /// Output ONNX file.
        #[arg(short, long)]
        output: PathBuf,
        /// Batch size to tune for; default: the model's own, 1 where symbolic.
        #[arg(long)]
        batch: Option<usize>,
        /// Worker threads to tune for (0: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Seconds the tuner may spend measuring (0: heuristic kernels, no measurement).
        #[arg(long, default_value_t = 30.0)]
        budget: f64,
        /// Neither read nor write the tuning cache (default: $PARE_CACHE_DIR, else
        /// $XDG_CACHE_HOME/pare, else ~/.cache/pare).
        #[arg(long)]
        no_cache: bool,
        /// Print the per-layer result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply pare's graph optimisations (BN folding, activation fusion, ...) and write ONNX;
    /// then measure the model before and after (the speedup gate).
    Optimize {
        /// Input ONNX model (never overwritten).
        model: PathBuf,
        /// Output ONNX file.
        #[arg(short, long)]
        output: PathBuf,
        /// Batch size to measure at; default: the model's own, 1 where symbolic.
        #[arg(long)]
        batch: Option<usize>,
        /// Worker threads to measure with (0: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Skip the before/after measurement.
        #[arg(long)]
        no_gate: bool,
        /// List every rewrite made (rule and node), and where a rule nearly matched but did
        /// not fire, and why.
        #[arg(long)]
        explain: bool,
    },
    /// Write a copy of a model with another batch size (also for models exported with a fixed batch).
    Reshape {
        /// Input ONNX model (never overwritten).
        model: PathBuf,
        /// New batch size.
        #[arg(long)]
        batch: usize,
        /// Output ONNX file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Train a zoo model or fine-tune an ONNX model on a dataset.
    Train(train::TrainArgs),
    /// Top-1, top-5 and per-class accuracy of a classifier on a dataset.
    Eval(train::EvalArgs),
    /// List the model zoo.
    Zoo,
    /// The main job on embedded data: train LeNet-5 on an MNIST subset, evaluate, inspect,
    /// optimise, benchmark and export it.
    Demo {
        /// Where to write the exported model.
        #[arg(long, default_value = "pare-demo")]
        output_dir: PathBuf,
        /// Training epochs.
        #[arg(long, default_value_t = 4)]
        epochs: usize,
        /// Worker threads (0: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
}

/// Runs the program; returns the exit code (2 for any error).
pub fn main() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Inspect { model, json, batch, optimized } => inspect(&model, json, batch, optimized),
        Cmd::Run { model, inputs, seed, output_dir, batch, threads } => {
            run(&model, &inputs, seed, &output_dir, batch, threads)
        }
        Cmd::Bench { model, batch, threads, warmup, iters, json, profile, top, compare_ort } => {
            let g = pare::onnx::load(&model)?;
            let choices = stored_choices(&model, &g, threads);
            let opts = BenchOptions { batch, threads, warmup, iters, seed: 0, choices };
            if profile {
                let steps = profile::profile_steps(&g, &opts)
                    .with_context(|| format!("profiling {}", model.display()))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&steps)?);
                } else {
                    println!("{}: per-step medians of {iters} runs", model.display());
                    print!("{}", profile::profile_table(&steps, top));
                }
                return Ok(());
            }
            let r = profile::bench(&g, &opts).with_context(|| format!("benchmarking {}", model.display()))?;
            let ort = if compare_ort {
                let c = profile::concrete(&g, batch)?;
                let inputs = profile::random_inputs(&c, opts.seed)?;
                Some(
                    profile::ort_latency(Some(&model), &g, &c, &inputs, threads, warmup, iters)
                        .with_context(|| format!("timing {} in onnxruntime", model.display())),
                )
            } else {
                None
            };
            if json {
                let mut v = serde_json::to_value(&r)?;
                match &ort {
                    Some(Ok(o)) => {
                        v["onnxruntime"] = serde_json::to_value(o)?;
                        v["pare_over_ort_time"] = (r.latency_ms.p50 / o.median_ms).into();
                    }
                    Some(Err(e)) => v["onnxruntime_error"] = format!("{e:#}").into(),
                    None => {}
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_bench(&model.display().to_string(), &r);
                match &ort {
                    Some(Ok(o)) => {
                        let ratio = r.latency_ms.p50 / o.median_ms;
                        println!(
                            "  onnxruntime {}: p50 {:.3} ms{}; pare/onnxruntime time {ratio:.2}x ({})",
                            o.version,
                            o.median_ms,
                            if o.rebatched { " (on a re-batched copy pare wrote)" } else { "" },
                            if ratio <= 1.0 { "pare is faster" } else { "onnxruntime is faster" }
                        );
                    }
                    Some(Err(e)) => eprintln!("warning: onnxruntime not timed: {e:#}"),
                    None => {}
                }
            }
            Ok(())
        }
        Cmd::Compile { model, output, batch, threads, budget, no_cache, json } => {
            compile(&model, &output, batch, threads, budget, no_cache, json)
        }
        Cmd::Optimize { model, output, batch, threads, no_gate, explain } => {
            optimize(&model, &output, (!no_gate).then_some((batch, threads)), explain)
        }
        Cmd::Reshape { model, batch, output } => {
            refuse_overwrite(&model, &output)?;
            let g = pare::passes::set_batch(&pare::onnx::load(&model)?, batch)?;
            pare::onnx::save(&g, &output)?;
            println!("batch {batch}: written to {}", output.display());
            Ok(())
        }
        Cmd::Train(a) => train::train(&a),
        Cmd::Eval(a) => train::eval(&a),
        Cmd::Zoo => {
            for (name, about) in pare::zoo::names() {
                println!("{name:<18} {about}");
            }
            Ok(())
        }
        Cmd::Demo { output_dir, epochs, threads } => demo::demo(&output_dir, epochs, threads),
    }
}

fn inspect(model: &Path, json: bool, batch: Option<usize>, optimized: bool) -> Result<()> {
    let mut g = profile::concrete(&pare::onnx::load(model)?, batch)?;
    if optimized {
        pare::passes::optimize(&mut g)?;
    }
    let stats = profile::model_stats(&g)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        println!("{}", model.display());
        print_io(&g);
        print!("{}", profile::stats_table(&stats));
    }
    Ok(())
}

fn print_io(g: &Graph) {
    for &i in g.inputs() {
        println!("  input  {} {}", g.value(i).name, g.fact(i));
    }
    for &o in g.outputs() {
        println!("  output {} {}", g.value(o).name, g.fact(o));
    }
}

/// Reads `NAME=FILE.npy` / `FILE.npz` arguments into named tensors.
fn read_inputs(args: &[String]) -> Result<HashMap<String, Tensor>> {
    let mut map = HashMap::new();
    for a in args {
        if let Some((name, file)) = a.split_once('=') {
            let t = tensor::read_npy(Path::new(file)).with_context(|| format!("reading input {name}"))?;
            map.insert(name.to_string(), t);
        } else if a.ends_with(".npz") {
            for (name, t) in tensor::read_npz(Path::new(a))? {
                map.insert(name.trim_end_matches(".npy").to_string(), t);
            }
        } else {
            bail!("--input {a}: expected NAME=FILE.npy or FILE.npz");
        }
    }
    Ok(map)
}

/// Replaces every character outside `[A-Za-z0-9._-]` with `_`.
pub fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

fn run(
    model: &Path,
    args: &[String],
    seed: u64,
    out_dir: &Path,
    batch: Option<usize>,
    threads: usize,
) -> Result<()> {
    let g = pare::onnx::load(model)?;
    // Before any reshaping: the plan's fingerprint is of the graph as stored.
    let choices = stored_choices(model, &g, threads);
    let mut given = read_inputs(args)?;
    for name in given.keys() {
        if g.find(name).is_none_or(|v| !g.inputs().contains(&v)) {
            let names: Vec<&str> = g.inputs().iter().map(|v| g.value(*v).name.as_str()).collect();
            bail!("{}: no input named \"{name}\" (inputs: {})", model.display(), names.join(", "));
        }
    }
    // Random inputs for the rest.
    let g = if batch.is_some() { profile::concrete(&g, batch)? } else { g };
    let random = profile::random_inputs(&profile::concrete(&g, None)?, seed)?;
    let mut inputs = Vec::new();
    for (k, &v) in g.inputs().iter().enumerate() {
        let name = &g.value(v).name;
        inputs.push(given.remove(name).unwrap_or_else(|| random[k].clone()));
    }
    let rt = Runtime::with_choices(g, RunOptions { threads, optimize: true }, choices)?;
    let outs = rt.run(inputs).with_context(|| format!("running {}", model.display()))?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for (name, t) in rt.output_names().iter().zip(&outs) {
        let path = out_dir.join(format!("{}.npy", sanitize(name)));
        tensor::write_npy(&path, t)?;
        println!("{} {}{:?} -> {}", name, t.dtype(), t.shape(), path.display());
    }
    Ok(())
}

pub(crate) fn print_bench(what: &str, r: &profile::BenchResult) {
    println!("{what}: batch {}, {} threads, {} runs", r.batch, r.threads, r.iters);
    println!(
        "  latency  p50 {:.3} ms   p90 {:.3} ms   p99 {:.3} ms",
        r.latency_ms.p50, r.latency_ms.p90, r.latency_ms.p99
    );
    println!("  throughput {:.1} samples/s", r.throughput_per_s);
    if let Some(p) = r.peak_memory_bytes {
        println!("  peak memory {}", profile::human_bytes(p));
    }
}

/// The stored plan's kernel choices for `g` (loaded from `model`), printing why a plan was
/// ignored or how it differs from this run.
fn stored_choices(model: &Path, g: &Graph, threads: usize) -> HashMap<String, pare::runtime::Variant> {
    let (choices, notes) = pare::compile::stored::choices_for(g, threads);
    for n in notes {
        eprintln!("{}: {n}", model.display());
    }
    choices
}

fn compile(
    model: &Path,
    output: &Path,
    batch: Option<usize>,
    threads: usize,
    budget: f64,
    no_cache: bool,
    json: bool,
) -> Result<()> {
    use pare::compile::{self, CompileOptions, stored};
    refuse_overwrite(model, output)?;
    if !budget.is_finite() || budget < 0.0 {
        bail!("--budget must be a number of seconds >= 0 (got {budget})");
    }
    let g = pare::onnx::load(model)?;
    let mut opts = CompileOptions {
        batch,
        threads,
        budget: std::time::Duration::from_secs_f64(budget),
        ..Default::default()
    };
    if no_cache {
        opts.cache = None;
    }
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("tuning {msg} [{bar:30}] {pos}/{len} runs")
            .expect("valid template"),
    );
    let c = compile::compile(&g, &opts, &mut |what, done, total| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(what.to_string());
    })
    .with_context(|| format!("compiling {}", model.display()))?;
    bar.finish_and_clear();
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    stored::save(&c.graph, output, c.threads, c.batch, &c.choices)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&c.layers)?);
    } else {
        println!("{}: batch {}, {} threads", model.display(), c.batch, c.threads);
        print!("{}", compile::layer_table(&c));
        let count = |s: compile::Source| c.layers.iter().filter(|l| l.source == s).count();
        println!(
            "{} tunable layers: {} measured, {} from the cache, {} with one variant, {} heuristic",
            c.layers.len(),
            count(compile::Source::Measured),
            count(compile::Source::Cached),
            count(compile::Source::Only),
            count(compile::Source::Heuristic)
        );
        match (c.heuristic_ms, c.tuned_ms) {
            (Some(h), Some(t)) => println!(
                "whole model: {h:.3} ms with heuristic kernels, {t:.3} ms tuned ({:.2}x){}",
                h / t,
                if c.kept_tuned { "" } else { "; heuristic plan kept" }
            ),
            _ => println!("whole model: the heuristic plan is the tuned plan (no layer changed)"),
        }
    }
    println!(
        "compiled in {:.1} s; {} layer choices stored; written to {}",
        c.elapsed.as_secs_f64(),
        c.choices.len(),
        output.display()
    );
    Ok(())
}

fn optimize(model: &Path, output: &Path, gate: Option<(Option<usize>, usize)>, explain: bool) -> Result<()> {
    refuse_overwrite(model, output)?;
    let original = pare::onnx::load(model)?;
    let mut g = original.clone();
    let before = g.node_count();
    if explain {
        print_explanation(&pare::passes::optimize_explained(&mut g)?);
    } else {
        pare::passes::optimize(&mut g)?;
    }
    // A stored plan named the original graph's nodes; it does not describe this one.
    g.set_metadata(pare::compile::stored::KEY, None);
    pare::onnx::save(&g, output)?;
    println!("{} nodes -> {} nodes, written to {}", before, g.node_count(), output.display());
    if let Some((batch, threads)) = gate {
        // Both are timed as the files stand (pare's runtime would apply the same passes to the
        // original on load), and in onnxruntime, which runs the written file.
        let opts = profile::GateOptions {
            batch,
            threads,
            pare_passes: false,
            onnxruntime: true,
            ..Default::default()
        };
        let r = profile::speedup_gate(&original, &g, &opts).context("measuring before and after")?;
        println!("{}", r.summary("optimize"));
    }
    Ok(())
}

fn print_explanation(e: &pare::passes::Explanation) {
    let mut rules: Vec<&str> = e.fired.iter().map(|(r, _)| r.as_str()).collect();
    rules.extend(e.near_misses.iter().map(|(r, _, _)| r.as_str()));
    rules.sort();
    rules.dedup();
    for rule in rules {
        let fired: Vec<&String> = e.fired.iter().filter(|(r, _)| r == rule).map(|(_, n)| n).collect();
        let near: Vec<_> = e.near_misses.iter().filter(|(r, _, _)| r == rule).collect();
        println!("{rule}: fired {} time(s), {} near miss(es)", fired.len(), near.len());
        for n in fired {
            println!("  fired on {n}");
        }
        for (_, n, why) in near {
            println!("  not on {n}: {why}");
        }
    }
    if e.fired.is_empty() && e.near_misses.is_empty() {
        println!("no rule fired or nearly matched");
    }
}

/// Errors if `output` is the same file as `input`.
pub(crate) fn refuse_overwrite(input: &Path, output: &Path) -> Result<()> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        bail!("refusing to overwrite the input model {}", input.display());
    }
    Ok(())
}

pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let (a, b) = (a.f32s()?, b.f32s()?);
    if a.len() != b.len() {
        bail!("output sizes differ: {} vs {}", a.len(), b.len());
    }
    Ok(a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max))
}
