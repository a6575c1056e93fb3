//! Neural-network ops: Conv, ConvTranspose, Gemm, MatMul, BatchNorm, LayerNorm, pooling and
//! Softmax. The f32 paths call `pare-kernels`; f16/f64 inputs are computed in f32 and cast back.

pub(crate) mod conv;
mod geom;
mod matmul;
pub(crate) mod norm;
pub(crate) mod pool;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_math;

use crate::ir::{Act, Fact, Op};
use crate::tensor::{DType, Data, Tensor};
use anyhow::{Result, bail};
use std::borrow::Cow;

/// Infers output facts for the ops of this family.
pub fn infer(op: &Op, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    match op {
        Op::Conv(c) => conv::infer_conv(c, inputs),
        Op::ConvTranspose(c) => conv::infer_conv_transpose(c, inputs),
        Op::Gemm(g) => matmul::infer_gemm(g, inputs),
        Op::MatMul => matmul::infer_matmul(inputs),
        Op::BatchNorm(b) => norm::infer_batch_norm(b, inputs),
        Op::LayerNorm(l) => norm::infer_layer_norm(l, inputs),
        Op::Softmax { axis, .. } => norm::infer_softmax(*axis, inputs),
        Op::MaxPool(p) => pool::infer_pool(p, true, inputs),
        Op::AveragePool(p) => pool::infer_pool(p, false, inputs),
        Op::GlobalAveragePool | Op::GlobalMaxPool => pool::infer_global(inputs),
        _ => bail!("{} is not a neural-network op", op.onnx_name()),
    }
}

/// Evaluates the ops of this family.
pub fn eval(op: &Op, inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    match op {
        Op::Conv(c) => conv::eval_conv(c, &inputs),
        Op::ConvTranspose(c) => conv::eval_conv_transpose(c, &inputs),
        Op::Gemm(g) => matmul::eval_gemm(g, &inputs),
        Op::MatMul => matmul::eval_matmul(&inputs),
        Op::BatchNorm(b) => norm::eval_batch_norm(b, inputs),
        Op::LayerNorm(l) => norm::eval_layer_norm(l, inputs),
        Op::Softmax { axis, log, legacy } => norm::eval_softmax(*axis, *log, *legacy, inputs),
        Op::MaxPool(p) => pool::eval_max_pool(p, &inputs),
        Op::AveragePool(p) => pool::eval_avg_pool(p, &inputs),
        Op::GlobalAveragePool => pool::eval_global(false, &inputs),
        Op::GlobalMaxPool => pool::eval_global(true, &inputs),
        _ => bail!("{} is not a neural-network op", op.onnx_name()),
    }
}

/// The kernels' activation for an IR activation.
pub(crate) fn kernel_act(a: Act) -> pare_kernels::Act {
    use pare_kernels::Act as K;
    match a {
        Act::None => K::None,
        Act::Relu => K::Relu,
        Act::Clip { min, max } => K::Clip { min, max },
        Act::LeakyRelu(alpha) => K::LeakyRelu(alpha),
        Act::Sigmoid => K::Sigmoid,
        Act::HardSigmoid { alpha, beta } => K::HardSigmoid { alpha, beta },
        Act::HardSwish => K::HardSwish,
    }
}

/// `[1,3,224,224]` for a concrete shape.
pub(crate) fn shape_str(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Errors unless `f` has a floating-point dtype.
pub(crate) fn check_float(f: &Fact, what: &str) -> Result<()> {
    if !f.dtype.is_float() {
        bail!("{what} {f} must be a float tensor");
    }
    Ok(())
}

/// The elements as f32: borrowed for f32, converted for f64/f16 (and exact 8-bit integers).
pub(crate) fn f32_data(t: &Tensor) -> Result<Cow<'_, [f32]>> {
    Ok(match t.data() {
        Data::F32(v) => Cow::Borrowed(v.as_slice()),
        Data::F64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        Data::F16(v) => Cow::Owned(v.iter().map(|x| x.to_f32()).collect()),
        Data::I8(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        Data::U8(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        _ => bail!("expected a float tensor, got {}{}", t.dtype(), shape_str(t.shape())),
    })
}

/// Takes the elements as an owned f32 vector, reusing the buffer when the tensor is an
/// unshared f32 tensor.
pub(crate) fn take_f32(t: Tensor) -> Result<Vec<f32>> {
    match t.try_into_data() {
        Ok(Data::F32(v)) => Ok(v),
        Ok(other) => Ok(f32_data(&Tensor::new(vec![other.len()], other)?)?.into_owned()),
        Err(t) => Ok(f32_data(&t)?.into_owned()),
    }
}

/// Wraps f32 results as a tensor of `dtype` (a cast when it is not f32).
pub(crate) fn f32_tensor(shape: Vec<usize>, v: Vec<f32>, dtype: DType) -> Tensor {
    let t = Tensor::from_vec(shape, v);
    if dtype == DType::F32 { t } else { t.cast(dtype) }
}
