//! Reproductions whose accuracy is asserted: zoo models trained on full MNIST from
//! `../shared`, and one epoch of fine-tuning the trained mnist-conv model.
//! Run in release mode (scripts/test.sh does); each takes a few minutes on 2 cores.

mod common;

use pare::autodiff::TrainSpec;
use pare::data::{self, LoaderOptions, Normalize, Split};
use pare::ir::Graph;
use pare::train::optim::{Optimizer, OptimizerKind};
use pare::train::schedule::{LrSchedule, Schedule};
use pare::train::{FitConfig, Trainer, evaluate, fit};
use std::sync::Arc;

struct Run {
    epochs: usize,
    batch: usize,
    lr: f32,
    opt: OptimizerKind,
    weight_decay: f32,
    pixel_range: f32,
    warmup: usize,
    cosine: bool,
}

/// Trains `model` on full MNIST and returns test top-1 before and after.
fn train_mnist(model: &Graph, run: &Run) -> Option<(f64, f64)> {
    let dir = common::shared().join("data/mnist");
    if !dir.join("train-images-idx3-ubyte.gz").exists() {
        common::skip(&format!("full MNIST not found in {}", dir.display()));
        return None;
    }
    let spec = data::DataSpec::Mnist(dir);
    let train = Arc::new(data::load(&spec, Split::Train).unwrap());
    let test = Arc::new(data::load(&spec, Split::Test).unwrap());
    let normalize = Normalize { scale: Some(run.pixel_range / 255.0), mean: vec![], std: vec![] };
    let before = evaluate(model, test.clone(), &normalize, 500, 0).unwrap().top1;
    let loader = LoaderOptions {
        batch: run.batch,
        shuffle: true,
        drop_last: true,
        seed: 1,
        normalize: normalize.clone(),
        augment: None,
        prefetch: 4,
    };
    let steps = data::num_batches(train.len(), &loader) * run.epochs;
    let schedule =
        if run.cosine { Schedule::Cosine { total: steps, min_lr: 0.0 } } else { Schedule::Constant };
    let cfg = FitConfig {
        epochs: run.epochs,
        schedule: LrSchedule { base_lr: run.lr, schedule, warmup: run.warmup },
        loader,
        eval_batch: 500,
        threads: 0,
        checkpoint: None,
        start_epoch: 0,
    };
    let mut tr = Trainer::new(
        model,
        &TrainSpec::classification(run.batch),
        Optimizer::new(run.opt, run.weight_decay),
        0,
        1,
    )
    .unwrap();
    let logs = fit(&mut tr, train, None, &cfg, &mut |e| {
        if let pare::train::Event::EpochEnd(l) = e {
            eprintln!(
                "epoch {}: loss {:.4} train acc {:.4} ({:.0} samples/s)",
                l.epoch + 1,
                l.train_loss,
                l.train_accuracy,
                l.samples_per_s
            );
        }
    })
    .unwrap();
    assert_eq!(logs.len(), run.epochs);
    let after = evaluate(&tr.model().unwrap(), test, &normalize, 500, 0).unwrap().top1;
    eprintln!("test top-1: {before:.4} -> {after:.4}");
    Some((before, after))
}

#[test]
fn lenet_300_100_reaches_98_2_percent() {
    let g = pare::zoo::build("lenet-300-100", 10, 1).unwrap();
    let run = Run {
        epochs: 12,
        batch: 128,
        lr: 0.1,
        opt: OptimizerKind::Sgd { momentum: 0.9, nesterov: true },
        weight_decay: 1e-4,
        pixel_range: 1.0,
        warmup: 200,
        cosine: true,
    };
    let Some((_, acc)) = train_mnist(&g, &run) else { return };
    assert!(acc >= 0.982, "LeNet-300-100 test error {:.2}% > 1.8%", (1.0 - acc) * 100.0);
}

#[test]
fn lenet_5_reaches_99_percent() {
    let g = pare::zoo::build("lenet-5", 10, 1).unwrap();
    let run = Run {
        epochs: 10,
        batch: 64,
        lr: 0.02,
        opt: OptimizerKind::Sgd { momentum: 0.9, nesterov: true },
        weight_decay: 5e-4,
        pixel_range: 1.0,
        warmup: 200,
        cosine: true,
    };
    let Some((_, acc)) = train_mnist(&g, &run) else { return };
    assert!(acc >= 0.990, "LeNet-5 test error {:.2}% > 1.0%", (1.0 - acc) * 100.0);
}

#[test]
fn mnist_conv_fine_tune_keeps_accuracy() {
    let p = common::shared().join("models/mnist-conv.onnx");
    if !p.exists() {
        common::skip(&format!("{} not found", p.display()));
        return;
    }
    let g = pare::onnx::load(&p).unwrap();
    let run = Run {
        epochs: 1,
        batch: 64,
        lr: 1e-5,
        opt: OptimizerKind::adam(),
        weight_decay: 0.0,
        pixel_range: 255.0,
        warmup: 0,
        cosine: true,
    };
    let Some((before, after)) = train_mnist(&g, &run) else { return };
    assert!((before - 0.9891).abs() < 1e-9, "mnist-conv should score 98.91% before, got {before}");
    assert!(after >= 0.9891, "fine-tuning lowered accuracy to {after}");
}
