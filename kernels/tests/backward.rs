//! Backward (gradient) kernels against the plain references, and the
//! references against the forward kernels (adjoint identities).
mod common;
use common::*;
use pare_kernels::{
    Act, ConvGeom, PoolGeom, avg_pool, avg_pool_grad, avg_pool_grad_ref, conv_grad_bias, conv_grad_input,
    conv_grad_input_ref, conv_grad_weight, conv_grad_weight_ref, conv_ref, max_pool, max_pool_grad,
    max_pool_grad_ref,
};
use rand::Rng;
use rand::rngs::StdRng;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

fn assert_dot_eq(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs())), "{what}: {a} vs {b}");
}

/// Fast conv gradients vs references (NaN-filled outputs check overwrite).
fn check_conv(g: &ConvGeom, seed: u64) {
    let mut r = rng(seed);
    let x = rand_vec(&mut r, g.in_len());
    let w = rand_vec(&mut r, g.weight_len());
    let dy = rand_vec(&mut r, g.out_len());
    let (mut a, mut b) = (vec![f32::NAN; g.in_len()], vec![0.0; g.in_len()]);
    conv_grad_input(g, &dy, &w, &mut a);
    conv_grad_input_ref(g, &dy, &w, &mut b);
    assert_close(&a, &b, 1e-4, &format!("conv_grad_input {g:?}"));
    let (mut a, mut b) = (vec![f32::NAN; g.weight_len()], vec![0.0; g.weight_len()]);
    conv_grad_weight(g, &x, &dy, &mut a);
    conv_grad_weight_ref(g, &x, &dy, &mut b);
    assert_close(&a, &b, 1e-4, &format!("conv_grad_weight {g:?}"));
    let mut db = vec![f32::NAN; g.c_out];
    conv_grad_bias(g, &dy, &mut db);
    let p = g.out_len() / (g.batch * g.c_out).max(1);
    let want: Vec<f32> = (0..g.c_out)
        .map(|c| (0..g.batch).map(|n| dy[(n * g.c_out + c) * p..][..p].iter().sum::<f32>()).sum())
        .collect();
    assert_close(&db, &want, 1e-4, &format!("conv_grad_bias {g:?}"));
}

/// The references are the adjoints of the forward conv:
/// `<conv(x, w), dy> = <x, dX(dy, w)> = <w, dW(x, dy)>`.
fn check_adjoint(g: &ConvGeom, seed: u64) {
    let mut r = rng(seed);
    let x = rand_vec(&mut r, g.in_len());
    let w = rand_vec(&mut r, g.weight_len());
    let dy = rand_vec(&mut r, g.out_len());
    let mut y = vec![0.0; g.out_len()];
    conv_ref(g, &x, &w, None, Act::None, &mut y);
    let mut gx = vec![0.0; g.in_len()];
    conv_grad_input_ref(g, &dy, &w, &mut gx);
    let mut gw = vec![0.0; g.weight_len()];
    conv_grad_weight_ref(g, &x, &dy, &mut gw);
    let lhs = dot(&y, &dy);
    assert_dot_eq(lhs, dot(&x, &gx), &format!("input adjoint {g:?}"));
    assert_dot_eq(lhs, dot(&w, &gw), &format!("weight adjoint {g:?}"));
}

#[allow(clippy::too_many_arguments)]
fn geom2(
    batch: usize,
    c_in: usize,
    c_out: usize,
    groups: usize,
    hw: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 4],
) -> ConvGeom {
    ConvGeom {
        batch,
        c_in,
        c_out,
        groups,
        in_spatial: hw.to_vec(),
        kernel: k.to_vec(),
        strides: s.to_vec(),
        dilations: vec![1, 1],
        pads_begin: p[..2].to_vec(),
        pads_end: p[2..].to_vec(),
    }
}

fn random_geom(r: &mut StdRng, rank: usize, depthwise: bool) -> ConvGeom {
    loop {
        let groups = if depthwise { r.random_range(1..6) } else { [1, 1, 2, 3][r.random_range(0..4)] };
        let cig = if depthwise { 1 } else { r.random_range(1..5) };
        let cog = r.random_range(1..if depthwise { 4 } else { 6 });
        let max_sp = [30, 14, 6][rank - 1];
        let mut g = ConvGeom {
            batch: r.random_range(1..4),
            c_in: groups * cig,
            c_out: groups * cog,
            groups,
            in_spatial: vec![],
            kernel: vec![],
            strides: vec![],
            dilations: vec![],
            pads_begin: vec![],
            pads_end: vec![],
        };
        for _ in 0..rank {
            let k = r.random_range(1..5);
            g.in_spatial.push(r.random_range(1..max_sp));
            g.kernel.push(k);
            g.strides.push(r.random_range(1..4));
            g.dilations.push(r.random_range(1..3));
            g.pads_begin.push(r.random_range(0..k));
            g.pads_end.push(r.random_range(0..k + 1));
        }
        if g.out_spatial().iter().all(|&o| o > 0) {
            return g;
        }
    }
}

