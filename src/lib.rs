//! pare: make trained neural networks smaller and faster, ONNX in and ONNX out.
#![warn(missing_docs)]

pub mod autodiff;
pub mod compile;
pub mod data;
pub mod ir;
pub mod onnx;
pub mod ops;
pub mod passes;
pub mod profile;
pub mod runtime;
pub mod tensor;
pub mod train;
pub mod util;
pub mod zoo;
