//! Training-mode batch normalisation and the gradients of batch and layer normalisation.

use super::f32s;
use crate::ops::nn::norm::{expand_param, for_chunks};
use crate::ops::norm_axis;
use crate::tensor::{Tensor, numel};
use anyhow::{Result, bail};
use rayon::prelude::*;

/// (N, C, spatial) of a `[N, C, ...]` tensor.
fn ncs(x: &Tensor) -> Result<(usize, usize, usize)> {
    let s = x.shape();
    if s.len() < 2 {
        bail!("input {:?} must have rank at least 2 (N, C, ...)", s);
    }
    Ok((s[0], s[1], numel(&s[2..])))
}

/// Sum of `f(i)` over `0..n` with eight f32 accumulators (vectorisable), returned as f64.
#[inline]
fn lanes_sum(n: usize, f: impl Fn(usize) -> f32) -> f64 {
    let mut acc = [0f32; 8];
    let full = n / 8 * 8;
    for i in (0..full).step_by(8) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
    }
    let tail: f32 = (full..n).map(&f).sum();
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64
}

/// Per-channel sums over the batch and spatial axes of two plane functions, channels in
/// parallel. `f(plane_start, len, channel)` returns the two sums of one plane.
fn channel_sums(
    n: usize,
    c: usize,
    s: usize,
    f: impl Fn(usize, usize, usize) -> (f64, f64) + Sync,
) -> Vec<(f64, f64)> {
    let per = |ch: usize| {
        (0..n).map(|b| f((b * c + ch) * s, s, ch)).fold((0f64, 0f64), |a, p| (a.0 + p.0, a.1 + p.1))
    };
    if n * c * s >= 1 << 15 { (0..c).into_par_iter().map(per).collect() } else { (0..c).map(per).collect() }
}

fn param<'a>(t: &'a Tensor, c: usize, what: &str) -> Result<&'a [f32]> {
    let v = f32s(t, what)?;
    if v.len() != c {
        bail!("{what} has {} values, the input has {c} channels", v.len());
    }
    Ok(v)
}

/// Sum of `[N, C, ...]` over every axis but the channel axis.
pub fn channel_sum(x: &Tensor) -> Result<Tensor> {
    let (n, c, s) = ncs(x)?;
    let xs = f32s(x, "input")?;
    let sums = channel_sums(n, c, s, |at, len, _| (lanes_sum(len, |i| xs[at + i]), 0.0));
    Ok(Tensor::from_vec(vec![c], sums.iter().map(|p| p.0 as f32).collect()))
}

/// BatchNormTrain: [Y, new running mean, new running var, batch mean, inv std].
pub fn batch_norm_train(eps: f32, momentum: f32, ins: [&Tensor; 5]) -> Result<Vec<Tensor>> {
    let [x, scale, bias, rmean, rvar] = ins;
    let (n, c, s) = ncs(x)?;
    let xs = f32s(x, "input")?;
    let (scale, bias) = (param(scale, c, "scale")?, param(bias, c, "bias")?);
    let (rmean, rvar) = (param(rmean, c, "running mean")?, param(rvar, c, "running var")?);
    let count = (n * s) as f64;
    if count < 1.0 {
        bail!("batch normalisation over an empty batch {:?}", x.shape());
    }
    let sums = channel_sums(n, c, s, |at, len, _| (lanes_sum(len, |i| xs[at + i]), 0.0));
    let mean: Vec<f64> = sums.iter().map(|p| p.0 / count).collect();
    let sq = channel_sums(n, c, s, |at, len, ch| {
        let m = mean[ch] as f32;
        (lanes_sum(len, |i| (xs[at + i] - m) * (xs[at + i] - m)), 0.0)
    });
    let var: Vec<f64> = sq.iter().map(|p| p.0 / count).collect();
    let inv: Vec<f32> = var.iter().map(|&v| (1.0 / (v + eps as f64).sqrt()) as f32).collect();
    let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let mut y = xs.to_vec();
    for_chunks(&mut y, s, |p, plane| {
        let ch = p % c;
        let (a, m, b) = (scale[ch] * inv[ch], mean32[ch], bias[ch]);
        plane.iter_mut().for_each(|v| *v = (*v - m) * a + b);
    });
    let unbias = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
    let m = momentum;
    let new_mean: Vec<f32> = (0..c).map(|i| rmean[i] * m + mean32[i] * (1.0 - m)).collect();
    let new_var: Vec<f32> = (0..c).map(|i| rvar[i] * m + (var[i] * unbias) as f32 * (1.0 - m)).collect();
    Ok(vec![
        Tensor::from_vec(x.shape().to_vec(), y),
        Tensor::from_vec(vec![c], new_mean),
        Tensor::from_vec(vec![c], new_var),
        Tensor::from_vec(vec![c], mean32),
        Tensor::from_vec(vec![c], inv),
    ])
}

