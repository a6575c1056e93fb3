//! Shape inference and evaluation for every `Op`, grouped by family.
//! Each family module owns some variants; this module routes to them.

pub mod channels;
mod cost;
pub mod elementwise;
pub mod nn;
pub mod quant;
pub mod reduce;
pub mod resize;
pub mod shape;
pub mod train;

use crate::ir::{Fact, Op};
use crate::tensor::Tensor;
use anyhow::{Result, anyhow};

impl Op {
    /// Infers output facts from input facts (`None` for absent optional inputs).
    /// Errors describe what is wrong with the shapes; the caller adds the node's name.
    pub fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        match family(self) {
            Family::Nn => nn::infer(self, inputs),
            Family::Elementwise => elementwise::infer(self, inputs),
            Family::Shape => shape::infer(self, inputs),
            Family::Reduce => reduce::infer(self, inputs),
            Family::Resize => resize::infer(self, inputs),
            Family::Quant => quant::infer(self, inputs),
            Family::Train(t) => train::infer(t, inputs),
        }
    }

    /// Evaluates the op on concrete tensors. Inputs are passed by value so that an op may
    /// reuse an input's buffer when no one else holds it (`Tensor::try_into_data`).
    pub fn eval_owned(&self, inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
        match family(self) {
            Family::Nn => nn::eval(self, inputs),
            Family::Elementwise => elementwise::eval(self, inputs),
            Family::Shape => shape::eval(self, inputs),
            Family::Reduce => reduce::eval(self, inputs),
            Family::Resize => resize::eval(self, inputs),
            Family::Quant => quant::eval(self, inputs),
            Family::Train(t) => train::eval(t, inputs),
        }
    }

    /// Evaluates the op on borrowed tensors (clones the handles; storage is shared).
    pub fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        self.eval_owned(inputs.iter().map(|t| t.cloned()).collect())
    }
}

enum Family<'a> {
    Train(&'a crate::ir::TrainOp),
    Nn,
    Elementwise,
    Shape,
    Reduce,
    Resize,
    Quant,
}

fn family(op: &Op) -> Family<'_> {
    match op {
        Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Gemm(_)
        | Op::MatMul
        | Op::BatchNorm(_)
        | Op::LayerNorm(_)
        | Op::MaxPool(_)
        | Op::AveragePool(_)
        | Op::GlobalAveragePool
        | Op::GlobalMaxPool
        | Op::Softmax { .. } => Family::Nn,
        Op::Unary(_) | Op::Binary(_) | Op::Variadic(_) | Op::Clip | Op::Where | Op::Cast(_) => {
            Family::Elementwise
        }
        Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice
        | Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Shape { .. }
        | Op::Size
        | Op::ConstantOfShape(_)
        | Op::Expand
        | Op::Range
        | Op::Tile
        | Op::Identity
        | Op::Dropout { .. }
        | Op::Pad(_) => Family::Shape,
        Op::Reduce(_) | Op::ArgReduce { .. } => Family::Reduce,
        Op::Resize(_) => Family::Resize,
        Op::QuantizeLinear { .. } | Op::DequantizeLinear { .. } | Op::FakeQuant { .. } => Family::Quant,
        Op::Train(t) => Family::Train(t),
    }
}

/// Input `i`'s fact, or an error saying it is missing.
pub fn fact_at<'a>(inputs: &[Option<&'a Fact>], i: usize) -> Result<&'a Fact> {
    inputs.get(i).copied().flatten().ok_or_else(|| anyhow!("required input {i} is missing"))
}

/// Input `i`'s tensor, or an error saying it is missing.
pub fn tensor_at(inputs: &[Option<Tensor>], i: usize) -> Result<&Tensor> {
    inputs.get(i).and_then(|t| t.as_ref()).ok_or_else(|| anyhow!("required input {i} is missing"))
}

/// Input `i`'s constant value if it is present and constant.
pub fn konst_at<'a>(inputs: &[Option<&'a Fact>], i: usize) -> Option<&'a Tensor> {
    inputs.get(i).copied().flatten().and_then(|f| f.konst.as_ref())
}

/// Normalises a possibly negative axis against a rank.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) && !(r == 0 && a == 0) {
        return Err(anyhow!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}
