//! `pare demo`: train LeNet-5 on the MNIST subset embedded in the binary, then evaluate,
//! inspect, optimise, benchmark and export it.

use super::train::{normalize_for, print_report, run_fit};
use anyhow::{Context, Result, bail};
use pare::autodiff::TrainSpec;
use pare::data::{Dataset, LoaderOptions, Samples};
use pare::profile::{self, BenchOptions};
use pare::runtime::{RunOptions, Runtime};
use pare::train::optim::{Optimizer, OptimizerKind};
use pare::train::schedule::{LrSchedule, Schedule};
use pare::train::{FitConfig, Trainer, evaluate};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const TRAIN_IMAGES: &[u8] = include_bytes!("../../assets/mnist-subset/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../assets/mnist-subset/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../assets/mnist-subset/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../assets/mnist-subset/t10k-labels-idx1-ubyte.gz");

/// Decodes gzip-compressed idx images and labels into a dataset.
fn mnist_from_gz(images: &[u8], labels: &[u8]) -> Result<Dataset> {
    let gunzip = |b: &[u8]| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b).read_to_end(&mut out)?;
        Ok(out)
    };
    let x = pare::data::parse_idx(&gunzip(images)?)?;
    let y = pare::data::parse_idx(&gunzip(labels)?)?;
    let s = x.shape().to_vec();
    if s.len() != 3 {
        bail!("embedded images have shape {s:?}");
    }
    let ds = Dataset {
        x: Samples::U8(x.as_slice::<u8>().unwrap_or_default().to_vec()),
        sample_shape: vec![1, s[1], s[2]],
        labels: y.as_slice::<u8>().unwrap_or_default().iter().map(|&l| l as i64).collect(),
        classes: (0..10).map(|d| d.to_string()).collect(),
    };
    ds.validate()?;
    Ok(ds)
}

/// Runs the demo, writing the trained model under `out_dir`.
pub fn demo(out_dir: &Path, epochs: usize, threads: usize) -> Result<()> {
    let t_all = Instant::now();
    let train = Arc::new(mnist_from_gz(TRAIN_IMAGES, TRAIN_LABELS).context("embedded MNIST subset")?);
    let test = Arc::new(mnist_from_gz(TEST_IMAGES, TEST_LABELS).context("embedded MNIST subset")?);
    println!(
        "pare demo: LeNet-5 on the MNIST subset embedded in pare ({} train / {} test images)\n",
        train.len(),
        test.len()
    );
    let model = pare::zoo::build("lenet-5", 10, 0)?;
    let batch = 64;
    let opt = Optimizer::new(OptimizerKind::Sgd { momentum: 0.9, nesterov: true }, 5e-4);
    let mut trainer = Trainer::new(&model, &TrainSpec::classification(batch), opt, threads, 0)?;
    let loader = LoaderOptions {
        batch,
        shuffle: true,
        drop_last: true,
        seed: 0,
        normalize: normalize_for(1.0)?,
        augment: None,
        prefetch: 4,
    };
    let steps = pare::data::num_batches(train.len(), &loader) * epochs;
    let schedule =
        LrSchedule { base_lr: 0.02, schedule: Schedule::Cosine { total: steps, min_lr: 0.0 }, warmup: 50 };
    let cfg = FitConfig {
        epochs,
        schedule,
        loader: loader.clone(),
        eval_batch: 256,
        threads,
        checkpoint: None,
        start_epoch: 0,
    };
    println!(
        "1. train ({} parameters, SGD+Nesterov, cosine LR, batch {batch}, {epochs} epochs)",
        trainer.param_count()
    );
    let t0 = Instant::now();
    let logs = run_fit(&mut trainer, train.clone(), None, &cfg, false)?;
    let train_secs = t0.elapsed().as_secs_f64();
    let trained = trainer.model()?;

    println!("\n2. evaluate on the held-out images");
    let rep = evaluate(&trained, test.clone(), &loader.normalize, 256, threads)?;
    print_report("lenet-5", "embedded MNIST test subset", &rep);

    println!("\n3. inspect");
    let stats = profile::model_stats(&trained.with_batch(1)?)?;
    print!("{}", profile::stats_table(&stats));

    println!("\n4. optimise and check against the unoptimised graph");
    let mut opt_g = trained.clone();
    pare::passes::optimize(&mut opt_g)?;
    let x = profile::random_inputs(&trained.with_batch(4)?, 7)?;
    let plain =
        Runtime::new(trained.with_batch(4)?, RunOptions { threads: 1, optimize: false })?.run(x.clone())?;
    let fast = Runtime::new(trained.with_batch(4)?, RunOptions { threads, optimize: true })?.run(x)?;
    let diff = super::max_abs_diff(&plain[0], &fast[0])?;
    println!(
        "  {} nodes -> {} nodes; max |diff| of the outputs = {diff:.2e}",
        trained.node_count(),
        opt_g.node_count()
    );

    println!("\n5. benchmark");
    let mut benches = Vec::new();
    for b in [1, 32] {
        let r = profile::bench(
            &trained,
            &BenchOptions { batch: Some(b), threads, warmup: 20, iters: 200, ..Default::default() },
        )?;
        super::print_bench(&format!("  batch {b}"), &r);
        benches.push(r);
    }

    println!("\n6. export");
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let path = out_dir.join("lenet5-mnist.onnx");
    pare::onnx::save(&trained, &path)?;
    let back = pare::onnx::load(&path)?;
    let rep2 = evaluate(&back, test.clone(), &loader.normalize, 256, threads)?;
    if rep2.top1 != rep.top1 {
        bail!("the re-imported model scores {} instead of {}", rep2.top1, rep.top1);
    }
    let bytes = std::fs::metadata(&path)?.len();
    println!("  {} ({}), re-imported: same top-1", path.display(), profile::human_bytes(bytes));

    let last = logs.last();
    println!("\nsummary");
    println!(
        "  trained LeNet-5 for {epochs} epochs in {train_secs:.1} s ({:.0} samples/s)",
        last.map_or(0.0, |l| l.samples_per_s)
    );
    println!(
        "  test top-1 {:.2}% on {} images (train loss {:.4})",
        rep.top1 * 100.0,
        rep.samples,
        last.map_or(f64::NAN, |l| l.train_loss)
    );
    println!(
        "  {} trained parameters, {} MACs per image, latency p50 {:.3} ms at batch 1, {:.0} images/s at batch 32",
        trainer.param_count(),
        stats.macs,
        benches[0].latency_ms.p50,
        benches[1].throughput_per_s
    );
    println!("  exported {} ; total {:.1} s", path.display(), t_all.elapsed().as_secs_f64());
    Ok(())
}
