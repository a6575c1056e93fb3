//! Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare) and ArgMax/ArgMin.
//!
//! The input shape is coalesced into alternating kept/reduced groups; the innermost group is either
//! folded into one accumulator (8 independent lanes, so the loop vectorises) or accumulated row-wise
//! into the output. Floats accumulate in f64, integers in i128 (wrapping, then truncated back).

#[cfg(test)]
mod tests;

use crate::ir::{Dim, Fact, Op, Reduce, ReduceKind};
use crate::ops::{fact_at, norm_axis, tensor_at};
use crate::tensor::{DType, Elem, Tensor};
use anyhow::{Result, anyhow, bail};
use rayon::prelude::*;

const PAR_MIN: usize = 1 << 16;

/// Infers output facts for the ops of this family.
pub fn infer(op: &Op, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    match op {
        Op::Reduce(r) => {
            let x = fact_at(inputs, 0)?;
            check_dtype(r.kind, x.dtype)?;
            let axes = match inputs.get(1).copied().flatten() {
                None => Some(vec![]),
                Some(f) => match &f.konst {
                    Some(t) => Some(axes_of(t)?),
                    None if f.shape == [Dim::Known(0)] => Some(vec![]),
                    None => None,
                },
            };
            let shape = match axes {
                Some(axes) => match resolve_axes(r, &axes, x.rank())? {
                    None => x.shape.clone(),
                    Some(red) => out_dims(&x.shape, &red, r.keepdims, Dim::Known(1)),
                },
                None if r.keepdims => x
                    .shape
                    .iter()
                    .map(|d| if *d == Dim::Known(1) { Dim::Known(1) } else { Dim::Unknown })
                    .collect(),
                // Run-time axes of known count: the rank is known, the dims are not.
                None => match inputs.get(1).copied().flatten().map(|f| f.shape.as_slice()) {
                    Some([Dim::Known(k)]) if *k <= x.rank() => vec![Dim::Unknown; x.rank() - k],
                    _ => bail!("axes must be constant (or of known length) when keepdims is 0 (input {x})"),
                },
            };
            Ok(vec![Fact::new(x.dtype, shape)])
        }
        Op::ArgReduce { axis, keepdims, .. } => {
            let x = fact_at(inputs, 0)?;
            if x.dtype == DType::Bool {
                bail!("{} does not support bool", op.onnx_name());
            }
            let a = norm_axis(*axis, x.rank())?;
            let red: Vec<bool> = (0..x.rank()).map(|i| i == a).collect();
            Ok(vec![Fact::new(DType::I64, out_dims(&x.shape, &red, *keepdims, Dim::Known(1)))])
        }
        _ => bail!("{} is not a reduction", op.onnx_name()),
    }
}

