mod common;
use common::*;
use pare_kernels::{Act, ConvGeom, PackedConv, conv, conv_packed, conv_packed_fused, conv_ref};
use rand::Rng;
use rand::rngs::StdRng;

/// `|got - want| <= tol * (mag + 1)` element-wise, `mag` = the sum of the
/// absolute values of the terms.
fn assert_close_mag(got: &[f32], want: &[f32], mag: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((x, y), m)) in got.iter().zip(want).zip(mag).enumerate() {
        let ok = (x - y).abs() <= tol * (m + 1.0) || (x.is_nan() && y.is_nan());
        assert!(ok, "{what}: mismatch at {i}: fast {x} vs ref {y} (magnitude {m})");
    }
}

/// Checks `conv`, `conv_packed` and `conv_packed_fused` (with and without a
/// residual) against `conv_ref`, on the current ISA and rayon pool.
fn check(g: &ConvGeom, act: Act, with_bias: bool, seed: u64) {
    let mut r = rng(seed);
    let x = rand_vec(&mut r, g.in_len());
    let w = rand_vec(&mut r, g.weight_len());
    let b = rand_vec(&mut r, g.c_out);
    let res = rand_vec(&mut r, g.out_len());
    let bias = with_bias.then_some(&b[..]);
    let what = format!("conv {g:?} {act:?} bias={with_bias} isa={:?}", pare_kernels::isa());
    // Magnitude of the sums: the same conv on absolute values.
    let abs = |v: &[f32]| v.iter().map(|t| t.abs()).collect::<Vec<_>>();
    let mut mag = vec![0.0; g.out_len()];
    let ab = abs(&b);
    conv_ref(g, &abs(&x), &abs(&w), with_bias.then_some(&ab[..]), Act::None, &mut mag);

    let mut o1 = vec![f32::NAN; g.out_len()];
    let mut o2 = vec![0.0; g.out_len()];
    conv(g, &x, &w, bias, act, &mut o1);
    conv_ref(g, &x, &w, bias, act, &mut o2);
    assert_close_mag(&o1, &o2, &mag, 3e-5, &what);

    let packed = PackedConv::new(g, &w);
    assert_eq!(packed.weight(), &w[..g.weight_len()], "{what}: PackedConv::weight");
    let mut o3 = vec![f32::NAN; g.out_len()];
    conv_packed(g, &x, &packed, bias, act, &mut o3);
    assert_eq!(o1, o3, "{what}: conv_packed differs from conv");
    let mut o4 = vec![f32::NAN; g.out_len()];
    conv_packed_fused(g, &x, &packed, bias, false, act, &mut o4);
    assert_eq!(o1, o4, "{what}: conv_packed_fused(accumulate = false) differs from conv");

    // Residual epilogue: act(conv + bias + out_old).
    let mut o5 = res.clone();
    conv_packed_fused(g, &x, &packed, bias, true, act, &mut o5);
    let mut pre = vec![0.0; g.out_len()];
    conv_ref(g, &x, &w, bias, Act::None, &mut pre);
    let want: Vec<f32> = pre.iter().zip(&res).map(|(p, q)| act.apply(p + q)).collect();
    let mag5: Vec<f32> = mag.iter().zip(&res).map(|(m, q)| m + q.abs()).collect();
    assert_close_mag(&o5, &want, &mag5, 3e-5, &format!("{what} accumulate"));
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
    d: [usize; 2],
    pb: [usize; 2],
    pe: [usize; 2],
) -> ConvGeom {
    ConvGeom {
        batch,
        c_in,
        c_out,
        groups,
        in_spatial: hw.to_vec(),
        kernel: k.to_vec(),
        strides: s.to_vec(),
        dilations: d.to_vec(),
        pads_begin: pb.to_vec(),
        pads_end: pe.to_vec(),
    }
}

