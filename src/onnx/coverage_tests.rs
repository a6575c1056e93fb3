//! Every `Op` variant is reachable everywhere it must be: its family's `infer` and `eval`
//! accept it (the family modules end in an error arm for other families' ops), the import
//! registry knows its ONNX name, and export writes it. `variant` is an exhaustive match, so
//! a new variant does not compile until it has an index here, and the coverage test then
//! fails until `samples()` has an instance of it.

use super::registry;
use crate::ir::*;
use crate::tensor::{DType, Tensor};

const VARIANTS: usize = 46;

fn variant(op: &Op) -> usize {
    match op {
        Op::Conv(_) => 0,
        Op::ConvTranspose(_) => 1,
        Op::Gemm(_) => 2,
        Op::MatMul => 3,
        Op::BatchNorm(_) => 4,
        Op::LayerNorm(_) => 5,
        Op::MaxPool(_) => 6,
        Op::AveragePool(_) => 7,
        Op::GlobalAveragePool => 8,
        Op::GlobalMaxPool => 9,
        Op::Softmax { .. } => 10,
        Op::Unary(_) => 11,
        Op::Binary(_) => 12,
        Op::Variadic(_) => 13,
        Op::Clip => 14,
        Op::Where => 15,
        Op::Cast(_) => 16,
        Op::Reshape { .. } => 17,
        Op::Flatten { .. } => 18,
        Op::Transpose { .. } => 19,
        Op::Concat { .. } => 20,
        Op::Split { .. } => 21,
        Op::Slice => 22,
        Op::Gather { .. } => 23,
        Op::GatherElements { .. } => 24,
        Op::Squeeze => 25,
        Op::Unsqueeze => 26,
        Op::Shape { .. } => 27,
        Op::Size => 28,
        Op::ConstantOfShape(_) => 29,
        Op::Expand => 30,
        Op::Range => 31,
        Op::Tile => 32,
        Op::Identity => 33,
        Op::Dropout { .. } => 34,
        Op::Pad(_) => 35,
        Op::Resize(_) => 36,
        Op::Reduce(_) => 37,
        Op::ArgReduce { .. } => 38,
        Op::QuantizeLinear { .. } => 39,
        Op::DequantizeLinear { .. } => 40,
        Op::FakeQuant { .. } => 41,
        Op::Train(TrainOp::Loss(_)) => 42,
        Op::Train(TrainOp::QuantGrad { .. }) => 43,
        Op::Train(TrainOp::DequantizeGrad { .. }) => 44,
        Op::Train(_) => 45,
    }
}

fn pool() -> Pool {
    Pool {
        kernel: vec![2, 2],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        auto_pad: AutoPad::NotSet,
        ceil_mode: false,
        count_include_pad: false,
        indices: false,
    }
}

fn samples() -> Vec<Op> {
    let conv = Conv {
        kernel: vec![],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        auto_pad: AutoPad::NotSet,
        group: 1,
        act: Act::None,
    };
    vec![
        Op::Conv(conv.clone()),
        Op::ConvTranspose(ConvTranspose {
            kernel: vec![],
            strides: vec![],
            dilations: vec![],
            pads: vec![],
            output_padding: vec![],
            output_shape: vec![],
            auto_pad: AutoPad::NotSet,
            group: 1,
        }),
        Op::Gemm(Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true, act: Act::None }),
        Op::MatMul,
        Op::BatchNorm(BatchNorm { epsilon: 1e-5, momentum: 0.9, training: false }),
        Op::LayerNorm(LayerNorm { axis: -1, epsilon: 1e-5, stats: false }),
        Op::MaxPool(pool()),
        Op::AveragePool(pool()),
        Op::GlobalAveragePool,
        Op::GlobalMaxPool,
        Op::Softmax { axis: -1, log: false, legacy: false },
        Op::Unary(Unary::Relu),
        Op::Binary(Binary::Add),
        Op::Variadic(Variadic::Sum),
        Op::Clip,
        Op::Where,
        Op::Cast(DType::F32),
        Op::Reshape { allowzero: false },
        Op::Flatten { axis: 1 },
        Op::Transpose { perm: None },
        Op::Concat { axis: 0 },
        Op::Split { axis: 0, num_outputs: 2 },
        Op::Slice,
        Op::Gather { axis: 0 },
        Op::GatherElements { axis: 0 },
        Op::Squeeze,
        Op::Unsqueeze,
        Op::Shape { start: 0, end: None },
        Op::Size,
        Op::ConstantOfShape(Tensor::scalar(0f32)),
        Op::Expand,
        Op::Range,
        Op::Tile,
        Op::Identity,
        Op::Dropout { ratio: 0.0 },
        Op::Pad(PadMode::Constant),
        Op::Resize(Resize {
            mode: ResizeMode::Nearest,
            coord_mode: "half_pixel".into(),
            nearest_mode: "round_prefer_floor".into(),
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            axes: vec![],
            aspect_policy: "stretch".into(),
        }),
        Op::Reduce(Reduce { kind: ReduceKind::Sum, keepdims: true, noop_with_empty_axes: false }),
        Op::ArgReduce { max: true, axis: 0, keepdims: true, select_last: false },
        Op::QuantizeLinear { axis: 1, to: DType::U8 },
        Op::DequantizeLinear { axis: 1 },
        Op::FakeQuant { axis: 1, to: DType::I8 },
        Op::Train(TrainOp::Loss(Loss::Mse)),
        Op::Train(TrainOp::QuantGrad { axis: 1, to: DType::I8, rescale: false }),
        Op::Train(TrainOp::DequantizeGrad { axis: 1 }),
        Op::Train(TrainOp::ChannelSum),
    ]
}

#[test]
fn every_variant_has_a_sample() {
    let mut seen = [false; VARIANTS];
    for op in samples() {
        seen[variant(&op)] = true;
    }
    let missing: Vec<usize> = (0..VARIANTS).filter(|&i| !seen[i]).collect();
    assert!(missing.is_empty(), "variants without a sample (indices in `variant`): {missing:?}");
}

#[test]
fn families_accept_their_ops() {
    for op in samples() {
        // With no inputs every op fails, but with "required input … is missing" or a shape
        // complaint, never with "is not a … op" (the family router sent it to the wrong place).
        for msg in [
            op.infer(&[]).err().map(|e| format!("{e:#}")),
            op.eval_owned(vec![]).err().map(|e| format!("{e:#}")),
        ]
        .into_iter()
        .flatten()
        {
            assert!(!msg.contains("is not a"), "{}: {msg}", op.onnx_name());
        }
    }
}

#[test]
fn registry_imports_every_exported_name() {
    for op in samples() {
        if matches!(op, Op::Train(_) | Op::FakeQuant { .. }) {
            continue; // training-only ops are not exported; FakeQuant is written as Q + DQ
        }
        assert!(registry::builder(op.onnx_name()).is_some(), "import registry lacks {}", op.onnx_name());
    }
}