/// Evaluates the ops of this family.
pub fn eval(op: &Op, inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    let x = tensor_at(&inputs, 0)?;
    match op {
        Op::Reduce(r) => {
            check_dtype(r.kind, x.dtype())?;
            let axes = match inputs.get(1).and_then(|t| t.as_ref()) {
                Some(t) => axes_of(t)?,
                None => vec![],
            };
            let Some(red) = resolve_axes(r, &axes, x.rank())? else { return Ok(vec![x.clone()]) };
            let shape = out_dims(x.shape(), &red, r.keepdims, 1);
            let out = match x.dtype() {
                DType::F32 => reduce_t::<f32>(r.kind, x, &red),
                DType::F64 => reduce_t::<f64>(r.kind, x, &red),
                DType::F16 => reduce_t::<f32>(r.kind, &x.cast(DType::F32), &red).map(|t| t.cast(DType::F16)),
                DType::I8 => reduce_t::<i8>(r.kind, x, &red),
                DType::U8 => reduce_t::<u8>(r.kind, x, &red),
                DType::I16 => reduce_t::<i16>(r.kind, x, &red),
                DType::U16 => reduce_t::<u16>(r.kind, x, &red),
                DType::I32 => reduce_t::<i32>(r.kind, x, &red),
                DType::U32 => reduce_t::<u32>(r.kind, x, &red),
                DType::I64 => reduce_t::<i64>(r.kind, x, &red),
                DType::U64 => reduce_t::<u64>(r.kind, x, &red),
                DType::Bool => reduce_t::<u8>(r.kind, &x.cast(DType::U8), &red).map(|t| t.cast(DType::Bool)),
            }?;
            Ok(vec![out.reshape(shape)?])
        }
        Op::ArgReduce { max, axis, keepdims, select_last } => {
            let a = norm_axis(*axis, x.rank())?;
            let s = x.shape();
            let (pre, n, post) =
                (s[..a].iter().product(), s.get(a).copied().unwrap_or(1), s[a + 1..].iter().product());
            if n == 0 {
                bail!("{} over an empty axis {a} of shape {s:?}", op.onnx_name());
            }
            let idx = match x.dtype() {
                DType::F32 => arg::<f32>(x, (pre, n, post), *max, *select_last),
                DType::F64 => arg::<f64>(x, (pre, n, post), *max, *select_last),
                DType::F16 => arg::<f32>(&x.cast(DType::F32), (pre, n, post), *max, *select_last),
                DType::I8 => arg::<i8>(x, (pre, n, post), *max, *select_last),
                DType::U8 => arg::<u8>(x, (pre, n, post), *max, *select_last),
                DType::I16 => arg::<i16>(x, (pre, n, post), *max, *select_last),
                DType::U16 => arg::<u16>(x, (pre, n, post), *max, *select_last),
                DType::I32 => arg::<i32>(x, (pre, n, post), *max, *select_last),
                DType::U32 => arg::<u32>(x, (pre, n, post), *max, *select_last),
                DType::I64 => arg::<i64>(x, (pre, n, post), *max, *select_last),
                DType::U64 => arg::<u64>(x, (pre, n, post), *max, *select_last),
                DType::Bool => bail!("{} does not support bool", op.onnx_name()),
            }?;
            let red: Vec<bool> = (0..x.rank()).map(|i| i == a).collect();
            Ok(vec![Tensor::from_vec(out_dims(s, &red, *keepdims, 1), idx)])
        }
        _ => bail!("{} is not a reduction", op.onnx_name()),
    }
}

fn check_dtype(kind: ReduceKind, dt: DType) -> Result<()> {
    if dt == DType::Bool && !matches!(kind, ReduceKind::Max | ReduceKind::Min) {
        bail!(
            "{} does not support bool",
            Op::Reduce(Reduce { kind, keepdims: true, noop_with_empty_axes: false }).onnx_name()
        );
    }
    Ok(())
}

fn axes_of(t: &Tensor) -> Result<Vec<i64>> {
    t.to_i64_vec().ok_or_else(|| anyhow!("axes must be integers, got {}", t.dtype()))
}

/// Which axes are reduced (`None`: the op is the identity, by `noop_with_empty_axes`).
fn resolve_axes(r: &Reduce, axes: &[i64], rank: usize) -> Result<Option<Vec<bool>>> {
    if axes.is_empty() {
        return Ok(if r.noop_with_empty_axes { None } else { Some(vec![true; rank]) });
    }
    let mut red = vec![false; rank];
    for &a in axes {
        let i = norm_axis(a, rank)?;
        if i >= rank {
            bail!("axis {a} is out of range for rank {rank}");
        }
        if red[i] {
            bail!("axis {a} appears twice in axes {axes:?}");
        }
        red[i] = true;
    }
    Ok(Some(red))
}

/// The shape after reducing the flagged dims (kept as `one` with keepdims, dropped otherwise).
fn out_dims<D: Clone>(shape: &[D], red: &[bool], keepdims: bool, one: D) -> Vec<D> {
    shape
        .iter()
        .zip(red)
        .filter_map(|(d, &r)| match (r, keepdims) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(one.clone()),
            (true, false) => None,
        })
        .collect()
}

