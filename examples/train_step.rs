//! Training-step time of zoo models: forward, backward and an SGD-momentum update on random
//! data. Prints one JSON line per case with the median and quartiles over the timed steps.
//! Usage: train_step [MODEL:BATCH ...] [--steps N] [--threads T]
//! (default lenet-5:64 resnet-20:128). `bench/train_vs_torch.py` runs it next to PyTorch.

use pare::autodiff::TrainSpec;
use pare::tensor::Tensor;
use pare::train::Trainer;
use pare::train::optim::{Optimizer, OptimizerKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cases = Vec::new();
    let (mut steps, mut threads) = (30usize, 2usize);
    let mut profile = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--steps" => {
                steps = args[i + 1].parse()?;
                i += 1;
            }
            "--profile" => profile = true,
            "--threads" => {
                threads = args[i + 1].parse()?;
                i += 1;
            }
            c => {
                let (m, b) =
                    c.split_once(':').ok_or_else(|| anyhow::anyhow!("expected MODEL:BATCH, got {c}"))?;
                cases.push((m.to_string(), b.parse::<usize>()?));
            }
        }
        i += 1;
    }
    if cases.is_empty() {
        cases = vec![("lenet-5".into(), 64), ("resnet-20".into(), 128)];
    }
    for (model, batch) in cases {
        let g = pare::zoo::build(&model, 10, 0)?;
        let input =
            g.fact(g.inputs()[0]).shape.iter().skip(1).map(|d| d.known().unwrap()).collect::<Vec<_>>();
        let opt = Optimizer::new(OptimizerKind::Sgd { momentum: 0.9, nesterov: false }, 0.0);
        let mut tr = Trainer::new(&g, &TrainSpec::classification(batch), opt, threads, 0)?;
        let mut rng = StdRng::seed_from_u64(0);
        let n: usize = batch * input.iter().product::<usize>();
        let mut shape = vec![batch];
        shape.extend(&input);
        let x = Tensor::from_vec(shape, (0..n).map(|_| rng.random::<f32>()).collect::<Vec<_>>());
        let y =
            Tensor::from_vec(vec![batch], (0..batch).map(|_| rng.random_range(0..10i64)).collect::<Vec<_>>());
        for _ in 0..5 {
            tr.step(x.clone(), y.clone(), 0.01)?;
        }
        let mut times = Vec::new();
        for _ in 0..steps {
            let t0 = Instant::now();
            tr.step(x.clone(), y.clone(), 0.01)?;
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        if profile {
            let mut by_op: std::collections::BTreeMap<String, f64> = Default::default();
            for _ in 0..5 {
                for t in tr.profile_step(x.clone(), y.clone())? {
                    *by_op.entry(t.op).or_default() += t.time.as_secs_f64() * 1e3 / 5.0;
                }
            }
            let mut v: Vec<_> = by_op.into_iter().collect();
            v.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
            for (op, ms) in v {
                eprintln!("  {op:<24} {ms:8.3} ms");
            }
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |f: f64| times[((times.len() - 1) as f64 * f).round() as usize];
        println!(
            "{}",
            serde_json::json!({"framework": "pare", "model": model, "batch": batch, "threads": threads,
                "steps": steps, "median_ms": q(0.5), "p25_ms": q(0.25), "p75_ms": q(0.75)})
        );
    }
    Ok(())
}
