//! Broadcast iteration and the generic map/zip kernels the element-wise ops are built from.
//!
//! A `Plan` coalesces the output shape into as few dims as possible and gives each input a stride
//! per dim (0 where it is broadcast). Kernels walk the output in rows of the innermost dim, where
//! each input is either contiguous (stride 1) or a single repeated value (stride 0); the match on
//! those strides is hoisted out of the loops so each inner loop is a plain slice loop that
//! auto-vectorises. Large outputs are split into chunks processed with rayon.

use crate::tensor::{Elem, Tensor, numel};
use anyhow::{Result, anyhow};
use rayon::prelude::*;

/// Outputs with at least this many elements are processed in parallel.
pub const PAR_MIN: usize = 1 << 16;
const CHUNK: usize = 1 << 15;

/// Coalesced broadcast layout of up to three inputs against an output shape.
pub struct Plan {
    dims: Vec<usize>,
    strides: Vec<[usize; 3]>,
}

impl Plan {
    /// Builds the plan; every input shape must broadcast to `out` (checked by the caller).
    pub fn new(out: &[usize], ins: &[&[usize]]) -> Plan {
        let rank = out.len();
        let mut in_strides = vec![[0usize; 3]; rank];
        for (k, s) in ins.iter().enumerate().take(3) {
            let off = rank - s.len();
            let mut st = 1;
            for d in (0..s.len()).rev() {
                in_strides[off + d][k] = if s[d] == 1 { 0 } else { st };
                st *= s[d];
            }
        }
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: Vec<[usize; 3]> = Vec::new();
        for d in 0..rank {
            if out[d] == 1 {
                continue;
            }
            if let (Some(last_dim), Some(last_st)) = (dims.last_mut(), strides.last_mut())
                && (0..3).all(|k| last_st[k] == in_strides[d][k] * out[d])
            {
                *last_dim *= out[d];
                *last_st = in_strides[d];
                continue;
            }
            dims.push(out[d]);
            strides.push(in_strides[d]);
        }
        if dims.is_empty() {
            dims.push(1);
            strides.push([0; 3]);
        }
        Plan { dims, strides }
    }

    /// Length of the innermost (contiguous) dim.
    pub fn inner(&self) -> usize {
        self.dims[self.dims.len() - 1]
    }

    /// Stride of input `k` along the innermost dim: 1 (contiguous) or 0 (broadcast).
    pub fn inner_stride(&self, k: usize) -> usize {
        self.strides[self.strides.len() - 1][k]
    }

    /// Calls `row(out_part, input_offsets)` for each innermost row piece of `chunk`, which
    /// starts at flat output position `start`.
    fn rows_from<O>(&self, start: usize, chunk: &mut [O], row: &impl Fn(&mut [O], [usize; 3])) {
        let nd = self.dims.len();
        let inner = self.inner();
        let outer = &self.dims[..nd - 1];
        let mut idx = vec![0usize; nd - 1];
        let mut offs = [0usize; 3];
        let mut rr = start / inner;
        for d in (0..nd - 1).rev() {
            idx[d] = rr % outer[d];
            rr /= outer[d];
            for (o, s) in offs.iter_mut().zip(self.strides[d]) {
                *o += idx[d] * s;
            }
        }
        let is = self.strides[nd - 1];
        let mut c = start % inner;
        let mut done = 0;
        while done < chunk.len() {
            let len = (inner - c).min(chunk.len() - done);
            let o = [offs[0] + c * is[0], offs[1] + c * is[1], offs[2] + c * is[2]];
            row(&mut chunk[done..done + len], o);
            done += len;
            c = 0;
            for d in (0..nd - 1).rev() {
                idx[d] += 1;
                for (o, s) in offs.iter_mut().zip(self.strides[d]) {
                    *o += s;
                }
                if idx[d] < outer[d] {
                    break;
                }
                for (o, s) in offs.iter_mut().zip(self.strides[d]) {
                    *o -= outer[d] * s;
                }
                idx[d] = 0;
            }
        }
    }

    /// Runs `row` over the whole output, in parallel chunks when it is large.
    pub fn drive<O: Send>(&self, out: &mut [O], row: impl Fn(&mut [O], [usize; 3]) + Sync) {
        if out.len() >= PAR_MIN {
            out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| self.rows_from(i * CHUNK, c, &row));
        } else {
            self.rows_from(0, out, &row);
        }
    }
}

