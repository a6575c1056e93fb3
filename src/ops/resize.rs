//! Resize (inputs X, roi?, scales?, sizes?): nearest, linear and cubic interpolation over any
//! axes, with every ONNX coordinate transformation mode. Interpolation is separable: one pass
//! per resized axis, as in the ONNX reference. Nearest copies elements of any dtype exactly;
//! linear and cubic compute in f32 for f32 tensors and in f64 otherwise.

#[cfg(test)]
mod tests;

use super::shape::copy;
use super::{fact_at, norm_axis, tensor_at};
use crate::ir::{Dim, Fact, Op, Resize, ResizeMode};
use crate::tensor::{DType, Data, Elem, Tensor, numel};
use crate::with_data;
use anyhow::{Result, anyhow, bail, ensure};
use std::ops::{Add, Mul};

const COORD_MODES: [&str; 6] = [
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_crop_and_resize",
];

/// Infers output facts for the ops of this family.
pub fn infer(op: &Op, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let Op::Resize(r) = op else { bail!("{} is not Resize", op.onnx_name()) };
    let x = fact_at(inputs, 0)?;
    check_attrs(r)?;
    let axes = resize_axes(r, x.rank())?;
    let present = |i: usize| inputs.get(i).copied().flatten().filter(|f| f.numel() != Some(0));
    let (scales, sizes) = (present(2), present(3));
    ensure!(scales.is_some() || sizes.is_some(), "Resize needs scales or sizes");
    let mut out = x.shape.clone();
    let in_known: Option<Vec<usize>> = axes.iter().map(|&a| x.shape[a].known()).collect();
    match (sizes.and_then(|f| f.konst.as_ref()), scales.and_then(|f| f.konst.as_ref())) {
        (Some(s), _) => {
            let v = s.to_i64_vec().ok_or_else(|| anyhow!("Resize sizes must be int64, got {}", s.dtype()))?;
            ensure!(v.len() == axes.len(), "Resize sizes {v:?} do not match axes {axes:?}");
            match (r.aspect_policy.as_str(), in_known) {
                ("stretch", _) => {
                    for (&a, &n) in axes.iter().zip(&v) {
                        ensure!(n >= 0, "Resize sizes {v:?} must not be negative");
                        out[a] = Dim::Known(n as usize);
                    }
                }
                (_, Some(ins)) => {
                    for (i, (_, o)) in policy_sizes(r, &ins, &v)?.into_iter().enumerate() {
                        out[axes[i]] = Dim::Known(o);
                    }
                }
                _ => axes.iter().for_each(|&a| out[a] = Dim::Unknown),
            }
        }
        (None, Some(s)) => {
            let v = s.to_f64_vec();
            ensure!(v.len() == axes.len(), "Resize scales {v:?} do not match axes {axes:?}");
            for (&a, &sc) in axes.iter().zip(&v) {
                ensure!(sc > 0.0, "Resize scales {v:?} must be positive");
                out[a] = match &x.shape[a] {
                    Dim::Known(n) => Dim::Known((sc * *n as f64) as usize),
                    d if sc == 1.0 => d.clone(),
                    _ => Dim::Unknown,
                };
            }
        }
        (None, None) => axes.iter().for_each(|&a| out[a] = Dim::Unknown),
    }
    Ok(vec![Fact::new(x.dtype, out)])
}

fn check_attrs(r: &Resize) -> Result<()> {
    ensure!(
        COORD_MODES.contains(&r.coord_mode.as_str()),
        "Resize coordinate_transformation_mode '{}' is not one of {COORD_MODES:?}",
        r.coord_mode
    );
    if r.mode == ResizeMode::Nearest {
        let ok =
            ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"].contains(&r.nearest_mode.as_str());
        ensure!(ok, "Resize nearest_mode '{}' is not supported", r.nearest_mode);
    }
    ensure!(
        ["stretch", "not_larger", "not_smaller"].contains(&r.aspect_policy.as_str()),
        "Resize keep_aspect_ratio_policy '{}' is not supported",
        r.aspect_policy
    );
    Ok(())
}

/// The resized axes (all axes when the attribute is empty).
fn resize_axes(r: &Resize, rank: usize) -> Result<Vec<usize>> {
    if r.axes.is_empty() {
        return Ok((0..rank).collect());
    }
    let mut out = vec![];
    for &a in &r.axes {
        let i = norm_axis(a, rank)?;
        ensure!(!out.contains(&i), "Resize axes {:?} repeat axis {i}", r.axes);
        out.push(i);
    }
    Ok(out)
}

