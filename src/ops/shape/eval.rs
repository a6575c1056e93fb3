//! Evaluation of the shape family on concrete tensors.

use super::copy;
use super::{
    check_split, flatten_axis, ints, pad_amounts, reshape_dims, shape_range, slice_axis, slice_spec,
    split_even, squeeze_axes, transpose_perm, unsqueeze_dims,
};
use crate::ir::{Dim, Op, PadMode, broadcast_concrete, known_shape};
use crate::ops::{norm_axis, tensor_at};
use crate::tensor::{DType, Data, Elem, Tensor, numel, strides};
use crate::{map_data, with_data};
use anyhow::{Result, anyhow, bail, ensure};

/// Evaluates the ops of this family.
pub fn eval(op: &Op, mut inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    if matches!(op, Op::Identity | Op::Dropout { .. }) {
        let x =
            inputs.get_mut(0).and_then(|t| t.take()).ok_or_else(|| anyhow!("required input 0 is missing"))?;
        return Ok(vec![x]);
    }
    let x = tensor_at(&inputs, 0)?;
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Reshape { allowzero } => {
            let spec = ints(tensor_at(&inputs, 1)?, "shape")?;
            let dims = reshape_dims(&known_shape(x.shape()), &spec, *allowzero)?;
            one(reshape(x, &dims)?)
        }
        Op::Flatten { axis } => {
            let a = flatten_axis(*axis, x.rank())?;
            one(reshape_to(x, vec![numel(&x.shape()[..a]), numel(&x.shape()[a..])])?)
        }
        Op::Squeeze => {
            let axes = match inputs.get(1).and_then(|t| t.as_ref()) {
                Some(a) => squeeze_axes(&known_shape(x.shape()), &ints(a, "axes")?)?,
                None => (0..x.rank()).filter(|&i| x.shape()[i] == 1).collect(),
            };
            let dims =
                x.shape().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
            one(reshape_to(x, dims)?)
        }
        Op::Unsqueeze => {
            let axes = ints(tensor_at(&inputs, 1)?, "axes")?;
            one(reshape(x, &unsqueeze_dims(&known_shape(x.shape()), &axes)?)?)
        }
        Op::Transpose { perm } => {
            let p = transpose_perm(perm.as_deref(), x.rank())?;
            let dims = p.iter().map(|&i| x.shape()[i]).collect();
            let data = map_data!(x.data(), v => copy::transpose(v, x.shape(), &p));
            one(Tensor::new(dims, data)?)
        }
        Op::Concat { axis } => one(concat(*axis, &inputs)?),
        Op::Split { axis, num_outputs } => {
            split(x, *axis, *num_outputs, inputs.get(1).and_then(|t| t.as_ref()))
        }
        Op::Slice => one(slice(x, &inputs)?),
        Op::Gather { axis } => one(gather(x, tensor_at(&inputs, 1)?, *axis)?),
        Op::GatherElements { axis } => one(gather_elements(x, tensor_at(&inputs, 1)?, *axis)?),
        Op::Shape { start, end } => {
            let (s, e) = shape_range(x.rank(), *start, *end);
            let v: Vec<i64> = x.shape()[s..e].iter().map(|&d| d as i64).collect();
            one(Tensor::from_vec(vec![v.len()], v))
        }
        Op::Size => one(Tensor::scalar(x.len() as i64)),
        Op::ConstantOfShape(value) => {
            let dims = to_dims(&ints(x, "shape")?, "ConstantOfShape")?;
            ensure!(value.len() == 1, "ConstantOfShape value must hold one element, got {:?}", value.shape());
            let n = numel(&dims);
            one(Tensor::new(dims, map_data!(value.data(), v => vec![v[0]; n]))?)
        }
        Op::Expand => {
            let target = to_dims(&ints(tensor_at(&inputs, 1)?, "shape")?, "Expand")?;
            let out = broadcast_concrete(&[x.shape(), &target])
                .ok_or_else(|| anyhow!("cannot expand {:?} to {:?}", x.shape(), target))?;
            if out == x.shape() {
                return one(x.clone());
            }
            one(Tensor::new(out.clone(), map_data!(x.data(), v => copy::broadcast_to(v, x.shape(), &out)))?)
        }
        Op::Range => one(range(x, tensor_at(&inputs, 1)?, tensor_at(&inputs, 2)?)?),
        Op::Tile => {
            let reps = ints(tensor_at(&inputs, 1)?, "repeats")?;
            ensure!(
                reps.len() == x.rank() && reps.iter().all(|&r| r >= 0),
                "Tile repeats {reps:?} do not fit input {:?}",
                x.shape()
            );
            let reps: Vec<usize> = reps.iter().map(|&r| r as usize).collect();
            let dims: Vec<usize> = x.shape().iter().zip(&reps).map(|(d, r)| d.saturating_mul(*r)).collect();
            crate::tensor::checked_numel(&dims).map_err(|e| anyhow!("Tile: {e}"))?;
            if numel(&dims) == 0 {
                return one(Tensor::zeros(x.dtype(), dims));
            }
            one(Tensor::new(dims, map_data!(x.data(), v => copy::tile(v, x.shape(), &reps)))?)
        }
        Op::Pad(mode) => one(pad(x, *mode, &inputs)?),
        _ => bail!("{} is not a shape op", op.onnx_name()),
    }
}