/// Element types that can be reduced: widened to f64 or i128 accumulators and narrowed back.
trait Acc: Elem + Default {
    const FLOAT: bool;
    fn f(self) -> f64;
    fn i(self) -> i128;
    fn from_f(x: f64) -> Self;
    fn from_i(x: i128) -> Self;
}

macro_rules! impl_acc {
    ($($t:ty: $float:expr),*) => {$(
        impl Acc for $t {
            const FLOAT: bool = $float;
            #[inline(always)]
            fn f(self) -> f64 { self as f64 }
            #[inline(always)]
            fn i(self) -> i128 { self as i128 }
            #[inline(always)]
            fn from_f(x: f64) -> Self { x as $t }
            #[inline(always)]
            fn from_i(x: i128) -> Self { x as $t }
        }
    )*};
}
impl_acc!(f32: true, f64: true, i8: false, u8: false, i16: false, u16: false, i32: false, u32: false, i64: false, u64: false);

#[inline(always)]
fn fmax(a: f64, b: f64) -> f64 {
    if b > a || b.is_nan() { b } else { a }
}

#[inline(always)]
fn fmin(a: f64, b: f64) -> f64 {
    if b < a || b.is_nan() { b } else { a }
}

/// Online log-sum-exp accumulator `(max, sum of exp(x - max))`.
#[inline(always)]
fn lse_add((m, s): (f64, f64), x: f64) -> (f64, f64) {
    if x == f64::NEG_INFINITY {
        (m, s)
    } else if x > m {
        (x, s * (m - x).exp() + 1.0)
    } else {
        (m, s + (x - m).exp())
    }
}

#[inline(always)]
fn lse_merge(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let m = fmax(a.0, b.0);
    if m == f64::NEG_INFINITY {
        return (m, 0.0);
    }
    let part = |(mi, si): (f64, f64)| if si == 0.0 { 0.0 } else { si * (mi - m).exp() };
    (m, part(a) + part(b))
}

