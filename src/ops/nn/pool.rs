//! MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool.

use super::geom::Window;
use super::{f32_data, f32_tensor, shape_str};
use crate::ir::{Dim, Fact, Pool, fmt_shape};
use crate::ops::{fact_at, tensor_at};
use crate::tensor::{DType, Tensor, numel};
use anyhow::{Result, bail};
use pare_kernels::PoolGeom;
use rayon::prelude::*;

fn check_input(f: &Fact) -> Result<()> {
    if !(f.dtype.is_float() || matches!(f.dtype, DType::I8 | DType::U8)) {
        bail!("input {f} must be a float or 8-bit integer tensor");
    }
    Ok(())
}

fn window(p: &Pool, spatial: usize) -> Result<Window> {
    if p.kernel.is_empty() {
        bail!("kernel_shape is required");
    }
    if p.kernel.len() != spatial {
        bail!("kernel_shape {:?} has {} axes, input has {spatial} spatial axes", p.kernel, p.kernel.len());
    }
    Window::new(p.kernel.clone(), &p.strides, &p.dilations, &p.pads, p.auto_pad, p.ceil_mode)
}

/// MaxPool / AveragePool: X [N, C, ...] -> Y [N, C, ...] (MaxPool with `indices`: also int64 Indices).
pub(super) fn infer_pool(p: &Pool, is_max: bool, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let x = fact_at(inputs, 0)?;
    check_input(x)?;
    if !(3..=5).contains(&x.rank()) {
        bail!("input {} must have rank 3 to 5 (N, C and 1 to 3 spatial axes)", fmt_shape(&x.shape));
    }
    let win = window(p, x.rank() - 2)?;
    let mut shape = x.shape[..2].to_vec();
    for (i, d) in x.shape[2..].iter().enumerate() {
        shape.push(win.infer_axis(i, d)?);
    }
    let mut out = vec![Fact::new(x.dtype, shape.clone())];
    if is_max && p.indices {
        out.push(Fact::new(DType::I64, shape));
    }
    Ok(out)
}

/// The kernels' geometry for a pool over input shape `xs`, and the output shape.
pub(crate) fn pool_geom(p: &Pool, xs: &[usize]) -> Result<(PoolGeom, Vec<usize>)> {
    if !(3..=5).contains(&xs.len()) {
        bail!("input {} must have rank 3 to 5 (N, C and 1 to 3 spatial axes)", shape_str(xs));
    }
    let win = window(p, xs.len() - 2)?;
    let (out_sp, pb, pe) = win.resolve(&xs[2..])?;
    let mut shape = xs[..2].to_vec();
    shape.extend(&out_sp);
    let geom = PoolGeom {
        batch_channels: xs[0] * xs[1],
        in_spatial: xs[2..].to_vec(),
        kernel: win.kernel,
        strides: win.strides,
        dilations: win.dilations,
        pads_begin: pb,
        pads_end: pe,
        out_spatial: out_sp,
    };
    Ok((geom, shape))
}

/// MaxPool evaluation: outputs Y and, with `indices`, the flat row-major indices into X.
pub(super) fn eval_max_pool(p: &Pool, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let x = tensor_at(inputs, 0)?;
    let (geom, shape) = pool_geom(p, x.shape())?;
    let xf = f32_data(x)?;
    let n = numel(&shape);
    let mut out = vec![0f32; n];
    if !p.indices {
        pare_kernels::max_pool(&geom, &xf, &mut out, None);
        return Ok(vec![f32_tensor(shape, out, x.dtype())]);
    }
    let mut idx = vec![0i64; n];
    pare_kernels::max_pool(&geom, &xf, &mut out, Some(&mut idx));
    Ok(vec![f32_tensor(shape.clone(), out, x.dtype()), Tensor::from_vec(shape, idx)])
}

/// AveragePool evaluation.
pub(super) fn eval_avg_pool(p: &Pool, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let x = tensor_at(inputs, 0)?;
    if !x.dtype().is_float() {
        bail!("AveragePool needs a float input, got {}", x.dtype());
    }
    let (geom, shape) = pool_geom(p, x.shape())?;
    let xf = f32_data(x)?;
    let mut out = vec![0f32; numel(&shape)];
    pare_kernels::avg_pool(&geom, &xf, &mut out, p.count_include_pad);
    Ok(vec![f32_tensor(shape, out, x.dtype())])
}

/// Global pools: X [N, C, ...] -> [N, C, 1, ...].
pub(super) fn infer_global(inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let x = fact_at(inputs, 0)?;
    check_input(x)?;
    if x.rank() < 2 {
        bail!("input {} must have rank at least 2 (N, C, ...)", fmt_shape(&x.shape));
    }
    let mut shape = x.shape[..2].to_vec();
    shape.extend(std::iter::repeat_n(Dim::Known(1), x.rank() - 2));
    Ok(vec![Fact::new(x.dtype, shape)])
}

/// GlobalMaxPool (`max`) or GlobalAveragePool evaluation.
pub(super) fn eval_global(max: bool, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let x = tensor_at(inputs, 0)?;
    let xs = x.shape();
    if xs.len() < 2 {
        bail!("input {} must have rank at least 2 (N, C, ...)", shape_str(xs));
    }
    let (bc, sp) = (xs[0] * xs[1], numel(&xs[2..]));
    let xf = f32_data(x)?;
    let mut out = vec![0f32; bc];
    if max {
        if sp == 0 {
            bail!("GlobalMaxPool over an empty spatial extent {}", shape_str(xs));
        }
        let f = |(i, o): (usize, &mut f32)| {
            *o = xf[i * sp..(i + 1) * sp]
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| if v > m || v.is_nan() { v } else { m });
        };
        if bc * sp >= 1 << 16 {
            out.par_iter_mut().enumerate().with_min_len((1 << 14) / sp.max(1) + 1).for_each(f);
        } else {
            out.iter_mut().enumerate().for_each(f);
        }
    } else {
        pare_kernels::global_avg_pool(bc, sp, &xf, &mut out);
    }
    let mut shape = xs[..2].to_vec();
    shape.extend(std::iter::repeat_n(1, xs.len() - 2));
    Ok(vec![f32_tensor(shape, out, x.dtype())])
}
