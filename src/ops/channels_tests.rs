//! Tests of the per-op channel flow declarations.

use super::*;
use crate::ir::known_shape;
use crate::tensor::{DType, Tensor};

fn f(s: &[usize]) -> Fact {
    Fact::new(DType::F32, known_shape(s))
}
fn k(s: &[usize]) -> Fact {
    Fact::konst(Tensor::zeros(DType::F32, s.to_vec()))
}
fn ints(v: &[i64]) -> Fact {
    Fact::konst(Tensor::from_vec(vec![v.len()], v.to_vec()))
}
fn flow(op: &Op, ins: &[Fact], outs: &[Fact]) -> ChannelFlow {
    let ins: Vec<Option<&Fact>> = ins.iter().map(Some).collect();
    let outs: Vec<&Fact> = outs.iter().collect();
    op.channel_flow(&ins, &outs)
}

#[test]
fn channels_of_gemm_and_matmul() {
    let gemm = |ta, tb| {
        Op::Gemm(Gemm { alpha: 1.0, beta: 1.0, trans_a: ta, trans_b: tb, act: crate::ir::Act::None })
    };
    // transB: W [N, K] — axis 0 produces, axis 1 consumes A's axis 1; the bias follows.
    let fl = flow(&gemm(false, true), &[f(&[2, 5]), k(&[3, 5]), k(&[3])], &[f(&[2, 3])]);
    let want = ChannelFlow::Produces {
        weight: 1,
        weight_axis: 0,
        out_axis: 1,
        consumes: Some(Consumes { input: 0, axis: 1, weight_axis: 1 }),
        per_channel: vec![(2, 0)],
    };
    assert_eq!(fl, want);
    // transA, plain B [K, N], a broadcast bias [1, 1] does not follow.
    let fl = flow(&gemm(true, false), &[f(&[5, 2]), k(&[5, 3]), k(&[1, 1])], &[f(&[2, 3])]);
    let want = ChannelFlow::Produces {
        weight: 1,
        weight_axis: 1,
        out_axis: 1,
        consumes: Some(Consumes { input: 0, axis: 0, weight_axis: 0 }),
        per_channel: vec![],
    };
    assert_eq!(fl, want);
    // ConvTranspose W [C_in, C_out, k, k]: axis 1 produces, axis 0 consumes; group = C_in
    // with W [C_in, 2, k, k] is depthwise with multiplier 2.
    let ct = |group| {
        Op::ConvTranspose(crate::ir::ConvTranspose {
            kernel: vec![],
            strides: vec![],
            dilations: vec![],
            pads: vec![],
            output_padding: vec![],
            output_shape: vec![],
            auto_pad: crate::ir::AutoPad::NotSet,
            group,
        })
    };
    let fl = flow(&ct(1), &[f(&[1, 4, 5, 5]), k(&[4, 6, 3, 3])], &[f(&[1, 6, 7, 7])]);
    let want = ChannelFlow::Produces {
        weight: 1,
        weight_axis: 1,
        out_axis: 1,
        consumes: Some(Consumes { input: 0, axis: 1, weight_axis: 0 }),
        per_channel: vec![],
    };
    assert_eq!(fl, want);
    let fl = flow(&ct(4), &[f(&[1, 4, 5, 5]), k(&[4, 2, 3, 3])], &[f(&[1, 8, 7, 7])]);
    assert_eq!(fl, ChannelFlow::Depthwise { multiplier: 2, transposed: true });
    assert_eq!(flow(&ct(2), &[f(&[1, 4, 5, 5]), k(&[4, 3, 3, 3])], &[f(&[1, 6, 7, 7])]), ChannelFlow::Opaque);
    // Two activations: opaque.
    assert_eq!(flow(&gemm(false, false), &[f(&[2, 5]), f(&[5, 3])], &[f(&[2, 3])]), ChannelFlow::Opaque);
    // MatMul [B, T, K] @ W [K, N]: W axis 1 produces output axis 2, W axis 0 reads axis 2.
    let fl = flow(&Op::MatMul, &[f(&[2, 7, 5]), k(&[5, 3])], &[f(&[2, 7, 3])]);
    let low = fl.lower(&[Some(&f(&[2, 7, 5])), Some(&k(&[5, 3]))], &[&f(&[2, 7, 3])]);
    assert_eq!(low.roles, vec![(inp(1, 1), Role::Produces), (inp(1, 0), Role::Consumes)]);
    assert_eq!(low.links, vec![tie(out(0, 2), inp(1, 1)), tie(inp(0, 2), inp(1, 0))]);
}

