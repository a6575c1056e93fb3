//! Shape and data-movement ops: Reshape, Flatten, Transpose, Concat, Split, Slice, Gather,
//! GatherElements, Squeeze, Unsqueeze, Shape, Size, ConstantOfShape, Expand, Range, Tile,
//! Identity, Dropout and Pad. Inference lives here; the copying kernels live in `shape/copy.rs`.

pub(crate) mod copy;
mod eval;
#[cfg(test)]
mod tests;

use super::{fact_at, konst_at, norm_axis};
use crate::ir::{Dim, Fact, Op, Shape, broadcast_shapes, fmt_shape};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, anyhow, bail, ensure};

pub use eval::eval;

/// Infers output facts for the ops of this family.
pub fn infer(op: &Op, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let x = fact_at(inputs, 0)?;
    let same = |shape: Shape| Ok(vec![Fact::new(x.dtype, shape)]);
    match op {
        Op::Reshape { allowzero } => match konst_at(inputs, 1) {
            Some(s) => same(reshape_dims(&x.shape, &ints(s, "shape")?, *allowzero)?),
            None => same(vec![Dim::Unknown; len_1d(fact_at(inputs, 1)?, "shape")?]),
        },
        Op::Flatten { axis } => {
            let a = flatten_axis(*axis, x.rank())?;
            same(vec![dim_product(&x.shape[..a]), dim_product(&x.shape[a..])])
        }
        Op::Transpose { perm } => {
            let p = transpose_perm(perm.as_deref(), x.rank())?;
            same(p.iter().map(|&i| x.shape[i].clone()).collect())
        }
        Op::Concat { axis } => infer_concat(*axis, inputs),
        Op::Split { axis, num_outputs } => {
            let a = norm_axis(*axis, x.rank())?;
            let sizes = split_sizes_fact(&x.shape[a], *num_outputs, inputs)?;
            Ok(sizes
                .into_iter()
                .map(|d| {
                    let mut s = x.shape.clone();
                    s[a] = d;
                    Fact::new(x.dtype, s)
                })
                .collect())
        }
        Op::Slice => same(infer_slice(x, inputs)?),
        Op::Gather { axis } => {
            let idx = fact_at(inputs, 1)?;
            ensure!(idx.dtype.is_int(), "Gather indices must be integers, got {}", idx.dtype);
            let a = norm_axis(*axis, x.rank())?;
            ensure!(x.rank() > 0, "Gather needs data of rank >= 1, got a scalar");
            let mut s = x.shape[..a].to_vec();
            s.extend(idx.shape.iter().cloned());
            s.extend(x.shape[a + 1..].iter().cloned());
            same(s)
        }
        Op::GatherElements { axis } => {
            let idx = fact_at(inputs, 1)?;
            ensure!(
                idx.rank() == x.rank(),
                "GatherElements needs indices of the data's rank: data {}, indices {}",
                fmt_shape(&x.shape),
                fmt_shape(&idx.shape)
            );
            norm_axis(*axis, x.rank())?;
            same(idx.shape.clone())
        }
        Op::Squeeze => match (inputs.get(1).copied().flatten(), konst_at(inputs, 1)) {
            (Some(_), Some(axes)) => {
                let axes = squeeze_axes(&x.shape, &ints(axes, "axes")?)?;
                same(
                    x.shape
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, d)| d.clone())
                        .collect(),
                )
            }
            (Some(f), None) => {
                let n = len_1d(f, "axes")?;
                ensure!(n <= x.rank(), "cannot squeeze {} axes of {}", n, fmt_shape(&x.shape));
                same(vec![Dim::Unknown; x.rank() - n])
            }
            _ => same(x.shape.iter().filter(|d| **d != Dim::Known(1)).cloned().collect()),
        },
        Op::Unsqueeze => match konst_at(inputs, 1) {
            Some(axes) => same(unsqueeze_dims(&x.shape, &ints(axes, "axes")?)?),
            None => same(vec![Dim::Unknown; x.rank() + len_1d(fact_at(inputs, 1)?, "axes")?]),
        },
        Op::Shape { start, end } => {
            let (s, e) = shape_range(x.rank(), *start, *end);
            let dims = &x.shape[s..e];
            match dims.iter().map(|d| d.known().map(|n| n as i64)).collect::<Option<Vec<i64>>>() {
                Some(v) => Ok(vec![Fact::konst(Tensor::from_vec(vec![v.len()], v))]),
                None => Ok(vec![Fact::new(DType::I64, vec![Dim::Known(e - s)])]),
            }
        }
        Op::Size => match x.numel() {
            Some(n) => Ok(vec![Fact::konst(Tensor::scalar(n as i64))]),
            None => Ok(vec![Fact::new(DType::I64, vec![])]),
        },
        Op::ConstantOfShape(value) => {
            ensure!(value.len() == 1, "ConstantOfShape value must hold one element, got {:?}", value.shape());
            let dims = match konst_at(inputs, 0) {
                Some(s) => dims_from_values(&ints(s, "shape")?, "ConstantOfShape")?,
                None => vec![Dim::Unknown; len_1d(x, "shape")?],
            };
            Ok(vec![Fact::new(value.dtype(), dims)])
        }
        Op::Expand => {
            let target = match konst_at(inputs, 1) {
                Some(s) => dims_from_values(&ints(s, "shape")?, "Expand")?,
                None => vec![Dim::Unknown; len_1d(fact_at(inputs, 1)?, "shape")?],
            };
            let out = broadcast_shapes(&[&x.shape, &target])
                .ok_or_else(|| anyhow!("cannot expand {} to {}", fmt_shape(&x.shape), fmt_shape(&target)))?;
            same(out)
        }
        Op::Range => {
            for i in 0..3 {
                let f = fact_at(inputs, i)?;
                ensure!(f.dtype == x.dtype, "Range inputs must share a dtype: {} vs {}", x.dtype, f.dtype);
                ensure!(f.numel().is_none_or(|n| n == 1), "Range input {i} must be a scalar, got {}", f);
            }
            match (konst_at(inputs, 0), konst_at(inputs, 1), konst_at(inputs, 2)) {
                (Some(s), Some(l), Some(d)) => same(vec![Dim::Known(eval::range(s, l, d)?.len())]),
                _ => same(vec![Dim::Unknown]),
            }
        }
        Op::Tile => match konst_at(inputs, 1) {
            Some(r) => {
                let reps = ints(r, "repeats")?;
                ensure!(
                    reps.len() == x.rank() && reps.iter().all(|&r| r >= 0),
                    "Tile repeats {reps:?} do not fit input {}",
                    fmt_shape(&x.shape)
                );
                same(x.shape.iter().zip(&reps).map(|(d, &r)| dim_mul(d, r as usize)).collect())
            }
            None => same(vec![Dim::Unknown; x.rank()]),
        },
        Op::Identity => Ok(vec![x.clone()]),
        Op::Dropout { .. } => same(x.shape.clone()),
        Op::Pad(_) => same(infer_pad(x, inputs)?),
        _ => bail!("{} is not a shape op", op.onnx_name()),
    }
}

