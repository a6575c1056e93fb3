//! Winograd convolution against the reference convolution.
mod common;
use common::*;
use pare_kernels::{Act, ConvGeom, WinoTile, WinogradConv, conv_ref};
use rand::Rng;

fn geom(batch: usize, c_in: usize, c_out: usize, hw: [usize; 2], pb: [usize; 2], pe: [usize; 2]) -> ConvGeom {
    ConvGeom {
        batch,
        c_in,
        c_out,
        groups: 1,
        in_spatial: hw.to_vec(),
        kernel: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads_begin: pb.to_vec(),
        pads_end: pe.to_vec(),
    }
}

const TILES: [WinoTile; 2] = [WinoTile::F2, WinoTile::F4];

/// Allowed error relative to the largest pre-activation output magnitude.
fn tol(tile: WinoTile) -> f32 {
    match tile {
        WinoTile::F2 => 1e-5,
        WinoTile::F4 => 2e-5,
    }
}

/// Runs one case on both paths (SIMD where available, and portable) and
/// returns the worst error relative to the output magnitude.
fn check(tile: WinoTile, g: &ConvGeom, act: Act, with_bias: bool, accumulate: bool, seed: u64) -> f32 {
    let mut r = rng(seed);
    let x = rand_vec(&mut r, g.in_len());
    let w = rand_vec(&mut r, g.weight_len());
    let b = rand_vec(&mut r, g.c_out);
    let res = rand_vec(&mut r, g.out_len());
    let bias = with_bias.then_some(&b[..]);
    // Reference: pre-activation conv + bias (+ residual), then act.
    let mut pre = vec![0.0; g.out_len()];
    conv_ref(g, &x, &w, bias, Act::None, &mut pre);
    if accumulate {
        pre.iter_mut().zip(&res).for_each(|(p, r)| *p += r);
    }
    let scale = pre.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let want: Vec<f32> = pre.iter().map(|&v| act.apply(v)).collect();
    let mut worst = 0.0f32;
    for wc in
        [WinogradConv::new(tile, g.c_in, g.c_out, &w), WinogradConv::new_portable(tile, g.c_in, g.c_out, &w)]
    {
        let mut out = if accumulate { res.clone() } else { vec![f32::NAN; g.out_len()] };
        wc.run(g, &x, bias, accumulate, act, &mut out);
        for (i, (o, e)) in out.iter().zip(&want).enumerate() {
            let err = (o - e).abs() / scale;
            assert!(
                err <= tol(tile),
                "{tile:?} {g:?} {act:?} bias={with_bias} acc={accumulate}: at {i} got {o} want {e} (rel {err:e})"
            );
            worst = worst.max(err);
        }
    }
    worst
}

#[test]
fn applies() {
    let g = geom(1, 2, 2, [5, 5], [1, 1], [1, 1]);
    assert!(WinogradConv::applies(&g));
    let mut h = g.clone();
    h.strides = vec![2, 2];
    assert!(!WinogradConv::applies(&h));
    let mut h = g.clone();
    h.kernel = vec![1, 1];
    assert!(!WinogradConv::applies(&h));
    let mut h = g.clone();
    h.dilations = vec![2, 1];
    assert!(!WinogradConv::applies(&h));
    let mut h = g.clone();
    h.groups = 2;
    assert!(!WinogradConv::applies(&h));
    let h = ConvGeom {
        in_spatial: vec![5],
        kernel: vec![3],
        strides: vec![1],
        dilations: vec![1],
        pads_begin: vec![1],
        pads_end: vec![1],
        ..g
    };
    assert!(!WinogradConv::applies(&h));
}

/// Every H × W in the list, pads 0 / 1 / asymmetric, small channels.
#[test]
fn spatial_sizes() {
    let sizes = [1, 2, 5, 7, 8, 13, 14];
    let pads: [([usize; 2], [usize; 2]); 4] =
        [([0, 0], [0, 0]), ([1, 1], [1, 1]), ([0, 1], [2, 0]), ([2, 0], [1, 2])];
    let mut seed = 0;
    for tile in TILES {
        for &h in &sizes {
            for &w in &sizes {
                for (pb, pe) in pads {
                    seed += 1;
                    let g = geom(1 + seed as usize % 3 / 2 * 2, 3, 3, [h, w], pb, pe);
                    check(tile, &g, Act::None, seed % 2 == 0, false, seed);
                }
            }
        }
    }
}

