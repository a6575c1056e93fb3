mod common;
use common::*;
use pare_kernels::{
    PoolGeom, avg_pool, avg_pool_ref, global_avg_pool, global_avg_pool_ref, max_pool, max_pool_ref,
};
use rand::Rng;

/// Output size with ONNX ceil_mode rules (last window must start inside
/// input + begin padding).
fn out_size(i: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize, ceil: bool) -> usize {
    let ek = (k - 1) * d + 1;
    let num = i + pb + pe - ek;
    let mut o = if ceil { num.div_ceil(s) + 1 } else { num / s + 1 };
    if ceil && (o - 1) * s >= i + pb {
        o -= 1;
    }
    o
}

fn check(g: &PoolGeom, seed: u64) {
    let mut r = rng(seed);
    let mut x = rand_vec(&mut r, g.in_len());
    // A few ties.
    for i in (0..x.len()).step_by(7) {
        x[i] = 0.5;
    }
    let n = g.out_len();
    let (mut o1, mut o2) = (vec![f32::NAN; n], vec![0.0; n]);
    let (mut i1, mut i2) = (vec![-7i64; n], vec![0i64; n]);
    max_pool(g, &x, &mut o1, Some(&mut i1));
    max_pool_ref(g, &x, &mut o2, Some(&mut i2));
    assert_eq!(o1, o2, "max_pool {g:?}");
    assert_eq!(i1, i2, "max_pool indices {g:?}");
    let mut o3 = vec![f32::NAN; n];
    max_pool(g, &x, &mut o3, None);
    assert_eq!(o1, o3);
    for cip in [false, true] {
        avg_pool(g, &x, &mut o1, cip);
        avg_pool_ref(g, &x, &mut o2, cip);
        assert_close(&o1, &o2, 1e-5, &format!("avg_pool cip={cip} {g:?}"));
    }
}

#[allow(clippy::too_many_arguments)]
fn geom(
    bc: usize,
    ins: &[usize],
    k: &[usize],
    s: &[usize],
    d: &[usize],
    pb: &[usize],
    pe: &[usize],
    ceil: bool,
) -> PoolGeom {
    let outs = (0..ins.len()).map(|a| out_size(ins[a], k[a], s[a], d[a], pb[a], pe[a], ceil)).collect();
    PoolGeom {
        batch_channels: bc,
        in_spatial: ins.to_vec(),
        kernel: k.to_vec(),
        strides: s.to_vec(),
        dilations: d.to_vec(),
        pads_begin: pb.to_vec(),
        pads_end: pe.to_vec(),
        out_spatial: outs,
    }
}

#[test]
fn pool_random() {
    in_pools(|| {
        let mut r = rng(5);
        let mut done = 0;
        let mut it = 0u64;
        while done < 200 {
            it += 1;
            let rank = 1 + done % 3;
            let max_sp = [30, 12, 6][rank - 1];
            let mut v: [Vec<usize>; 6] = Default::default();
            for _ in 0..rank {
                let k = r.random_range(1..5);
                v[0].push(r.random_range(1..max_sp));
                v[1].push(k);
                v[2].push(r.random_range(1..4));
                v[3].push(r.random_range(1..3));
                v[4].push(r.random_range(0..k));
                v[5].push(r.random_range(0..k));
            }
            let ok = (0..rank).all(|a| v[0][a] + v[4][a] + v[5][a] > (v[1][a] - 1) * v[3][a]);
            if !ok {
                continue;
            }
            let g = geom(r.random_range(1..5), &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], r.random_bool(0.5));
            check(&g, it);
            done += 1;
        }
    });
}

#[test]
fn pool_common_shapes() {
    in_pools(|| {
        check(&geom(64, &[56, 56], &[2, 2], &[2, 2], &[1, 1], &[0, 0], &[0, 0], false), 1);
        check(&geom(32, &[112, 112], &[3, 3], &[2, 2], &[1, 1], &[1, 1], &[1, 1], false), 2);
        check(&geom(16, &[27, 27], &[3, 3], &[2, 2], &[1, 1], &[0, 0], &[0, 0], true), 3);
        check(&geom(6, &[28, 28], &[2, 2], &[2, 2], &[1, 1], &[0, 0], &[0, 0], false), 4);
        check(&geom(8, &[13, 11], &[3, 3], &[1, 1], &[1, 1], &[1, 1], &[1, 1], false), 5);
        check(&geom(3, &[7, 7], &[7, 7], &[1, 1], &[1, 1], &[0, 0], &[0, 0], false), 6);
    });
}

#[test]
fn global_avg_pool_matches() {
    in_pools(|| {
        let mut r = rng(9);
        for (bc, sp) in [(1, 1), (3, 7), (64, 49), (512, 196), (2, 1000)] {
            let x = rand_vec(&mut r, bc * sp);
            let (mut a, mut b) = (vec![0.0; bc], vec![0.0; bc]);
            global_avg_pool(bc, sp, &x, &mut a);
            global_avg_pool_ref(bc, sp, &x, &mut b);
            assert_close(&a, &b, 1e-5, "global_avg_pool");
        }
    });
}