/// Integer values of a shape-like tensor (shape, axes, indices, pads).
fn ints(t: &Tensor, what: &str) -> Result<Vec<i64>> {
    t.to_i64_vec().ok_or_else(|| anyhow!("{what} must be an integer tensor, got {}", t.dtype()))
}

/// Length of a 1-D fact (e.g. a non-constant shape input), which fixes an output rank.
fn len_1d(f: &Fact, what: &str) -> Result<usize> {
    match f.shape.as_slice() {
        [Dim::Known(n)] => Ok(*n),
        [] => Ok(1),
        _ => bail!("cannot infer the output rank: {what} input has shape {}", fmt_shape(&f.shape)),
    }
}

/// Turns non-negative shape values into known dims.
fn dims_from_values(v: &[i64], op: &str) -> Result<Shape> {
    v.iter()
        .map(|&n| if n >= 0 { Ok(Dim::Known(n as usize)) } else { bail!("{op}: negative dim {n} in {v:?}") })
        .collect()
}

/// Product of dims: known when all are known, a symbol when one symbol remains.
pub(crate) fn dim_product(ds: &[Dim]) -> Dim {
    let mut known = 1usize;
    let mut other: Option<&Dim> = None;
    let mut others = 0;
    for d in ds {
        match d {
            Dim::Known(n) => known *= n,
            d => {
                others += 1;
                other = Some(d);
            }
        }
    }
    match (others, other) {
        (0, _) => Dim::Known(known),
        _ if known == 0 => Dim::Known(0),
        (1, Some(d)) if known == 1 => d.clone(),
        _ => Dim::Unknown,
    }
}

