//! Dense tensors with a run-time element type, row-major storage behind `Arc`.

mod npy;

pub use npy::{npy_bytes, parse_npy, read_npy, read_npz, write_npy, write_npz};

use half::f16;
use std::fmt;
use std::sync::Arc;

/// Element type of a tensor, known at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// IEEE half float.
    F16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
    /// Boolean.
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }
    /// True for floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16)
    }
    /// True for signed or unsigned integer types (not bool).
    pub fn is_int(self) -> bool {
        !self.is_float() && self != DType::Bool
    }
    /// Lower-case name, as in numpy (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::I64 => "int64",
            DType::U64 => "uint64",
            DType::Bool => "bool",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Typed storage of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
    /// f16 elements.
    F16(Vec<f16>),
    /// i8 elements.
    I8(Vec<i8>),
    /// u8 elements.
    U8(Vec<u8>),
    /// i16 elements.
    I16(Vec<i16>),
    /// u16 elements.
    U16(Vec<u16>),
    /// i32 elements.
    I32(Vec<i32>),
    /// u32 elements.
    U32(Vec<u32>),
    /// i64 elements.
    I64(Vec<i64>),
    /// u64 elements.
    U64(Vec<u64>),
    /// bool elements.
    Bool(Vec<bool>),
}

/// Runs `$body` with `$v` bound to the typed `Vec` inside a `Data` (all types).
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::tensor::Data::F32($v) => $body,
            $crate::tensor::Data::F64($v) => $body,
            $crate::tensor::Data::F16($v) => $body,
            $crate::tensor::Data::I8($v) => $body,
            $crate::tensor::Data::U8($v) => $body,
            $crate::tensor::Data::I16($v) => $body,
            $crate::tensor::Data::U16($v) => $body,
            $crate::tensor::Data::I32($v) => $body,
            $crate::tensor::Data::U32($v) => $body,
            $crate::tensor::Data::I64($v) => $body,
            $crate::tensor::Data::U64($v) => $body,
            $crate::tensor::Data::Bool($v) => $body,
        }
    };
}

/// Runs `$body` with `$v` bound to the typed `Vec` and rebuilds the same variant from its value.
#[macro_export]
macro_rules! map_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::tensor::Data::F32($v) => $crate::tensor::Data::F32($body),
            $crate::tensor::Data::F64($v) => $crate::tensor::Data::F64($body),
            $crate::tensor::Data::F16($v) => $crate::tensor::Data::F16($body),
            $crate::tensor::Data::I8($v) => $crate::tensor::Data::I8($body),
            $crate::tensor::Data::U8($v) => $crate::tensor::Data::U8($body),
            $crate::tensor::Data::I16($v) => $crate::tensor::Data::I16($body),
            $crate::tensor::Data::U16($v) => $crate::tensor::Data::U16($body),
            $crate::tensor::Data::I32($v) => $crate::tensor::Data::I32($body),
            $crate::tensor::Data::U32($v) => $crate::tensor::Data::U32($body),
            $crate::tensor::Data::I64($v) => $crate::tensor::Data::I64($body),
            $crate::tensor::Data::U64($v) => $crate::tensor::Data::U64($body),
            $crate::tensor::Data::Bool($v) => $crate::tensor::Data::Bool($body),
        }
    };
}

impl Data {
    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::F16(_) => DType::F16,
            Data::I8(_) => DType::I8,
            Data::U8(_) => DType::U8,
            Data::I16(_) => DType::I16,
            Data::U16(_) => DType::U16,
            Data::I32(_) => DType::I32,
            Data::U32(_) => DType::U32,
            Data::I64(_) => DType::I64,
            Data::U64(_) => DType::U64,
            Data::Bool(_) => DType::Bool,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }
    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Zero-filled storage of `len` elements of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Data {
        match dtype {
            DType::F32 => Data::F32(vec![0.0; len]),
            DType::F64 => Data::F64(vec![0.0; len]),
            DType::F16 => Data::F16(vec![f16::ZERO; len]),
            DType::I8 => Data::I8(vec![0; len]),
            DType::U8 => Data::U8(vec![0; len]),
            DType::I16 => Data::I16(vec![0; len]),
            DType::U16 => Data::U16(vec![0; len]),
            DType::I32 => Data::I32(vec![0; len]),
            DType::U32 => Data::U32(vec![0; len]),
            DType::I64 => Data::I64(vec![0; len]),
            DType::U64 => Data::U64(vec![0; len]),
            DType::Bool => Data::Bool(vec![false; len]),
        }
    }
}