/// (scale, output size) per axis under a not_larger / not_smaller policy.
fn policy_sizes(r: &Resize, ins: &[usize], sizes: &[i64]) -> Result<Vec<(f64, usize)>> {
    ensure!(ins.iter().all(|&n| n > 0), "Resize keep_aspect_ratio_policy needs non-empty axes, got {ins:?}");
    let ratios = sizes.iter().zip(ins).map(|(&s, &n)| s as f64 / n as f64);
    let scale = match r.aspect_policy.as_str() {
        "not_larger" => ratios.fold(f64::INFINITY, f64::min),
        _ => ratios.fold(f64::NEG_INFINITY, f64::max),
    };
    Ok(ins.iter().map(|&n| (scale, (scale * n as f64 + 0.5) as usize)).collect())
}

/// How one axis is resized.
#[derive(Clone, Debug)]
struct AxisPlan {
    axis: usize,
    in_len: usize,
    out_len: usize,
    scale: f64,
    roi_lo: f64,
    roi_span: f64,
    identity: bool,
}

fn plan(r: &Resize, shape: &[usize], inputs: &[Option<Tensor>]) -> Result<Vec<AxisPlan>> {
    check_attrs(r)?;
    let axes = resize_axes(r, shape.len())?;
    let present = |i: usize| inputs.get(i).and_then(|t| t.as_ref()).filter(|t| !t.is_empty());
    let ins: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
    let so: Vec<(f64, usize)> = match (present(3), present(2)) {
        (Some(s), _) => {
            let v = s.to_i64_vec().ok_or_else(|| anyhow!("Resize sizes must be int64, got {}", s.dtype()))?;
            ensure!(v.len() == axes.len(), "Resize sizes {v:?} do not match axes {axes:?}");
            ensure!(v.iter().all(|&n| n >= 0), "Resize sizes {v:?} must not be negative");
            if r.aspect_policy == "stretch" {
                v.iter().zip(&ins).map(|(&o, &n)| (o as f64 / n as f64, o as usize)).collect()
            } else {
                policy_sizes(r, &ins, &v)?
            }
        }
        (None, Some(s)) => {
            let v = s.to_f64_vec();
            ensure!(v.len() == axes.len(), "Resize scales {v:?} do not match axes {axes:?}");
            ensure!(v.iter().all(|&s| s > 0.0), "Resize scales {v:?} must be positive");
            v.iter().zip(&ins).map(|(&s, &n)| (s, (s * n as f64) as usize)).collect()
        }
        (None, None) => bail!("Resize needs scales or sizes"),
    };
    let roi: Option<(Vec<f64>, bool)> = if r.coord_mode == "tf_crop_and_resize" {
        let t = present(1).ok_or_else(|| anyhow!("Resize tf_crop_and_resize needs a roi input"))?;
        let v = t.to_f64_vec();
        ensure!(v.len() == 2 * axes.len(), "Resize roi {v:?} must have {} entries", 2 * axes.len());
        Some((v, t.dtype() == DType::F32))
    } else {
        None
    };
    let mut plans = Vec::with_capacity(axes.len());
    for (i, (&axis, &(scale, out_len))) in axes.iter().zip(&so).enumerate() {
        let in_len = shape[axis];
        ensure!(in_len > 0 || out_len == 0, "Resize cannot fill axis {axis} of {shape:?} from nothing");
        let (roi_lo, roi_span) = match &roi {
            // The reference subtracts float32 roi values in float32.
            Some((v, true)) => (v[i], (v[axes.len() + i] as f32 - v[i] as f32) as f64),
            Some((v, false)) => (v[i], v[axes.len() + i] - v[i]),
            None => (0.0, 1.0),
        };
        let trivial_roi = roi.as_ref().is_none_or(|(v, _)| v[i] == 0.0 && v[axes.len() + i] == 1.0);
        let identity = (scale - 1.0).abs() <= 1e-9 * scale.abs().max(1.0) && out_len == in_len && trivial_roi;
        plans.push(AxisPlan { axis, in_len, out_len, scale, roi_lo, roi_span, identity });
    }
    Ok(plans)
}

