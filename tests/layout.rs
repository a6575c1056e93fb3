//! Channels-last regions: plans that keep depthwise-conv chains in NHWC compute what the
//! NCHW plan computes, on the zoo's MobileNetV2 and on a graph built to hit every boundary
//! (squeeze-excite broadcasts, residuals, a pooling reader outside the region, a region
//! value that is also a graph output, per-channel constants, a second graph output).

use pare::ir::{AutoPad, Builder, Init};
use pare::ir::{Binary, Graph, Op, Pool, Unary, known_shape};
use pare::profile::random_inputs;
use pare::runtime::{RunOptions, Runtime};
use pare::tensor::{DType, Tensor};

/// Runs `g` with channels-last on and off (and without optimisation passes), checks that
/// the outputs agree, and returns the op names of the channels-last plan's steps.
fn compare(g: &Graph, threads: usize) -> Vec<String> {
    let inputs = random_inputs(g, 3).unwrap();
    let plain = Runtime::new(g.clone(), RunOptions { threads: 1, optimize: false }).unwrap();
    let mut reference = plain;
    reference.set_channels_last(false);
    let want = reference.run(inputs.clone()).unwrap();
    let mut on = Runtime::new(g.clone(), RunOptions { threads, optimize: true }).unwrap();
    on.set_channels_last(true);
    let (got, steps) = on.profile(inputs.clone()).unwrap();
    let mut off = Runtime::new(g.clone(), RunOptions { threads, optimize: true }).unwrap();
    off.set_channels_last(false);
    let nchw = off.run(inputs).unwrap();
    assert_eq!(got.len(), want.len());
    for (i, ((a, b), c)) in got.iter().zip(&want).zip(&nchw).enumerate() {
        assert_eq!(a.shape(), b.shape(), "output {i}");
        let (a, b, c) = (a.f32s().unwrap(), b.f32s().unwrap(), c.f32s().unwrap());
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        let err_nchw = c.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err <= 1e-4 * scale, "output {i}: channels-last plan differs by {err} (scale {scale})");
        assert!(err_nchw <= 1e-4 * scale, "output {i}: NCHW plan differs by {err_nchw}");
    }
    // Output names survive the reorders inserted in front of them.
    assert_eq!(on.output_names(), off.output_names());
    steps.into_iter().map(|s| s.op).collect()
}

#[test]
fn zoo_mobilenetv2_runs_channels_last() {
    let g = pare::zoo::build("mobilenetv2-cifar", 10, 1).unwrap().with_batch(2).unwrap();
    for threads in [1, 2] {
        let ops = compare(&g, threads);
        let nhwc = ops.iter().filter(|o| o.contains("(nhwc)")).count();
        let convs = ops.iter().filter(|o| o.starts_with("Conv")).count();
        // Every depthwise and 1x1 conv; only the 3x3 stem stays NCHW, with one reorder after it.
        assert_eq!(nhwc + 1, convs, "{ops:?}");
        assert_eq!(ops.iter().filter(|o| o.starts_with("Reorder")).count(), 1, "{ops:?}");
    }
}

#[test]
fn every_region_boundary_matches_nchw() {
    let mut b = Builder::seeded(5);
    let x = b.input("x", DType::F32, known_shape(&[2, 8, 11, 13]));
    let stem = b.conv("stem", x, 24, 3, 1, 1, 1, true, Init::KaimingRelu).unwrap();
    let stem = b.relu("stem_relu", stem).unwrap();
    // Expand, depthwise (stride 2, 5x5), SiLU.
    let e = b.conv("expand", stem, 48, 1, 1, 0, 1, true, Init::KaimingRelu).unwrap();
    let e = b.relu6("expand_relu6", e).unwrap();
    let d = b.conv("dw", e, 48, 5, 2, 2, 48, true, Init::KaimingRelu).unwrap();
    let sig = b.op(Op::Unary(Unary::Sigmoid), &[d]).unwrap();
    let d = b.bin(Binary::Mul, d, sig).unwrap();
    // Squeeze-excite: GAP -> 1x1 -> ReLU -> 1x1 -> Sigmoid -> Mul by the [N, C, 1, 1] scale.
    let s = b.op(Op::GlobalAveragePool, &[d]).unwrap();
    let s = b.conv("se_reduce", s, 12, 1, 1, 0, 1, true, Init::KaimingRelu).unwrap();
    let s = b.relu("se_relu", s).unwrap();
    let s = b.conv("se_expand", s, 48, 1, 1, 0, 1, true, Init::KaimingRelu).unwrap();
    let s = b.op(Op::Unary(Unary::Sigmoid), &[s]).unwrap();
    let d = b.bin(Binary::Mul, d, s).unwrap();
    // Project, per-channel constant scale, residual with another depthwise branch.
    let p = b.conv("project", d, 16, 1, 1, 0, 1, true, Init::KaimingRelu).unwrap();
    let scale = b.konst(
        "chan_scale",
        Tensor::from_vec(vec![16, 1, 1], (0..16).map(|i| 0.5 + i as f32 * 0.1).collect()),
    );
    let p = b.bin(Binary::Mul, p, scale).unwrap();
    let half = b.scalar(0.5);
    let p2 = b.bin(Binary::Mul, p, half).unwrap();
    let q = b.conv("dw2", p2, 16, 3, 1, 1, 16, false, Init::KaimingRelu).unwrap();
    let r = b.add("residual", q, p).unwrap();
    let r = b.relu("out_relu", r).unwrap();
    // A reader outside the region (MaxPool) and the region value itself as an output.
    let pool = Op::MaxPool(Pool {
        kernel: vec![2, 2],
        strides: vec![2, 2],
        dilations: vec![],
        pads: vec![],
        auto_pad: AutoPad::NotSet,
        ceil_mode: false,
        count_include_pad: false,
        indices: false,
    });
    let m = b.op(pool, &[r]).unwrap();
    let g = b.finish(&[r, m]).unwrap();
    for threads in [1, 2] {
        let ops = compare(&g, threads);
        assert!(ops.iter().filter(|o| o.contains("(nhwc)")).count() >= 4, "{ops:?}");
        // In: after the stem; out: for the MaxPool and the graph output (shared).
        let reorders = ops.iter().filter(|o| o.starts_with("Reorder")).count();
        assert_eq!(reorders, 2, "{ops:?}");
    }
}

#[test]
fn graphs_without_depthwise_convs_stay_nchw() {
    let g = pare::zoo::build("resnet-20", 10, 1).unwrap().with_batch(2).unwrap();
    let ops = compare(&g, 2);
    assert!(ops.iter().all(|o| !o.contains("nhwc") && !o.starts_with("Reorder")), "{ops:?}");
}
