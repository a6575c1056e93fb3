//! BatchNormalization, LayerNormalization and Softmax / LogSoftmax.

use super::{check_float, f32_data, f32_tensor, shape_str, take_f32};
use crate::ir::{BatchNorm, Dim, Fact, LayerNorm, fmt_shape};
use crate::ops::{fact_at, norm_axis, tensor_at};
use crate::tensor::{DType, Tensor, numel};
use anyhow::{Result, bail};
use rayon::prelude::*;

/// Element count above which row loops run in parallel.
const PAR_MIN: usize = 1 << 15;

/// Runs `f` over consecutive chunks of `len` elements, in parallel when the data is large.
pub(crate) fn for_chunks(data: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if len == 0 {
        return;
    }
    if data.len() >= PAR_MIN && data.len() > len {
        let min = (PAR_MIN / 4 / len).max(1);
        data.par_chunks_mut(len).enumerate().with_min_len(min).for_each(|(i, c)| f(i, c));
    } else {
        data.chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// BatchNorm: X [N, C, ...] with scale, B, mean, var [C]; training adds running mean and var.
pub(super) fn infer_batch_norm(b: &BatchNorm, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let x = fact_at(inputs, 0)?;
    check_float(x, "input")?;
    if x.rank() < 2 {
        bail!("input {x} must have rank at least 2 (N, C, ...)");
    }
    let c = &x.shape[1];
    for (i, name) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
        let p = fact_at(inputs, i)?;
        let ok = p.rank() == 1 && (p.shape[0] == *c || p.shape[0].known().is_none() || c.known().is_none());
        if !ok {
            bail!("{name} {p} must be 1-D with {c} elements (channels of input {})", fmt_shape(&x.shape));
        }
    }
    let mut out = vec![Fact::new(x.dtype, x.shape.clone())];
    if b.training {
        for i in [3, 4] {
            out.push(Fact::new(fact_at(inputs, i)?.dtype, vec![c.clone()]));
        }
    }
    Ok(out)
}

/// BatchNorm evaluation; reuses X's buffer when it is an unshared f32 tensor.
pub(super) fn eval_batch_norm(b: &BatchNorm, mut inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    let x = inputs
        .get_mut(0)
        .and_then(|t| t.take())
        .ok_or_else(|| anyhow::anyhow!("required input 0 is missing"))?;
    let (shape, dtype) = (x.shape().to_vec(), x.dtype());
    if shape.len() < 2 {
        bail!("input {} must have rank at least 2 (N, C, ...)", shape_str(&shape));
    }
    let (n, c, s) = (shape[0], shape[1], numel(&shape[2..]));
    let mut params = Vec::with_capacity(4);
    for (i, name) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
        let p = f32_data(tensor_at(&inputs, i)?)?.into_owned();
        if p.len() != c {
            bail!("{name} has {} elements, input {} has {c} channels", p.len(), shape_str(&shape));
        }
        params.push(p);
    }
    let [scale, bias, mean, var] = <[Vec<f32>; 4]>::try_from(params).expect("four params");
    let mut data = take_f32(x)?;
    let (bmean, bvar) = if b.training { batch_stats(&data, n, c, s) } else { (mean.clone(), var.clone()) };
    let a: Vec<f32> = (0..c).map(|i| scale[i] / (bvar[i] + b.epsilon).sqrt()).collect();
    let off: Vec<f32> = (0..c).map(|i| bias[i] - bmean[i] * a[i]).collect();
    for_chunks(&mut data, s, |p, plane| {
        let (ai, oi) = (a[p % c], off[p % c]);
        plane.iter_mut().for_each(|v| *v = *v * ai + oi);
    });
    let mut out = vec![f32_tensor(shape, data, dtype)];
    if b.training {
        let mo = b.momentum;
        for (i, (run, cur)) in [(3, (&mean, &bmean)), (4, (&var, &bvar))] {
            let v: Vec<f32> = run.iter().zip(cur.iter()).map(|(&r, &x)| r * mo + x * (1.0 - mo)).collect();
            out.push(f32_tensor(vec![c], v, tensor_at(&inputs, i)?.dtype()));
        }
    }
    Ok(out)
}

