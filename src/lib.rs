//! pare: make trained neural networks smaller and faster, ONNX in and ONNX out.
#![warn(missing_docs)]

pub mod ir;
pub mod onnx;
pub mod ops;
pub mod tensor;