/// Non-negative values as dims.
fn to_dims(v: &[i64], op: &str) -> Result<Vec<usize>> {
    let dims: Vec<usize> = v
        .iter()
        .map(|&n| usize::try_from(n).map_err(|_| anyhow!("{op}: negative dim {n} in {v:?}")))
        .collect::<Result<_>>()?;
    crate::tensor::checked_numel(&dims).map_err(|e| anyhow!("{op}: {e}"))?;
    Ok(dims)
}

/// Reshape sharing storage, from fully known dims.
fn reshape(x: &Tensor, dims: &[Dim]) -> Result<Tensor> {
    let d: Option<Vec<usize>> = dims.iter().map(|d| d.known()).collect();
    let d = d.ok_or_else(|| anyhow!("cannot resolve the output shape of {:?}", x.shape()))?;
    reshape_to(x, d)
}

fn reshape_to(x: &Tensor, dims: Vec<usize>) -> Result<Tensor> {
    x.reshape(dims.clone()).map_err(|e| {
        anyhow!("cannot reshape {:?} ({} elements) to {:?} ({} elements)", x.shape(), x.len(), dims, e.want)
    })
}

/// Typed slice of a tensor whose dtype was already checked to be `T`'s.
fn typed<T: Elem>(t: &Tensor) -> Result<&[T]> {
    t.as_slice::<T>().ok_or_else(|| anyhow!("expected {}, got {}", T::DTYPE, t.dtype()))
}

fn concat(axis: i64, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let ts: Vec<&Tensor> = (0..inputs.len()).map(|i| tensor_at(inputs, i)).collect::<Result<_>>()?;
    let first = *ts.first().ok_or_else(|| anyhow!("Concat needs at least one input"))?;
    let r = first.rank();
    let a = norm_axis(axis, r)?;
    let shapes = || ts.iter().map(|t| format!("{:?}", t.shape())).collect::<Vec<_>>().join(", ");
    let mut out = first.shape().to_vec();
    out[a] = 0;
    for t in &ts {
        ensure!(
            t.dtype() == first.dtype(),
            "Concat inputs differ in dtype: {} vs {}",
            first.dtype(),
            t.dtype()
        );
        let ok = t.rank() == r && (0..r).all(|i| i == a || t.shape()[i] == first.shape()[i]);
        ensure!(ok, "Concat on axis {a}: shapes {} do not fit", shapes());
        out[a] += t.shape()[a];
    }
    let outer = numel(&out[..a]);
    let inners: Vec<usize> = ts.iter().map(|t| numel(&t.shape()[a..])).collect();
    fn go<T: Elem>(_w: &[T], ts: &[&Tensor], outer: usize, inners: &[usize]) -> Result<Data> {
        let parts: Vec<&[T]> = ts.iter().map(|t| typed(t)).collect::<Result<_>>()?;
        Ok(T::wrap(copy::concat(&parts, outer, inners)))
    }
    let data = with_data!(first.data(), v => go(v, &ts, outer, &inners))?;
    Ok(Tensor::new(out, data)?)
}