/// Source coordinate of output index `j`, and whether it lies outside the crop (tf mode).
fn source_coord(mode: &str, j: usize, p: &AxisPlan) -> (f64, bool) {
    let (y, n) = (j as f64, p.in_len as f64);
    let ow = p.scale * n;
    let x = match mode {
        "align_corners" if ow == 1.0 => 0.0,
        "align_corners" => y * (n - 1.0) / (ow - 1.0),
        "asymmetric" => y / p.scale,
        "tf_crop_and_resize" => {
            let x = if ow == 1.0 {
                p.roi_span * (n - 1.0) / 2.0
            } else {
                y * p.roi_span * (n - 1.0) / (ow - 1.0)
            };
            let x = x + p.roi_lo * (n - 1.0);
            return (x, x < 0.0 || x > n - 1.0);
        }
        "pytorch_half_pixel" if ow == 1.0 => -0.5,
        "half_pixel_symmetric" => {
            let adjustment = p.out_len as f64 / ow;
            let offset = n / 2.0 * (1.0 - adjustment);
            offset + (y + 0.5) / p.scale - 0.5
        }
        _ => (y + 0.5) / p.scale - 0.5,
    };
    (x, false)
}

/// Interpolation taps of one axis: `n` (index, weight) pairs per output position.
struct Taps {
    n: usize,
    idx: Vec<usize>,
    w: Vec<f64>,
    outside: Vec<bool>,
}

fn coeffs(r: &Resize, ratio: f64) -> Vec<f64> {
    match r.mode {
        ResizeMode::Nearest => {
            let right = match r.nearest_mode.as_str() {
                _ if ratio == 1.0 => true,
                "round_prefer_floor" => ratio > 0.5,
                "round_prefer_ceil" => ratio >= 0.5,
                "floor" => false,
                _ => true,
            };
            if right { vec![0.0, 1.0] } else { vec![1.0, 0.0] }
        }
        ResizeMode::Linear => vec![1.0 - ratio, ratio],
        ResizeMode::Cubic => {
            let a = r.cubic_coeff_a as f64;
            let (r1, q) = (ratio + 1.0, 1.0 - ratio);
            let q1 = q + 1.0;
            vec![
                ((a * r1 - 5.0 * a) * r1 + 8.0 * a) * r1 - 4.0 * a,
                ((a + 2.0) * ratio - (a + 3.0)) * ratio * ratio + 1.0,
                ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
                ((a * q1 - 5.0 * a) * q1 + 8.0 * a) * q1 - 4.0 * a,
            ]
        }
    }
}

fn taps(r: &Resize, p: &AxisPlan) -> Taps {
    let n = if r.mode == ResizeMode::Cubic { 4 } else { 2 };
    let mut t = Taps { n, idx: vec![], w: vec![], outside: vec![] };
    let last = p.in_len as i64 - 1;
    for j in 0..p.out_len {
        let (x, outside) = source_coord(&r.coord_mode, j, p);
        let f = x.floor();
        let mut c = coeffs(r, if x == f { 1.0 } else { x - f });
        // The window as the reference finds it (on the edge-padded coordinate).
        let pad = (n / 2) as f64;
        let xp = x + pad;
        let pf = xp.floor();
        let start = (pf as i64) - (n / 2) as i64 + if xp == pf { 0 } else { 1 } - pad as i64;
        if r.exclude_outside {
            for (k, ck) in c.iter_mut().enumerate() {
                let i = start + k as i64;
                if i < 0 || i > last {
                    *ck = 0.0;
                }
            }
            let s: f64 = c.iter().sum();
            if s != 0.0 {
                c.iter_mut().for_each(|ck| *ck /= s);
            }
        }
        t.idx.extend((0..n as i64).map(|k| (start + k).clamp(0, last.max(0)) as usize));
        t.w.extend(c);
        t.outside.push(outside);
    }
    t
}

