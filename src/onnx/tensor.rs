//! TensorProto <-> `Tensor`, and ONNX element-type codes <-> `DType`.

use super::proto::{self, tensor_proto::DataType};
use crate::tensor::{DType, Data, Tensor};
use anyhow::{Context, Result, anyhow, bail};
use half::f16;
use prost::Message;
use std::path::Path;

/// Largest number of elements a tensor read from a file may declare (2^34).
pub const MAX_ELEMENTS: u64 = 1 << 34;

/// Name of an ONNX element-type code, for messages (`FLOAT`, `BFLOAT16`, or the number).
pub fn onnx_type_name(code: i32) -> String {
    DataType::try_from(code).map(|d| d.as_str_name().to_string()).unwrap_or_else(|_| format!("#{code}"))
}

/// Converts an ONNX element-type code to a `DType`.
pub fn dtype_from_onnx(code: i32) -> Result<DType> {
    Ok(match DataType::try_from(code) {
        Ok(DataType::Float) => DType::F32,
        Ok(DataType::Double) => DType::F64,
        Ok(DataType::Float16) => DType::F16,
        Ok(DataType::Int8) => DType::I8,
        Ok(DataType::Uint8) => DType::U8,
        Ok(DataType::Int16) => DType::I16,
        Ok(DataType::Uint16) => DType::U16,
        Ok(DataType::Int32) => DType::I32,
        Ok(DataType::Uint32) => DType::U32,
        Ok(DataType::Int64) => DType::I64,
        Ok(DataType::Uint64) => DType::U64,
        Ok(DataType::Bool) => DType::Bool,
        _ => bail!("element type {} is not supported", onnx_type_name(code)),
    })
}

/// Converts a `DType` to its ONNX element-type code.
pub fn dtype_to_onnx(d: DType) -> i32 {
    let t = match d {
        DType::F32 => DataType::Float,
        DType::F64 => DataType::Double,
        DType::F16 => DataType::Float16,
        DType::I8 => DataType::Int8,
        DType::U8 => DataType::Uint8,
        DType::I16 => DataType::Int16,
        DType::U16 => DataType::Uint16,
        DType::I32 => DataType::Int32,
        DType::U32 => DataType::Uint32,
        DType::I64 => DataType::Int64,
        DType::U64 => DataType::Uint64,
        DType::Bool => DataType::Bool,
    };
    t as i32
}

/// Checks declared dims (non-negative, product at most `MAX_ELEMENTS`) and returns the shape.
pub fn checked_shape(dims: &[i64]) -> Result<Vec<usize>> {
    let mut total: u64 = 1;
    for &d in dims {
        if d < 0 {
            bail!("negative dimension {d} in shape {dims:?}");
        }
        total = total.saturating_mul(d as u64);
    }
    if total > MAX_ELEMENTS {
        bail!("shape {dims:?} declares {total} elements, more than the limit of 2^34");
    }
    Ok(dims.iter().map(|&d| d as usize).collect())
}

fn from_raw(dtype: DType, raw: &[u8], n: usize) -> Result<Data> {
    let size = dtype.size();
    if raw.len() != n * size {
        bail!("raw_data has {} bytes, the shape needs {} ({} x {} bytes)", raw.len(), n * size, n, size);
    }
    macro_rules! le {
        ($t:ty, $v:ident) => {
            Data::$v(raw.chunks_exact(size).map(|c| <$t>::from_le_bytes(c.try_into().unwrap())).collect())
        };
    }
    Ok(match dtype {
        DType::F32 => le!(f32, F32),
        DType::F64 => le!(f64, F64),
        DType::I8 => le!(i8, I8),
        DType::U8 => Data::U8(raw.to_vec()),
        DType::I16 => le!(i16, I16),
        DType::U16 => le!(u16, U16),
        DType::I32 => le!(i32, I32),
        DType::U32 => le!(u32, U32),
        DType::I64 => le!(i64, I64),
        DType::U64 => le!(u64, U64),
        DType::F16 => Data::F16(raw.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect()),
        DType::Bool => Data::Bool(raw.iter().map(|&b| b != 0).collect()),
    })
}

