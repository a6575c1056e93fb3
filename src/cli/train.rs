//! `pare train` and `pare eval`: argument handling, progress bars and log lines.

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pare::autodiff::TrainSpec;
use pare::data::{self, Augment, Dataset, LoaderOptions, Normalize, Split};
use pare::ir::{Graph, Loss};
use pare::train::optim::{Optimizer, OptimizerKind};
use pare::train::schedule::ScheduleSpec;
use pare::train::{EvalReport, Event, FitConfig, Trainer, evaluate, fit, load_checkpoint};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of `pare train`.
#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    /// A zoo model name (see `pare zoo`) or an ONNX file to fine-tune.
    #[arg(long)]
    pub model: String,
    /// Training data: mnist:DIR, fashion-mnist:DIR, folder:DIR|FILE.tar.gz, cifar10:FILE.tar.gz,
    /// npz:FILE, csv:FILE|DIR.
    #[arg(long)]
    pub data: String,
    /// Output ONNX file (written atomically at the end).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f32,
    /// sgd, momentum, nesterov, adam or adamw.
    #[arg(long, default_value = "momentum")]
    pub optimizer: String,
    /// Momentum for momentum/nesterov SGD.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Weight decay (L2 for SGD/Adam, decoupled for AdamW).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, cosine[:MIN], with optional
    /// warmup:N (counts in steps or epochs with an e suffix, e.g. "warmup:1e,cosine").
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// Label smoothing for the cross-entropy.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// Augmentation: "none", or any of crop:PAD and flip, comma-separated (e.g. crop:4,flip).
    #[arg(long, default_value = "none")]
    pub augment: String,
    /// Pixel range the model expects for u8 images: 1 ([0,1], zoo models) or 255 (raw).
    #[arg(long, default_value_t = 1.0)]
    pub pixel_range: f32,
    /// Seed for initialisation, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Use only N training samples (a random subset chosen by --seed).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip the test-set evaluation after each epoch.
    #[arg(long)]
    pub no_eval: bool,
    /// Checkpoint written after every epoch (default: OUTPUT with .ckpt.npz).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from this checkpoint (same model and optimiser settings).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Print one JSON object per epoch instead of a progress bar and log lines.
    #[arg(long)]
    pub json: bool,
}

/// Options of `pare eval`.
#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    /// ONNX model.
    pub model: PathBuf,
    /// Data, as for `pare train`.
    #[arg(long)]
    pub data: String,
    /// Which split: test or train.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Pixel range the model expects for u8 images: 1 or 255 (raw, e.g. mnist-conv.onnx).
    #[arg(long, default_value_t = 1.0)]
    pub pixel_range: f32,
    /// Use only N samples (a fixed random subset).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print JSON (with the confusion matrix).
    #[arg(long)]
    pub json: bool,
}

/// Preprocessing for a pixel range: u8 values scaled to [0, range].
pub fn normalize_for(range: f32) -> Result<Normalize> {
    if !(range > 0.0 && range.is_finite()) {
        bail!("--pixel-range must be positive, got {range}");
    }
    Ok(Normalize { scale: Some(range / 255.0), mean: vec![], std: vec![] })
}

fn parse_augment(s: &str) -> Result<Option<Augment>> {
    let mut a = Augment::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once(':') {
            _ if part == "none" => return Ok(None),
            _ if part == "flip" => a.hflip = true,
            Some(("crop", n)) => {
                a.crop_pad = n.parse().with_context(|| format!("--augment {part}: bad padding"))?
            }
            _ => bail!("--augment: unknown part \"{part}\"; use none, crop:PAD, flip"),
        }
    }
    Ok(Some(a))
}

fn parse_optimizer(name: &str, momentum: f32) -> Result<OptimizerKind> {
    Ok(match name {
        "sgd" => OptimizerKind::Sgd { momentum: 0.0, nesterov: false },
        "momentum" => OptimizerKind::Sgd { momentum, nesterov: false },
        "nesterov" => OptimizerKind::Sgd { momentum, nesterov: true },
        "adam" => OptimizerKind::adam(),
        "adamw" => OptimizerKind::adamw(),
        _ => bail!("--optimizer {name}: use sgd, momentum, nesterov, adam or adamw"),
    })
}

/// A seeded random subset of `limit` samples (datasets are often sorted by class, so the first
/// N samples would not do).
fn limited(mut ds: Dataset, limit: Option<usize>, seed: u64) -> Dataset {
    if let Some(n) = limit.filter(|&n| n < ds.len()) {
        let mut idx = data::loader::epoch_order(ds.len(), true, seed, u64::MAX)[..n].to_vec();
        idx.sort_unstable();
        ds = ds.subset(&idx);
    }
    ds
}

/// Loads a model: a zoo name or an ONNX file.
pub fn load_model(name: &str, classes: usize, seed: u64) -> Result<Graph> {
    if Path::new(name).exists() || name.ends_with(".onnx") {
        return pare::onnx::load(Path::new(name));
    }
    pare::zoo::build(name, classes, seed)
}

