//! The training loop: epochs over a loader, learning-rate schedule, evaluation, checkpoints.

use super::eval::{EvalReport, evaluate};
use super::optim::OptimizerState;
use super::schedule::LrSchedule;
use super::trainer::Trainer;
use crate::data::{Dataset, LoaderOptions, epoch_batches};
use crate::tensor::Tensor;
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// How to run [`fit`].
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Total epochs (including those already done when resuming).
    pub epochs: usize,
    /// Learning rate per step.
    pub schedule: LrSchedule,
    /// Batching, shuffling, preprocessing and augmentation of the training data.
    pub loader: LoaderOptions,
    /// Batch size for evaluation.
    pub eval_batch: usize,
    /// Threads for evaluation.
    pub threads: usize,
    /// Where to write a checkpoint after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// First epoch to run (0, or the epoch after a resumed checkpoint).
    pub start_epoch: usize,
}

/// Progress reports from [`fit`].
#[derive(Clone, Debug)]
pub enum Event {
    /// An epoch begins.
    EpochStart {
        /// Epoch (0-based).
        epoch: usize,
        /// Batches in it.
        batches: usize,
    },
    /// A step finished.
    Step {
        /// Batch index within the epoch.
        batch: usize,
        /// Running mean loss of the epoch.
        loss: f64,
        /// Running training accuracy of the epoch.
        accuracy: f64,
        /// Training throughput so far in this epoch.
        samples_per_s: f64,
        /// Learning rate used.
        lr: f32,
    },
    /// An epoch ended.
    EpochEnd(EpochLog),
}

/// Summary of one epoch.
#[derive(Clone, Debug, Serialize)]
pub struct EpochLog {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (on augmented batches, with the weights of each step).
    pub train_accuracy: f64,
    /// Test-set top-1 accuracy, when a test set was given.
    pub test_accuracy: Option<f64>,
    /// Test-set mean cross-entropy.
    pub test_loss: Option<f64>,
    /// Wall time of the epoch in seconds (training and evaluation).
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_s: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f32,
}

/// Trains for `cfg.epochs - cfg.start_epoch` epochs, evaluating on `test` after each.
/// A non-finite loss stops training with an error naming the step and the last checkpoint.
pub fn fit(
    trainer: &mut Trainer,
    train: Arc<Dataset>,
    test: Option<Arc<Dataset>>,
    cfg: &FitConfig,
    on: &mut dyn FnMut(&Event),
) -> Result<Vec<EpochLog>> {
    train.validate().context("training data")?;
    if train.len() < cfg.loader.batch {
        bail!("the training set has {} samples, fewer than one batch of {}", train.len(), cfg.loader.batch);
    }
    let mut logs = Vec::new();
    let mut last_ckpt: Option<(PathBuf, usize)> = None;
    for epoch in cfg.start_epoch..cfg.epochs {
        let t0 = Instant::now();
        let batches = epoch_batches(train.clone(), &cfg.loader, epoch as u64)?;
        on(&Event::EpochStart { epoch, batches: batches.num_batches() });
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        let mut lr = 0.0;
        for (i, b) in batches.enumerate() {
            lr = cfg.schedule.lr_at(trainer.steps() as usize);
            let r = trainer.step(b.x, b.y, lr).map_err(|e| {
                let ck = match &last_ckpt {
                    Some((p, ep)) => {
                        format!("the last good checkpoint is {} (end of epoch {})", p.display(), ep + 1)
                    }
                    None => "no checkpoint was written before it".to_string(),
                };
                anyhow!("{e:#}; {ck}")
            })?;
            loss_sum += r.loss as f64 * r.count as f64;
            correct += r.correct;
            seen += r.count;
            let secs = t0.elapsed().as_secs_f64().max(1e-9);
            on(&Event::Step {
                batch: i,
                loss: loss_sum / seen as f64,
                accuracy: correct as f64 / seen as f64,
                samples_per_s: seen as f64 / secs,
                lr,
            });
        }
        let train_secs = t0.elapsed().as_secs_f64();
        let rep: Option<EvalReport> = match &test {
            Some(t) => Some(evaluate(
                &trainer.model()?,
                t.clone(),
                &cfg.loader.normalize,
                cfg.eval_batch,
                cfg.threads,
            )?),
            None => None,
        };
        if let Some(p) = &cfg.checkpoint {
            save_checkpoint(p, trainer, epoch)?;
            last_ckpt = Some((p.clone(), epoch));
        }
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            test_accuracy: rep.as_ref().map(|r| r.top1),
            test_loss: rep.as_ref().map(|r| r.loss),
            seconds: t0.elapsed().as_secs_f64(),
            samples_per_s: seen as f64 / train_secs.max(1e-9),
            lr,
        };
        on(&Event::EpochEnd(log.clone()));
        logs.push(log);
    }
    Ok(logs)
}

