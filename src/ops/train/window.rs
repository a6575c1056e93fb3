//! Gradients of Conv, MaxPool, AveragePool and Gather.

use super::f32s;
use crate::ir::{Conv, Pool};
use crate::ops::nn::conv::conv_geom;
use crate::ops::nn::pool::pool_geom;
use crate::ops::norm_axis;
use crate::tensor::{Tensor, numel};
use anyhow::{Result, bail};

fn check_len(t: &Tensor, want: usize, what: &str, shape: &[usize]) -> Result<()> {
    if t.len() != want {
        bail!("{what} {:?} has {} elements, expected {want} (shape {:?})", t.shape(), t.len(), shape);
    }
    Ok(())
}

/// Conv's input gradient from dY and W.
pub fn conv_grad_input(c: &Conv, x_shape: &[usize], dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let geom = conv_geom(c, x_shape, w.shape())?;
    check_len(dy, geom.out_len(), "gradient", dy.shape())?;
    let mut dx = vec![0f32; geom.in_len()];
    pare_kernels::conv_grad_input(&geom, f32s(dy, "gradient")?, f32s(w, "weight")?, &mut dx);
    Ok(Tensor::from_vec(x_shape.to_vec(), dx))
}

/// Conv's weight gradient from X and dY.
pub fn conv_grad_weight(c: &Conv, w_shape: &[usize], x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let geom = conv_geom(c, x.shape(), w_shape)?;
    check_len(dy, geom.out_len(), "gradient", dy.shape())?;
    let mut dw = vec![0f32; geom.weight_len()];
    pare_kernels::conv_grad_weight(&geom, f32s(x, "input")?, f32s(dy, "gradient")?, &mut dw);
    Ok(Tensor::from_vec(w_shape.to_vec(), dw))
}

/// MaxPool's gradient: dY scattered to the recorded argmax positions.
pub fn max_pool_grad(p: &Pool, x_shape: &[usize], dy: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let (geom, out_shape) = pool_geom(p, x_shape)?;
    check_len(dy, numel(&out_shape), "gradient", &out_shape)?;
    let Some(ix) = idx.as_slice::<i64>() else {
        bail!("indices must be int64, got {}", idx.dtype());
    };
    check_len(idx, numel(&out_shape), "indices", &out_shape)?;
    let mut dx = vec![0f32; geom.in_len()];
    pare_kernels::max_pool_grad(&geom, f32s(dy, "gradient")?, ix, &mut dx);
    Ok(Tensor::from_vec(x_shape.to_vec(), dx))
}

/// AveragePool's gradient.
pub fn avg_pool_grad(p: &Pool, x_shape: &[usize], dy: &Tensor) -> Result<Tensor> {
    let (geom, out_shape) = pool_geom(p, x_shape)?;
    check_len(dy, numel(&out_shape), "gradient", &out_shape)?;
    let mut dx = vec![0f32; geom.in_len()];
    pare_kernels::avg_pool_grad(&geom, f32s(dy, "gradient")?, &mut dx, p.count_include_pad);
    Ok(Tensor::from_vec(x_shape.to_vec(), dx))
}

/// Gather's data gradient: dY rows added into zeros of `data_shape` at the gathered indices.
pub fn gather_grad(axis: i64, data_shape: &[usize], indices: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let a = norm_axis(axis, data_shape.len())?;
    let Some(idx) = indices.to_i64_vec() else {
        bail!("indices must be integers, got {}", indices.dtype());
    };
    let (outer, n, inner) = (numel(&data_shape[..a]), data_shape[a], numel(&data_shape[a + 1..]));
    check_len(dy, outer * idx.len() * inner, "gradient", dy.shape())?;
    let g = f32s(dy, "gradient")?;
    let mut out = vec![0f32; numel(data_shape)];
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let i = if i < 0 { i + n as i64 } else { i };
            if i < 0 || i >= n as i64 {
                bail!("index {i} is out of range for axis {a} of size {n}");
            }
            let src = &g[(o * idx.len() + j) * inner..][..inner];
            let dst = &mut out[(o * n + i as usize) * inner..][..inner];
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
        }
    }
    Ok(Tensor::from_vec(data_shape.to_vec(), out))
}
