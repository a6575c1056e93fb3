//! Scalar math for the element-wise ops: branch-free f32 approximations of exp, erf, tanh and
//! sigmoid that auto-vectorise, exact-ish f64 versions, and the `Fl` trait that lets the unary
//! kernels be written once for f32 and f64.

#![allow(clippy::excessive_precision)]

use std::ops::{Add, Div, Mul, Neg, Sub};

/// Fast `exp` for f32 (about 1 ulp) that vectorises: Cody-Waite reduction plus a degree-6
/// polynomial. Saturates at `e^88.7` for large inputs and returns 0 below -87.
#[inline(always)]
#[allow(clippy::manual_clamp)] // NaN-preserving and vectorisable, unlike f32::clamp's checks
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to an integer
    let xc = if x < -87.0 {
        -87.0
    } else if x > 88.7 {
        88.7
    } else {
        x
    };
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    // The integer n sits in t's low mantissa bits (|n| < 2^22), so its i32 value comes from
    // an integer subtraction: an `as i32` cast would be saturating and keep loops scalar.
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^(n-1) * 2 keeps the biased exponent within [1, 254] for n in [-125, 128].
    let scale = f32::from_bits((ni.wrapping_add(126) as u32) << 23);
    let y = e * scale * 2.0;
    if x < -87.0 {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// f32 error function, max abs error about 2e-7, branch-free so that loops vectorise.
#[inline(always)]
#[allow(clippy::approx_constant)] // fitted coefficients, not 2/sqrt(pi)
pub fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    // |x| < 0.921875: x * P(x^2).
    let t = a * a;
    let mut p = -5.835_173_4e-4f32;
    p = p * t + 4.956_451e-3;
    p = p * t - 2.673_502_9e-2;
    p = p * t + 0.112_806_235;
    p = p * t - 0.376_123_1;
    p = p * t + 1.128_379_1;
    let small = a * p;
    // Otherwise 1 - exp(Q(|x| - 2.4)), Q fitted to log(erfc).
    let u = (if a > 3.925 { 3.925 } else { a }) - 2.4;
    let mut q = 1.630_733_8e-6f32;
    q = q * u - 1.458_517_6e-5;
    q = q * u + 8.709_016e-5;
    q = q * u - 4.695_224e-4;
    q = q * u + 2.387_416_3e-3;
    q = q * u - 1.176_813_5e-2;
    q = q * u - 0.940_501_9;
    q = q * u - 5.164_236_5;
    q = q * u - 7.280_975;
    let large = 1.0 - exp_f32(q);
    let r = if a < 0.921_875 {
        small
    } else if a > 3.925 {
        1.0
    } else {
        large
    };
    let r = if x.is_nan() { x } else { r };
    r.copysign(x)
}

/// f32 tanh, max relative error about 2e-7 near 0 and abs error about 1e-7 elsewhere; branch-free.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = a * a;
    let mut p = -5.660_959_2e-3f32;
    p = p * t + 2.059_201_8e-2;
    p = p * t - 5.372_146_4e-2;
    p = p * t + 0.133_311_34;
    p = p * t - 0.333_332_6;
    p = p * t + 1.0;
    let small = a * p;
    let large = 1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0);
    let r = if a < 0.625 { small } else { large };
    let r = if x.is_nan() { x } else { r };
    r.copysign(x)
}

/// f32 logistic sigmoid; never overflows (exp saturates instead of reaching infinity).
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// f64 error function (abs error about 1e-16): an all-positive series for |x| < 2.5 and a
/// continued fraction for erfc beyond.
pub fn erf_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        // erf(x) = 2/sqrt(pi) * exp(-x^2) * sum 2^n x^(2n+1) / (1*3*...*(2n+1))
        let mut term = a;
        let mut sum = a;
        let t = 2.0 * a * a;
        let mut k = 1.0;
        while term > sum * 1e-17 {
            k += 2.0;
            term *= t / k;
            sum += term;
        }
        std::f64::consts::FRAC_2_SQRT_PI * (-a * a).exp() * sum
    } else if a > 6.0 {
        1.0
    } else {
        // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated
        // bottom-up with enough terms for x >= 2.5.
        let mut f = a;
        for n in (1..=60).rev() {
            f = a + (n as f64 * 0.5) / f;
        }
        1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}

