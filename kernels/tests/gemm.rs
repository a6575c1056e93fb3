mod common;
use common::*;
use pare_kernels::{sgemm, sgemm_batched, sgemm_ref};
use rand::Rng;

#[allow(clippy::too_many_arguments)]
fn check(m: usize, n: usize, k: usize, ta: bool, tb: bool, alpha: f32, beta: f32, pad: usize, seed: u64) {
    let mut r = rng(seed);
    let lda = if ta { m } else { k } + pad;
    let ldb = if tb { k } else { n } + pad;
    let ldc = n + pad;
    let a = rand_vec(&mut r, lda * if ta { k } else { m });
    let b = rand_vec(&mut r, ldb * if tb { n } else { k });
    let c0 = rand_vec(&mut r, ldc * m);
    let mut c1 = c0.clone();
    let mut c2 = c0.clone();
    sgemm(m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut c1, ldc);
    sgemm_ref(m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut c2, ldc);
    assert_close(&c1, &c2, 1e-4 * (k as f32).sqrt().max(1.0), &format!("sgemm {m}x{n}x{k} ta={ta} tb={tb}"));
}

#[test]
fn sgemm_random_shapes() {
    in_pools(|| {
        let mut r = rng(1);
        for it in 0..60 {
            let m = r.random_range(1..70);
            let n = r.random_range(1..70);
            let k = r.random_range(1..90);
            let ta = r.random_bool(0.5);
            let tb = r.random_bool(0.5);
            let (alpha, beta) = match it % 4 {
                0 => (1.0, 0.0),
                1 => (0.5, 1.0),
                2 => (-1.5, 0.25),
                _ => (1.0, 1.0),
            };
            check(m, n, k, ta, tb, alpha, beta, r.random_range(0..3), it);
        }
    });
}

#[test]
fn sgemm_edge_cases() {
    check(0, 5, 3, false, false, 1.0, 0.0, 0, 1);
    check(5, 0, 3, false, false, 1.0, 0.0, 0, 2);
    check(4, 5, 0, false, false, 1.0, 0.5, 0, 3);
    check(1, 1, 1, true, true, 2.0, 0.0, 0, 4);
    check(1, 300, 200, false, true, 1.0, 0.0, 1, 5);
    check(300, 1, 200, true, false, 1.0, 0.0, 0, 6);
}

#[test]
fn sgemm_large_parallel() {
    in_pools(|| {
        check(257, 131, 190, false, false, 1.0, 0.0, 0, 7);
        check(129, 260, 77, true, true, 1.0, 1.0, 3, 8);
    });
}

#[test]
fn sgemm_beta_zero_ignores_nan() {
    let a = vec![1.0; 4];
    let b = vec![1.0; 4];
    let mut c = vec![f32::NAN; 4];
    sgemm(2, 2, 2, 1.0, &a, 2, false, &b, 2, false, 0.0, &mut c, 2);
    assert_eq!(c, vec![2.0; 4]);
}

#[test]
fn sgemm_batched_matches_loop() {
    in_pools(|| {
        let mut r = rng(11);
        for it in 0..12 {
            let (m, n, k) = (r.random_range(1..20), r.random_range(1..20), r.random_range(1..20));
            let batch: usize = [1, 2, 7, 64, 300][it % 5];
            // A broadcast over half the batch, B per item.
            let na = batch.div_ceil(2);
            let a = rand_vec(&mut r, na * m * k);
            let b = rand_vec(&mut r, batch * k * n);
            let ao: Vec<usize> = (0..batch).map(|i| (i / 2) * m * k).collect();
            let bo: Vec<usize> = (0..batch).map(|i| i * k * n).collect();
            // Outputs in reverse order with a gap.
            let co: Vec<usize> = (0..batch).map(|i| (batch - 1 - i) * (m * n + 1)).collect();
            let mut c = vec![0.0; batch * (m * n + 1)];
            sgemm_batched(m, n, k, &a, &ao, &b, &bo, &mut c, &co);
            for i in 0..batch {
                let mut cr = vec![0.0; m * n];
                sgemm_ref(m, n, k, 1.0, &a[ao[i]..], k, false, &b[bo[i]..], n, false, 0.0, &mut cr, n);
                assert_close(&c[co[i]..co[i] + m * n], &cr, 1e-4, "batched");
            }
        }
    });
}

#[test]
#[should_panic]
fn sgemm_batched_rejects_overlap() {
    let a = vec![0.0; 4];
    let b = vec![0.0; 4];
    let mut c = vec![0.0; 8];
    sgemm_batched(2, 2, 1, &a, &[0, 0], &b, &[0, 0], &mut c, &[0, 2]);
}