#[test]
fn conv_grads_random_all_ranks() {
    in_pools(|| {
        let mut r = rng(42);
        for it in 0..150 {
            let g = random_geom(&mut r, 1 + it % 3, it % 4 == 0);
            check_conv(&g, it as u64);
        }
    });
}

#[test]
fn conv_grads_depthwise_random() {
    in_pools(|| {
        let mut r = rng(7);
        for it in 0..90 {
            let mut g = random_geom(&mut r, 1 + it % 3, true);
            if it % 3 == 0 {
                let last = g.in_spatial.len() - 1;
                g.in_spatial[last] = r.random_range(16..60);
            }
            check_conv(&g, it as u64);
        }
    });
}

#[test]
fn conv_references_are_adjoints() {
    let mut r = rng(3);
    for it in 0..60 {
        let g = random_geom(&mut r, 1 + it % 3, it % 5 == 0);
        check_adjoint(&g, it as u64);
    }
}

#[test]
fn conv_grads_larger_paths() {
    in_pools(|| {
        // Several images per GEMM (small planes).
        check_conv(&geom2(6, 20, 50, 1, [12, 12], [5, 5], [1, 1], [0; 4]), 1);
        check_conv(&geom2(9, 16, 16, 1, [8, 8], [3, 3], [1, 1], [1; 4]), 2);
        // Position tiles / channel chunks (large planes).
        check_conv(&geom2(2, 16, 16, 1, [32, 32], [3, 3], [1, 1], [1; 4]), 3);
        check_conv(&geom2(1, 64, 8, 1, [26, 24], [3, 3], [1, 1], [1, 1, 0, 2]), 4);
        check_conv(&geom2(3, 8, 12, 2, [20, 23], [3, 5], [2, 1], [1, 2, 0, 3]), 5);
        // 1×1 direct and 1×1 strided.
        check_conv(&geom2(3, 24, 40, 1, [15, 15], [1, 1], [1, 1], [0; 4]), 6);
        check_conv(&geom2(2, 24, 40, 2, [15, 15], [1, 1], [2, 2], [0; 4]), 7);
        // Depthwise, multiplier 1 and 2, strides 1 and 2.
        check_conv(&geom2(4, 32, 32, 32, [16, 16], [3, 3], [1, 1], [1; 4]), 8);
        check_conv(&geom2(3, 16, 32, 16, [17, 19], [3, 3], [2, 2], [1; 4]), 9);
        check_conv(&geom2(2, 8, 8, 8, [40, 40], [5, 5], [1, 1], [2; 4]), 10);
        // Stride-1 depthwise: dilated / asymmetric pads, pads beyond the
        // kernel extent, 1-D.
        let mut g = geom2(2, 6, 6, 6, [13, 21], [3, 3], [1, 1], [2, 1, 0, 3]);
        g.dilations = vec![2, 2];
        check_conv(&g, 12);
        check_conv(&geom2(2, 5, 5, 5, [7, 9], [2, 2], [1, 1], [2, 2, 2, 2]), 13);
        let mut g = geom2(3, 4, 8, 4, [1, 37], [1, 5], [1, 1], [0, 2, 0, 1]);
        g.in_spatial = vec![37];
        g.kernel = vec![5];
        g.strides = vec![1];
        g.dilations = vec![1];
        g.pads_begin = vec![2];
        g.pads_end = vec![1];
        check_conv(&g, 14);
        // LeNet conv1 shape.
        check_conv(&geom2(16, 1, 20, 1, [28, 28], [5, 5], [1, 1], [0; 4]), 11);
    });
}

#[test]
fn conv_grads_degenerate() {
    check_conv(&geom2(1, 1, 1, 1, [1, 1], [1, 1], [1, 1], [0; 4]), 20);
    check_conv(&geom2(1, 2, 3, 1, [2, 3], [4, 5], [1, 1], [1; 4]), 21);
    check_conv(&geom2(2, 2, 2, 2, [1, 1], [3, 3], [1, 1], [1; 4]), 22);
    // Trailing input not covered by any window (stride > kernel).
    check_conv(&geom2(2, 4, 3, 1, [9, 10], [2, 2], [4, 3], [0; 4]), 23);
    check_conv(&geom2(2, 3, 3, 3, [9, 10], [2, 2], [4, 3], [0; 4]), 24);
    // No output positions: dx and dw are zero.
    let g = geom2(1, 2, 2, 1, [2, 2], [3, 3], [1, 1], [0; 4]);
    assert!(g.out_len() == 0);
    let mut dx = vec![f32::NAN; g.in_len()];
    conv_grad_input(&g, &[], &vec![1.0; g.weight_len()], &mut dx);
    assert!(dx.iter().all(|&v| v == 0.0));
    let mut dw = vec![f32::NAN; g.weight_len()];
    conv_grad_weight(&g, &vec![1.0; g.in_len()], &[], &mut dw);
    assert!(dw.iter().all(|&v| v == 0.0));
}

