//! Channels-last kernels against the NCHW reference conv, every ISA, 1–3 threads.
mod common;
use common::*;
use pare_kernels::{
    Act, ConvGeom, ConvNhwc, DepthwiseNhwc, conv_nhwc, conv_ref, depthwise_nhwc, global_avg_pool_nhwc,
    global_avg_pool_ref, nchw_to_nhwc, nhwc_to_nchw,
};

#[allow(clippy::too_many_arguments)]
fn geom(
    n: usize,
    ci: usize,
    co: usize,
    g: usize,
    hw: [usize; 2],
    k: usize,
    s: usize,
    p: usize,
    d: usize,
) -> ConvGeom {
    ConvGeom {
        batch: n,
        c_in: ci,
        c_out: co,
        groups: g,
        in_spatial: hw.to_vec(),
        kernel: vec![k, k],
        strides: vec![s, s],
        dilations: vec![d, d],
        pads_begin: vec![p, p],
        pads_end: vec![p, p],
    }
}

fn spatial(g: &ConvGeom) -> (usize, usize) {
    (g.in_spatial.iter().product(), g.out_spatial().iter().product())
}

/// Runs the NHWC kernel for `g` and compares it (back in NCHW) with `conv_ref`.
fn check(g: &ConvGeom, act: Act, with_bias: bool, residual: bool, seed: u64) {
    let mut r = rng(seed);
    let x = rand_vec(&mut r, g.in_len());
    let w = rand_vec(&mut r, g.weight_len());
    let b = rand_vec(&mut r, g.c_out);
    let res = rand_vec(&mut r, g.out_len());
    let bias = with_bias.then_some(&b[..]);
    let (ihw, ohw) = spatial(g);
    let what = format!("{g:?} {act:?} bias={with_bias} res={residual} isa={:?}", pare_kernels::isa());
    // Reference: conv, + residual, then the activation.
    let mut want = vec![0.0; g.out_len()];
    conv_ref(g, &x, &w, bias, Act::None, &mut want);
    if residual {
        want.iter_mut().zip(&res).for_each(|(a, r)| *a += r);
    }
    want.iter_mut().for_each(|v| *v = act.apply(*v));

    let mut xh = vec![0.0; x.len()];
    nchw_to_nhwc(g.batch, g.c_in, ihw, &x, &mut xh);
    let mut out = vec![f32::NAN; g.out_len()];
    if residual {
        nchw_to_nhwc(g.batch, g.c_out, ohw, &res, &mut out);
    }
    let depthwise = g.groups == g.c_in && g.c_out == g.c_in && !pare_kernels::pointwise(g);
    if depthwise {
        assert!(!residual);
        let dw = DepthwiseNhwc::new(g.c_out, g.kernel.iter().product(), &w);
        depthwise_nhwc(g, &dw, bias, act, &xh, &mut out);
    } else {
        let cw = ConvNhwc::new(g, &w).expect("a pointwise conv");
        assert!(cw.matches(g));
        conv_nhwc(g, &cw, bias, act, residual, &xh, &mut out);
    }
    let mut got = vec![0.0; out.len()];
    nhwc_to_nchw(g.batch, g.c_out, ohw, &out, &mut got);
    assert_close(&got, &want, 2e-5, &what);
}

#[test]
fn reorders_round_trip_and_match_index_formula() {
    in_pools(|| {
        for &(n, c, hw) in &[(1, 1, 1), (2, 3, 5), (1, 17, 33), (3, 64, 49), (2, 40, 300)] {
            let x: Vec<f32> = (0..n * c * hw).map(|i| i as f32).collect();
            let mut y = vec![0.0; x.len()];
            nchw_to_nhwc(n, c, hw, &x, &mut y);
            for i in 0..n {
                for ch in 0..c {
                    for p in 0..hw {
                        assert_eq!(y[(i * hw + p) * c + ch], x[(i * c + ch) * hw + p], "n{n} c{c} hw{hw}");
                    }
                }
            }
            let mut back = vec![0.0; x.len()];
            nhwc_to_nchw(n, c, hw, &y, &mut back);
            assert_eq!(back, x, "round trip n{n} c{c} hw{hw}");
        }
    });
}

#[test]
fn depthwise_nhwc_every_isa() {
    for_each_isa(|isa| {
        in_pools(|| {
            let mut s = 0;
            // Channel counts hit the 16-, 8- and 1-wide paths; widths hit the 4-output blocks
            // and the edges; strides, pads and dilations as in real nets (and odd ones).
            for &c in &[1, 8, 16, 24, 40, 67] {
                for &(hw, k, st, p, d) in &[
                    ([7, 7], 3, 1, 1, 1),
                    ([14, 14], 3, 2, 1, 1),
                    ([9, 12], 5, 1, 2, 1),
                    ([11, 10], 5, 2, 2, 1),
                    ([8, 8], 3, 1, 2, 2),
                    ([5, 23], 3, 1, 0, 1),
                    ([2, 3], 3, 1, 1, 1),
                ] {
                    for (act, bias) in [(Act::None, false), (Act::Clip { min: 0.0, max: 6.0 }, true)] {
                        s += 1;
                        check(&geom(2, c, c, c, hw, k, st, p, d), act, bias, false, 100 * isa as u64 + s);
                    }
                }
            }
        })
    });
}

#[test]
fn conv_nhwc_every_isa() {
    for_each_isa(|isa| {
        in_pools(|| {
            let mut s = 0;
            // One GEMM over every position of the batch, with and without a residual; channel
            // counts below, at and past one 48-column panel.
            for &(n, ci, co, hw) in &[
                (2, 16, 24, [14, 14]),
                (1, 3, 7, [5, 9]),
                (2, 64, 96, [7, 7]),
                (1, 144, 24, [28, 28]),
                (3, 40, 240, [6, 6]),
                (1, 8, 1, [4, 4]),
            ] {
                for residual in [false, true] {
                    for (act, bias) in [(Act::Relu, true), (Act::None, false)] {
                        s += 1;
                        check(
                            &geom(n, ci, co, 1, hw, 1, 1, 0, 1),
                            act,
                            bias,
                            residual,
                            1000 * isa as u64 + s,
                        );
                    }
                }
            }
            // Not pointwise: no NHWC weights.
            let g = geom(1, 4, 4, 1, [5, 5], 3, 1, 1, 1);
            assert!(ConvNhwc::new(&g, &vec![0.0; g.weight_len()]).is_none());
            let g = geom(1, 4, 4, 1, [5, 5], 1, 2, 0, 1);
            assert!(ConvNhwc::new(&g, &vec![0.0; g.weight_len()]).is_none());
        })
    });
}

#[test]
fn global_avg_pool_nhwc_matches_reference() {
    in_pools(|| {
        for &(n, c, hw) in &[(1, 16, 49), (3, 40, 7), (2, 1, 5), (4, 960, 49)] {
            let x = rand_vec(&mut rng((n * c * hw) as u64), n * c * hw);
            let mut want = vec![0.0; n * c];
            global_avg_pool_ref(n * c, hw, &x, &mut want);
            let mut xh = vec![0.0; x.len()];
            nchw_to_nhwc(n, c, hw, &x, &mut xh);
            let mut got = vec![f32::NAN; n * c];
            global_avg_pool_nhwc(n, hw, c, &xh, &mut got);
            assert_close(&got, &want, 1e-5, &format!("gap n{n} c{c} hw{hw}"));
        }
    });
}
