//! What the tuner's measurements depend on: the CPU model, its vector features, and the
//! kernel ISA pare uses on it (which `PARE_ISA` can lower).

use serde::{Deserialize, Serialize};

/// Identity of the machine a measurement was made on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuId {
    /// Model name (`/proc/cpuinfo`'s "model name", else the CPUID brand string).
    pub model: String,
    /// Vector features detected at run time, in a fixed order.
    pub features: Vec<String>,
    /// The kernel ISA in use (`Scalar`, `Avx2`, `Avx512`).
    pub isa: String,
}

impl CpuId {
    /// The machine this process runs on. The model name and features are read once per
    /// process; the ISA is read on every call, since `PARE_ISA` / `force_isa` may lower it.
    pub fn detect() -> CpuId {
        static FIXED: std::sync::OnceLock<(String, Vec<String>)> = std::sync::OnceLock::new();
        let (model, features) = FIXED.get_or_init(|| (model_name(), features()));
        CpuId { model: model.clone(), features: features.clone(), isa: format!("{:?}", pare_kernels::isa()) }
    }

    /// One line for messages: `model [isa; features]`.
    pub fn describe(&self) -> String {
        format!("{} [{}; {}]", self.model, self.isa, self.features.join(" "))
    }
}

fn model_name() -> String {
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        for line in info.lines() {
            if let Some((k, v)) = line.split_once(':')
                && k.trim() == "model name"
            {
                return v.trim().to_string();
            }
        }
    }
    brand_string().unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

#[cfg(target_arch = "x86_64")]
fn brand_string() -> Option<String> {
    use std::arch::x86_64::__cpuid;
    // CPUID exists on every x86-64 CPU; leaf 0x8000_0000 reports the highest extended
    // leaf, and the brand leaves are read only when present.
    let max = __cpuid(0x8000_0000).eax;
    if max < 0x8000_0004 {
        return None;
    }
    let mut bytes = Vec::with_capacity(48);
    for leaf in 0x8000_0002u32..=0x8000_0004 {
        let r = __cpuid(leaf);
        for reg in [r.eax, r.ebx, r.ecx, r.edx] {
            bytes.extend_from_slice(&reg.to_le_bytes());
        }
    }
    let s = String::from_utf8_lossy(&bytes).trim_matches(char::from(0)).trim().to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(not(target_arch = "x86_64"))]
fn brand_string() -> Option<String> {
    None
}

#[cfg(target_arch = "x86_64")]
fn features() -> Vec<String> {
    let mut f = Vec::new();
    macro_rules! probe {
        ($($name:tt),*) => {
            $(if std::arch::is_x86_feature_detected!($name) {
                f.push($name.to_string());
            })*
        };
    }
    probe!(
        "sse4.2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512vnni",
        "avx512bf16"
    );
    f
}

#[cfg(not(target_arch = "x86_64"))]
fn features() -> Vec<String> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_is_stable_and_names_the_isa() {
        let a = CpuId::detect();
        assert_eq!(a, CpuId::detect());
        assert!(!a.model.is_empty());
        assert!(["Scalar", "Avx2", "Avx512"].contains(&a.isa.as_str()), "{}", a.isa);
        #[cfg(target_arch = "x86_64")]
        if a.isa == "Avx512" {
            assert!(a.features.iter().any(|f| f == "avx512f"));
        }
    }
}