/// `pare train`.
pub fn train(a: &TrainArgs) -> Result<()> {
    if Path::new(&a.model).exists() {
        super::refuse_overwrite(Path::new(&a.model), &a.output)?;
    }
    let spec = data::parse_spec(&a.data)?;
    let train = Arc::new(limited(data::load(&spec, Split::Train)?, a.limit, a.seed));
    let test = if a.no_eval { None } else { Some(Arc::new(data::load(&spec, Split::Test)?)) };
    let model = load_model(&a.model, train.num_classes(), a.seed)?;
    let mut tspec = TrainSpec::classification(a.batch);
    tspec.loss = Loss::CrossEntropy { label_smoothing: a.label_smoothing, temperature: 1.0 };
    let opt = Optimizer::new(parse_optimizer(&a.optimizer, a.momentum)?, a.weight_decay);
    let mut trainer = Trainer::new(&model, &tspec, opt, a.threads, a.seed)?;
    trainer.check_data(&train.sample_shape, train.num_classes())?;
    let loader = LoaderOptions {
        batch: a.batch,
        shuffle: true,
        drop_last: true,
        seed: a.seed,
        normalize: normalize_for(a.pixel_range)?,
        augment: parse_augment(&a.augment)?,
        prefetch: 4,
    };
    let steps_per_epoch = data::num_batches(train.len(), &loader);
    let schedule =
        ScheduleSpec::parse(&a.schedule)?.resolve(a.lr, steps_per_epoch * a.epochs, steps_per_epoch)?;
    let ckpt = a.checkpoint.clone().unwrap_or_else(|| a.output.with_extension("ckpt.npz"));
    let mut start_epoch = 0;
    if let Some(r) = &a.resume {
        start_epoch = load_checkpoint(r, &mut trainer)? + 1;
        if !a.json {
            println!("resumed from {} after epoch {start_epoch}", r.display());
        }
    }
    let cfg = FitConfig {
        epochs: a.epochs,
        schedule,
        loader,
        eval_batch: 256,
        threads: a.threads,
        checkpoint: Some(ckpt.clone()),
        start_epoch,
    };
    if !a.json {
        println!(
            "training {} ({} parameters) on {} ({} samples, {} classes), batch {}, {} epochs",
            a.model,
            trainer.param_count(),
            spec,
            train.len(),
            train.num_classes(),
            a.batch,
            a.epochs
        );
    }
    let logs = run_fit(&mut trainer, train, test, &cfg, a.json)?;
    pare::onnx::save(&trainer.model()?, &a.output)?;
    if a.json {
        let last = logs.last();
        println!("{}", serde_json::json!({"output": a.output, "checkpoint": ckpt, "final": last}));
    } else {
        println!("written {} (checkpoint {})", a.output.display(), ckpt.display());
    }
    Ok(())
}

/// Runs `fit` with a progress bar (or JSON lines).
pub fn run_fit(
    trainer: &mut Trainer,
    train: Arc<Dataset>,
    test: Option<Arc<Dataset>>,
    cfg: &FitConfig,
    json: bool,
) -> Result<Vec<pare::train::EpochLog>> {
    let mut bar: Option<ProgressBar> = None;
    let epochs = cfg.epochs;
    let mut on = |e: &Event| match e {
        Event::EpochStart { epoch, batches } if !json => {
            let pb = ProgressBar::new(*batches as u64);
            pb.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            pb.set_prefix(format!("{}/{}", epoch + 1, epochs));
            bar = Some(pb);
        }
        Event::Step { batch, loss, accuracy, samples_per_s, lr } => {
            if let Some(pb) = &bar {
                pb.set_position(*batch as u64 + 1);
                if batch % 10 == 0 {
                    pb.set_message(format!(
                        "loss {loss:.4} acc {:.2}% {samples_per_s:.0} samples/s lr {lr:.3e}",
                        accuracy * 100.0
                    ));
                }
            }
        }
        Event::EpochEnd(log) => {
            if let Some(pb) = bar.take() {
                pb.finish_and_clear();
            }
            if json {
                println!("{}", serde_json::to_string(log).unwrap_or_default());
            } else {
                let test = match (log.test_accuracy, log.test_loss) {
                    (Some(a), Some(l)) => format!(", test loss {l:.4} acc {:.2}%", a * 100.0),
                    _ => String::new(),
                };
                println!(
                    "epoch {:>3}/{epochs}: train loss {:.4} acc {:.2}%{test}, {:.0} samples/s, {:.1} s",
                    log.epoch + 1,
                    log.train_loss,
                    log.train_accuracy * 100.0,
                    log.samples_per_s,
                    log.seconds
                );
            }
        }
        _ => {}
    };
    fit(trainer, train, test, cfg, &mut on)
}

/// `pare eval`.
pub fn eval(a: &EvalArgs) -> Result<()> {
    let split = match a.split.as_str() {
        "test" => Split::Test,
        "train" => Split::Train,
        s => bail!("--split {s}: use test or train"),
    };
    let spec = data::parse_spec(&a.data)?;
    let ds = Arc::new(limited(data::load(&spec, split)?, a.limit, 0));
    let model = pare::onnx::load(&a.model)?;
    let r = evaluate(&model, ds, &normalize_for(a.pixel_range)?, a.batch, a.threads)
        .with_context(|| format!("evaluating {}", a.model.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_report(&a.model.display().to_string(), &format!("{spec} ({})", split.name()), &r);
    }
    Ok(())
}

/// Prints top-1/top-5 and per-class accuracy.
pub fn print_report(model: &str, data: &str, r: &EvalReport) {
    println!("{model} on {data}: {} samples", r.samples);
    println!("  top-1 {:.2}%   top-5 {:.2}%   loss {:.4}", r.top1 * 100.0, r.top5 * 100.0, r.loss);
    let parts: Vec<String> = r
        .classes
        .iter()
        .zip(&r.per_class)
        .map(|(c, (ok, n))| format!("{c} {:.1}%", if *n == 0 { 0.0 } else { *ok as f64 * 100.0 / *n as f64 }))
        .collect();
    println!("  per class: {}", parts.join(", "));
}