/// A dense row-major tensor. Cloning is cheap (the storage is shared).
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Arc<Data>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{:?}", self.dtype(), self.shape)?;
        if self.len() <= 16 {
            write!(f, " {:?}", self.data)?;
        }
        Ok(())
    }
}

/// Error for tensors whose data length does not match their shape.
#[derive(Debug, thiserror::Error)]
#[error("tensor shape {shape:?} needs {want} elements, data has {got}")]
pub struct ShapeMismatch {
    /// Requested shape.
    pub shape: Vec<usize>,
    /// Elements the shape needs.
    pub want: usize,
    /// Elements the data holds.
    pub got: usize,
}

/// Element types that can live in a tensor.
pub trait Elem: Copy + Send + Sync + 'static + fmt::Debug + PartialEq {
    /// The run-time dtype of this element type.
    const DTYPE: DType;
    /// Wraps a vector into `Data`.
    fn wrap(v: Vec<Self>) -> Data;
    /// Borrows the vector if `Data` holds this type.
    fn unwrap(d: &Data) -> Option<&Vec<Self>>;
    /// Mutably borrows the vector if `Data` holds this type.
    fn unwrap_mut(d: &mut Data) -> Option<&mut Vec<Self>>;
    /// Takes the vector if `Data` holds this type.
    fn into_vec(d: Data) -> Result<Vec<Self>, Data>;
}

