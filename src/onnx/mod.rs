//! ONNX import and export: the only place that knows protobuf.

#[allow(missing_docs, clippy::all)]
pub mod proto;