/// `out[i] = f(a[i])`, allocating the output.
pub fn map_to<A: Copy + Sync, O: Copy + Send + Default>(a: &[A], f: impl Fn(A) -> O + Sync) -> Vec<O> {
    let mut out = vec![O::default(); a.len()];
    let work = |o: &mut [O], s: &[A]| o.iter_mut().zip(s).for_each(|(o, &x)| *o = f(x));
    if a.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).for_each(|(o, s)| work(o, s));
    } else {
        work(&mut out, a);
    }
    out
}

/// `a[i] = f(a[i])` in place.
pub fn map_inplace<T: Copy + Send>(a: &mut [T], f: impl Fn(T) -> T + Sync) {
    let work = |o: &mut [T]| o.iter_mut().for_each(|o| *o = f(*o));
    if a.len() >= PAR_MIN {
        a.par_chunks_mut(CHUNK).for_each(work);
    } else {
        work(a);
    }
}

/// `out = f(a, b)` with broadcasting to `osh`, allocating the output.
pub fn zip2<A: Copy + Sync, B: Copy + Sync, O: Copy + Send + Default>(
    a: &[A],
    ash: &[usize],
    b: &[B],
    bsh: &[usize],
    osh: &[usize],
    f: impl Fn(A, B) -> O + Sync,
) -> Vec<O> {
    let mut out = vec![O::default(); numel(osh)];
    if out.is_empty() {
        return out;
    }
    let plan = Plan::new(osh, &[ash, bsh]);
    match (plan.inner_stride(0), plan.inner_stride(1)) {
        (1, 1) => plan.drive(&mut out, |o, off| {
            let n = o.len();
            let (x, y) = (&a[off[0]..off[0] + n], &b[off[1]..off[1] + n]);
            o.iter_mut().zip(x.iter().zip(y)).for_each(|(o, (&x, &y))| *o = f(x, y));
        }),
        (1, 0) => plan.drive(&mut out, |o, off| {
            let (x, y) = (&a[off[0]..off[0] + o.len()], b[off[1]]);
            o.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x, y));
        }),
        (0, 1) => plan.drive(&mut out, |o, off| {
            let (x, y) = (a[off[0]], &b[off[1]..off[1] + o.len()]);
            o.iter_mut().zip(y).for_each(|(o, &y)| *o = f(x, y));
        }),
        _ => plan.drive(&mut out, |o, off| o.fill(f(a[off[0]], b[off[1]]))),
    }
    out
}

/// `a = f(a, b)` in place, where `a` already has the output shape `osh`.
pub fn zip2_inplace<A: Copy + Send + Sync, B: Copy + Sync>(
    a: &mut [A],
    osh: &[usize],
    b: &[B],
    bsh: &[usize],
    f: impl Fn(A, B) -> A + Sync,
) {
    if a.is_empty() {
        return;
    }
    let plan = Plan::new(osh, &[osh, bsh]);
    if plan.inner_stride(1) == 1 {
        plan.drive(a, |o, off| {
            let y = &b[off[1]..off[1] + o.len()];
            o.iter_mut().zip(y).for_each(|(o, &y)| *o = f(*o, y));
        });
    } else {
        plan.drive(a, |o, off| {
            let y = b[off[1]];
            o.iter_mut().for_each(|o| *o = f(*o, y));
        });
    }
}

/// `out = f(a, b, c)` with broadcasting (used by Where; not a hot path).
pub fn zip3<A: Copy + Sync, B: Copy + Sync, C: Copy + Sync, O: Copy + Send + Default>(
    (a, ash): (&[A], &[usize]),
    (b, bsh): (&[B], &[usize]),
    (c, csh): (&[C], &[usize]),
    osh: &[usize],
    f: impl Fn(A, B, C) -> O + Sync,
) -> Vec<O> {
    let mut out = vec![O::default(); numel(osh)];
    if out.is_empty() {
        return out;
    }
    let plan = Plan::new(osh, &[ash, bsh, csh]);
    let s = [plan.inner_stride(0), plan.inner_stride(1), plan.inner_stride(2)];
    plan.drive(&mut out, |o, off| {
        for (i, o) in o.iter_mut().enumerate() {
            *o = f(a[off[0] + i * s[0]], b[off[1] + i * s[1]], c[off[2] + i * s[2]]);
        }
    });
    out
}

