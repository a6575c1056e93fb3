//! Fused activation epilogues.

/// Fused epilogue applied after bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `x` if `x >= 0`, else `alpha * x`.
    LeakyRelu(f32),
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `max(0, min(1, alpha * x + beta))` (ONNX HardSigmoid).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x * max(0, min(1, x / 6 + 0.5))` (ONNX HardSwish).
    HardSwish,
}

impl Act {
    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::None => x,
            Act::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Act::Clip { min, max } => {
                let y = if x < min { min } else { x };
                if y > max { max } else { y }
            }
            Act::LeakyRelu(alpha) => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Act::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Act::HardSwish => x * (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0),
        }
    }

    /// Applies the activation in place to every element of `xs`.
    pub fn apply_slice(self, xs: &mut [f32]) {
        bias_act(xs, 0.0, self);
    }

    /// True when the activation is the identity.
    #[inline]
    pub fn is_none(self) -> bool {
        matches!(self, Act::None)
    }
}

#[inline(always)]
fn bias_act_generic(xs: &mut [f32], bias: f32, act: Act) {
    // One monomorphic loop per variant so each vectorises.
    match act {
        Act::None => xs.iter_mut().for_each(|x| *x += bias),
        Act::Relu => xs.iter_mut().for_each(|x| *x = Act::Relu.apply(*x + bias)),
        Act::Clip { min, max } => {
            let a = Act::Clip { min, max };
            xs.iter_mut().for_each(|x| *x = a.apply(*x + bias))
        }
        Act::LeakyRelu(al) => {
            let a = Act::LeakyRelu(al);
            xs.iter_mut().for_each(|x| *x = a.apply(*x + bias))
        }
        Act::Sigmoid => xs.iter_mut().for_each(|x| *x = Act::Sigmoid.apply(*x + bias)),
        Act::HardSigmoid { alpha, beta } => {
            let a = Act::HardSigmoid { alpha, beta };
            xs.iter_mut().for_each(|x| *x = a.apply(*x + bias))
        }
        Act::HardSwish => xs.iter_mut().for_each(|x| *x = Act::HardSwish.apply(*x + bias)),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn bias_act_avx512(xs: &mut [f32], bias: f32, act: Act) {
    bias_act_generic(xs, bias, act)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bias_act_avx2(xs: &mut [f32], bias: f32, act: Act) {
    bias_act_generic(xs, bias, act)
}

/// `xs[i] = act(xs[i] + bias)` for every element (runtime SIMD dispatch).
pub fn bias_act(xs: &mut [f32], bias: f32, act: Act) {
    if bias == 0.0 && act.is_none() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if crate::has_avx512() {
            // SAFETY: the CPU supports avx512f (checked at runtime).
            return unsafe { bias_act_avx512(xs, bias, act) };
        }
        if crate::has_avx2() {
            // SAFETY: the CPU supports avx2 and fma (checked at runtime).
            return unsafe { bias_act_avx2(xs, bias, act) };
        }
    }
    bias_act_generic(xs, bias, act)
}