fn reduce_t<T: Acc>(kind: ReduceKind, x: &Tensor, red: &[bool]) -> Result<Tensor> {
    use ReduceKind::*;
    let xs = x.as_slice::<T>().ok_or_else(|| anyhow!("expected {}, got {}", T::DTYPE, x.dtype()))?;
    let shape = x.shape();
    let count: usize = shape.iter().zip(red).filter(|(_, r)| **r).map(|(d, _)| d).product();
    let out: Vec<T> = if T::FLOAT || matches!(kind, L2 | LogSum | LogSumExp) {
        let fin = |v: Vec<f64>, g: &dyn Fn(f64) -> f64| v.into_iter().map(|a| T::from_f(g(a))).collect();
        fn sum<T: Copy + Sync>(
            xs: &[T],
            sh: &[usize],
            red: &[bool],
            m: impl Fn(T) -> f64 + Sync,
        ) -> Vec<f64> {
            fold(xs, sh, red, 0.0, move |a, v| a + m(v), |a, b| a + b)
        }
        match kind {
            Sum => fin(sum(xs, shape, red, |v: T| v.f()), &|a| a),
            Mean => fin(sum(xs, shape, red, |v: T| v.f()), &|a| a / count as f64),
            LogSum => fin(sum(xs, shape, red, |v: T| v.f()), &f64::ln),
            L1 => fin(sum(xs, shape, red, |v: T| v.f().abs()), &|a| a),
            L2 => fin(sum(xs, shape, red, |v: T| v.f() * v.f()), &f64::sqrt),
            SumSquare => fin(sum(xs, shape, red, |v: T| v.f() * v.f()), &|a| a),
            Prod => fin(fold(xs, shape, red, 1.0, |a, v| a * v.f(), |a, b| a * b), &|a| a),
            Max => fin(fold(xs, shape, red, f64::NEG_INFINITY, |a, v| fmax(a, v.f()), fmax), &|a| a),
            Min => fin(fold(xs, shape, red, f64::INFINITY, |a, v| fmin(a, v.f()), fmin), &|a| a),
            LogSumExp => {
                let acc = fold(xs, shape, red, (f64::NEG_INFINITY, 0.0), |a, v| lse_add(a, v.f()), lse_merge);
                acc.into_iter().map(|(m, s)| T::from_f(if s == 0.0 { m } else { m + s.ln() })).collect()
            }
        }
    } else {
        let fin = |v: Vec<i128>| v.into_iter().map(T::from_i).collect();
        fn sum<T: Copy + Sync>(
            xs: &[T],
            sh: &[usize],
            red: &[bool],
            m: impl Fn(T) -> i128 + Sync,
        ) -> Vec<i128> {
            fold(xs, sh, red, 0, move |a, v| a.wrapping_add(m(v)), i128::wrapping_add)
        }
        match kind {
            Sum => fin(sum(xs, shape, red, |v: T| v.i())),
            Mean => fin(sum(xs, shape, red, |v: T| v.i())
                .into_iter()
                .map(|a| if count == 0 { 0 } else { a / count as i128 })
                .collect()),
            L1 => fin(sum(xs, shape, red, |v: T| v.i().abs())),
            SumSquare => fin(sum(xs, shape, red, |v: T| v.i().wrapping_mul(v.i()))),
            Prod => fin(fold(xs, shape, red, 1i128, |a, v| a.wrapping_mul(v.i()), i128::wrapping_mul)),
            Max => fin(fold(xs, shape, red, i128::MIN, |a, v| a.max(v.i()), i128::max)),
            Min => fin(fold(xs, shape, red, i128::MAX, |a, v| a.min(v.i()), i128::min)),
            L2 | LogSum | LogSumExp => unreachable!("handled by the float path"),
        }
    };
    let n = out.len();
    Ok(Tensor::from_vec(vec![n], out))
}

/// Folds `x` (row-major `shape`) over the flagged dims: one accumulator per kept position,
/// starting at `init`, combined with `f`; `merge` joins partial accumulators (associative).
fn fold<T: Copy + Sync, A: Copy + Send + Sync>(
    x: &[T],
    shape: &[usize],
    red: &[bool],
    init: A,
    f: impl Fn(A, T) -> A + Sync,
    merge: impl Fn(A, A) -> A + Sync,
) -> Vec<A> {
    let out_n: usize = shape.iter().zip(red).filter(|(_, r)| !**r).map(|(d, _)| d).product();
    let mut out = vec![init; out_n];
    if x.is_empty() || out_n == 0 {
        return out;
    }
    // Coalesce into (size, reduced, x stride, out stride), dropping size-1 dims.
    let mut groups: Vec<(usize, bool)> = Vec::new();
    for (&d, &r) in shape.iter().zip(red) {
        match groups.last_mut() {
            _ if d == 1 => {}
            Some((n, lr)) if *lr == r => *n *= d,
            _ => groups.push((d, r)),
        }
    }
    if groups.is_empty() {
        groups.push((1, false));
    }
    let mut dims = vec![(0, false, 0, 0); groups.len()];
    let (mut xs, mut os) = (1, 1);
    for (i, &(n, r)) in groups.iter().enumerate().rev() {
        dims[i] = (n, r, xs, if r { 0 } else { os });
        xs *= n;
        if !r {
            os *= n;
        }
    }
    let (_, r0, xs0, os0) = dims[0];
    if x.len() >= PAR_MIN && dims.len() > 1 && !r0 {
        out.par_chunks_mut(os0)
            .zip(x.par_chunks(xs0))
            .for_each(|(o, xx)| fold_rec(&dims[1..], xx, o, init, &f, &merge));
    } else if x.len() >= PAR_MIN && dims.len() == 1 && r0 {
        let part = x.par_chunks(1 << 14).map(|c| fold_row(init, c, init, &f, &merge)).reduce(|| init, &merge);
        out[0] = merge(out[0], part);
    } else {
        fold_rec(&dims, x, &mut out, init, &f, &merge);
    }
    out
}