/// Typed view of a tensor, or an error naming the dtypes.
pub fn slice_of<T: Elem>(t: &Tensor) -> Result<&[T]> {
    t.as_slice::<T>().ok_or_else(|| anyhow!("expected a {} tensor, got {}", T::DTYPE, t.dtype()))
}

/// Takes the tensor's buffer for in-place use if it has `shape`, dtype `T` and is unshared.
pub fn take_vec<T: Elem>(t: Tensor, shape: &[usize]) -> Result<Vec<T>, Tensor> {
    if t.shape() != shape || t.dtype() != T::DTYPE {
        return Err(t);
    }
    let data = t.try_into_data()?;
    T::into_vec(data).map_err(|d| Tensor::new(shape.to_vec(), d).expect("shape checked above"))
}

/// Applies `f` to every element, reusing the buffer when it is unshared.
pub fn unary_same<T: Elem + Default>(x: Tensor, f: impl Fn(T) -> T + Sync) -> Result<Tensor> {
    let shape = x.shape().to_vec();
    match take_vec::<T>(x, &shape) {
        Ok(mut v) => {
            map_inplace(&mut v, f);
            Ok(Tensor::from_vec(shape, v))
        }
        Err(x) => Ok(Tensor::from_vec(shape, map_to(slice_of::<T>(&x)?, f))),
    }
}

/// Applies `f` to every element into a new tensor of another element type.
pub fn unary_to<A: Elem, O: Elem + Default>(x: &Tensor, f: impl Fn(A) -> O + Sync) -> Result<Tensor> {
    Ok(Tensor::from_vec(x.shape().to_vec(), map_to(slice_of::<A>(x)?, f)))
}

/// `f(a, b)` with broadcasting, output typed like `a`; reuses `a`'s buffer when possible.
pub fn binary_a<T: Elem + Default, B: Elem>(
    a: Tensor,
    b: &Tensor,
    osh: &[usize],
    f: impl Fn(T, B) -> T + Sync,
) -> Result<Tensor> {
    let bs = slice_of::<B>(b)?;
    match take_vec::<T>(a, osh) {
        Ok(mut v) => {
            zip2_inplace(&mut v, osh, bs, b.shape(), f);
            Ok(Tensor::from_vec(osh.to_vec(), v))
        }
        Err(a) => {
            Ok(Tensor::from_vec(osh.to_vec(), zip2(slice_of::<T>(&a)?, a.shape(), bs, b.shape(), osh, f)))
        }
    }
}

/// `f(a, b)` with broadcasting on one element type; reuses `a`'s or else `b`'s buffer.
pub fn binary_same<T: Elem + Default>(
    a: Tensor,
    b: Tensor,
    osh: &[usize],
    f: impl Fn(T, T) -> T + Sync,
) -> Result<Tensor> {
    let a = match take_vec::<T>(a, osh) {
        Ok(mut v) => {
            zip2_inplace(&mut v, osh, slice_of::<T>(&b)?, b.shape(), f);
            return Ok(Tensor::from_vec(osh.to_vec(), v));
        }
        Err(a) => a,
    };
    match take_vec::<T>(b, osh) {
        Ok(mut v) => {
            zip2_inplace(&mut v, osh, slice_of::<T>(&a)?, a.shape(), |y, x| f(x, y));
            Ok(Tensor::from_vec(osh.to_vec(), v))
        }
        Err(b) => binary_to(&a, &b, osh, f),
    }
}

/// `f(a, b)` with broadcasting into a new tensor of any element type.
pub fn binary_to<A: Elem, B: Elem, O: Elem + Default>(
    a: &Tensor,
    b: &Tensor,
    osh: &[usize],
    f: impl Fn(A, B) -> O + Sync,
) -> Result<Tensor> {
    let out = zip2(slice_of::<A>(a)?, a.shape(), slice_of::<B>(b)?, b.shape(), osh, f);
    Ok(Tensor::from_vec(osh.to_vec(), out))
}