/// The float operations the unary kernels need, for f32 (fast, vectorisable) and f64 (precise).
pub trait Fl:
    Copy
    + PartialOrd
    + Default
    + Send
    + Sync
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// Converts an f64 constant.
    fn c(x: f64) -> Self;
    /// Error function.
    fn erf(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh_(self) -> Self;
    /// Logistic sigmoid.
    fn sigmoid(self) -> Self;
    /// Exponential.
    fn exp(self) -> Self;
    /// e^x - 1.
    fn exp_m1(self) -> Self;
    /// Natural log.
    fn ln(self) -> Self;
    /// ln(1 + x).
    fn ln_1p(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Round down.
    fn floor(self) -> Self;
    /// Round up.
    fn ceil(self) -> Self;
    /// Round half to even.
    fn round_even(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Tangent.
    fn tan(self) -> Self;
    /// Arc sine.
    fn asin(self) -> Self;
    /// Arc cosine.
    fn acos(self) -> Self;
    /// Arc tangent.
    fn atan(self) -> Self;
    /// Hyperbolic sine.
    fn sinh(self) -> Self;
    /// Hyperbolic cosine.
    fn cosh(self) -> Self;
    /// Inverse hyperbolic sine.
    fn asinh(self) -> Self;
    /// Inverse hyperbolic cosine.
    fn acosh(self) -> Self;
    /// Inverse hyperbolic tangent.
    fn atanh(self) -> Self;
    /// NaN test.
    fn is_nan(self) -> bool;
    /// +inf test.
    fn is_pos_inf(self) -> bool;
    /// -inf test.
    fn is_neg_inf(self) -> bool;
    /// C `fmod` (remainder with the sign of the dividend).
    fn fmod(self, o: Self) -> Self;
    /// Magnitude of `self` with the sign of `o`.
    fn copysign(self, o: Self) -> Self;
    /// `self` raised to a float power.
    fn powf(self, e: Self) -> Self;
    /// Widening conversion to f64.
    fn to_f64(self) -> f64;
}

macro_rules! impl_fl {
    ($t:ty, $erf:expr, $tanh:expr, $sigmoid:expr) => {
        impl Fl for $t {
            #[inline(always)]
            fn c(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn tanh_(self) -> Self {
                $tanh(self)
            }
            #[inline(always)]
            fn sigmoid(self) -> Self {
                $sigmoid(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn exp_m1(self) -> Self {
                <$t>::exp_m1(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            #[inline(always)]
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
            #[inline(always)]
            fn round_even(self) -> Self {
                <$t>::round_ties_even(self)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline(always)]
            fn tan(self) -> Self {
                <$t>::tan(self)
            }
            #[inline(always)]
            fn asin(self) -> Self {
                <$t>::asin(self)
            }
            #[inline(always)]
            fn acos(self) -> Self {
                <$t>::acos(self)
            }
            #[inline(always)]
            fn atan(self) -> Self {
                <$t>::atan(self)
            }
            #[inline(always)]
            fn sinh(self) -> Self {
                <$t>::sinh(self)
            }
            #[inline(always)]
            fn cosh(self) -> Self {
                <$t>::cosh(self)
            }
            #[inline(always)]
            fn asinh(self) -> Self {
                // std's f32 version loses precision near the domain edges; go through f64.
                (self as f64).asinh() as $t
            }
            #[inline(always)]
            fn acosh(self) -> Self {
                // std's f32 version loses precision near the domain edges; go through f64.
                (self as f64).acosh() as $t
            }
            #[inline(always)]
            fn atanh(self) -> Self {
                // std's f32 version loses precision near the domain edges; go through f64.
                (self as f64).atanh() as $t
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn is_pos_inf(self) -> bool {
                self == <$t>::INFINITY
            }
            #[inline(always)]
            fn is_neg_inf(self) -> bool {
                self == <$t>::NEG_INFINITY
            }
            #[inline(always)]
            fn fmod(self, o: Self) -> Self {
                self % o
            }
            #[inline(always)]
            fn copysign(self, o: Self) -> Self {
                <$t>::copysign(self, o)
            }
            #[inline(always)]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

impl_fl!(f32, erf_f32, tanh_f32, sigmoid_f32);
impl_fl!(f64, erf_f64, f64::tanh, |x: f64| {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    #[test]
    fn exp_matches_std() {
        for x in grid(-86.0, 88.0, 200_000) {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, want {want}");
        }
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert!(exp_f32(1000.0).is_finite());
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn erf_is_precise() {
        let mut worst = 0.0f64;
        for x in grid(-6.0, 6.0, 400_000) {
            let want = erf_f64(x as f64);
            worst = worst.max((erf_f32(x) as f64 - want).abs());
        }
        assert!(worst < 4e-7, "erf_f32 max abs error {worst}");
        assert!(erf_f32(f32::NAN).is_nan());
        assert_eq!(erf_f32(f32::INFINITY), 1.0);
        assert_eq!(erf_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(erf_f32(0.0), 0.0);
    }

    #[test]
    fn erf_f64_matches_known_values() {
        // Reference values from mpmath.
        let cases = [
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.4999, 0.9995928300996666),
            (2.5, 0.999593047982555),
            (3.0, 0.9999779095030014),
            (4.5, 0.9999999998033839),
        ];
        for (x, want) in cases {
            assert!((erf_f64(x) - want).abs() < 2e-15, "erf({x}) = {} want {want}", erf_f64(x));
            assert!((erf_f64(-x) + want).abs() < 2e-15);
        }
    }

    #[test]
    fn tanh_and_sigmoid_are_precise() {
        for x in grid(-20.0, 20.0, 200_000) {
            let want = (x as f64).tanh();
            let got = tanh_f32(x) as f64;
            assert!((got - want).abs() < 2e-7 && (got - want).abs() <= 3e-7 * want.abs().max(1e-30) + 1.2e-7);
            let want = 1.0 / (1.0 + (-x as f64).exp());
            let got = sigmoid_f32(x) as f64;
            assert!((got - want).abs() < 1.5e-7, "sigmoid({x}) = {got}, want {want}");
        }
        assert!(sigmoid_f32(-1e30) < 1e-38);
        assert_eq!(sigmoid_f32(1e30), 1.0);
        assert!(tanh_f32(f32::NAN).is_nan() && sigmoid_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(1e30), 1.0);
    }
}