fn fold_rec<T: Copy, A: Copy>(
    dims: &[(usize, bool, usize, usize)],
    x: &[T],
    out: &mut [A],
    init: A,
    f: &impl Fn(A, T) -> A,
    merge: &impl Fn(A, A) -> A,
) {
    let (n, r, xs, os) = dims[0];
    if dims.len() == 1 {
        if r {
            out[0] = fold_row(out[0], &x[..n], init, f, merge);
        } else {
            out[..n].iter_mut().zip(&x[..n]).for_each(|(o, &v)| *o = f(*o, v));
        }
        return;
    }
    for i in 0..n {
        let xx = &x[i * xs..(i + 1) * xs];
        if r {
            fold_rec(&dims[1..], xx, out, init, f, merge);
        } else {
            fold_rec(&dims[1..], xx, &mut out[i * os..(i + 1) * os], init, f, merge);
        }
    }
}

/// Folds a contiguous row with 8 independent lanes (lane 0 starts at `acc`, the others at
/// `lane_init`, which must be the identity of `merge`), so that the loop vectorises.
#[inline(always)]
fn fold_row<T: Copy, A: Copy>(
    acc: A,
    row: &[T],
    lane_init: A,
    f: &impl Fn(A, T) -> A,
    merge: &impl Fn(A, A) -> A,
) -> A {
    let mut lanes = [lane_init; 8];
    lanes[0] = acc;
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            lanes[k] = f(lanes[k], c[k]);
        }
    }
    for (k, &v) in rest.iter().enumerate() {
        lanes[k] = f(lanes[k], v);
    }
    let a = merge(merge(lanes[0], lanes[1]), merge(lanes[2], lanes[3]));
    let b = merge(merge(lanes[4], lanes[5]), merge(lanes[6], lanes[7]));
    merge(a, b)
}

/// ArgMax/ArgMin over the middle dim of `[pre, n, post]`; NaN counts as the extreme value.
fn arg<T: Elem + PartialOrd>(
    x: &Tensor,
    (pre, n, post): (usize, usize, usize),
    max: bool,
    last: bool,
) -> Result<Vec<i64>> {
    let xs = x.as_slice::<T>().ok_or_else(|| anyhow!("expected {}, got {}", T::DTYPE, x.dtype()))?;
    #[allow(clippy::eq_op)]
    fn run<T: Copy + PartialOrd>(
        xs: &[T],
        (pre, n, post): (usize, usize, usize),
        better: impl Fn(T, T) -> bool,
    ) -> Vec<i64> {
        let mut out = vec![0i64; pre * post];
        for p in 0..pre {
            let base = p * n * post;
            let mut best: Vec<T> = xs[base..base + post].to_vec();
            let idx = &mut out[p * post..(p + 1) * post];
            for j in 1..n {
                let row = &xs[base + j * post..base + (j + 1) * post];
                for q in 0..post {
                    let (v, b) = (row[q], best[q]);
                    let nan_wins = v != v && b == b;
                    if nan_wins || (b == b && better(v, b)) {
                        best[q] = v;
                        idx[q] = j as i64;
                    }
                }
            }
        }
        out
    }
    let dims = (pre, n, post);
    Ok(match (max, last) {
        (true, false) => run(xs, dims, |v, b| v > b),
        (true, true) => run(xs, dims, |v, b| v >= b),
        (false, false) => run(xs, dims, |v, b| v < b),
        (false, true) => run(xs, dims, |v, b| v <= b),
    })
}
