mod common;
use common::*;
use pare_kernels::{ConvTransposeGeom, conv_transpose, conv_transpose_ref};
use rand::Rng;

fn check(g: &ConvTransposeGeom, with_bias: bool, seed: u64) {
    let mut r = rng(seed);
    let x = rand_vec(&mut r, g.in_len());
    let w = rand_vec(&mut r, g.weight_len());
    let b = rand_vec(&mut r, g.c_out);
    let bias = with_bias.then_some(&b[..]);
    let mut o1 = vec![f32::NAN; g.out_len()];
    let mut o2 = vec![0.0; g.out_len()];
    conv_transpose(g, &x, &w, bias, &mut o1);
    conv_transpose_ref(g, &x, &w, bias, &mut o2);
    assert_close(&o1, &o2, 1e-4, &format!("conv_transpose {g:?}"));
}

#[test]
fn conv_transpose_random() {
    in_pools(|| {
        let mut r = rng(3);
        for it in 0..120 {
            let rank = 1 + it % 3;
            let groups = [1, 1, 2, 3][r.random_range(0..4)];
            let mut g = ConvTransposeGeom {
                batch: r.random_range(1..3),
                c_in: groups * r.random_range(1..4),
                c_out: groups * r.random_range(1..4),
                groups,
                in_spatial: vec![],
                kernel: vec![],
                strides: vec![],
                dilations: vec![],
                pads_begin: vec![],
                out_spatial: vec![],
            };
            let max_sp = [20, 9, 5][rank - 1];
            for _ in 0..rank {
                let (i, k, s, d) = (
                    r.random_range(1..max_sp),
                    r.random_range(1..5),
                    r.random_range(1..4),
                    r.random_range(1..3),
                );
                let pb = r.random_range(0..k);
                let pe = r.random_range(0..k);
                let op = r.random_range(0..s); // output_padding
                let full = (i - 1) * s + (k - 1) * d + 1 + op;
                g.in_spatial.push(i);
                g.kernel.push(k);
                g.strides.push(s);
                g.dilations.push(d);
                g.pads_begin.push(pb);
                g.out_spatial.push(full.saturating_sub(pb + pe).max(1));
            }
            check(&g, it % 2 == 0, it as u64);
        }
    });
}

#[test]
fn conv_transpose_upsample_like() {
    in_pools(|| {
        // 2x upsampling decoder layer, k4 s2 p1.
        let g = ConvTransposeGeom {
            batch: 2,
            c_in: 32,
            c_out: 16,
            groups: 1,
            in_spatial: vec![14, 15],
            kernel: vec![4, 4],
            strides: vec![2, 2],
            dilations: vec![1, 1],
            pads_begin: vec![1, 1],
            out_spatial: vec![28, 30],
        };
        check(&g, true, 1);
        let g = ConvTransposeGeom {
            batch: 1,
            c_in: 64,
            c_out: 64,
            groups: 1,
            in_spatial: vec![20, 20],
            kernel: vec![3, 3],
            strides: vec![2, 2],
            dilations: vec![1, 1],
            pads_begin: vec![1, 1],
            out_spatial: vec![40, 40],
        };
        check(&g, true, 2);
        let g = ConvTransposeGeom {
            batch: 1,
            c_in: 8,
            c_out: 8,
            groups: 8,
            in_spatial: vec![9, 9],
            kernel: vec![2, 2],
            strides: vec![2, 2],
            dilations: vec![1, 1],
            pads_begin: vec![0, 0],
            out_spatial: vec![18, 18],
        };
        check(&g, false, 3);
    });
}
