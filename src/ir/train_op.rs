//! Training-only operators: gradients of forward ops, training-mode forward ops and losses.
//! They are pare extensions that only appear in training graphs built by `autodiff`; export
//! refuses them.

use super::op::{Conv, Pool, Unary};
use crate::tensor::DType;

/// Loss functions. Each loss op outputs the scalar loss and its gradient with respect to the
/// prediction (inputs: prediction, target), so a training graph needs no separate loss backward.
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    /// Mean softmax cross-entropy over the batch. The target is either int64 class labels `[N]`
    /// or float probabilities `[N, C]` (soft targets). Logits are divided by `temperature`
    /// and the loss is multiplied by `temperature²` (Hinton et al.) so gradients keep their size.
    /// With hard labels, `label_smoothing` mixes the one-hot target with a uniform one.
    CrossEntropy {
        /// Label smoothing ε in [0, 1).
        label_smoothing: f32,
        /// Softmax temperature T > 0.
        temperature: f32,
    },
    /// Mean squared error over all elements.
    Mse,
    /// KL(target ‖ softmax(logits / T)) averaged over the batch and multiplied by T²;
    /// the target is a probability distribution `[N, C]`.
    KlDiv {
        /// Softmax temperature T > 0.
        temperature: f32,
    },
}

/// Training-only operators.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainOp {
    /// dX = dY · f'(X) for an element-wise function (inputs: X, dY). For Relu the first input
    /// may equally be the Relu's output, since both are positive at the same places.
    UnaryGrad(Unary),
    /// Clip's gradient (inputs: X, dY, optional min, optional max): dY where min ≤ X ≤ max.
    ClipGrad,
    /// Softmax (or LogSoftmax when `log`) gradient along `axis` (inputs: Y, dY).
    SoftmaxGrad {
        /// Axis.
        axis: i64,
        /// LogSoftmax.
        log: bool,
    },
    /// Conv's input gradient (inputs: dY, W) for an input of shape `x_shape`.
    ConvGradInput {
        /// The forward convolution.
        conv: Conv,
        /// Shape of the forward input.
        x_shape: Vec<usize>,
    },
    /// Conv's weight gradient (inputs: X, dY) for a weight of shape `w_shape`.
    ConvGradWeight {
        /// The forward convolution.
        conv: Conv,
        /// Shape of the weight.
        w_shape: Vec<usize>,
    },
    /// Bias gradient of a convolution: dY `[N, C, ...]` summed to `[C]`.
    ChannelSum,
    /// MaxPool's gradient (inputs: dY, Indices from a MaxPool with `indices`).
    MaxPoolGrad {
        /// The forward pooling.
        pool: Pool,
        /// Shape of the forward input.
        x_shape: Vec<usize>,
    },
    /// AveragePool's gradient (input: dY).
    AvgPoolGrad {
        /// The forward pooling.
        pool: Pool,
        /// Shape of the forward input.
        x_shape: Vec<usize>,
    },
    /// Training-mode batch normalisation (inputs: X, scale, B, running mean, running var);
    /// outputs Y, new running mean, new running var (unbiased batch variance, PyTorch style),
    /// and the batch mean and 1/sqrt(var + ε) for the backward pass.
    BatchNormTrain {
        /// Added to the variance.
        epsilon: f32,
        /// Weight of the old running statistic (ONNX convention: 0.9 keeps 90 %).
        momentum: f32,
    },
    /// Batch normalisation gradient (inputs: X, scale, batch mean, inv std, dY);
    /// outputs dX, dScale, dB.
    BatchNormGrad,
    /// LayerNormalization gradient (inputs: X, scale, Mean, InvStdDev, dY); outputs dX,
    /// dScale, dB (scale and bias gradients have the scale's shape).
    LayerNormGrad {
        /// First normalised axis.
        axis: i64,
    },
    /// Gather's data gradient (inputs: indices, dY): scatter-add into zeros of `data_shape`.
    GatherGrad {
        /// Axis.
        axis: i64,
        /// Shape of the gathered data.
        data_shape: Vec<usize>,
    },
    /// Training-mode dropout (inputs: X, seed int64 scalar); outputs Y and the scaled mask
    /// (0 or 1/(1-ratio)), which is the gradient's multiplier.
    DropoutTrain {
        /// Drop probability.
        ratio: f32,
    },
    /// Straight-through gradient of QuantizeLinear (`rescale`: divided by the scale) or of
    /// FakeQuant (inputs: X, scale, optional zero point, dY): dY where X does not saturate.
    QuantGrad {
        /// Channel axis of per-axis scales.
        axis: i64,
        /// Integer type when no zero point is given.
        to: DType,
        /// Divide by the scale (the forward output is in integer units).
        rescale: bool,
    },
    /// Gradient of DequantizeLinear with respect to its integer input, as float32
    /// (inputs: scale, dY): dY · scale.
    DequantizeGrad {
        /// Channel axis of per-axis scales.
        axis: i64,
    },
    /// A loss (inputs: prediction, target); outputs the scalar loss and d loss / d prediction.
    Loss(Loss),
}

impl TrainOp {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            TrainOp::UnaryGrad(_) => "UnaryGrad",
            TrainOp::ClipGrad => "ClipGrad",
            TrainOp::SoftmaxGrad { .. } => "SoftmaxGrad",
            TrainOp::ConvGradInput { .. } => "ConvGradInput",
            TrainOp::ConvGradWeight { .. } => "ConvGradWeight",
            TrainOp::ChannelSum => "ChannelSum",
            TrainOp::MaxPoolGrad { .. } => "MaxPoolGrad",
            TrainOp::AvgPoolGrad { .. } => "AveragePoolGrad",
            TrainOp::BatchNormTrain { .. } => "BatchNormTrain",
            TrainOp::BatchNormGrad => "BatchNormGrad",
            TrainOp::LayerNormGrad { .. } => "LayerNormGrad",
            TrainOp::GatherGrad { .. } => "GatherGrad",
            TrainOp::DropoutTrain { .. } => "DropoutTrain",
            TrainOp::QuantGrad { .. } => "QuantGrad",
            TrainOp::DequantizeGrad { .. } => "DequantizeGrad",
            TrainOp::Loss(Loss::CrossEntropy { .. }) => "SoftmaxCrossEntropyLoss",
            TrainOp::Loss(Loss::Mse) => "MseLoss",
            TrainOp::Loss(Loss::KlDiv { .. }) => "KlDivLoss",
        }
    }
}
