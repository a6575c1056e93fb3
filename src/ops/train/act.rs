//! Gradients of element-wise functions, Clip and Softmax; training-mode dropout.

use super::{f32s, same_shape};
use crate::ir::Unary;
use crate::ops::norm_axis;
use crate::tensor::{Tensor, numel};
use anyhow::{Result, bail};
use rayon::prelude::*;

/// Elements above which element-wise loops run in parallel.
const PAR_MIN: usize = 1 << 15;

fn zip_map(x: &[f32], dy: &[f32], f: impl Fn(f32, f32) -> f32 + Sync + Send) -> Vec<f32> {
    if x.len() >= PAR_MIN {
        x.par_iter().zip(dy.par_iter()).with_min_len(PAR_MIN / 4).map(|(&a, &b)| f(a, b)).collect()
    } else {
        x.iter().zip(dy).map(|(&a, &b)| f(a, b)).collect()
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The derivative f'(x) of a unary function, or None when it has no useful gradient.
pub(crate) fn derivative(u: Unary) -> Option<fn(f32, &Unary) -> f32> {
    use Unary::*;
    let f: fn(f32, &Unary) -> f32 = match u {
        Relu => |x, _| if x > 0.0 { 1.0 } else { 0.0 },
        Sigmoid => |x, _| {
            let s = sigmoid(x);
            s * (1.0 - s)
        },
        Tanh => |x, _| 1.0 - x.tanh().powi(2),
        Erf => |x, _| std::f32::consts::FRAC_2_SQRT_PI * (-x * x).exp(),
        Exp => |x, _| x.exp(),
        Log => |x, _| 1.0 / x,
        Sqrt => |x, _| 0.5 / x.sqrt(),
        Neg => |_, _| -1.0,
        Abs => |x, _| x.signum() * (x != 0.0) as i32 as f32,
        Reciprocal => |x, _| -1.0 / (x * x),
        Sin => |x, _| x.cos(),
        Cos => |x, _| -x.sin(),
        Softplus => |x, _| sigmoid(x),
        Softsign => |x, _| 1.0 / (1.0 + x.abs()).powi(2),
        HardSwish => |x, _| {
            if x < -3.0 {
                0.0
            } else if x > 3.0 {
                1.0
            } else {
                (2.0 * x + 3.0) / 6.0
            }
        },
        Mish => |x, _| {
            let sp = if x > 20.0 { x } else { x.exp().ln_1p() };
            let t = sp.tanh();
            t + x * (1.0 - t * t) * sigmoid(x)
        },
        Gelu { tanh: false } => |x, _| {
            let cdf = 0.5 * (1.0 + crate::ops::elementwise::math::erf_f32(x / std::f32::consts::SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f32::consts::PI).sqrt();
            cdf + x * pdf
        },
        Gelu { tanh: true } => |x, _| {
            let k = (2.0 / std::f32::consts::PI).sqrt();
            let inner = k * (x + 0.044715 * x * x * x);
            let t = inner.tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x)
        },
        LeakyRelu(_) => |x, u| match u {
            LeakyRelu(a) if x <= 0.0 => *a,
            _ => 1.0,
        },
        Elu(_) => |x, u| match u {
            Elu(a) if x <= 0.0 => a * x.exp(),
            _ => 1.0,
        },
        Celu(_) => |x, u| match u {
            Celu(a) if x <= 0.0 => (x / a).exp(),
            _ => 1.0,
        },
        Selu { .. } => |x, u| match u {
            Selu { alpha, gamma } if x <= 0.0 => gamma * alpha * x.exp(),
            Selu { gamma, .. } => *gamma,
            _ => 1.0,
        },
        HardSigmoid { .. } => |x, u| match u {
            HardSigmoid { alpha, beta } if (alpha * x + beta) > 0.0 && (alpha * x + beta) < 1.0 => *alpha,
            _ => 0.0,
        },
        ThresholdedRelu(_) => |x, u| match u {
            ThresholdedRelu(a) if x > *a => 1.0,
            _ => 0.0,
        },
        Floor | Ceil | Round | Sign => |_, _| 0.0,
        _ => return None,
    };
    Some(f)
}

/// dX = dY · f'(X).
pub fn unary_grad(u: Unary, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    same_shape(x, dy, "UnaryGrad")?;
    let Some(d) = derivative(u) else {
        bail!("{} has no gradient", crate::ir::unary_name(u));
    };
    let (xs, dys) = (f32s(x, "input")?, f32s(dy, "gradient")?);
    let v = match u {
        Unary::Relu => zip_map(xs, dys, |x, g| if x > 0.0 { g } else { 0.0 }),
        _ => zip_map(xs, dys, |x, g| g * d(x, &u)),
    };
    Ok(Tensor::from_vec(x.shape().to_vec(), v))
}

/// Clip's gradient: dY where min ≤ X ≤ max, else 0.
pub fn clip_grad(x: &Tensor, dy: &Tensor, min: Option<&Tensor>, max: Option<&Tensor>) -> Result<Tensor> {
    same_shape(x, dy, "ClipGrad")?;
    let bound = |t: Option<&Tensor>, def: f32| -> Result<f32> {
        match t {
            None => Ok(def),
            Some(t) if t.len() == 1 => Ok(t.to_f64_vec()[0] as f32),
            Some(t) => bail!("Clip bound must be a scalar, got shape {:?}", t.shape()),
        }
    };
    let (lo, hi) = (bound(min, f32::NEG_INFINITY)?, bound(max, f32::INFINITY)?);
    let v =
        zip_map(f32s(x, "input")?, f32s(dy, "gradient")?, |x, g| if x >= lo && x <= hi { g } else { 0.0 });
    Ok(Tensor::from_vec(x.shape().to_vec(), v))
}

/// Softmax gradient: dX = Y ⊙ (dY − Σ dY⊙Y); LogSoftmax: dX = dY − exp(Y) Σ dY.
pub fn softmax_grad(axis: i64, log: bool, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    same_shape(y, dy, "SoftmaxGrad")?;
    let shape = y.shape();
    let a = norm_axis(axis, shape.len())?;
    let (n, inner) = (shape[a], numel(&shape[a + 1..]));
    let (ys, gs) = (f32s(y, "output")?, f32s(dy, "gradient")?);
    let mut out = vec![0f32; ys.len()];
    let block = n * inner;
    if block == 0 {
        return Ok(Tensor::from_vec(shape.to_vec(), out));
    }
    let f = |(b, o): (usize, &mut [f32])| {
        let (yb, gb) = (&ys[b * block..(b + 1) * block], &gs[b * block..(b + 1) * block]);
        for i in 0..inner {
            let at = |k: usize| k * inner + i;
            if log {
                let s: f32 = (0..n).map(|k| gb[at(k)]).sum();
                (0..n).for_each(|k| o[at(k)] = gb[at(k)] - yb[at(k)].exp() * s);
            } else {
                let s: f32 = (0..n).map(|k| gb[at(k)] * yb[at(k)]).sum();
                (0..n).for_each(|k| o[at(k)] = yb[at(k)] * (gb[at(k)] - s));
            }
        }
    };
    if ys.len() >= PAR_MIN {
        out.par_chunks_mut(block).enumerate().for_each(f);
    } else {
        out.chunks_mut(block).enumerate().for_each(f);
    }
    Ok(Tensor::from_vec(shape.to_vec(), out))
}

/// A uniform number in [0, 1) from a counter (splitmix64), so masks are reproducible and
/// can be drawn in parallel.
fn uniform(seed: u64, i: u64) -> f32 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

/// Training-mode dropout: Y = X ⊙ M with M ∈ {0, 1/(1−ratio)} drawn from `seed`; outputs Y and M.
pub fn dropout(ratio: f32, x: &Tensor, seed: &Tensor) -> Result<Vec<Tensor>> {
    if !(0.0..1.0).contains(&ratio) {
        bail!("dropout ratio {ratio} must be in [0, 1)");
    }
    let Some(&[s]) = seed.to_i64_vec().as_deref() else {
        bail!("dropout seed must be an integer scalar, got {}{:?}", seed.dtype(), seed.shape());
    };
    let keep = 1.0 / (1.0 - ratio);
    let xs = f32s(x, "input")?;
    let mask: Vec<f32> =
        (0..xs.len()).map(|i| if uniform(s as u64, i as u64) < ratio { 0.0 } else { keep }).collect();
    let y = zip_map(xs, &mask, |a, m| a * m);
    Ok(vec![Tensor::from_vec(x.shape().to_vec(), y), Tensor::from_vec(x.shape().to_vec(), mask)])
}