macro_rules! impl_elem {
    ($t:ty, $v:ident) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$v;
            fn wrap(v: Vec<Self>) -> Data {
                Data::$v(v)
            }
            fn unwrap(d: &Data) -> Option<&Vec<Self>> {
                match d {
                    Data::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn unwrap_mut(d: &mut Data) -> Option<&mut Vec<Self>> {
                match d {
                    Data::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn into_vec(d: Data) -> Result<Vec<Self>, Data> {
                match d {
                    Data::$v(v) => Ok(v),
                    other => Err(other),
                }
            }
        }
    };
}
impl_elem!(f32, F32);
impl_elem!(f64, F64);
impl_elem!(f16, F16);
impl_elem!(i8, I8);
impl_elem!(u8, U8);
impl_elem!(i16, I16);
impl_elem!(u16, U16);
impl_elem!(i32, I32);
impl_elem!(u32, U32);
impl_elem!(i64, I64);
impl_elem!(u64, U64);
impl_elem!(bool, Bool);

/// Largest tensor pare agrees to allocate, in elements (2^31: 8 GiB of float32).
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Number of elements of `shape`, or an error if it overflows or exceeds `MAX_ELEMENTS`;
/// call before allocating a tensor whose shape comes from a file or from data.
pub fn checked_numel(shape: &[usize]) -> anyhow::Result<usize> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if n <= MAX_ELEMENTS => Ok(n),
        _ => anyhow::bail!("tensor of shape {shape:?} is too large (limit {MAX_ELEMENTS} elements)"),
    }
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides (in elements) of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

impl Tensor {
    /// Builds a tensor from a shape and typed data; fails if the lengths differ.
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Tensor, ShapeMismatch> {
        let want = numel(&shape);
        if want != data.len() {
            return Err(ShapeMismatch { shape, want, got: data.len() });
        }
        Ok(Tensor { shape, data: Arc::new(data) })
    }
    /// Builds a tensor from a shape and a vector of elements. Panics if lengths differ
    /// (for internal use where the length is known to be right).
    pub fn from_vec<T: Elem>(shape: Vec<usize>, v: Vec<T>) -> Tensor {
        assert_eq!(numel(&shape), v.len(), "shape {shape:?} vs {} elements", v.len());
        Tensor { shape, data: Arc::new(T::wrap(v)) }
    }
    /// A rank-0 tensor holding one value.
    pub fn scalar<T: Elem>(x: T) -> Tensor {
        Tensor::from_vec(vec![], vec![x])
    }
    /// Zero-filled tensor.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n = numel(&shape);
        Tensor { shape, data: Arc::new(Data::zeros(dtype, n)) }
    }
    /// Shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Size of the payload in bytes.
    pub fn byte_size(&self) -> usize {
        self.len() * self.dtype().size()
    }
    /// The storage.
    pub fn data(&self) -> &Data {
        &self.data
    }
    /// Typed view of the elements, if the dtype matches.
    pub fn as_slice<T: Elem>(&self) -> Option<&[T]> {
        T::unwrap(&self.data).map(|v| v.as_slice())
    }
    /// f32 view; error message names the actual dtype.
    pub fn f32s(&self) -> anyhow::Result<&[f32]> {
        self.as_slice::<f32>().ok_or_else(|| anyhow::anyhow!("expected float32 tensor, got {}", self.dtype()))
    }
    /// Mutable typed view; copies the storage first if it is shared.
    pub fn as_mut_slice<T: Elem>(&mut self) -> Option<&mut [T]> {
        T::unwrap_mut(Arc::make_mut(&mut self.data)).map(|v| v.as_mut_slice())
    }
    /// Takes the storage, copying only if it is shared.
    pub fn into_data(self) -> Data {
        Arc::try_unwrap(self.data).unwrap_or_else(|a| (*a).clone())
    }
    /// Takes the storage only if no one else shares it.
    pub fn try_into_data(self) -> Result<Data, Tensor> {
        let shape = self.shape;
        Arc::try_unwrap(self.data).map_err(|data| Tensor { shape, data })
    }
    /// Takes the elements as a vector of `T`, if the dtype matches.
    pub fn into_vec<T: Elem>(self) -> Option<Vec<T>> {
        T::into_vec(self.into_data()).ok()
    }
    /// Same storage, new shape (element counts must agree).
    pub fn reshape(&self, shape: Vec<usize>) -> Result<Tensor, ShapeMismatch> {
        if numel(&shape) != self.len() {
            return Err(ShapeMismatch { want: numel(&shape), got: self.len(), shape });
        }
        Ok(Tensor { shape, data: self.data.clone() })
    }
    /// True if both tensors share the same storage allocation.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }
    /// Converts every element to f64 (bool as 0/1).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        fn cv<T: Copy>(v: &[T], f: impl Fn(T) -> f64) -> Vec<f64> {
            v.iter().map(|&x| f(x)).collect()
        }
        match &*self.data {
            Data::F32(v) => cv(v, |x| x as f64),
            Data::F64(v) => v.clone(),
            Data::F16(v) => cv(v, |x| x.to_f64()),
            Data::I8(v) => cv(v, |x| x as f64),
            Data::U8(v) => cv(v, |x| x as f64),
            Data::I16(v) => cv(v, |x| x as f64),
            Data::U16(v) => cv(v, |x| x as f64),
            Data::I32(v) => cv(v, |x| x as f64),
            Data::U32(v) => cv(v, |x| x as f64),
            Data::I64(v) => cv(v, |x| x as f64),
            Data::U64(v) => cv(v, |x| x as f64),
            Data::Bool(v) => cv(v, |x| x as u8 as f64),
        }
    }
    /// Integer view of an integer tensor (for shapes, axes, indices).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        fn cv<T: Copy>(v: &[T], f: impl Fn(T) -> i64) -> Vec<i64> {
            v.iter().map(|&x| f(x)).collect()
        }
        Some(match &*self.data {
            Data::I8(v) => cv(v, |x| x as i64),
            Data::U8(v) => cv(v, |x| x as i64),
            Data::I16(v) => cv(v, |x| x as i64),
            Data::U16(v) => cv(v, |x| x as i64),
            Data::I32(v) => cv(v, |x| x as i64),
            Data::U32(v) => cv(v, |x| x as i64),
            Data::I64(v) => v.clone(),
            Data::U64(v) => cv(v, |x| x as i64),
            Data::Bool(v) => cv(v, |x| x as i64),
            _ => return None,
        })
    }
    /// Casts to another element type with numpy semantics (saturation is not applied:
    /// float-to-int truncates toward zero as `as` does; NaN becomes 0).
    pub fn cast(&self, to: DType) -> Tensor {
        if self.dtype() == to {
            return self.clone();
        }
        let data = cast_data(&self.data, to);
        Tensor { shape: self.shape.clone(), data: Arc::new(data) }
    }
}