/// A dim multiplied by a known factor.
fn dim_mul(d: &Dim, k: usize) -> Dim {
    match (d, k) {
        (_, 1) => d.clone(),
        (_, 0) => Dim::Known(0),
        (Dim::Known(n), k) => Dim::Known(n * k),
        _ => Dim::Unknown,
    }
}

/// Number of elements of a fact shape, if known.
fn known_numel(s: &[Dim]) -> Option<usize> {
    s.iter().map(|d| d.known()).product()
}

/// Output dims of Reshape: 0 copies (unless `allowzero`), one -1 is inferred, symbols cancel.
pub(crate) fn reshape_dims(input: &[Dim], spec: &[i64], allowzero: bool) -> Result<Shape> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &v) in spec.iter().enumerate() {
        match v {
            -1 => {
                ensure!(
                    infer_at.replace(i).is_none(),
                    "cannot reshape {}: {spec:?} has two -1",
                    fmt_shape(input)
                );
                out.push(Dim::Unknown);
            }
            0 if !allowzero => out.push(input.get(i).cloned().ok_or_else(|| {
                anyhow!(
                    "cannot reshape {} to {spec:?}: the 0 at position {i} has no input dim",
                    fmt_shape(input)
                )
            })?),
            v if v >= 0 => out.push(Dim::Known(v as usize)),
            _ => bail!("cannot reshape {} to {spec:?}: invalid dim {v}", fmt_shape(input)),
        }
    }
    let Some(k) = infer_at else {
        if let (Some(a), Some(b)) = (known_numel(input), known_numel(&out)) {
            ensure!(
                a == b,
                "cannot reshape {} ({a} elements) to {} ({b} elements)",
                fmt_shape(input),
                fmt_shape(&out)
            );
        }
        return Ok(out);
    };
    ensure!(!(allowzero && spec.contains(&0)), "cannot reshape to {spec:?}: -1 and 0 with allowzero");
    // Cancel symbols that appear on both sides, then solve with known products.
    let mut rest: Vec<&Dim> = input.iter().filter(|d| d.known().is_none()).collect();
    let pin: usize = input.iter().filter_map(|d| d.known()).product();
    let mut pout = 1usize;
    for (i, d) in out.iter().enumerate() {
        match d {
            _ if i == k => {}
            Dim::Known(n) => pout *= n,
            Dim::Sym(_) => match rest.iter().position(|r| *r == d) {
                Some(p) => {
                    rest.remove(p);
                }
                None => return Ok(out),
            },
            Dim::Unknown => return Ok(out),
        }
    }
    let shown = || {
        let mut s = out.clone();
        s[k] = Dim::Sym("-1".into());
        fmt_shape(&s)
    };
    match rest.as_slice() {
        [] => {
            ensure!(
                pout != 0 && pin.is_multiple_of(pout),
                "cannot reshape {} ({pin} elements) to {}: {pin} is not a multiple of {pout}",
                fmt_shape(input),
                shown()
            );
            out[k] = Dim::Known(pin / pout);
        }
        [Dim::Sym(s)] if pin == pout && pout != 0 => out[k] = Dim::Sym(s.clone()),
        _ => {}
    }
    Ok(out)
}