fn from_typed(dtype: DType, t: &proto::TensorProto, n: usize) -> Result<Data> {
    let (field, len) = match dtype {
        DType::F32 => ("float_data", t.float_data.len()),
        DType::F64 => ("double_data", t.double_data.len()),
        DType::I64 => ("int64_data", t.int64_data.len()),
        DType::U32 | DType::U64 => ("uint64_data", t.uint64_data.len()),
        _ => ("int32_data", t.int32_data.len()),
    };
    if len != n {
        bail!("{field} has {len} elements, the shape needs {n}");
    }
    let i32s = &t.int32_data;
    Ok(match dtype {
        DType::F32 => Data::F32(t.float_data.clone()),
        DType::F64 => Data::F64(t.double_data.clone()),
        DType::I64 => Data::I64(t.int64_data.clone()),
        DType::U64 => Data::U64(t.uint64_data.clone()),
        DType::U32 => Data::U32(t.uint64_data.iter().map(|&x| x as u32).collect()),
        DType::I32 => Data::I32(i32s.clone()),
        DType::I8 => Data::I8(i32s.iter().map(|&x| x as i8).collect()),
        DType::U8 => Data::U8(i32s.iter().map(|&x| x as u8).collect()),
        DType::I16 => Data::I16(i32s.iter().map(|&x| x as i16).collect()),
        DType::U16 => Data::U16(i32s.iter().map(|&x| x as u16).collect()),
        DType::F16 => Data::F16(i32s.iter().map(|&x| f16::from_bits(x as u16)).collect()),
        DType::Bool => Data::Bool(i32s.iter().map(|&x| x != 0).collect()),
    })
}

/// Decodes a TensorProto (raw little-endian data or the typed fields). External data,
/// strings, negative dims, absurd sizes and length mismatches are errors.
pub fn tensor_from_proto(t: &proto::TensorProto) -> Result<Tensor> {
    let name = t.name.as_deref().unwrap_or("");
    decode(t).with_context(|| format!("tensor \"{name}\""))
}

fn decode(t: &proto::TensorProto) -> Result<Tensor> {
    let name = t.name.as_deref().unwrap_or("");
    if t.data_location == Some(proto::tensor_proto::DataLocation::External as i32)
        || !t.external_data.is_empty()
    {
        bail!("external data not supported: tensor {name}");
    }
    if t.segment.is_some() {
        bail!("segmented tensors are not supported");
    }
    let code = t.data_type.unwrap_or(0);
    let dtype = dtype_from_onnx(code)?;
    let shape = checked_shape(&t.dims)?;
    let n: usize = shape.iter().product();
    let data = match &t.raw_data {
        Some(raw) => from_raw(dtype, raw, n)?,
        None => from_typed(dtype, t, n)?,
    };
    Tensor::new(shape, data).map_err(|e| anyhow!("{e}"))
}

