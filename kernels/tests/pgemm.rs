//! Pre-packed GEMMs against an f64 reference, on every instruction set.

mod common;
use common::*;
use pare_kernels::{Act, PackedA, PackedB, gemm_packed_a, gemm_packed_b};

const ACTS: [Act; 7] = [
    Act::None,
    Act::Relu,
    Act::Clip { min: -0.25, max: 0.5 },
    Act::LeakyRelu(0.1),
    Act::Sigmoid,
    Act::HardSigmoid { alpha: 0.2, beta: 0.5 },
    Act::HardSwish,
];

/// `act(Σ a·b + extra)` in f64 and the magnitude `Σ |a·b| + |extra|`.
fn reference(terms: impl Iterator<Item = (f32, f32)>, extra: f32, act: Act) -> (f32, f32) {
    let (mut s, mut mag) = (extra as f64, extra.abs() as f64);
    for (a, b) in terms {
        s += a as f64 * b as f64;
        mag += (a as f64 * b as f64).abs();
    }
    (act.apply(s as f32), mag as f32)
}

fn close(got: f32, want: f32, mag: f32, what: &str) {
    let tol = 2e-5 * (mag + 1.0);
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want} (magnitude {mag})");
}

#[allow(clippy::too_many_arguments)]
fn check_a(m: usize, n: usize, k: usize, act: Act, with_bias: bool, accumulate: bool, pad: usize, seed: u64) {
    let mut r = rng(seed);
    let (ldb, ldc) = (n + pad, n + 2 * pad);
    let a = rand_vec(&mut r, m * k);
    let b = rand_vec(&mut r, k * ldb);
    let bias = rand_vec(&mut r, m);
    let c0 = rand_vec(&mut r, m * ldc);
    let pa = PackedA::new(m, k, &a);
    assert_eq!(pa.unpack(), a);
    let mut c = c0.clone();
    gemm_packed_a(&pa, n, &b, ldb, with_bias.then_some(&bias[..]), accumulate, act, &mut c, ldc);
    let what = format!("gemm_packed_a m={m} n={n} k={k} {act:?} bias={with_bias} acc={accumulate} pad={pad}");
    for i in 0..m {
        for j in 0..ldc {
            let got = c[i * ldc + j];
            if j >= n {
                assert_eq!(got, c0[i * ldc + j], "{what}: wrote padding ({i}, {j})");
                continue;
            }
            let extra =
                if with_bias { bias[i] } else { 0.0 } + if accumulate { c0[i * ldc + j] } else { 0.0 };
            let (want, mag) = reference((0..k).map(|p| (a[i * k + p], b[p * ldb + j])), extra, act);
            close(got, want, mag, &format!("{what} at ({i}, {j})"));
        }
    }
}

fn check_b(m: usize, n: usize, k: usize, act: Act, with_bias: bool, pad: usize, seed: u64) {
    let mut r = rng(seed);
    let (ldx, ldy) = (k + pad, n + pad);
    let x = rand_vec(&mut r, m * ldx);
    let b = rand_vec(&mut r, k * n);
    let bias = rand_vec(&mut r, n);
    let y0 = rand_vec(&mut r, m * ldy);
    let pb = PackedB::new(k, n, &b);
    assert_eq!((pb.k(), pb.n()), (k, n));
    let mut y = y0.clone();
    gemm_packed_b(m, &x, ldx, &pb, with_bias.then_some(&bias[..]), act, &mut y, ldy);
    let what = format!("gemm_packed_b m={m} n={n} k={k} {act:?} bias={with_bias} pad={pad}");
    for i in 0..m {
        for j in 0..ldy {
            let got = y[i * ldy + j];
            if j >= n {
                assert_eq!(got, y0[i * ldy + j], "{what}: wrote padding ({i}, {j})");
                continue;
            }
            let extra = if with_bias { bias[j] } else { 0.0 };
            let (want, mag) = reference((0..k).map(|p| (x[i * ldx + p], b[p * n + j])), extra, act);
            close(got, want, mag, &format!("{what} at ({i}, {j})"));
        }
    }
}

const SIZES: [usize; 6] = [1, 3, 17, 33, 64, 129];

#[test]
fn packed_a_all_sizes_all_isas() {
    for_each_isa(|isa| {
        let mut it = 0u64;
        for &m in &SIZES {
            for &n in &SIZES {
                for &k in &SIZES {
                    let act = ACTS[it as usize % ACTS.len()];
                    check_a(
                        m,
                        n,
                        k,
                        act,
                        it.is_multiple_of(2),
                        it.is_multiple_of(3),
                        (it % 3) as usize,
                        it + 100 * isa as u64,
                    );
                    it += 1;
                }
            }
        }
    });
}

#[test]
fn packed_a_every_epilogue_all_isas() {
    for_each_isa(|_| {
        for (ai, &act) in ACTS.iter().enumerate() {
            for bias in [false, true] {
                for acc in [false, true] {
                    check_a(19, 53, 40, act, bias, acc, 1, ai as u64);
                }
            }
        }
    });
}

#[test]
fn packed_a_large_threaded_all_isas() {
    // K blocking (k > one block), several column chunks and row groups,
    // the packed-B path (wide ldb), on pools of 1..3 threads.
    for_each_isa(|_| {
        in_pools(|| {
            check_a(64, 700, 1300, Act::Relu, true, false, 3, 1);
            check_a(70, 300, 576, Act::None, true, true, 0, 2);
            check_a(512, 49, 700, Act::Clip { min: 0.0, max: 6.0 }, true, true, 0, 3);
            check_a(9, 1000, 20, Act::LeakyRelu(0.2), false, false, 5, 4);
            check_a(5, 3, 0, Act::HardSwish, true, true, 0, 5);
            check_a(3, 5, 0, Act::None, false, false, 0, 6);
        })
    });
}

#[test]
fn packed_b_all_sizes_all_isas() {
    for_each_isa(|isa| {
        let mut it = 0u64;
        for &m in &[1, 2, 3, 8, 9, 17, 64] {
            for &n in &[1, 17, 48, 49, 130] {
                for &k in &[1, 3, 33, 129, 700] {
                    let act = ACTS[it as usize % ACTS.len()];
                    check_b(m, n, k, act, it % 2 == 1, (it % 3) as usize, it + 1000 * isa as u64);
                    it += 1;
                }
            }
        }
        for (ai, &act) in ACTS.iter().enumerate() {
            for bias in [false, true] {
                check_b(1, 100, 77, act, bias, 0, ai as u64);
                check_b(6, 100, 77, act, bias, 2, ai as u64);
            }
        }
        in_pools(|| {
            check_b(1, 1000, 1024, Act::None, true, 0, 7);
            check_b(32, 1000, 512, Act::Relu, true, 1, 8);
            check_b(64, 20, 2048, Act::None, false, 0, 9);
            check_b(4, 7, 0, Act::Relu, true, 0, 10);
        });
    });
}