fn split(x: &Tensor, axis: i64, n: usize, sizes: Option<&Tensor>) -> Result<Vec<Tensor>> {
    let a = norm_axis(axis, x.rank())?;
    let len = x.shape()[a];
    let sizes = match sizes.filter(|s| !s.is_empty()) {
        Some(s) => check_split(&ints(s, "split")?, Some(len), n)?,
        None => split_even(len, n)?,
    };
    let outer = numel(&x.shape()[..a]);
    let inner = numel(&x.shape()[a + 1..]);
    let mut off = 0;
    let mut outs = Vec::with_capacity(n);
    for s in sizes {
        let mut dims = x.shape().to_vec();
        dims[a] = s;
        let data = map_data!(x.data(), v => copy::block(v, outer, len * inner, off * inner, s * inner));
        outs.push(Tensor::new(dims, data)?);
        off += s;
    }
    Ok(outs)
}

fn slice(x: &Tensor, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let opt = |i: usize, what: &str| -> Result<Option<Vec<i64>>> {
        inputs.get(i).and_then(|t| t.as_ref()).map(|t| ints(t, what)).transpose()
    };
    let starts = ints(tensor_at(inputs, 1)?, "starts")?;
    let ends = ints(tensor_at(inputs, 2)?, "ends")?;
    let spec = slice_spec(x.rank(), &starts, &ends, opt(3, "axes")?, opt(4, "steps")?)?;
    let st = strides(x.shape());
    let mut dims = x.shape().to_vec();
    let mut s: Vec<isize> = st.iter().map(|&v| v as isize).collect();
    let mut base = 0isize;
    for (a, start, end, step) in spec {
        let sa = slice_axis(x.shape()[a], start, end, step);
        dims[a] = sa.count;
        if sa.count > 0 {
            base += sa.start as isize * st[a] as isize;
        }
        s[a] = sa.step as isize * st[a] as isize;
    }
    if dims == x.shape() && base == 0 && s.iter().zip(&st).all(|(&a, &b)| a == b as isize) {
        return Ok(x.clone());
    }
    let data = map_data!(x.data(), v => copy::strided(v, base, &dims, &s));
    Ok(Tensor::new(dims, data)?)
}

/// Checked, non-negative indices into an axis of length `dim`.
fn norm_indices(idx: &Tensor, dim: usize, what: &str) -> Result<Vec<usize>> {
    let v = ints(idx, "indices")?;
    v.iter()
        .map(|&i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            if (0..dim as i64).contains(&j) {
                Ok(j as usize)
            } else {
                bail!("{what} index {i} is out of range for an axis of size {dim}")
            }
        })
        .collect()
}

fn gather(x: &Tensor, idx: &Tensor, axis: i64) -> Result<Tensor> {
    ensure!(x.rank() > 0, "Gather needs data of rank >= 1, got a scalar");
    let a = norm_axis(axis, x.rank())?;
    let dim = x.shape()[a];
    let ix = norm_indices(idx, dim, "Gather")?;
    let mut dims = x.shape()[..a].to_vec();
    dims.extend_from_slice(idx.shape());
    dims.extend_from_slice(&x.shape()[a + 1..]);
    let (outer, inner) = (numel(&x.shape()[..a]), numel(&x.shape()[a + 1..]));
    Ok(Tensor::new(dims, map_data!(x.data(), v => copy::gather(v, outer, dim, inner, &ix)))?)
}

fn gather_elements(x: &Tensor, idx: &Tensor, axis: i64) -> Result<Tensor> {
    let a = norm_axis(axis, x.rank())?;
    let fits = idx.rank() == x.rank() && (0..x.rank()).all(|i| i == a || idx.shape()[i] <= x.shape()[i]);
    ensure!(fits, "GatherElements indices {:?} do not fit data {:?} on axis {a}", idx.shape(), x.shape());
    let ix = norm_indices(idx, x.shape()[a], "GatherElements")?;
    let data = map_data!(x.data(), v => copy::gather_elements(v, x.shape(), a, idx.shape(), &ix));
    Ok(Tensor::new(idx.shape().to_vec(), data)?)
}