/// Encodes a tensor as a TensorProto with little-endian `raw_data`.
pub fn tensor_to_proto(name: &str, t: &Tensor) -> proto::TensorProto {
    let mut raw = Vec::with_capacity(t.byte_size());
    macro_rules! le {
        ($v:expr) => {
            for x in $v.iter() {
                raw.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match t.data() {
        Data::F32(v) => le!(v),
        Data::F64(v) => le!(v),
        Data::F16(v) => le!(v),
        Data::I8(v) => le!(v),
        Data::U8(v) => raw.extend_from_slice(v),
        Data::I16(v) => le!(v),
        Data::U16(v) => le!(v),
        Data::I32(v) => le!(v),
        Data::U32(v) => le!(v),
        Data::I64(v) => le!(v),
        Data::U64(v) => le!(v),
        Data::Bool(v) => raw.extend(v.iter().map(|&b| b as u8)),
    }
    proto::TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(dtype_to_onnx(t.dtype())),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// Reads a file holding one serialized TensorProto (as in ONNX test data) and returns
/// its name and value.
pub fn read_tensor_pb(path: &Path) -> Result<(String, Tensor)> {
    let run = || -> Result<(String, Tensor)> {
        let bytes = std::fs::read(path)?;
        let t = proto::TensorProto::decode(bytes.as_slice())
            .map_err(|e| anyhow!("is not a serialized TensorProto ({e})"))?;
        Ok((t.name.clone().unwrap_or_default(), tensor_from_proto(&t)?))
    };
    run().map_err(|e| anyhow!("{}: {e:#}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto_f32(dims: Vec<i64>, data: Vec<f32>) -> proto::TensorProto {
        proto::TensorProto {
            dims,
            data_type: Some(DataType::Float as i32),
            float_data: data,
            name: Some("t".into()),
            ..Default::default()
        }
    }

    #[test]
    fn typed_and_raw_fields() {
        let t = tensor_from_proto(&proto_f32(vec![2, 2], vec![1., 2., 3., 4.])).unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.f32s().unwrap(), &[1., 2., 3., 4.]);
        // float16 bits in int32_data
        let p = proto::TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Float16 as i32),
            int32_data: vec![f16::from_f32(1.5).to_bits() as i32, f16::from_f32(-2.0).to_bits() as i32],
            ..Default::default()
        };
        let h = tensor_from_proto(&p).unwrap();
        assert_eq!(h.as_slice::<f16>().unwrap(), &[f16::from_f32(1.5), f16::from_f32(-2.0)]);
        // bool and int8 in int32_data, uint32 in uint64_data
        let p = proto::TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Bool as i32),
            int32_data: vec![0, 1, 1],
            ..Default::default()
        };
        assert_eq!(tensor_from_proto(&p).unwrap().as_slice::<bool>().unwrap(), &[false, true, true]);
        let p = proto::TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Int8 as i32),
            int32_data: vec![-128, 127],
            ..Default::default()
        };
        assert_eq!(tensor_from_proto(&p).unwrap().as_slice::<i8>().unwrap(), &[-128, 127]);
        let p = proto::TensorProto {
            dims: vec![1],
            data_type: Some(DataType::Uint32 as i32),
            uint64_data: vec![4_000_000_000],
            ..Default::default()
        };
        assert_eq!(tensor_from_proto(&p).unwrap().as_slice::<u32>().unwrap(), &[4_000_000_000]);
        // scalar with no dims
        let s = tensor_from_proto(&proto_f32(vec![], vec![7.])).unwrap();
        assert_eq!(s.shape(), &[] as &[usize]);
    }

    #[test]
    fn roundtrip_every_dtype() {
        let ts = vec![
            Tensor::from_vec(vec![2], vec![1.5f32, -3.25]),
            Tensor::from_vec(vec![2], vec![1.5f64, -3.25]),
            Tensor::from_vec(vec![1], vec![f16::from_f32(0.5)]),
            Tensor::from_vec(vec![2], vec![-5i8, 7]),
            Tensor::from_vec(vec![2], vec![250u8, 7]),
            Tensor::from_vec(vec![1], vec![-300i16]),
            Tensor::from_vec(vec![1], vec![60000u16]),
            Tensor::from_vec(vec![2, 1], vec![-70000i32, 1]),
            Tensor::from_vec(vec![1], vec![4_000_000_000u32]),
            Tensor::from_vec(vec![2], vec![i64::MIN, i64::MAX]),
            Tensor::from_vec(vec![1], vec![u64::MAX]),
            Tensor::from_vec(vec![3], vec![true, false, true]),
            Tensor::zeros(DType::F32, vec![0, 3]),
        ];
        for t in ts {
            let p = tensor_to_proto("x", &t);
            let bytes = p.encode_to_vec();
            let back = tensor_from_proto(&proto::TensorProto::decode(bytes.as_slice()).unwrap()).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn bad_tensors_are_errors() {
        let e = tensor_from_proto(&proto_f32(vec![2, 3], vec![1.; 5])).unwrap_err();
        assert!(format!("{e:#}").contains("float_data has 5 elements, the shape needs 6"), "{e:#}");
        let e = tensor_from_proto(&proto_f32(vec![-1, 3], vec![])).unwrap_err();
        assert!(format!("{e:#}").contains("negative dimension"), "{e:#}");
        let e = tensor_from_proto(&proto_f32(vec![1 << 20, 1 << 20], vec![])).unwrap_err();
        assert!(format!("{e:#}").contains("2^34"), "{e:#}");
        let mut p = proto_f32(vec![1 << 30, 1 << 30, 1 << 30, 1 << 30], vec![]);
        assert!(tensor_from_proto(&p).is_err());
        p = proto_f32(vec![2], vec![]);
        p.raw_data = Some(vec![0; 7]);
        let e = tensor_from_proto(&p).unwrap_err();
        assert!(format!("{e:#}").contains("raw_data has 7 bytes"), "{e:#}");
        p.raw_data = None;
        p.data_location = Some(1);
        p.name = Some("w".into());
        let e = tensor_from_proto(&p).unwrap_err();
        assert!(format!("{e:#}").contains("external data not supported: tensor w"), "{e:#}");
        let p = proto::TensorProto { dims: vec![1], data_type: Some(16), ..Default::default() };
        let e = tensor_from_proto(&p).unwrap_err();
        assert!(format!("{e:#}").contains("BFLOAT16"), "{e:#}");
    }

    /// The ONNX backend node suite's case folders: `$PARE_NODE_TESTS` (the suite or its
    /// `node` subfolder), else `target/onnx-node-tests/node` (scripts/gen_node_tests.sh), as
    /// tests/conformance.rs finds them. Under CI (`CI=true` or `CI=1`) a missing suite fails.
    fn node_suite() -> Option<std::path::PathBuf> {
        use std::path::PathBuf;
        let candidates = match std::env::var_os("PARE_NODE_TESTS") {
            Some(p) => vec![PathBuf::from(&p).join("node"), PathBuf::from(p)],
            None => vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("target/onnx-node-tests/node")],
        };
        let found = candidates.iter().find(|d| {
            std::fs::read_dir(d)
                .is_ok_and(|mut it| it.any(|e| e.is_ok_and(|e| e.path().join("model.onnx").is_file())))
        });
        if found.is_none() {
            let why = format!(
                "ONNX node test suite not found in {candidates:?} (set PARE_NODE_TESTS or run \
                 scripts/setup_python.sh and scripts/gen_node_tests.sh)"
            );
            assert!(!crate::data::in_ci(), "required under CI (CI=true or CI=1): {why}");
            eprintln!("SKIP: {why}");
        }
        found.cloned()
    }

    /// The ONNX node suite's test data, written by the onnx Python package.
    #[test]
    fn node_suite_pb_files() {
        let Some(suite) = node_suite() else { return };
        let dir = suite.join("test_add/test_data_set_0");
        let (name, x) = read_tensor_pb(&dir.join("input_0.pb")).unwrap();
        let (_, y) = read_tensor_pb(&dir.join("input_1.pb")).unwrap();
        let (_, z) = read_tensor_pb(&dir.join("output_0.pb")).unwrap();
        assert_eq!(name, "x");
        assert_eq!(x.shape(), &[3, 4, 5]);
        let sum: Vec<f32> = x.f32s().unwrap().iter().zip(y.f32s().unwrap()).map(|(a, b)| a + b).collect();
        assert_eq!(z.f32s().unwrap(), sum.as_slice());
        let (_, b) = read_tensor_pb(&suite.join("test_and2d/test_data_set_0/output_0.pb")).unwrap();
        assert_eq!(b.dtype(), DType::Bool);
        let missing = dir.join("missing.pb");
        let e = read_tensor_pb(&missing).unwrap_err();
        assert!(format!("{e}").starts_with(&missing.display().to_string()), "{e}");
    }
}
