//! Losses. Each outputs the scalar loss and its gradient with respect to the prediction.

use super::{f32s, same_shape};
use crate::ir::{Dim, Fact, Loss, fmt_shape};
use crate::ops::fact_at;
use crate::tensor::{DType, Tensor};
use anyhow::{Result, bail};
use rayon::prelude::*;

/// Loss outputs: a float32 scalar and a gradient shaped like the prediction.
pub fn infer(l: &Loss, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let p = fact_at(inputs, 0)?;
    let t = fact_at(inputs, 1)?;
    if p.dtype != DType::F32 {
        bail!("prediction {p} must be float32");
    }
    match l {
        Loss::CrossEntropy { .. } | Loss::KlDiv { .. } => {
            if p.rank() != 2 {
                bail!("logits {} must be 2-D [batch, classes]", fmt_shape(&p.shape));
            }
            let hard = t.dtype.is_int() && t.rank() == 1;
            let soft = t.dtype == DType::F32 && t.shape == p.shape;
            if !soft && (matches!(l, Loss::KlDiv { .. }) || !hard) {
                bail!(
                    "target {t} must be int64 labels [{}] or float32 probabilities {}",
                    p.shape[0],
                    fmt_shape(&p.shape)
                );
            }
        }
        Loss::Mse => {
            if t.shape != p.shape || t.dtype != DType::F32 {
                bail!("target {t} must match the prediction {p}");
            }
        }
    }
    Ok(vec![Fact::new(DType::F32, Vec::<Dim>::new()), Fact::new(DType::F32, p.shape.clone())])
}

/// Evaluates a loss: [loss, d loss / d prediction].
pub fn eval(l: &Loss, pred: &Tensor, target: &Tensor) -> Result<Vec<Tensor>> {
    let (loss, grad) = match l {
        Loss::CrossEntropy { label_smoothing, temperature } => {
            softmax_ce(pred, target, *label_smoothing, *temperature, false)?
        }
        Loss::KlDiv { temperature } => softmax_ce(pred, target, 0.0, *temperature, true)?,
        Loss::Mse => {
            same_shape(pred, target, "MSE")?;
            let (p, t) = (f32s(pred, "prediction")?, f32s(target, "target")?);
            let n = p.len().max(1) as f64;
            let loss = p.iter().zip(t).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum::<f64>() / n;
            let k = (2.0 / n) as f32;
            (loss, p.iter().zip(t).map(|(&a, &b)| k * (a - b)).collect())
        }
    };
    Ok(vec![Tensor::scalar(loss as f32), Tensor::from_vec(pred.shape().to_vec(), grad)])
}

/// Softmax cross-entropy (or KL divergence, which differs by the target's entropy) with
/// temperature; returns the batch-mean loss times T² and the gradient T (p − q) / N.
fn softmax_ce(
    logits: &Tensor,
    target: &Tensor,
    smoothing: f32,
    temperature: f32,
    kl: bool,
) -> Result<(f64, Vec<f32>)> {
    let s = logits.shape();
    if s.len() != 2 {
        bail!("logits {:?} must be 2-D [batch, classes]", s);
    }
    let (n, c) = (s[0], s[1]);
    if temperature.is_nan() || temperature <= 0.0 {
        bail!("temperature {temperature} must be positive");
    }
    if !(0.0..1.0).contains(&smoothing) {
        bail!("label smoothing {smoothing} must be in [0, 1)");
    }
    let z = f32s(logits, "logits")?;
    enum Target<'a> {
        Hard(Vec<i64>),
        Soft(&'a [f32]),
    }
    let tgt = if target.dtype().is_int() {
        let labels = target.to_i64_vec().unwrap_or_default();
        if labels.len() != n {
            bail!("{} labels for a batch of {n}", labels.len());
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l < 0 || l >= c as i64) {
            bail!("label {l} (batch row {i}) is out of range for {c} classes");
        }
        Target::Hard(labels)
    } else {
        same_shape(logits, target, "soft targets")?;
        Target::Soft(f32s(target, "target")?)
    };
    let t = temperature;
    let mut grad = vec![0f32; n * c];
    let row = |(i, g): (usize, &mut [f32])| -> f64 {
        let zr = &z[i * c..(i + 1) * c];
        let m = zr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b / t));
        let sum: f64 = zr.iter().map(|&v| ((v / t - m) as f64).exp()).sum();
        let lse = m as f64 + sum.ln();
        let mut loss = 0f64;
        for k in 0..c {
            let logp = (zr[k] / t) as f64 - lse;
            let q = match &tgt {
                Target::Hard(l) => {
                    let on = if l[i] == k as i64 { 1.0 - smoothing as f64 } else { 0.0 };
                    on + smoothing as f64 / c as f64
                }
                Target::Soft(q) => q[i * c + k] as f64,
            };
            if q > 0.0 {
                loss -= q * logp;
                if kl {
                    loss += q * q.ln();
                }
            }
            g[k] = (t as f64 * (logp.exp() - q) / n as f64) as f32;
        }
        loss
    };
    let total: f64 = if n * c >= 1 << 15 {
        grad.par_chunks_mut(c.max(1)).enumerate().map(row).sum()
    } else {
        grad.chunks_mut(c.max(1)).enumerate().map(row).sum()
    };
    Ok(((t * t) as f64 * total / n.max(1) as f64, grad))
}
