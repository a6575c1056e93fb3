//! Binary element-wise ops with numpy broadcasting, and the integer semantics they need
//! (C-truncating division, Python and C remainders, shifts that saturate past the bit width).

use super::bcast::{binary_a, binary_same, binary_to, slice_of, unary_same};
use super::math::Fl;
use crate::ir::Binary;
use crate::tensor::{DType, Elem, Tensor};
use anyhow::{Result, bail};

/// Integer element types with the wrapping, never-panicking semantics the ops need.
pub trait Int: Elem + Default + PartialOrd {
    /// Zero.
    const ZERO: Self;
    /// Sum, wrapping.
    fn add_(self, o: Self) -> Self;
    /// Difference, wrapping.
    fn sub_(self, o: Self) -> Self;
    /// Product, wrapping.
    fn mul_(self, o: Self) -> Self;
    /// Quotient truncated toward zero; 0 when dividing by zero.
    fn div_(self, o: Self) -> Self;
    /// Remainder with the dividend's sign (C `%`); 0 when dividing by zero.
    fn rem_c(self, o: Self) -> Self;
    /// Remainder with the divisor's sign (Python `%`); 0 when dividing by zero.
    fn rem_py(self, o: Self) -> Self;
    /// Integer power, wrapping; negative exponents go through f64 and truncate.
    fn pow_i(self, e: i64) -> Self;
    /// Left shift; 0 when the shift is negative or at least the bit width.
    fn shl_(self, s: Self) -> Self;
    /// Right shift (arithmetic for signed); sign-fills when the shift is out of range.
    fn shr_(self, s: Self) -> Self;
    /// Bitwise and.
    fn and_(self, o: Self) -> Self;
    /// Bitwise or.
    fn or_(self, o: Self) -> Self;
    /// Bitwise xor.
    fn xor_(self, o: Self) -> Self;
    /// Bitwise not.
    fn not_(self) -> Self;
    /// Absolute value, wrapping (identity for unsigned).
    fn abs_(self) -> Self;
    /// Negation, wrapping.
    fn neg_(self) -> Self;
    /// -1, 0 or 1.
    fn sign_(self) -> Self;
    /// Conversion to f64.
    fn to_f64(self) -> f64;
    /// Conversion from f64 (`as` semantics: truncation, saturation, NaN to 0).
    fn from_f64(x: f64) -> Self;
}

