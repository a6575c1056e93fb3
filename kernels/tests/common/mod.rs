//! Shared test helpers.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn rand_vec(r: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

/// Asserts `|a - b| <= tol * (1 + |b|)` element-wise.
pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let ok = (x - y).abs() <= tol * (1.0 + y.abs()) || (x.is_nan() && y.is_nan()) || x == y;
        assert!(ok, "{what}: mismatch at {i}: fast {x} vs ref {y}");
    }
}

/// Runs `f` inside rayon pools of 1 and 2 threads (and the global pool).
pub fn in_pools(f: impl Fn() + Sync + Send) {
    for t in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        pool.install(&f);
    }
}

static ISA_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Serialises tests that depend on the process-wide ISA cap.
pub fn isa_lock() -> std::sync::MutexGuard<'static, ()> {
    ISA_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` once per instruction set this CPU has (Scalar, Avx2, Avx512),
/// with the process-wide cap forced to it, holding [`isa_lock`].
pub fn for_each_isa(f: impl Fn(pare_kernels::Isa)) {
    use pare_kernels::{Isa, detected_isa, force_isa, isa};
    let _guard = isa_lock();
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            pare_kernels::force_isa(None);
        }
    }
    let _reset = Reset;
    for want in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
        if want > detected_isa() {
            eprintln!("skipping {want:?}: not supported by this CPU");
            continue;
        }
        force_isa(Some(want));
        assert_eq!(isa(), want, "force_isa did not take effect");
        f(want);
    }
}