/// Evaluates the ops of this family.
pub fn eval(op: &Op, inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    let Op::Resize(r) = op else { bail!("{} is not Resize", op.onnx_name()) };
    let x = tensor_at(&inputs, 0)?;
    let plans = plan(r, x.shape(), &inputs)?;
    let mut out_shape = x.shape().to_vec();
    plans.iter().for_each(|p| out_shape[p.axis] = p.out_len);
    let active: Vec<&AxisPlan> = plans.iter().filter(|p| !p.identity).collect();
    if active.is_empty() {
        return Ok(vec![x.clone()]);
    }
    if numel(&out_shape) == 0 {
        return Ok(vec![Tensor::zeros(x.dtype(), out_shape)]);
    }
    if r.mode == ResizeMode::Nearest {
        let mut maps: Vec<Vec<Option<usize>>> =
            x.shape().iter().map(|&n| (0..n).map(Some).collect()).collect();
        for p in &active {
            let t = taps(r, p);
            maps[p.axis] = (0..p.out_len)
                .map(|j| (!t.outside[j]).then(|| t.idx[j * 2 + usize::from(t.w[j * 2 + 1] == 1.0)]))
                .collect();
        }
        let fill = Tensor::scalar(r.extrapolation_value).cast(x.dtype());
        fn go<T: Elem>(
            src: &[T],
            shape: &[usize],
            maps: &[Vec<Option<usize>>],
            fill: &Tensor,
        ) -> Result<Data> {
            let f = fill.as_slice::<T>().ok_or_else(|| anyhow!("fill value has dtype {}", fill.dtype()))?[0];
            Ok(T::wrap(copy::mapped(src, shape, maps, f)))
        }
        let data = with_data!(x.data(), v => go(v, x.shape(), &maps, &fill))?;
        return Ok(vec![Tensor::new(out_shape, data)?]);
    }
    ensure!(x.dtype() != DType::Bool, "Resize {:?} does not support bool input {:?}", r.mode, x.shape());
    let tap_sets: Vec<(&AxisPlan, Taps)> = active.iter().map(|p| (*p, taps(r, p))).collect();
    let ev = r.extrapolation_value as f64;
    if let Some(v) = x.as_slice::<f32>() {
        let out = interpolate(v, x.shape(), &tap_sets, ev as f32, |w| w as f32);
        return Ok(vec![Tensor::from_vec(out_shape, out)]);
    }
    let mut out = interpolate(&x.to_f64_vec(), x.shape(), &tap_sets, ev, |w| w);
    if x.dtype().is_int() {
        out.iter_mut().for_each(|v| *v = v.round_ties_even());
    }
    Ok(vec![Tensor::from_vec(out_shape, out).cast(x.dtype())])
}

/// Runs one separable pass per resized axis.
fn interpolate<T>(
    src: &[T],
    shape: &[usize],
    plans: &[(&AxisPlan, Taps)],
    extrap: T,
    cv: impl Fn(f64) -> T,
) -> Vec<T>
where
    T: Copy + Default + Add<Output = T> + Mul<Output = T>,
{
    let mut dims = shape.to_vec();
    let mut cur: Option<Vec<T>> = None;
    for (p, t) in plans {
        let outer = numel(&dims[..p.axis]);
        let inner = numel(&dims[p.axis + 1..]);
        let w: Vec<T> = t.w.iter().map(|&w| cv(w)).collect();
        let s = cur.as_deref().unwrap_or(src);
        let next = axis_pass(s, outer, p.in_len, inner, t, &w, extrap);
        dims[p.axis] = p.out_len;
        cur = Some(next);
    }
    cur.unwrap_or_else(|| src.to_vec())
}

fn axis_pass<T>(src: &[T], outer: usize, in_len: usize, inner: usize, t: &Taps, w: &[T], extrap: T) -> Vec<T>
where
    T: Copy + Default + Add<Output = T> + Mul<Output = T>,
{
    let out_len = t.outside.len();
    let n = t.n;
    let mut out = vec![T::default(); outer * out_len * inner];
    for o in 0..outer {
        let s = &src[o * in_len * inner..(o + 1) * in_len * inner];
        let d = &mut out[o * out_len * inner..(o + 1) * out_len * inner];
        for (j, row) in d.chunks_exact_mut(inner).enumerate() {
            if t.outside[j] {
                row.fill(extrap);
                continue;
            }
            if inner == 1 {
                let mut acc = T::default();
                for k in 0..n {
                    acc = acc + w[j * n + k] * s[t.idx[j * n + k]];
                }
                row[0] = acc;
                continue;
            }
            for k in 0..n {
                let (i, wk) = (t.idx[j * n + k], w[j * n + k]);
                for (r, &v) in row.iter_mut().zip(&s[i * inner..(i + 1) * inner]) {
                    *r = *r + wk * v;
                }
            }
        }
    }
    out
}