fn random_geom(r: &mut StdRng, rank: usize, depthwise: bool) -> ConvGeom {
    loop {
        let groups = if depthwise { r.random_range(1..6) } else { [1, 1, 2, 3][r.random_range(0..4)] };
        let cig = if depthwise { 1 } else { r.random_range(1..5) };
        let cog = r.random_range(1..if depthwise { 4 } else { 6 });
        let max_sp = match rank {
            1 => 30,
            2 => 14,
            _ => 6,
        };
        let mut g = ConvGeom {
            batch: r.random_range(1..3),
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
fn conv_random_all_ranks() {
    let _isa = isa_lock();
    in_pools(|| {
        let mut r = rng(42);
        for it in 0..150 {
            let rank = 1 + it % 3;
            let g = random_geom(&mut r, rank, it % 5 == 0);
            check(&g, ACTS[it % ACTS.len()], it % 3 != 0, it as u64);
        }
    });
}

#[test]
fn conv_depthwise_random() {
    let _isa = isa_lock();
    in_pools(|| {
        let mut r = rng(7);
        for it in 0..120 {
            let mut g = random_geom(&mut r, 1 + it % 2, true);
            if it % 4 == 0 {
                // Wide rows to exercise the vector blocks.
                let last = g.in_spatial.len() - 1;
                g.in_spatial[last] = r.random_range(16..90);
            }
            check(&g, ACTS[it % ACTS.len()], it % 2 == 0, it as u64);
        }
    });
}

#[test]
fn conv_mobilenet_like() {
    let _isa = isa_lock();
    in_pools(|| {
        // depthwise 3x3 s1 / s2, pointwise, stem.
        check(
            &geom2(1, 32, 32, 32, [56, 56], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
            Act::Clip { min: 0.0, max: 6.0 },
            true,
            1,
        );
        check(&geom2(2, 24, 24, 24, [57, 41], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]), Act::Relu, true, 2);
        check(&geom2(1, 16, 16, 16, [40, 70], [5, 5], [2, 2], [1, 1], [2, 2], [2, 2]), Act::None, false, 3);
        check(&geom2(1, 8, 16, 8, [33, 35], [3, 3], [1, 1], [2, 2], [2, 2], [2, 2]), Act::HardSwish, true, 4);
        check(&geom2(1, 32, 48, 1, [28, 28], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]), Act::None, true, 5);
        check(&geom2(2, 24, 40, 1, [15, 15], [1, 1], [2, 2], [1, 1], [0, 0], [0, 0]), Act::Relu, true, 6);
        check(&geom2(1, 3, 16, 1, [64, 64], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]), Act::HardSwish, true, 7);
        check(&geom2(1, 1, 6, 1, [28, 28], [5, 5], [1, 1], [1, 1], [2, 2], [2, 2]), Act::Relu, true, 8);
    });
}

#[test]
fn conv_larger_gemm_paths() {
    let _isa = isa_lock();
    in_pools(|| {
        check(&geom2(1, 64, 64, 1, [30, 30], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]), Act::Relu, true, 10);
        check(&geom2(3, 16, 24, 2, [19, 23], [3, 5], [1, 2], [1, 1], [1, 2], [0, 3]), Act::None, true, 11);
        check(&geom2(1, 96, 128, 1, [7, 7], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]), Act::None, true, 12);
        check(&geom2(4, 20, 50, 1, [12, 12], [5, 5], [1, 1], [1, 1], [0, 0], [0, 0]), Act::None, true, 13);
        check(&geom2(2, 64, 32, 1, [40, 40], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]), Act::None, true, 14);
        check(&geom2(1, 12, 12, 4, [25, 25], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]), Act::Relu, false, 15);
    });
}

#[test]
fn conv_tiny_and_degenerate() {
    let _isa = isa_lock();
    // 1x1 everything, kernel as large as the padded input, 1-D.
    check(&geom2(1, 1, 1, 1, [1, 1], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]), Act::None, true, 20);
    check(&geom2(1, 2, 3, 1, [2, 3], [4, 5], [1, 1], [1, 1], [1, 1], [1, 1]), Act::None, true, 21);
    check(&geom2(2, 2, 2, 2, [1, 1], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]), Act::None, true, 22);
    let g = ConvGeom {
        batch: 2,
        c_in: 4,
        c_out: 6,
        groups: 2,
        in_spatial: vec![50],
        kernel: vec![7],
        strides: vec![3],
        dilations: vec![2],
        pads_begin: vec![0],
        pads_end: vec![5],
    };
    check(&g, Act::LeakyRelu(0.3), true, 23);
}

