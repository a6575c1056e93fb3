//! (scaffold: being written)

use crate::ir::{Fact, Op};
use crate::tensor::Tensor;
use anyhow::{Result, bail};

/// Infers output facts for the ops of this family.
pub fn infer(op: &Op, _inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
    bail!("{} is not implemented yet", op.onnx_name())
}

/// Evaluates the ops of this family.
pub fn eval(op: &Op, _inputs: Vec<Option<Tensor>>) -> Result<Vec<Tensor>> {
    bail!("{} is not implemented yet", op.onnx_name())
}