/// Flatten's split point in `[0, rank]`.
fn flatten_axis(axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    ensure!((0..=rank as i64).contains(&a), "Flatten axis {axis} is out of range for rank {rank}");
    Ok(a as usize)
}

/// A validated permutation (`None`: reverse the axes).
fn transpose_perm(perm: Option<&[usize]>, rank: usize) -> Result<Vec<usize>> {
    let Some(p) = perm else { return Ok((0..rank).rev().collect()) };
    let mut seen = vec![false; rank];
    ensure!(p.len() == rank, "Transpose perm {p:?} does not match rank {rank}");
    for &i in p {
        ensure!(i < rank && !seen[i], "Transpose perm {p:?} is not a permutation of 0..{rank}");
        seen[i] = true;
    }
    Ok(p.to_vec())
}

/// Merges two dims that must be equal (a known one wins; known conflicts are errors).
fn merge_dim(a: &Dim, b: &Dim) -> Option<Dim> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => (x == y).then(|| a.clone()),
        (Dim::Known(_), _) | (Dim::Sym(_), Dim::Unknown) => Some(a.clone()),
        (_, Dim::Known(_)) | (Dim::Unknown, Dim::Sym(_)) => Some(b.clone()),
        _ => Some(a.clone()),
    }
}

fn infer_concat(axis: i64, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let facts: Vec<&Fact> = (0..inputs.len()).map(|i| fact_at(inputs, i)).collect::<Result<_>>()?;
    let first = facts.first().ok_or_else(|| anyhow!("Concat needs at least one input"))?;
    let a = norm_axis(axis, first.rank())?;
    ensure!(first.rank() > 0, "Concat cannot join scalars");
    let mut out = first.shape.clone();
    let mut sum = Some(0usize);
    let mut unknown: Vec<&Dim> = vec![];
    let describe = || facts.iter().map(|f| fmt_shape(&f.shape)).collect::<Vec<_>>().join(", ");
    for f in &facts {
        ensure!(f.dtype == first.dtype, "Concat inputs differ in dtype: {} vs {}", first.dtype, f.dtype);
        ensure!(f.rank() == first.rank(), "Concat inputs differ in rank: {}", describe());
        for (i, d) in f.shape.iter().enumerate() {
            if i == a {
                match d.known() {
                    Some(n) => sum = sum.map(|s| s + n),
                    None => unknown.push(d),
                }
            } else {
                out[i] = merge_dim(&out[i], d).ok_or_else(|| {
                    anyhow!("Concat on axis {a}: shapes {} disagree on dim {i}", describe())
                })?;
            }
        }
    }
    out[a] = match (sum, unknown.as_slice()) {
        (Some(s), []) => Dim::Known(s),
        (Some(0), [d]) => (*d).clone(),
        _ => Dim::Unknown,
    };
    Ok(vec![Fact::new(first.dtype, out)])
}

/// Equal split of `len` in `n` parts; the last is smaller when `n` does not divide `len`.
fn split_even(len: usize, n: usize) -> Result<Vec<usize>> {
    ensure!(n > 0, "Split needs at least one output");
    let chunk = len.div_ceil(n);
    let head = chunk * (n - 1);
    ensure!(head <= len, "cannot split a dim of {len} in {n} parts of {chunk} (last part would be negative)");
    let mut v = vec![chunk; n];
    v[n - 1] = len - head;
    Ok(v)
}