/// Output size with ONNX ceil_mode rules.
fn out_size(i: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize, ceil: bool) -> usize {
    let ek = (k - 1) * d + 1;
    let num = i + pb + pe - ek;
    let mut o = if ceil { num.div_ceil(s) + 1 } else { num / s + 1 };
    if ceil && (o - 1) * s >= i + pb {
        o -= 1;
    }
    o
}

fn check_pool(g: &PoolGeom, seed: u64) {
    let mut r = rng(seed);
    let mut x = rand_vec(&mut r, g.in_len());
    for i in (0..x.len()).step_by(7) {
        x[i] = 0.5; // ties
    }
    let dy = rand_vec(&mut r, g.out_len());
    let (mut y, mut am) = (vec![0.0; g.out_len()], vec![0i64; g.out_len()]);
    max_pool(g, &x, &mut y, Some(&mut am));
    let (mut a, mut b) = (vec![f32::NAN; g.in_len()], vec![0.0; g.in_len()]);
    max_pool_grad(g, &dy, &am, &mut a);
    max_pool_grad_ref(g, &dy, &am, &mut b);
    assert_eq!(a, b, "max_pool_grad {g:?}");
    for cip in [false, true] {
        avg_pool_grad(g, &dy, &mut a, cip);
        avg_pool_grad_ref(g, &dy, &mut b, cip);
        assert_close(&a, &b, 1e-5, &format!("avg_pool_grad cip={cip} {g:?}"));
        // Adjoint of the forward pool.
        avg_pool(g, &x, &mut y, cip);
        assert_dot_eq(dot(&y, &dy), dot(&x, &b), &format!("avg_pool adjoint {g:?}"));
    }
}

#[test]
fn pool_grads_random() {
    in_pools(|| {
        let mut r = rng(5);
        let mut done = 0;
        let mut it = 0u64;
        while done < 150 {
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
            if !(0..rank).all(|a| v[0][a] + v[4][a] + v[5][a] > (v[1][a] - 1) * v[3][a]) {
                continue;
            }
            let ceil = r.random_bool(0.5);
            let outs =
                (0..rank).map(|a| out_size(v[0][a], v[1][a], v[2][a], v[3][a], v[4][a], v[5][a], ceil));
            let g = PoolGeom {
                batch_channels: r.random_range(1..5),
                out_spatial: outs.collect(),
                in_spatial: v[0].clone(),
                kernel: v[1].clone(),
                strides: v[2].clone(),
                dilations: v[3].clone(),
                pads_begin: v[4].clone(),
                pads_end: v[5].clone(),
            };
            check_pool(&g, it);
            done += 1;
        }
    });
}

fn pool2(bc: usize, hw: usize, k: usize, s: usize, p: usize) -> PoolGeom {
    let o = out_size(hw, k, s, 1, p, p, false);
    PoolGeom {
        batch_channels: bc,
        in_spatial: vec![hw, hw],
        kernel: vec![k, k],
        strides: vec![s, s],
        dilations: vec![1, 1],
        pads_begin: vec![p, p],
        pads_end: vec![p, p],
        out_spatial: vec![o, o],
    }
}

#[test]
fn pool_grads_common_shapes() {
    in_pools(|| {
        check_pool(&pool2(64 * 20, 24, 2, 2, 0), 1);
        check_pool(&pool2(32, 56, 3, 2, 1), 2);
        check_pool(&pool2(16, 13, 3, 1, 1), 3);
        check_pool(&pool2(8, 7, 7, 1, 0), 4);
    });
}

#[test]
fn max_pool_grad_foreign_indices() {
    // Hand-made argmax pointing across planes, with repeats and "none".
    let g = pool2(3, 4, 2, 2, 0);
    let n_out = g.out_len();
    let am: Vec<i64> = (0..n_out as i64).map(|q| if q % 5 == 4 { -1 } else { (q * 13) % 48 }).collect();
    let dy: Vec<f32> = (0..n_out).map(|q| q as f32 + 1.0).collect();
    in_pools(|| {
        let (mut a, mut b) = (vec![f32::NAN; 48], vec![0.0; 48]);
        max_pool_grad(&g, &dy, &am, &mut a);
        max_pool_grad_ref(&g, &dy, &am, &mut b);
        assert_eq!(a, b);
    });
}