/// BatchNormGrad: [dX, dScale, dB] from (X, scale, batch mean, inv std, dY).
pub fn batch_norm_grad(ins: [&Tensor; 5]) -> Result<Vec<Tensor>> {
    let [x, scale, mean, inv, dy] = ins;
    let (n, c, s) = ncs(x)?;
    let (xs, g) = (f32s(x, "input")?, f32s(dy, "gradient")?);
    if xs.len() != g.len() {
        bail!("gradient {:?} does not match input {:?}", dy.shape(), x.shape());
    }
    let (scale, mean, inv) = (param(scale, c, "scale")?, param(mean, c, "mean")?, param(inv, c, "inv std")?);
    let sums = channel_sums(n, c, s, |at, len, ch| {
        let (m, iv) = (mean[ch], inv[ch]);
        (lanes_sum(len, |i| g[at + i]), lanes_sum(len, |i| g[at + i] * (xs[at + i] - m)) * iv as f64)
    });
    let count = (n * s) as f32;
    let dbias: Vec<f32> = sums.iter().map(|p| p.0 as f32).collect();
    let dscale: Vec<f32> = sums.iter().map(|p| p.1 as f32).collect();
    let mut dx = vec![0f32; xs.len()];
    for_chunks(&mut dx, s, |p, plane| {
        let ch = p % c;
        let k = scale[ch] * inv[ch] / count;
        let (db, ds, m, iv) = (dbias[ch], dscale[ch], mean[ch], inv[ch]);
        let base = p * s;
        for (j, o) in plane.iter_mut().enumerate() {
            let xhat = (xs[base + j] - m) * iv;
            *o = k * (count * g[base + j] - db - xhat * ds);
        }
    });
    Ok(vec![
        Tensor::from_vec(x.shape().to_vec(), dx),
        Tensor::from_vec(vec![c], dscale),
        Tensor::from_vec(vec![c], dbias),
    ])
}

/// LayerNormGrad: [dX, dScale, dB] from (X, scale, Mean, InvStdDev, dY), normalising over
/// the axes from `axis` on.
pub fn layer_norm_grad(axis: i64, ins: [&Tensor; 5]) -> Result<Vec<Tensor>> {
    let [x, scale_t, mean, inv, dy] = ins;
    let shape = x.shape();
    let a = norm_axis(axis, shape.len())?;
    let (rows, cols) = (numel(&shape[..a]), numel(&shape[a..]));
    let (xs, g) = (f32s(x, "input")?, f32s(dy, "gradient")?);
    if xs.len() != g.len() {
        bail!("gradient {:?} does not match input {:?}", dy.shape(), shape);
    }
    if scale_t.len() != cols {
        bail!("scale {:?} must have the normalised shape {:?} to be trained", scale_t.shape(), &shape[a..]);
    }
    let scale = expand_param(scale_t, &shape[a..], "scale")?;
    let (mean, inv) = (f32s(mean, "mean")?, f32s(inv, "inv std")?);
    if mean.len() != rows || inv.len() != rows {
        bail!("statistics have {} values, expected {rows}", mean.len());
    }
    let mut dx = vec![0f32; xs.len()];
    let row = |(r, o): (usize, &mut [f32])| {
        let (xr, gr) = (&xs[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
        let (m, iv) = (mean[r], inv[r]);
        let (mut s1, mut s2) = (0f32, 0f32);
        for j in 0..cols {
            let dxh = gr[j] * scale[j];
            s1 += dxh;
            s2 += dxh * (xr[j] - m) * iv;
        }
        let d = cols as f32;
        for j in 0..cols {
            let xhat = (xr[j] - m) * iv;
            o[j] = iv / d * (d * gr[j] * scale[j] - s1 - xhat * s2);
        }
    };
    if cols > 0 {
        if xs.len() >= 1 << 15 {
            dx.par_chunks_mut(cols).enumerate().for_each(row);
        } else {
            dx.chunks_mut(cols).enumerate().for_each(row);
        }
    }
    let mut dscale = vec![0f32; cols];
    let mut dbias = vec![0f32; cols];
    for r in 0..rows {
        for j in 0..cols {
            let i = r * cols + j;
            dscale[j] += g[i] * (xs[i] - mean[r]) * inv[r];
            dbias[j] += g[i];
        }
    }
    let ps = scale_t.shape().to_vec();
    Ok(vec![
        Tensor::from_vec(shape.to_vec(), dx),
        Tensor::from_vec(ps.clone(), dscale),
        Tensor::from_vec(ps, dbias),
    ])
}
