//! ONNX import and export: the only place that knows protobuf.
//!
//! Import reads opsets 7 to 23 of the default domain and normalises every opset's attribute
//! forms to the IR's newest-opset meaning (see `registry`); export writes opset 21.

mod attrs;
#[cfg(test)]
mod coverage_tests;
mod export;
mod import;
#[allow(missing_docs, clippy::all)]
pub mod proto;
mod registry;
mod tensor;

pub use export::{EXPORT_IR_VERSION, EXPORT_OPSET, save, to_bytes, to_model};
pub use import::{load, load_bytes};
pub use tensor::{dtype_from_onnx, dtype_to_onnx, read_tensor_pb, tensor_from_proto, tensor_to_proto};