/// Per-channel mean and (biased) variance over the batch and spatial axes.
fn batch_stats(x: &[f32], n: usize, c: usize, s: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (n * s).max(1) as f64;
    let stat = |ch: usize| {
        let planes = (0..n).map(|b| &x[(b * c + ch) * s..(b * c + ch + 1) * s]);
        let mean = planes.clone().map(|p| p.iter().map(|&v| v as f64).sum::<f64>()).sum::<f64>() / count;
        let var =
            planes.map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()).sum::<f64>() / count;
        (mean as f32, var as f32)
    };
    let stats: Vec<(f32, f32)> = if x.len() >= PAR_MIN {
        (0..c).into_par_iter().map(stat).collect()
    } else {
        (0..c).map(stat).collect()
    };
    stats.into_iter().unzip()
}

/// LayerNorm: Y like X; with `stats`, Mean and InvStdDev (f32) keep the leading axes and have 1s after `axis`.
pub(super) fn infer_layer_norm(l: &LayerNorm, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let x = fact_at(inputs, 0)?;
    check_float(x, "input")?;
    let axis = norm_axis(l.axis, x.rank())?;
    fact_at(inputs, 1)?;
    let mut stat = x.shape[..axis].to_vec();
    stat.extend(std::iter::repeat_n(Dim::Known(1), x.rank() - axis));
    let y = Fact::new(x.dtype, x.shape.clone());
    if !l.stats {
        return Ok(vec![y]);
    }
    Ok(vec![y, Fact::new(DType::F32, stat.clone()), Fact::new(DType::F32, stat)])
}

/// A normalisation parameter (scale or bias) expanded to the `cols` normalised elements.
pub(crate) fn expand_param(p: &Tensor, norm_shape: &[usize], name: &str) -> Result<Vec<f32>> {
    let pf = f32_data(p)?;
    let cols = numel(norm_shape);
    if pf.len() == cols {
        return Ok(pf.into_owned());
    }
    let ps = p.shape();
    let r = norm_shape.len();
    let ok = ps.len() <= r && ps.iter().rev().zip(norm_shape.iter().rev()).all(|(&a, &b)| a == 1 || a == b);
    if !ok {
        bail!(
            "{name} {} does not broadcast to the normalised shape {}",
            shape_str(ps),
            shape_str(norm_shape)
        );
    }
    let mut padded = vec![1; r - ps.len()];
    padded.extend_from_slice(ps);
    let pst = crate::tensor::strides(&padded);
    let nst = crate::tensor::strides(norm_shape);
    Ok((0..cols)
        .map(|j| {
            let idx: usize =
                (0..r).map(|d| if padded[d] == 1 { 0 } else { (j / nst[d]) % norm_shape[d] * pst[d] }).sum();
            pf[idx]
        })
        .collect())
}

/// LayerNorm evaluation over contiguous rows.
pub(super) fn eval_layer_norm(l: &LayerNorm, mut inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    let x = inputs
        .get_mut(0)
        .and_then(|t| t.take())
        .ok_or_else(|| anyhow::anyhow!("required input 0 is missing"))?;
    let (shape, dtype) = (x.shape().to_vec(), x.dtype());
    let axis = norm_axis(l.axis, shape.len())?;
    let (rows, cols) = (numel(&shape[..axis]), numel(&shape[axis..]));
    let scale = expand_param(tensor_at(&inputs, 1)?, &shape[axis..], "scale")?;
    let bias = inputs
        .get(2)
        .and_then(|t| t.as_ref())
        .map(|b| expand_param(b, &shape[axis..], "bias"))
        .transpose()?;
    if !dtype.is_float() {
        bail!("LayerNormalization needs a float input, got {dtype}");
    }
    let mut y = take_f32(x)?;
    let mut stats = vec![(0f32, 0f32); rows];
    let eps = l.epsilon;
    let row = |(r, st): (&mut [f32], &mut (f32, f32))| {
        let n = r.len() as f32;
        let mean = r.iter().sum::<f32>() / n;
        let var = r.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        match &bias {
            Some(b) => {
                r.iter_mut().zip(&scale).zip(b).for_each(|((v, &s), &b)| *v = (*v - mean) * inv * s + b)
            }
            None => r.iter_mut().zip(&scale).for_each(|(v, &s)| *v = (*v - mean) * inv * s),
        }
        *st = (mean, inv);
    };
    if cols > 0 {
        if y.len() >= PAR_MIN && rows > 1 {
            y.par_chunks_mut(cols)
                .zip(stats.par_iter_mut())
                .with_min_len((PAR_MIN / 4 / cols).max(1))
                .for_each(row);
        } else {
            y.chunks_mut(cols).zip(stats.iter_mut()).for_each(row);
        }
    }
    let mut st_shape = shape[..axis].to_vec();
    st_shape.extend(std::iter::repeat_n(1, shape.len() - axis));
    let y = f32_tensor(shape, y, dtype);
    if !l.stats {
        return Ok(vec![y]);
    }
    let (mean, inv): (Vec<f32>, Vec<f32>) = stats.into_iter().unzip();
    Ok(vec![y, Tensor::from_vec(st_shape.clone(), mean), Tensor::from_vec(st_shape, inv)])
}