#[test]
fn conv_geom_helpers() {
    let g = geom2(2, 64, 64, 1, [56, 56], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]);
    assert_eq!(g.out_spatial(), vec![56, 56]);
    assert_eq!(g.macs(), 2 * 64 * 56 * 56 * 64 * 9);
    let g = geom2(1, 8, 8, 8, [7, 8], [3, 3], [2, 2], [2, 1], [0, 1], [1, 0]);
    assert_eq!(g.out_spatial(), vec![2, 4]);
}

/// Geometries that reach every conv path: fast (stride 1 / 2) and portable
/// im2col, direct 1×1 with in-place and packed `B`, column-tail kernels
/// (n % 48 in 1..=6), K blocking (K > 640), row tails (c_out/groups % 8),
/// groups, dilations, asymmetric pads, batch > 1, rank 1 and 3, depthwise.
fn path_geoms() -> Vec<ConvGeom> {
    let c = |b, ci, co, gr, hw: [usize; 2], k: [usize; 2], s: [usize; 2], d: [usize; 2], pb, pe| {
        geom2(b, ci, co, gr, hw, k, s, d, pb, pe)
    };
    let mut v = vec![
        c(1, 16, 24, 1, [14, 14], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        c(2, 8, 17, 1, [9, 11], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        c(1, 8, 13, 1, [7, 7], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        c(1, 80, 9, 1, [7, 7], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        c(3, 12, 20, 1, [15, 17], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]),
        c(1, 3, 16, 1, [33, 31], [3, 3], [2, 2], [1, 1], [0, 1], [1, 0]),
        c(1, 6, 10, 1, [20, 23], [5, 5], [1, 1], [2, 2], [4, 3], [2, 4]),
        c(2, 6, 9, 3, [12, 13], [3, 3], [1, 1], [1, 2], [1, 2], [1, 2]),
        c(1, 4, 8, 1, [10, 3], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        c(1, 5, 7, 1, [13, 14], [3, 2], [3, 2], [1, 1], [1, 0], [2, 1]),
        c(1, 8, 40, 1, [9, 5], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]),
        c(2, 16, 40, 1, [17, 17], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]),
        c(1, 20, 12, 1, [16, 19], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]),
        c(2, 12, 18, 2, [8, 8], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]),
        c(1, 8, 8, 1, [10, 10], [1, 1], [2, 2], [1, 1], [0, 0], [0, 0]),
        c(1, 8, 6, 1, [9, 9], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1]),
        c(1, 16, 16, 16, [12, 12], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        c(1, 8, 16, 8, [11, 13], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]),
    ];
    v.push(ConvGeom {
        batch: 2,
        c_in: 4,
        c_out: 6,
        groups: 2,
        in_spatial: vec![50],
        kernel: vec![7],
        strides: vec![1],
        dilations: vec![2],
        pads_begin: vec![3],
        pads_end: vec![5],
    });
    v.push(ConvGeom {
        batch: 1,
        c_in: 3,
        c_out: 5,
        groups: 1,
        in_spatial: vec![5, 6, 9],
        kernel: vec![3, 3, 3],
        strides: vec![1, 1, 1],
        dilations: vec![1, 1, 1],
        pads_begin: vec![1, 1, 1],
        pads_end: vec![1, 1, 1],
    });
    v.push(ConvGeom {
        batch: 1,
        c_in: 4,
        c_out: 4,
        groups: 4,
        in_spatial: vec![4, 5, 6],
        kernel: vec![2, 2, 2],
        strides: vec![2, 1, 2],
        dilations: vec![1, 1, 1],
        pads_begin: vec![0, 1, 1],
        pads_end: vec![1, 0, 0],
    });
    v
}