macro_rules! impl_int {
    ($t:ty) => {
        impl Int for $t {
            const ZERO: Self = 0;
            #[inline(always)]
            fn add_(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn sub_(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn mul_(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn div_(self, o: Self) -> Self {
                if o == 0 { 0 } else { self.wrapping_div(o) }
            }
            #[inline(always)]
            fn rem_c(self, o: Self) -> Self {
                if o == 0 { 0 } else { self.wrapping_rem(o) }
            }
            #[inline(always)]
            #[allow(unused_comparisons, clippy::absurd_extreme_comparisons)]
            fn rem_py(self, o: Self) -> Self {
                let r = self.rem_c(o);
                if r != 0 && ((r < 0) != (o < 0)) { r.wrapping_add(o) } else { r }
            }
            fn pow_i(self, e: i64) -> Self {
                if e >= 0 {
                    self.wrapping_pow(e.min(u32::MAX as i64) as u32)
                } else {
                    (self as f64).powf(e as f64) as $t
                }
            }
            #[inline(always)]
            #[allow(unused_comparisons, clippy::absurd_extreme_comparisons)]
            fn shl_(self, s: Self) -> Self {
                if s < 0 || (s as u64) >= <$t>::BITS as u64 { 0 } else { self.wrapping_shl(s as u32) }
            }
            #[inline(always)]
            #[allow(unused_comparisons, clippy::absurd_extreme_comparisons)]
            fn shr_(self, s: Self) -> Self {
                if s < 0 || (s as u64) >= <$t>::BITS as u64 {
                    if self < 0 { !0 } else { 0 }
                } else {
                    self.wrapping_shr(s as u32)
                }
            }
            #[inline(always)]
            fn and_(self, o: Self) -> Self {
                self & o
            }
            #[inline(always)]
            fn or_(self, o: Self) -> Self {
                self | o
            }
            #[inline(always)]
            fn xor_(self, o: Self) -> Self {
                self ^ o
            }
            #[inline(always)]
            fn not_(self) -> Self {
                !self
            }
            #[inline(always)]
            #[allow(unused_comparisons, clippy::absurd_extreme_comparisons)]
            fn abs_(self) -> Self {
                if self < 0 { self.wrapping_neg() } else { self }
            }
            #[inline(always)]
            fn neg_(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            #[allow(unused_comparisons, clippy::absurd_extreme_comparisons)]
            fn sign_(self) -> Self {
                if self > 0 {
                    1
                } else if self < 0 {
                    (0 as $t).wrapping_sub(1)
                } else {
                    0
                }
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
        }
    };
}
impl_int!(i8);
impl_int!(u8);
impl_int!(i16);
impl_int!(u16);
impl_int!(i32);
impl_int!(u32);
impl_int!(i64);
impl_int!(u64);

/// Output dtype of a binary op on inputs of dtypes `a` and `b`, or why the pair is invalid.
pub fn out_dtype(op: Binary, a: DType, b: DType) -> Result<DType> {
    use Binary::*;
    let name = crate::ir::binary_name(op);
    let same = || -> Result<()> {
        if a != b {
            bail!("{name} needs inputs of one dtype, got {a} and {b}");
        }
        Ok(())
    };
    match op {
        Add | Sub | Mul | Div | Mod { .. } | PRelu => {
            same()?;
            if a == DType::Bool {
                bail!("{name} does not support bool");
            }
            Ok(a)
        }
        Pow => {
            if a == DType::Bool || b == DType::Bool {
                bail!("Pow does not support bool (got {a} and {b})");
            }
            Ok(a)
        }
        Equal => same().map(|_| DType::Bool),
        Less | LessOrEqual | Greater | GreaterOrEqual => {
            same()?;
            if a == DType::Bool {
                bail!("{name} does not support bool");
            }
            Ok(DType::Bool)
        }
        And | Or | Xor => {
            if a != DType::Bool || b != DType::Bool {
                bail!("{name} needs bool inputs, got {a} and {b}");
            }
            Ok(DType::Bool)
        }
        BitShiftLeft | BitShiftRight | BitwiseAnd | BitwiseOr | BitwiseXor => {
            same()?;
            if !a.is_int() {
                bail!("{name} needs integer inputs, got {a}");
            }
            Ok(a)
        }
    }
}

/// Evaluates a binary op (f16 inputs are already widened to f32 by the caller).
pub fn eval(op: Binary, x: Tensor, y: Tensor, osh: &[usize]) -> Result<Tensor> {
    use Binary::*;
    match op {
        Pow => pow(x, y, osh),
        Equal | Less | LessOrEqual | Greater | GreaterOrEqual => compare(op, &x, &y, osh),
        And => binary_same::<bool>(x, y, osh, |a, b| a & b),
        Or => binary_same::<bool>(x, y, osh, |a, b| a | b),
        Xor => binary_same::<bool>(x, y, osh, |a, b| a ^ b),
        _ => match x.dtype() {
            DType::F32 => float_arith::<f32>(op, x, y, osh),
            DType::F64 => float_arith::<f64>(op, x, y, osh),
            DType::I8 => int_arith::<i8>(op, x, y, osh),
            DType::U8 => int_arith::<u8>(op, x, y, osh),
            DType::I16 => int_arith::<i16>(op, x, y, osh),
            DType::U16 => int_arith::<u16>(op, x, y, osh),
            DType::I32 => int_arith::<i32>(op, x, y, osh),
            DType::U32 => int_arith::<u32>(op, x, y, osh),
            DType::I64 => int_arith::<i64>(op, x, y, osh),
            DType::U64 => int_arith::<u64>(op, x, y, osh),
            dt => bail!("{} does not support {dt}", crate::ir::binary_name(op)),
        },
    }
}

/// Python-style float remainder: the result has the divisor's sign.
#[inline(always)]
pub fn py_mod<F: Fl>(a: F, b: F) -> F {
    let zero = F::c(0.0);
    let r = a.fmod(b);
    if r == zero {
        zero.copysign(b)
    } else if (r < zero) != (b < zero) {
        r + b
    } else {
        r
    }
}

fn float_arith<F: Fl + Elem>(op: Binary, x: Tensor, y: Tensor, osh: &[usize]) -> Result<Tensor> {
    let zero = F::c(0.0);
    match op {
        Binary::Add => binary_same::<F>(x, y, osh, |a, b| a + b),
        Binary::Sub => binary_same::<F>(x, y, osh, |a, b| a - b),
        Binary::Mul => binary_same::<F>(x, y, osh, |a, b| a * b),
        Binary::Div => binary_same::<F>(x, y, osh, |a, b| a / b),
        Binary::Mod { fmod: true } => binary_same::<F>(x, y, osh, |a, b| a.fmod(b)),
        Binary::Mod { fmod: false } => binary_same::<F>(x, y, osh, py_mod),
        Binary::PRelu => binary_same::<F>(x, y, osh, move |a, s| if a < zero { s * a } else { a }),
        _ => bail!("{} does not support {}", crate::ir::binary_name(op), F::DTYPE),
    }
}

fn int_arith<T: Int>(op: Binary, x: Tensor, y: Tensor, osh: &[usize]) -> Result<Tensor> {
    use Binary::*;
    match op {
        Add => binary_same::<T>(x, y, osh, T::add_),
        Sub => binary_same::<T>(x, y, osh, T::sub_),
        Mul => binary_same::<T>(x, y, osh, T::mul_),
        Div => binary_same::<T>(x, y, osh, T::div_),
        Mod { fmod: true } => binary_same::<T>(x, y, osh, T::rem_c),
        Mod { fmod: false } => binary_same::<T>(x, y, osh, T::rem_py),
        PRelu => binary_same::<T>(x, y, osh, |a, s| if a < T::ZERO { a.mul_(s) } else { a }),
        BitShiftLeft => binary_same::<T>(x, y, osh, T::shl_),
        BitShiftRight => binary_same::<T>(x, y, osh, T::shr_),
        BitwiseAnd => binary_same::<T>(x, y, osh, T::and_),
        BitwiseOr => binary_same::<T>(x, y, osh, T::or_),
        BitwiseXor => binary_same::<T>(x, y, osh, T::xor_),
        _ => bail!("{} does not support {}", crate::ir::binary_name(op), T::DTYPE),
    }
}

fn compare(op: Binary, x: &Tensor, y: &Tensor, osh: &[usize]) -> Result<Tensor> {
    fn cmp<T: Elem + PartialOrd>(op: Binary, x: &Tensor, y: &Tensor, osh: &[usize]) -> Result<Tensor> {
        match op {
            Binary::Equal => binary_to::<T, T, bool>(x, y, osh, |a, b| a == b),
            Binary::Less => binary_to::<T, T, bool>(x, y, osh, |a, b| a < b),
            Binary::LessOrEqual => binary_to::<T, T, bool>(x, y, osh, |a, b| a <= b),
            Binary::Greater => binary_to::<T, T, bool>(x, y, osh, |a, b| a > b),
            _ => binary_to::<T, T, bool>(x, y, osh, |a, b| a >= b),
        }
    }
    match x.dtype() {
        DType::F32 => cmp::<f32>(op, x, y, osh),
        DType::F64 => cmp::<f64>(op, x, y, osh),
        DType::F16 => cmp::<half::f16>(op, x, y, osh),
        DType::I8 => cmp::<i8>(op, x, y, osh),
        DType::U8 => cmp::<u8>(op, x, y, osh),
        DType::I16 => cmp::<i16>(op, x, y, osh),
        DType::U16 => cmp::<u16>(op, x, y, osh),
        DType::I32 => cmp::<i32>(op, x, y, osh),
        DType::U32 => cmp::<u32>(op, x, y, osh),
        DType::I64 => cmp::<i64>(op, x, y, osh),
        DType::U64 => cmp::<u64>(op, x, y, osh),
        DType::Bool => cmp::<bool>(op, x, y, osh),
    }
}

/// Pow: the output has the base's dtype; the exponent may be any numeric dtype.
fn pow(x: Tensor, y: Tensor, osh: &[usize]) -> Result<Tensor> {
    fn float<F: Fl + Elem>(x: Tensor, y: Tensor, osh: &[usize]) -> Result<Tensor> {
        let y = y.cast(F::DTYPE);
        let e = slice_of::<F>(&y)?;
        if e.len() == 1 && x.shape() == osh {
            let e0 = e[0].to_f64();
            if e0 == 2.0 {
                return unary_same::<F>(x, |a| a * a);
            } else if e0 == 1.0 {
                return unary_same::<F>(x, |a| a);
            } else if e0 == 3.0 {
                return unary_same::<F>(x, |a| a * a * a);
            } else if e0 == 0.5 {
                return unary_same::<F>(x, |a| a.sqrt());
            }
        }
        binary_same::<F>(x, y, osh, F::powf)
    }
    fn int<T: Int>(x: Tensor, y: Tensor, osh: &[usize]) -> Result<Tensor> {
        if y.dtype().is_float() {
            let y = y.cast(DType::F64);
            binary_a::<T, f64>(x, &y, osh, |a, e| T::from_f64(a.to_f64().powf(e)))
        } else {
            let y = y.cast(DType::I64);
            binary_a::<T, i64>(x, &y, osh, T::pow_i)
        }
    }
    match x.dtype() {
        DType::F32 => float::<f32>(x, y, osh),
        DType::F64 => float::<f64>(x, y, osh),
        DType::I8 => int::<i8>(x, y, osh),
        DType::U8 => int::<u8>(x, y, osh),
        DType::I16 => int::<i16>(x, y, osh),
        DType::U16 => int::<u16>(x, y, osh),
        DType::I32 => int::<i32>(x, y, osh),
        DType::U32 => int::<u32>(x, y, osh),
        DType::I64 => int::<i64>(x, y, osh),
        DType::U64 => int::<u64>(x, y, osh),
        dt => bail!("Pow does not support a {dt} base"),
    }
}

/// Element-wise max or min of two tensors; floats propagate NaN.
pub fn max_min(max: bool, x: Tensor, y: Tensor, osh: &[usize]) -> Result<Tensor> {
    fn float<F: Fl + Elem>(max: bool, x: Tensor, y: Tensor, osh: &[usize]) -> Result<Tensor> {
        if max {
            binary_same::<F>(x, y, osh, |a, b| if a > b || a.is_nan() { a } else { b })
        } else {
            binary_same::<F>(x, y, osh, |a, b| if a < b || a.is_nan() { a } else { b })
        }
    }
    fn int<T: Int>(max: bool, x: Tensor, y: Tensor, osh: &[usize]) -> Result<Tensor> {
        if max {
            binary_same::<T>(x, y, osh, |a, b| if a > b { a } else { b })
        } else {
            binary_same::<T>(x, y, osh, |a, b| if a < b { a } else { b })
        }
    }
    match x.dtype() {
        DType::F32 => float::<f32>(max, x, y, osh),
        DType::F64 => float::<f64>(max, x, y, osh),
        DType::I8 => int::<i8>(max, x, y, osh),
        DType::U8 => int::<u8>(max, x, y, osh),
        DType::I16 => int::<i16>(max, x, y, osh),
        DType::U16 => int::<u16>(max, x, y, osh),
        DType::I32 => int::<i32>(max, x, y, osh),
        DType::U32 => int::<u32>(max, x, y, osh),
        DType::I64 => int::<i64>(max, x, y, osh),
        DType::U64 => int::<u64>(max, x, y, osh),
        dt => bail!("Max/Min do not support {dt}"),
    }
}