/// Softmax keeps the input's shape.
pub(super) fn infer_softmax(axis: i64, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let x = fact_at(inputs, 0)?;
    check_float(x, "input")?;
    norm_axis(axis, x.rank())?;
    Ok(vec![Fact::new(x.dtype, x.shape.clone())])
}

/// Softmax / LogSoftmax of one contiguous row, in place.
fn softmax_row(r: &mut [f32], log: bool) {
    let max = r.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if log {
        let sum: f32 = r.iter().map(|&v| (v - max).exp()).sum();
        let sub = max + sum.ln();
        r.iter_mut().for_each(|v| *v -= sub);
    } else {
        let mut sum = 0.0;
        for v in r.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        r.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Softmax along the middle axis of a block `[n, inner]` (inner > 1), vectorised over `inner`.
fn softmax_strided(block: &mut [f32], n: usize, inner: usize, log: bool) {
    let mut acc = vec![f32::NEG_INFINITY; inner];
    for r in block.chunks(inner) {
        acc.iter_mut().zip(r).for_each(|(m, &v)| *m = m.max(v));
    }
    let max = acc.clone();
    acc.fill(0.0);
    for r in block.chunks_mut(inner) {
        for ((v, s), &m) in r.iter_mut().zip(acc.iter_mut()).zip(&max) {
            let e = (*v - m).exp();
            *s += e;
            if !log {
                *v = e;
            }
        }
    }
    if log {
        acc.iter_mut().zip(&max).for_each(|(s, &m)| *s = m + s.ln());
        block.chunks_mut(inner).for_each(|r| r.iter_mut().zip(&acc).for_each(|(v, &s)| *v -= s));
    } else {
        acc.iter_mut().for_each(|s| *s = 1.0 / *s);
        block.chunks_mut(inner).for_each(|r| r.iter_mut().zip(&acc).for_each(|(v, &s)| *v *= s));
    }
    debug_assert_eq!(block.len(), n * inner);
}

/// Softmax evaluation; `legacy` flattens to 2-D at `axis` (opset < 13).
pub(super) fn eval_softmax(
    axis: i64,
    log: bool,
    legacy: bool,
    mut inputs: Vec<Option<Tensor>>,
) -> Result<Vec<Tensor>> {
    let x = inputs
        .get_mut(0)
        .and_then(|t| t.take())
        .ok_or_else(|| anyhow::anyhow!("required input 0 is missing"))?;
    let (shape, dtype) = (x.shape().to_vec(), x.dtype());
    if !dtype.is_float() {
        bail!("Softmax needs a float input, got {dtype}");
    }
    let ax = norm_axis(axis, shape.len())?;
    let (n, inner) = if legacy || shape.is_empty() {
        (numel(&shape[ax.min(shape.len())..]), 1)
    } else {
        (shape[ax], numel(&shape[ax + 1..]))
    };
    let mut data = take_f32(x)?;
    if n > 0 && inner > 0 {
        if inner == 1 {
            for_chunks(&mut data, n, |_, r| softmax_row(r, log));
        } else {
            for_chunks(&mut data, n * inner, |_, b| softmax_strided(b, n, inner, log));
        }
    }
    Ok(vec![f32_tensor(shape, data, dtype)])
}