const ACTS: [Act; 7] = [
    Act::None,
    Act::Relu,
    Act::Clip { min: 0.0, max: 6.0 },
    Act::LeakyRelu(0.1),
    Act::Sigmoid,
    Act::HardSigmoid { alpha: 0.2, beta: 0.5 },
    Act::HardSwish,
];

#[test]
fn conv_every_path_every_isa() {
    for_each_isa(|_| {
        in_pools(|| {
            for (i, g) in path_geoms().iter().enumerate() {
                check(g, ACTS[i % ACTS.len()], i % 3 != 1, i as u64);
            }
        });
    });
}

#[test]
fn conv_every_epilogue_every_isa() {
    let g = geom2(2, 7, 19, 1, [9, 10], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]);
    let dw = geom2(1, 6, 6, 6, [9, 10], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]);
    for_each_isa(|_| {
        for (i, &act) in ACTS.iter().enumerate() {
            for bias in [false, true] {
                check(&g, act, bias, i as u64);
                check(&dw, act, bias, i as u64);
            }
        }
    });
}

#[test]
fn conv_random_every_isa() {
    for_each_isa(|isa| {
        let mut r = rng(900 + isa as u64);
        for it in 0..60 {
            let g = random_geom(&mut r, 1 + it % 3, it % 7 == 0);
            check(&g, ACTS[it % ACTS.len()], it % 2 == 0, it as u64);
        }
    });
}

#[test]
fn conv_large_every_isa() {
    // K blocking (64·9 and 96·9 > 640), many column chunks, several threads.
    let gs = [
        geom2(1, 64, 64, 1, [30, 30], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        geom2(1, 96, 40, 1, [7, 7], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        geom2(2, 64, 72, 1, [28, 28], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]),
        geom2(3, 32, 32, 1, [23, 21], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]),
    ];
    for_each_isa(|_| {
        in_pools(|| {
            for (i, g) in gs.iter().enumerate() {
                check(g, ACTS[(i * 3) % ACTS.len()], true, i as u64);
            }
        });
    });
}

/// Depthwise convs with narrow output rows and at least 16 channels take the
/// channel-blocked path (full blocks plus per-plane tail channels); checked against the
/// reference on every ISA, with strides, dilations, asymmetric pads, bias and activations.
#[test]
fn depthwise_channel_blocked_matches_reference() {
    let cases = [
        // (batch, channels, h, w, k, stride, dilation, pads (t, l, b, r))
        (1, 16, 7, 7, 3, 1, 1, [1, 1, 1, 1]),
        (2, 35, 14, 14, 3, 2, 1, [1, 1, 1, 1]),
        (1, 48, 9, 5, 5, 1, 1, [2, 2, 2, 2]),
        (1, 32, 6, 8, 3, 1, 2, [0, 2, 1, 0]),
        (3, 17, 4, 4, 3, 2, 1, [0, 0, 1, 1]),
        (1, 64, 3, 3, 3, 1, 1, [1, 1, 1, 1]),
    ];
    for_each_isa(|isa| {
        let mut r = rng(77);
        for &(batch, c, h, w, k, s, d, p) in &cases {
            let g = ConvGeom {
                batch,
                c_in: c,
                c_out: c,
                groups: c,
                in_spatial: vec![h, w],
                kernel: vec![k, k],
                strides: vec![s, s],
                dilations: vec![d, d],
                pads_begin: vec![p[0], p[1]],
                pads_end: vec![p[2], p[3]],
            };
            let x: Vec<f32> = (0..g.in_len()).map(|_| r.random_range(-1.0..1.0)).collect();
            let wt: Vec<f32> = (0..g.weight_len()).map(|_| r.random_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..c).map(|_| r.random_range(-1.0..1.0)).collect();
            for act in [Act::None, Act::Relu, Act::Clip { min: 0.0, max: 6.0 }] {
                let mut want = vec![0.0; g.out_len()];
                conv_ref(&g, &x, &wt, Some(&b), act, &mut want);
                let mut got = vec![f32::NAN; g.out_len()];
                conv(&g, &x, &wt, Some(&b), act, &mut got);
                let err = want.iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < 1e-4, "{isa:?} {g:?} {act:?}: max error {err}");
            }
        }
    });
}