/// Converts storage to another dtype element by element.
fn cast_data(d: &Data, to: DType) -> Data {
    macro_rules! from_f64 {
        ($v:expr, $conv:expr) => {{
            let conv = $conv;
            match to {
                DType::F32 => Data::F32($v.map(|x| conv(x) as f32).collect()),
                DType::F64 => Data::F64($v.map(|x| conv(x)).collect()),
                DType::F16 => Data::F16($v.map(|x| f16::from_f64(conv(x))).collect()),
                DType::I8 => Data::I8($v.map(|x| conv(x) as i8).collect()),
                DType::U8 => Data::U8($v.map(|x| conv(x) as u8).collect()),
                DType::I16 => Data::I16($v.map(|x| conv(x) as i16).collect()),
                DType::U16 => Data::U16($v.map(|x| conv(x) as u16).collect()),
                DType::I32 => Data::I32($v.map(|x| conv(x) as i32).collect()),
                DType::U32 => Data::U32($v.map(|x| conv(x) as u32).collect()),
                DType::I64 => Data::I64($v.map(|x| conv(x) as i64).collect()),
                DType::U64 => Data::U64($v.map(|x| conv(x) as u64).collect()),
                DType::Bool => Data::Bool($v.map(|x| conv(x) != 0.0).collect()),
            }
        }};
    }
    // Integer sources go through i64/u64 to keep 64-bit values exact.
    macro_rules! from_int {
        ($v:expr) => {{
            match to {
                DType::F32 => Data::F32($v.iter().map(|&x| x as f32).collect()),
                DType::F64 => Data::F64($v.iter().map(|&x| x as f64).collect()),
                DType::F16 => Data::F16($v.iter().map(|&x| f16::from_f64(x as f64)).collect()),
                DType::I8 => Data::I8($v.iter().map(|&x| x as i8).collect()),
                DType::U8 => Data::U8($v.iter().map(|&x| x as u8).collect()),
                DType::I16 => Data::I16($v.iter().map(|&x| x as i16).collect()),
                DType::U16 => Data::U16($v.iter().map(|&x| x as u16).collect()),
                DType::I32 => Data::I32($v.iter().map(|&x| x as i32).collect()),
                DType::U32 => Data::U32($v.iter().map(|&x| x as u32).collect()),
                DType::I64 => Data::I64($v.iter().map(|&x| x as i64).collect()),
                DType::U64 => Data::U64($v.iter().map(|&x| x as u64).collect()),
                DType::Bool => Data::Bool($v.iter().map(|&x| x != 0).collect()),
            }
        }};
    }
    match d {
        Data::F32(v) => from_f64!(v.iter(), |x: &f32| *x as f64),
        Data::F64(v) => from_f64!(v.iter(), |x: &f64| *x),
        Data::F16(v) => from_f64!(v.iter(), |x: &f16| x.to_f64()),
        Data::I8(v) => from_int!(v),
        Data::U8(v) => from_int!(v),
        Data::I16(v) => from_int!(v),
        Data::U16(v) => from_int!(v),
        Data::I32(v) => from_int!(v),
        Data::U32(v) => from_int!(v),
        Data::I64(v) => from_int!(v),
        Data::U64(v) => from_int!(v),
        Data::Bool(v) => {
            let u: Vec<u8> = v.iter().map(|&b| b as u8).collect();
            from_int!(u)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_length() {
        assert!(Tensor::new(vec![2, 3], Data::F32(vec![0.0; 5])).is_err());
        let t = Tensor::new(vec![2, 3], Data::F32(vec![1.0; 6])).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(strides(t.shape()), vec![3, 1]);
    }

    #[test]
    fn cast_roundtrip() {
        let t = Tensor::from_vec(vec![3], vec![1.7f32, -2.2, 300.0]);
        let i = t.cast(DType::I32);
        assert_eq!(i.as_slice::<i32>().unwrap(), &[1, -2, 300]);
        let b = t.cast(DType::Bool);
        assert_eq!(b.as_slice::<bool>().unwrap(), &[true, true, true]);
        let big = Tensor::from_vec(vec![1], vec![i64::MAX - 1]);
        assert_eq!(big.cast(DType::U64).as_slice::<u64>().unwrap()[0], (i64::MAX - 1) as u64);
    }
}
