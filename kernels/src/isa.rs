//! Run-time instruction-set selection.
//!
//! The best instruction set is detected once; it can be capped for the whole
//! process with [`force_isa`] or with the environment variable
//! `PARE_ISA=scalar|avx2|avx512` (read once, at the first query). Every SIMD
//! kernel of the crate dispatches on [`isa()`], so a cap really switches all of
//! them to the lower path (tests use this to exercise every path).

use std::sync::atomic::{AtomicU8, Ordering};

/// Instruction-set level of the SIMD kernels, ordered from least to most
/// capable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable code only (whatever the compiler's baseline target allows).
    Scalar,
    /// AVX2 with FMA (256-bit vectors).
    Avx2,
    /// AVX-512F (512-bit vectors, mask registers).
    Avx512,
}

impl Isa {
    fn to_u8(self) -> u8 {
        match self {
            Isa::Scalar => 1,
            Isa::Avx2 => 2,
            Isa::Avx512 => 3,
        }
    }

    fn from_u8(v: u8) -> Isa {
        match v {
            3 => Isa::Avx512,
            2 => Isa::Avx2,
            _ => Isa::Scalar,
        }
    }

    /// Parses `scalar`, `avx2` or `avx512` (case-insensitive).
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx512f" => Some(Isa::Avx512),
            _ => None,
        }
    }
}

/// 0 = not yet detected.
static DETECTED: AtomicU8 = AtomicU8::new(0);
/// 0 = not yet initialised from the environment; 255 = no cap.
static CAP: AtomicU8 = AtomicU8::new(0);
const NO_CAP: u8 = 255;

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}

/// The best instruction set the CPU supports, ignoring any cap.
pub fn detected_isa() -> Isa {
    let v = DETECTED.load(Ordering::Relaxed);
    if v != 0 {
        return Isa::from_u8(v);
    }
    let isa = detect();
    DETECTED.store(isa.to_u8(), Ordering::Relaxed);
    isa
}

fn env_cap() -> u8 {
    std::env::var("PARE_ISA").ok().and_then(|s| Isa::parse(&s)).map_or(NO_CAP, Isa::to_u8)
}

/// The instruction set kernels use now: the best one available, capped by
/// [`force_isa`] or `PARE_ISA`.
#[inline]
pub fn isa() -> Isa {
    let mut cap = CAP.load(Ordering::Relaxed);
    if cap == 0 {
        cap = env_cap();
        // Keep a concurrent force_isa if one won the race.
        let _ = CAP.compare_exchange(0, cap, Ordering::Relaxed, Ordering::Relaxed);
        cap = CAP.load(Ordering::Relaxed);
    }
    let best = detected_isa();
    if cap == NO_CAP { best } else { best.min(Isa::from_u8(cap)) }
}

/// Caps the instruction set for the whole process: `Some(isa)` makes every
/// kernel use at most `isa` (asking for more than the CPU has yields the best
/// available); `None` restores the default (the `PARE_ISA` cap if set, else no
/// cap). Kernels already running are not affected.
pub fn force_isa(cap: Option<Isa>) {
    CAP.store(cap.map_or_else(env_cap, Isa::to_u8), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(Isa::parse("AVX2"), Some(Isa::Avx2));
        assert_eq!(Isa::parse("avx512"), Some(Isa::Avx512));
        assert_eq!(Isa::parse("scalar"), Some(Isa::Scalar));
        assert_eq!(Isa::parse("sse"), None);
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
    }
}