/// Checks explicit split sizes against the dim length and the number of outputs.
fn check_split(sizes: &[i64], len: Option<usize>, n: usize) -> Result<Vec<usize>> {
    ensure!(sizes.len() == n, "Split sizes {sizes:?} do not match {n} outputs");
    ensure!(sizes.iter().all(|&s| s >= 0), "Split sizes {sizes:?} must not be negative");
    let total: i64 = sizes.iter().sum();
    if let Some(len) = len {
        ensure!(total as usize == len, "Split sizes {sizes:?} sum to {total}, but the dim is {len}");
    }
    Ok(sizes.iter().map(|&s| s as usize).collect())
}

fn split_sizes_fact(d: &Dim, n: usize, inputs: &[Option<&Fact>]) -> Result<Vec<Dim>> {
    if let Some(s) = konst_at(inputs, 1).filter(|s| !s.is_empty()) {
        return Ok(check_split(&ints(s, "split")?, d.known(), n)?.into_iter().map(Dim::Known).collect());
    }
    if inputs.get(1).copied().flatten().is_some_and(|f| f.konst.is_none()) {
        return Ok(vec![Dim::Unknown; n]);
    }
    Ok(match d {
        Dim::Known(len) => split_even(*len, n)?.into_iter().map(Dim::Known).collect(),
        _ if n == 1 => vec![d.clone()],
        _ => vec![Dim::Unknown; n],
    })
}

/// One sliced axis: first index, step and element count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SliceAxis {
    pub start: i64,
    pub step: i64,
    pub count: usize,
}

/// Resolves start/end/step against a dim length per the ONNX clamping rules.
pub(crate) fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> SliceAxis {
    let d = dim as i128;
    let (mut s, mut e, st) = (start as i128, end as i128, step as i128);
    if s < 0 {
        s += d;
    }
    if e < 0 {
        e += d;
    }
    let count = if d == 0 {
        s = 0;
        0
    } else if st > 0 {
        s = s.clamp(0, d);
        e = e.clamp(0, d);
        if e > s { (e - s + st - 1) / st } else { 0 }
    } else {
        s = s.clamp(0, d - 1);
        e = e.clamp(-1, d - 1);
        if s > e { (s - e - st - 1) / -st } else { 0 }
    };
    SliceAxis { start: s as i64, step, count: count as usize }
}

/// Per-axis (axis, start, end, step) from Slice's constant inputs.
pub(crate) fn slice_spec(
    rank: usize,
    starts: &[i64],
    ends: &[i64],
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> Result<Vec<(usize, i64, i64, i64)>> {
    let n = starts.len();
    ensure!(ends.len() == n, "Slice starts {starts:?} and ends {ends:?} differ in length");
    let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    ensure!(
        axes.len() == n && steps.len() == n,
        "Slice axes {axes:?} / steps {steps:?} must have {n} entries"
    );
    let mut seen = vec![false; rank];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let a = norm_axis(axes[i], rank)?;
        ensure!(!seen[a], "Slice axes {axes:?} repeat axis {a}");
        seen[a] = true;
        ensure!(steps[i] != 0, "Slice step must not be 0 (steps {steps:?})");
        out.push((a, starts[i], ends[i], steps[i]));
    }
    Ok(out)
}

/// Optional integer input `i` (absent or empty means `None`).
fn opt_ints(inputs: &[Option<&Fact>], i: usize, what: &str) -> Result<Option<Option<Vec<i64>>>> {
    match inputs.get(i).copied().flatten() {
        None => Ok(Some(None)),
        Some(f) => match &f.konst {
            Some(t) => Ok(Some(Some(ints(t, what)?))),
            None => Ok(None),
        },
    }
}