#[derive(Serialize, Deserialize)]
struct Meta {
    format: String,
    epoch: usize,
    step: u64,
    optimizer_step: u64,
    params: Vec<String>,
}

const FORMAT: &str = "pare-checkpoint-1";

/// Writes the trainer's weights, running statistics and optimiser state after `epoch` to an
/// npz file (atomically).
pub fn save_checkpoint(path: &Path, trainer: &Trainer, epoch: usize) -> Result<()> {
    let names = trainer.param_names();
    let mut arrays = Vec::new();
    let meta = Meta {
        format: FORMAT.into(),
        epoch,
        step: trainer.steps(),
        optimizer_step: trainer.optimizer.state().step,
        params: names.clone(),
    };
    let json = serde_json::to_vec(&meta)?;
    arrays.push(("meta".to_string(), Tensor::from_vec(vec![json.len()], json)));
    for name in names.iter().chain(trainer.train_graph().states.iter().map(|s| &s.name)) {
        if let Some(t) = trainer.tensor(name) {
            arrays.push((format!("tensor/{name}"), t.clone()));
        }
    }
    let st = trainer.optimizer.state();
    for (i, v) in st.first.iter().enumerate() {
        arrays.push((format!("opt1/{i}"), Tensor::from_vec(vec![v.len()], v.clone())));
    }
    for (i, v) in st.second.iter().enumerate() {
        arrays.push((format!("opt2/{i}"), Tensor::from_vec(vec![v.len()], v.clone())));
    }
    crate::tensor::write_npz(path, &arrays).with_context(|| format!("writing checkpoint {}", path.display()))
}

/// Restores a checkpoint written by [`save_checkpoint`] into `trainer`; returns the epoch it
/// was written after.
pub fn load_checkpoint(path: &Path, trainer: &mut Trainer) -> Result<usize> {
    let arrays =
        crate::tensor::read_npz(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let get = |k: &str| arrays.iter().find(|(n, _)| n == k).map(|(_, t)| t.clone());
    let meta_t =
        get("meta").ok_or_else(|| anyhow!("{} is not a pare checkpoint (no meta)", path.display()))?;
    let bytes: Vec<u8> = meta_t.into_vec::<u8>().ok_or_else(|| anyhow!("checkpoint meta is not bytes"))?;
    let meta: Meta = serde_json::from_slice(&bytes).context("checkpoint meta")?;
    if meta.format != FORMAT {
        bail!("{} has format {}, expected {FORMAT}", path.display(), meta.format);
    }
    if meta.params != trainer.param_names() {
        bail!("checkpoint {} was written for other parameters than this model's", path.display());
    }
    for (name, t) in &arrays {
        if let Some(n) = name.strip_prefix("tensor/") {
            trainer.set_tensor(n, t.clone())?;
        }
    }
    let vecs = |prefix: &str| -> Vec<Vec<f32>> {
        (0..)
            .map_while(|i| get(&format!("{prefix}/{i}")))
            .map(|t| t.into_vec::<f32>().unwrap_or_default())
            .collect()
    };
    let state = OptimizerState { step: meta.optimizer_step, first: vecs("opt1"), second: vecs("opt2") };
    trainer.optimizer.restore(state)?;
    trainer.set_steps(meta.step);
    Ok(meta.epoch)
}
