//! Training-only ops: gradients of forward ops, training-mode forward ops and losses.
//! All of them work on f32 tensors with concrete shapes (training graphs have a fixed batch).

mod act;
mod loss;
mod norm;
#[cfg(test)]
mod tests;
mod window;

use crate::ir::{Dim, Fact, TrainOp, fmt_shape};
use crate::ops::fact_at;
use crate::tensor::{DType, Tensor};
use anyhow::{Result, bail};

/// Infers output facts for a training op.
pub fn infer(op: &TrainOp, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    let f32_like = |i: usize| -> Result<Fact> {
        let f = fact_at(inputs, i)?;
        if f.dtype != DType::F32 {
            bail!("input {i} {f} must be float32 (training runs in float32)");
        }
        Ok(Fact::new(DType::F32, f.shape.clone()))
    };
    let known = |s: &[usize]| Fact::new(DType::F32, s.iter().map(|&d| Dim::Known(d)).collect());
    Ok(match op {
        TrainOp::UnaryGrad(_) | TrainOp::ClipGrad | TrainOp::SoftmaxGrad { .. } => {
            let x = fact_at(inputs, 0)?;
            let dy = f32_like(1)?;
            if x.shape != dy.shape {
                bail!("gradient {} does not match input {}", fmt_shape(&dy.shape), fmt_shape(&x.shape));
            }
            vec![dy]
        }
        TrainOp::ConvGradInput { x_shape, .. } => {
            f32_like(0)?;
            f32_like(1)?;
            vec![known(x_shape)]
        }
        TrainOp::ConvGradWeight { w_shape, .. } => {
            f32_like(0)?;
            f32_like(1)?;
            vec![known(w_shape)]
        }
        TrainOp::ChannelSum => {
            let x = f32_like(0)?;
            if x.rank() < 2 {
                bail!("input {x} must have rank at least 2 (N, C, ...)");
            }
            vec![Fact::new(DType::F32, vec![x.shape[1].clone()])]
        }
        TrainOp::MaxPoolGrad { x_shape, .. } | TrainOp::AvgPoolGrad { x_shape, .. } => {
            f32_like(0)?;
            vec![known(x_shape)]
        }
        TrainOp::BatchNormTrain { .. } => {
            let x = f32_like(0)?;
            if x.rank() < 2 {
                bail!("input {x} must have rank at least 2 (N, C, ...)");
            }
            let c = Fact::new(DType::F32, vec![x.shape[1].clone()]);
            for i in 1..5 {
                let p = f32_like(i)?;
                if p.rank() != 1 || p.shape[0] != x.shape[1] {
                    bail!("parameter {i} {p} must be 1-D with one value per channel of {x}");
                }
            }
            vec![x, c.clone(), c.clone(), c.clone(), c]
        }
        TrainOp::BatchNormGrad => {
            let x = f32_like(0)?;
            let s = f32_like(1)?;
            vec![x, s.clone(), s]
        }
        TrainOp::LayerNormGrad { .. } => {
            let x = f32_like(0)?;
            let s = f32_like(1)?;
            vec![x, s.clone(), s]
        }
        TrainOp::GatherGrad { data_shape, .. } => {
            f32_like(1)?;
            vec![known(data_shape)]
        }
        TrainOp::DropoutTrain { .. } => {
            let x = f32_like(0)?;
            vec![x.clone(), x]
        }
        TrainOp::QuantGrad { .. } => {
            let x = fact_at(inputs, 0)?;
            let dy = f32_like(3)?;
            if x.shape != dy.shape {
                bail!("gradient {} does not match input {}", fmt_shape(&dy.shape), fmt_shape(&x.shape));
            }
            vec![dy]
        }
        TrainOp::DequantizeGrad { .. } => vec![f32_like(1)?],
        TrainOp::Loss(l) => loss::infer(l, inputs)?,
    })
}

/// Evaluates a training op.
pub fn eval(op: &TrainOp, inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    let t = |i: usize| crate::ops::tensor_at(&inputs, i);
    Ok(match op {
        TrainOp::UnaryGrad(u) => vec![act::unary_grad(*u, t(0)?, t(1)?)?],
        TrainOp::ClipGrad => vec![act::clip_grad(
            t(0)?,
            t(1)?,
            inputs.get(2).and_then(|v| v.as_ref()),
            inputs.get(3).and_then(|v| v.as_ref()),
        )?],
        TrainOp::SoftmaxGrad { axis, log } => vec![act::softmax_grad(*axis, *log, t(0)?, t(1)?)?],
        TrainOp::DropoutTrain { ratio } => act::dropout(*ratio, t(0)?, t(1)?)?,
        TrainOp::ConvGradInput { conv, x_shape } => {
            vec![window::conv_grad_input(conv, x_shape, t(0)?, t(1)?)?]
        }
        TrainOp::ConvGradWeight { conv, w_shape } => {
            vec![window::conv_grad_weight(conv, w_shape, t(0)?, t(1)?)?]
        }
        TrainOp::MaxPoolGrad { pool, x_shape } => vec![window::max_pool_grad(pool, x_shape, t(0)?, t(1)?)?],
        TrainOp::AvgPoolGrad { pool, x_shape } => vec![window::avg_pool_grad(pool, x_shape, t(0)?)?],
        TrainOp::GatherGrad { axis, data_shape } => {
            vec![window::gather_grad(*axis, data_shape, t(0)?, t(1)?)?]
        }
        TrainOp::BatchNormTrain { epsilon, momentum } => {
            norm::batch_norm_train(*epsilon, *momentum, [t(0)?, t(1)?, t(2)?, t(3)?, t(4)?])?
        }
        TrainOp::ChannelSum => vec![norm::channel_sum(t(0)?)?],
        TrainOp::BatchNormGrad => norm::batch_norm_grad([t(0)?, t(1)?, t(2)?, t(3)?, t(4)?])?,
        TrainOp::LayerNormGrad { axis } => norm::layer_norm_grad(*axis, [t(0)?, t(1)?, t(2)?, t(3)?, t(4)?])?,
        TrainOp::QuantGrad { axis, to, rescale } => {
            let zp = inputs.get(2).and_then(|v| v.as_ref());
            vec![crate::ops::quant::quant_grad(t(0)?, t(1)?, zp, t(3)?, *axis, *to, *rescale)?]
        }
        TrainOp::DequantizeGrad { axis } => vec![crate::ops::quant::dequant_grad(t(0)?, t(1)?, *axis)?],
        TrainOp::Loss(l) => loss::eval(l, t(0)?, t(1)?)?,
    })
}

/// The tensor's f32 elements, or an error naming `what`.
fn f32s<'a>(t: &'a Tensor, what: &str) -> Result<&'a [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => Ok(v),
        None => bail!("{what} must be float32, got {}{:?}", t.dtype(), t.shape()),
    }
}

/// Errors unless two tensors have the same shape.
fn same_shape(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
    if a.shape() != b.shape() {
        bail!("{what}: shapes {:?} and {:?} differ", a.shape(), b.shape());
    }
    Ok(())
}

/// True if `UnaryGrad(u)` is defined.
pub fn has_unary_grad(u: crate::ir::Unary) -> bool {
    act::derivative(u).is_some()
}
