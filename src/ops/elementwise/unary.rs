//! Unary element-wise ops: one monomorphic loop per (op, dtype), in place when the input buffer
//! is unshared.

use super::bcast::{unary_same, unary_to};
use super::binary::Int;
use super::math::Fl;
use crate::ir::{Unary, unary_name};
use crate::tensor::{DType, Elem, Tensor};
use anyhow::{Result, bail};

/// Output dtype of a unary op on an input of dtype `dt`, or why the dtype is not supported.
pub fn out_dtype(u: Unary, dt: DType) -> Result<DType> {
    use Unary::*;
    let ok = match u {
        Not => dt == DType::Bool || dt.is_int(),
        Abs | Neg | Sign | Relu => dt != DType::Bool,
        _ => dt.is_float(),
    };
    if !ok {
        bail!("{} does not support {dt}", unary_name(u));
    }
    Ok(match u {
        IsNaN | IsInf { .. } => DType::Bool,
        _ => dt,
    })
}

/// Evaluates a unary op (f16 inputs are already widened to f32 by the caller).
pub fn eval(u: Unary, x: Tensor) -> Result<Tensor> {
    match x.dtype() {
        DType::F32 => float::<f32>(u, x),
        DType::F64 => float::<f64>(u, x),
        DType::Bool if u == Unary::Not => unary_same::<bool>(x, |v| !v),
        DType::I8 => int::<i8>(u, x),
        DType::U8 => int::<u8>(u, x),
        DType::I16 => int::<i16>(u, x),
        DType::U16 => int::<u16>(u, x),
        DType::I32 => int::<i32>(u, x),
        DType::U32 => int::<u32>(u, x),
        DType::I64 => int::<i64>(u, x),
        DType::U64 => int::<u64>(u, x),
        dt => bail!("{} does not support {dt}", unary_name(u)),
    }
}

fn int<T: Int>(u: Unary, x: Tensor) -> Result<Tensor> {
    match u {
        Unary::Abs => unary_same::<T>(x, T::abs_),
        Unary::Neg => unary_same::<T>(x, T::neg_),
        Unary::Sign => unary_same::<T>(x, T::sign_),
        Unary::Relu => unary_same::<T>(x, |v| if v < T::ZERO { T::ZERO } else { v }),
        Unary::Not => unary_same::<T>(x, T::not_),
        _ => bail!("{} does not support {}", unary_name(u), T::DTYPE),
    }
}

/// The float kernels; each arm is its own monomorphic loop.
fn float<F: Fl + Elem>(u: Unary, x: Tensor) -> Result<Tensor> {
    use Unary::*;
    let c = F::c;
    let (zero, one, half) = (c(0.0), c(1.0), c(0.5));
    match u {
        Relu => unary_same::<F>(x, move |v| if v < zero { zero } else { v }),
        Sigmoid => unary_same::<F>(x, F::sigmoid),
        Tanh => unary_same::<F>(x, F::tanh_),
        Erf => unary_same::<F>(x, F::erf),
        Exp => unary_same::<F>(x, F::exp),
        Log => unary_same::<F>(x, F::ln),
        Sqrt => unary_same::<F>(x, F::sqrt),
        Neg => unary_same::<F>(x, |v| -v),
        Abs => unary_same::<F>(x, F::abs),
        Floor => unary_same::<F>(x, F::floor),
        Ceil => unary_same::<F>(x, F::ceil),
        Round => unary_same::<F>(x, F::round_even),
        Reciprocal => unary_same::<F>(x, move |v| one / v),
        Sin => unary_same::<F>(x, F::sin),
        Cos => unary_same::<F>(x, F::cos),
        Tan => unary_same::<F>(x, F::tan),
        Asin => unary_same::<F>(x, F::asin),
        Acos => unary_same::<F>(x, F::acos),
        Atan => unary_same::<F>(x, F::atan),
        Sinh => unary_same::<F>(x, F::sinh),
        Cosh => unary_same::<F>(x, F::cosh),
        Asinh => unary_same::<F>(x, F::asinh),
        Acosh => unary_same::<F>(x, F::acosh),
        Atanh => unary_same::<F>(x, F::atanh),
        Sign => unary_same::<F>(x, move |v| {
            if v > zero {
                one
            } else if v < zero {
                -one
            } else {
                v
            }
        }),
        Softplus => unary_same::<F>(x, move |v| softplus(v, zero)),
        Softsign => unary_same::<F>(x, move |v| v / (one + v.abs())),
        HardSwish => {
            let sixth = c(1.0 / 6.0);
            unary_same::<F>(x, move |v| v * clamp01(v * sixth + half, zero, one))
        }
        Mish => unary_same::<F>(x, move |v| v * softplus(v, zero).tanh_()),
        Gelu { tanh: false } => {
            let r = c(std::f64::consts::FRAC_1_SQRT_2);
            unary_same::<F>(x, move |v| half * v * (one + (v * r).erf()))
        }
        Gelu { tanh: true } => {
            let (k, a) = (c((2.0 / std::f64::consts::PI).sqrt()), c(0.044_715));
            unary_same::<F>(x, move |v| half * v * (one + (k * (v + a * v * v * v)).tanh_()))
        }
        LeakyRelu(alpha) => {
            let a = c(alpha as f64);
            unary_same::<F>(x, move |v| if v < zero { a * v } else { v })
        }
        Elu(alpha) => {
            let a = c(alpha as f64);
            unary_same::<F>(x, move |v| if v < zero { a * v.exp_m1() } else { v })
        }
        Celu(alpha) => {
            let a = c(alpha as f64);
            unary_same::<F>(x, move |v| if v < zero { a * (v / a).exp_m1() } else { v })
        }
        ThresholdedRelu(alpha) => {
            let a = c(alpha as f64);
            unary_same::<F>(x, move |v| if v > a { v } else { zero })
        }
        Selu { alpha, gamma } => {
            let (a, g) = (c(alpha as f64), c(gamma as f64));
            unary_same::<F>(x, move |v| if v > zero { g * v } else { g * a * v.exp_m1() })
        }
        HardSigmoid { alpha, beta } => {
            let (a, b) = (c(alpha as f64), c(beta as f64));
            unary_same::<F>(x, move |v| clamp01(a * v + b, zero, one))
        }
        IsNaN => unary_to::<F, bool>(&x, F::is_nan),
        IsInf { neg, pos } => {
            unary_to::<F, bool>(&x, move |v| (pos && v.is_pos_inf()) || (neg && v.is_neg_inf()))
        }
        Not => bail!("Not does not support {}", F::DTYPE),
    }
}

/// max(0, min(1, v)), NaN-preserving, written so that it vectorises.
#[inline(always)]
fn clamp01<F: Fl>(v: F, zero: F, one: F) -> F {
    let v = if v < zero { zero } else { v };
    if v > one { one } else { v }
}

/// log(1 + e^v) without overflow.
#[inline(always)]
fn softplus<F: Fl>(v: F, zero: F) -> F {
    if v > zero { v + (-v).exp().ln_1p() } else { v.exp().ln_1p() }
}