/// Channel counts 1, 3, 16, 64 (both sides), batch 1 and 3.
#[test]
fn channels() {
    let cs = [1, 3, 16, 64];
    let mut seed = 100;
    for tile in TILES {
        for &ci in &cs {
            for &co in &cs {
                for batch in [1, 3] {
                    seed += 1;
                    let hw = if batch == 1 { [13, 8] } else { [7, 5] };
                    let g = geom(batch, ci, co, hw, [1, 1], [1, 1]);
                    check(tile, &g, Act::None, true, false, seed);
                }
            }
        }
    }
}

/// Large images: multiple blocks, rows longer than 16 tiles, parallel.
#[test]
fn large() {
    let cases = [
        geom(1, 16, 16, [56, 56], [1, 1], [1, 1]),
        geom(3, 3, 16, [56, 56], [0, 1], [1, 0]),
        geom(1, 64, 64, [14, 14], [1, 1], [1, 1]),
        geom(3, 64, 16, [14, 13], [1, 1], [1, 1]),
        geom(1, 16, 64, [56, 13], [1, 1], [1, 1]),
    ];
    for tile in TILES {
        for (i, g) in cases.iter().enumerate() {
            in_pools(|| {
                check(tile, g, Act::Relu, true, i % 2 == 1, 200 + i as u64);
            });
        }
    }
}

/// Every activation, with and without bias and residual.
#[test]
fn epilogues() {
    let acts = [
        Act::None,
        Act::Relu,
        Act::Clip { min: -0.5, max: 0.75 },
        Act::LeakyRelu(0.1),
        Act::Sigmoid,
        Act::HardSigmoid { alpha: 0.2, beta: 0.5 },
        Act::HardSwish,
    ];
    let g = geom(2, 5, 19, [9, 11], [1, 1], [1, 1]);
    let mut seed = 300;
    for tile in TILES {
        for act in acts {
            for bias in [false, true] {
                for acc in [false, true] {
                    seed += 1;
                    check(tile, &g, act, bias, acc, seed);
                }
            }
        }
    }
}

/// Padding wider than the kernel: border outputs are bias only.
#[test]
fn wide_pads() {
    for tile in TILES {
        let g = geom(1, 4, 5, [6, 3], [3, 4], [2, 3]);
        check(tile, &g, Act::None, true, true, 400);
    }
}

/// Random geometries in pools of 1..3 threads.
#[test]
fn random() {
    let mut r = rng(500);
    for i in 0..40 {
        let tile = TILES[i % 2];
        let g = geom(
            r.random_range(1..4),
            r.random_range(1..40),
            r.random_range(1..40),
            [r.random_range(1..40), r.random_range(1..40)],
            [r.random_range(0..3), r.random_range(0..3)],
            [r.random_range(0..3), r.random_range(0..3)],
        );
        in_pools(|| {
            check(tile, &g, Act::None, i % 3 == 0, i % 4 == 0, 600 + i as u64);
        });
    }
}

/// Worst errors over typical layers (printed with `--nocapture`); the
/// numbers are quoted in the module documentation of `winograd.rs`.
#[test]
fn measured_error() {
    let cases = [
        geom(1, 64, 64, [28, 28], [1, 1], [1, 1]),
        geom(1, 128, 32, [14, 14], [1, 1], [1, 1]),
        geom(2, 16, 16, [30, 31], [1, 1], [1, 1]),
    ];
    for tile in TILES {
        let mut worst = 0.0f32;
        for (i, g) in cases.iter().enumerate() {
            worst = worst.max(check(tile, g, Act::None, true, false, 700 + i as u64));
        }
        println!("{tile:?}: worst error relative to output magnitude {worst:.3e}");
    }
}