pub(super) fn range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> Result<Tensor> {
    let dt = start.dtype();
    for t in [start, limit, delta] {
        ensure!(t.len() == 1, "Range inputs must be scalars, got shape {:?}", t.shape());
        ensure!(t.dtype() == dt, "Range inputs must share a dtype: {} vs {}", dt, t.dtype());
    }
    ensure!(dt != DType::Bool, "Range does not support bool");
    if dt.is_float() {
        let (s, l, d) = (start.to_f64_vec()[0], limit.to_f64_vec()[0], delta.to_f64_vec()[0]);
        ensure!(d != 0.0 && d.is_finite(), "Range delta must be finite and non-zero, got {d}");
        let n = ((l - s) / d).ceil().max(0.0);
        ensure!(n <= crate::tensor::MAX_ELEMENTS as f64, "Range({s}, {l}, {d}) is too long ({n} elements)");
        let v: Vec<f64> = (0..n as usize).map(|i| s + i as f64 * d).collect();
        return Ok(Tensor::from_vec(vec![v.len()], v).cast(dt));
    }
    let one = |t: &Tensor| t.to_i64_vec().map(|v| v[0] as i128).ok_or_else(|| anyhow!("bad Range input"));
    let (s, l, d) = (one(start)?, one(limit)?, one(delta)?);
    ensure!(d != 0, "Range delta must not be 0");
    let n = if d > 0 { (l - s + d - 1).div_euclid(d) } else { (s - l - d - 1).div_euclid(-d) }.max(0);
    ensure!(n <= crate::tensor::MAX_ELEMENTS as i128, "Range({s}, {l}, {d}) is too long ({n} elements)");
    let v: Vec<i64> = (0..n).map(|i| (s + i * d) as i64).collect();
    Ok(Tensor::from_vec(vec![v.len()], v).cast(dt))
}

/// Source index on an axis of length `n` for output position `j` shifted by the begin pad.
fn pad_source(mode: PadMode, i: i64, n: i64) -> Option<usize> {
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(i.clamp(0, n - 1) as usize),
        PadMode::Wrap => Some(i.rem_euclid(n) as usize),
        PadMode::Reflect if n == 1 => Some(0),
        PadMode::Reflect => {
            let p = 2 * (n - 1);
            let m = i.rem_euclid(p);
            Some(if m < n { m } else { p - m } as usize)
        }
    }
}

fn pad(x: &Tensor, mode: PadMode, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let pads = ints(tensor_at(inputs, 1)?, "pads")?;
    let axes = inputs.get(3).and_then(|t| t.as_ref()).map(|t| ints(t, "axes")).transpose()?;
    let amounts = pad_amounts(x.rank(), &pads, axes)?;
    let mut maps = Vec::with_capacity(x.rank());
    for (&n, &(b, e)) in x.shape().iter().zip(&amounts) {
        let m = n as i64 + b + e;
        ensure!(m >= 0, "Pad ({b},{e}) makes dim {n} of {:?} negative", x.shape());
        let needs_src = m > 0 && mode != PadMode::Constant && (b > 0 || e > 0);
        ensure!(!(n == 0 && needs_src), "Pad {mode:?} cannot pad an empty axis of {:?}", x.shape());
        maps.push((0..m).map(|j| pad_source(mode, j - b, n as i64)).collect::<Vec<_>>());
    }
    let fill = match inputs.get(2).and_then(|t| t.as_ref()).filter(|t| !t.is_empty()) {
        Some(v) => v.cast(x.dtype()),
        None => Tensor::zeros(x.dtype(), vec![1]),
    };
    fn go<T: Elem>(src: &[T], shape: &[usize], maps: &[Vec<Option<usize>>], fill: &Tensor) -> Result<Data> {
        let f = typed::<T>(fill)?[0];
        Ok(T::wrap(copy::mapped(src, shape, maps, f)))
    }
    let dims = maps.iter().map(|m| m.len()).collect();
    let data = with_data!(x.data(), v => go(v, x.shape(), &maps, &fill))?;
    Ok(Tensor::new(dims, data)?)
}