#[test]
fn channels_of_broadcasts_reshapes_and_transposes() {
    // [N, C, 1, 1] * [N, C, H, W]: the gate's C and N are tied, its 1s are not.
    let (a, b, y) = (f(&[2, 4, 1, 1]), f(&[2, 4, 5, 5]), f(&[2, 4, 5, 5]));
    let low = ChannelFlow::Couple.lower(&[Some(&a), Some(&b)], &[&y]);
    let from_a: Vec<usize> =
        low.links.iter().filter(|l| l.fine.port == Port::In(0)).map(|l| l.fine.axis).collect();
    assert_eq!(from_a, vec![0, 1]);
    assert_eq!(low.links.len(), 6);
    // Flatten [N, 4, 3, 3] -> [N, 36]: axis 1 in blocks of 9.
    let fl = flow(&Op::Flatten { axis: 1 }, &[f(&[2, 4, 3, 3])], &[f(&[2, 36])]);
    let want = vec![AxisMap { input: 0, output: 0, block: 1 }, AxisMap { input: 1, output: 1, block: 9 }];
    assert_eq!(fl, ChannelFlow::Axes { map: want.clone() });
    // Reshape to [0, -1] is the same; a literal 36 is blocked (pruning would break it).
    let reshape = Op::Reshape { allowzero: false };
    assert_eq!(
        flow(&reshape, &[f(&[2, 4, 3, 3]), ints(&[0, -1])], &[f(&[2, 36])]),
        ChannelFlow::Axes { map: want }
    );
    let fl = flow(&reshape, &[f(&[2, 4, 3, 3]), ints(&[2, 36])], &[f(&[2, 36])]);
    assert_eq!(fl, ChannelFlow::Axes { map: vec![] });
    // [N, C] -> [N, C, 1, 1] with -1 keeps the channel axis.
    let fl = flow(&reshape, &[f(&[2, 4]), ints(&[2, -1, 1, 1])], &[f(&[2, 4, 1, 1])]);
    assert_eq!(fl, ChannelFlow::Axes { map: vec![AxisMap { input: 1, output: 1, block: 1 }] });
    // Transpose keeps only the axes it does not move.
    let fl = flow(&Op::Transpose { perm: Some(vec![0, 2, 3, 1]) }, &[f(&[2, 4, 5, 6])], &[f(&[2, 5, 6, 4])]);
    assert_eq!(fl, ChannelFlow::Axes { map: vec![AxisMap { input: 0, output: 0, block: 1 }] });
    // Pad of spatial axes only keeps N and C.
    let fl = flow(
        &Op::Pad(crate::ir::PadMode::Constant),
        &[f(&[2, 4, 5, 5]), ints(&[0, 0, 1, 1, 0, 0, 1, 1])],
        &[f(&[2, 4, 7, 7])],
    );
    let want: Vec<AxisMap> = (0..2).map(|a| AxisMap { input: a, output: a, block: 1 }).collect();
    assert_eq!(fl, ChannelFlow::Axes { map: want });
    // Shape reads every axis; Shape from axis 2 leaves N and C free.
    let low = flow(&Op::Shape { start: 2, end: None }, &[f(&[2, 4, 5, 5])], &[ints(&[5, 5])])
        .lower(&[Some(&f(&[2, 4, 5, 5]))], &[&ints(&[5, 5])]);
    assert_eq!(low.free, vec![inp(0, 0), inp(0, 1), out(0, 0)]);
}