fn infer_slice(x: &Fact, inputs: &[Option<&Fact>]) -> Result<Shape> {
    let (Some(starts), Some(ends)) = (konst_at(inputs, 1), konst_at(inputs, 2)) else {
        return Ok(vec![Dim::Unknown; x.rank()]);
    };
    let (Some(axes), Some(steps)) = (opt_ints(inputs, 3, "axes")?, opt_ints(inputs, 4, "steps")?) else {
        return Ok(vec![Dim::Unknown; x.rank()]);
    };
    let spec = slice_spec(x.rank(), &ints(starts, "starts")?, &ints(ends, "ends")?, axes, steps)?;
    let mut out = x.shape.clone();
    for (a, s, e, st) in spec {
        out[a] = match &x.shape[a] {
            Dim::Known(n) => Dim::Known(slice_axis(*n, s, e, st).count),
            d if s == 0 && st == 1 && e >= i32::MAX as i64 => d.clone(),
            _ => Dim::Unknown,
        };
    }
    Ok(out)
}

/// Normalised, validated Squeeze axes.
fn squeeze_axes(shape: &[Dim], axes: &[i64]) -> Result<Vec<usize>> {
    let mut out = vec![];
    for &a in axes {
        let i = norm_axis(a, shape.len())?;
        ensure!(!out.contains(&i), "Squeeze axes {axes:?} repeat axis {i}");
        if let Dim::Known(n) = shape[i] {
            ensure!(n == 1, "cannot squeeze axis {a} of {}: its size is {n}, not 1", fmt_shape(shape));
        }
        out.push(i);
    }
    Ok(out)
}

/// Unsqueeze's output dims (axes are relative to the output rank).
pub(crate) fn unsqueeze_dims(shape: &[Dim], axes: &[i64]) -> Result<Shape> {
    let r = shape.len() + axes.len();
    let mut ones = vec![false; r];
    for &a in axes {
        let i = norm_axis(a, r)?;
        ensure!(!ones[i], "Unsqueeze axes {axes:?} repeat axis {i}");
        ones[i] = true;
    }
    let mut src = shape.iter();
    Ok(ones
        .iter()
        .map(|&one| if one { Dim::Known(1) } else { src.next().cloned().unwrap_or(Dim::Unknown) })
        .collect())
}

/// Shape's clamped [start, end) range.
fn shape_range(rank: usize, start: i64, end: Option<i64>) -> (usize, usize) {
    let r = rank as i64;
    let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = fix(start);
    let e = fix(end.unwrap_or(r));
    (s, e.max(s))
}

/// Begin/end pads per axis from Pad's inputs (pads, optional axes).
fn pad_amounts(rank: usize, pads: &[i64], axes: Option<Vec<i64>>) -> Result<Vec<(i64, i64)>> {
    let axes = match axes {
        Some(a) => a.iter().map(|&a| norm_axis(a, rank)).collect::<Result<Vec<_>>>()?,
        None => (0..rank).collect(),
    };
    let n = axes.len();
    ensure!(pads.len() == 2 * n, "Pad pads {pads:?} must have {} entries for {n} axes", 2 * n);
    let mut out = vec![(0, 0); rank];
    for (i, &a) in axes.iter().enumerate() {
        out[a] = (pads[i], pads[n + i]);
    }
    Ok(out)
}

fn infer_pad(x: &Fact, inputs: &[Option<&Fact>]) -> Result<Shape> {
    let (Some(pads), Some(axes)) = (konst_at(inputs, 1), opt_ints(inputs, 3, "axes")?) else {
        return Ok(vec![Dim::Unknown; x.rank()]);
    };
    let amounts = pad_amounts(x.rank(), &ints(pads, "pads")?, axes)?;
    x.shape
        .iter()
        .zip(&amounts)
        .map(|(d, &(b, e))| match d {
            _ if b == 0 && e == 0 => Ok(d.clone()),
            Dim::Known(n) => {
                let m = *n as i64 + b + e;
                ensure!(m >= 0, "Pad ({b},{e}) makes dim {n} of {} negative", fmt_shape(&x.shape));
                Ok(Dim::Known(m as usize))
            }
            _ => Ok(Dim::Unknown),
        })
        .collect()
}
