//! The closed set of operators. Attributes are normalised to the newest opset's meaning
//! by the importer (attribute forms of old opsets become constant inputs).

pub use super::train_op::{Loss, TrainOp};
use crate::tensor::{DType, Tensor};

/// A fused activation applied after an op's bias (a pare extension; exported as its own node).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// No activation.
    None,
    /// max(x, 0).
    Relu,
    /// clamp(x, min, max), e.g. Relu6.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// x if x > 0 else alpha * x.
    LeakyRelu(f32),
    /// 1 / (1 + exp(-x)).
    Sigmoid,
    /// clamp(alpha * x + beta, 0, 1).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// x * hardsigmoid(x; 1/6, 1/2).
    HardSwish,
}

/// ONNX `auto_pad`, resolved against shapes at inference time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    /// Explicit `pads`.
    NotSet,
    /// Pad so that output = ceil(input / stride); extra padding at the end.
    SameUpper,
    /// Same, extra padding at the beginning.
    SameLower,
    /// No padding.
    Valid,
}

/// Convolution attributes (inputs: X, W, optional B).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// Kernel spatial shape (empty: from the weight).
    pub kernel: Vec<usize>,
    /// Strides per spatial axis (empty: all 1).
    pub strides: Vec<usize>,
    /// Dilations per spatial axis (empty: all 1).
    pub dilations: Vec<usize>,
    /// Pads: all begins then all ends (empty: zeros).
    pub pads: Vec<usize>,
    /// Auto padding mode.
    pub auto_pad: AutoPad,
    /// Number of groups.
    pub group: usize,
    /// Fused activation applied after the bias (a pare extension; exported as a separate node).
    pub act: Act,
}

/// Transposed convolution attributes (inputs: X, W, optional B).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvTranspose {
    /// Kernel spatial shape (empty: from the weight).
    pub kernel: Vec<usize>,
    /// Strides.
    pub strides: Vec<usize>,
    /// Dilations.
    pub dilations: Vec<usize>,
    /// Pads: begins then ends.
    pub pads: Vec<usize>,
    /// Extra size added to one side of the output.
    pub output_padding: Vec<usize>,
    /// Explicit output spatial shape (overrides pads).
    pub output_shape: Vec<usize>,
    /// Auto padding mode.
    pub auto_pad: AutoPad,
    /// Number of groups.
    pub group: usize,
}

/// Gemm attributes: Y = alpha * A' * B' + beta * C.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of C.
    pub beta: f32,
    /// Transpose A.
    pub trans_a: bool,
    /// Transpose B.
    pub trans_b: bool,
    /// Fused activation (pare extension; exported as a separate node).
    pub act: Act,
}

/// BatchNormalization attributes (inputs: X, scale, B, mean, var).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    /// Added to the variance.
    pub epsilon: f32,
    /// Running-average momentum (training).
    pub momentum: f32,
    /// Use batch statistics and output updated running stats.
    pub training: bool,
}

/// LayerNormalization attributes (inputs: X, scale, optional B).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    /// First normalised axis (may be negative).
    pub axis: i64,
    /// Added to the variance.
    pub epsilon: f32,
    /// Also output `Mean` and `InvStdDev` (outputs 1 and 2). When false, the op has one output.
    pub stats: bool,
}

/// Pooling attributes, shared by MaxPool and AveragePool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Window shape.
    pub kernel: Vec<usize>,
    /// Strides (empty: all 1).
    pub strides: Vec<usize>,
    /// Dilations (empty: all 1).
    pub dilations: Vec<usize>,
    /// Pads: begins then ends (empty: zeros).
    pub pads: Vec<usize>,
    /// Auto padding mode.
    pub auto_pad: AutoPad,
    /// Round output size up instead of down.
    pub ceil_mode: bool,
    /// AveragePool: count padded positions in the divisor.
    pub count_include_pad: bool,
    /// MaxPool: also output the argmax `Indices` (second output). When false, the op has one output.
    pub indices: bool,
}

/// Element-wise unary functions.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    Erf,
    Exp,
    Log,
    Sqrt,
    Neg,
    Abs,
    Floor,
    Ceil,
    Round,
    Reciprocal,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Sign,
    Not,
    Softplus,
    Softsign,
    HardSwish,
    Mish,
    IsNaN,
    /// Gelu; `tanh` selects the tanh approximation.
    Gelu {
        tanh: bool,
    },
    LeakyRelu(f32),
    Elu(f32),
    Celu(f32),
    ThresholdedRelu(f32),
    Selu {
        alpha: f32,
        gamma: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// IsInf with which signs to detect.
    IsInf {
        neg: bool,
        pos: bool,
    },
}

/// Element-wise binary functions with broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// Mod; `fmod` selects C fmod semantics (sign of dividend).
    Mod {
        fmod: bool,
    },
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
    PRelu,
    BitShiftLeft,
    BitShiftRight,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
}

/// N-ary element-wise functions with broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Variadic {
    Sum,
    Mean,
    Max,
    Min,
}

/// Reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

/// Reduce attributes (inputs: data, optional axes).
#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    /// Which reduction.
    pub kind: ReduceKind,
    /// Keep reduced axes as size 1.
    pub keepdims: bool,
    /// With no axes: identity if true, reduce all if false.
    pub noop_with_empty_axes: bool,
}

/// Resize interpolation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

/// Resize attributes (inputs: X, roi?, scales?, sizes?).
#[derive(Clone, Debug, PartialEq)]
pub struct Resize {
    /// Interpolation.
    pub mode: ResizeMode,
    /// `coordinate_transformation_mode` as in ONNX (e.g. "half_pixel", "asymmetric").
    pub coord_mode: String,
    /// `nearest_mode` ("round_prefer_floor", "floor", ...).
    pub nearest_mode: String,
    /// Cubic coefficient.
    pub cubic_coeff_a: f32,
    /// Exclude outside pixels in cubic mode.
    pub exclude_outside: bool,
    /// Value used for outside samples with `tf_crop_and_resize`.
    pub extrapolation_value: f32,
    /// Axes the scales/sizes refer to (empty: all).
    pub axes: Vec<i64>,
    /// `keep_aspect_ratio_policy` ("stretch", "not_larger", "not_smaller").
    pub aspect_policy: String,
}

/// Pad mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

/// The operators pare knows. Inputs are positional, as in ONNX; optional inputs may be absent.
///
/// # Adding an op
/// Add the variant, then follow the compiler: every match below is exhaustive (no `_` arm).
/// 1. [`Op::onnx_name`], [`Op::foldable`], [`Op::param_slots`] (this file);
/// 2. `family()` in `src/ops/mod.rs`, then the family's `infer`/`eval` in `src/ops/<family>`;
/// 3. `Op::macs` (`src/ops/cost.rs`) and `Op::channel_flow` (`src/ops/channels.rs`);
/// 4. the gradient rule, or an entry in the "no gradient rule" list (`src/autodiff/rules.rs`);
/// 5. export (`src/onnx/export.rs`) and the import registry (`src/onnx/registry.rs`);
/// 6. `variant` and `samples` in `src/onnx/coverage_tests.rs`, whose tests check that the
///    family accepts the op and that the registry imports its name.
///
/// See `docs/architecture.md` for the whole checklist.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Convolution.
    Conv(Conv),
    /// Transposed convolution.
    ConvTranspose(ConvTranspose),
    /// General matrix multiply.
    Gemm(Gemm),
    /// numpy matmul (batched, broadcast).
    MatMul,
    /// Batch normalisation.
    BatchNorm(BatchNorm),
    /// Layer normalisation.
    LayerNorm(LayerNorm),
    /// Max pooling (outputs: Y, optional Indices).
    MaxPool(Pool),
    /// Average pooling.
    AveragePool(Pool),
    /// Mean over all spatial positions.
    GlobalAveragePool,
    /// Max over all spatial positions.
    GlobalMaxPool,
    /// Softmax (or LogSoftmax when `log`) along `axis`; `legacy` gives opset < 13 semantics
    /// (flatten to 2-D at `axis`).
    Softmax {
        /// Axis.
        axis: i64,
        /// Log-softmax.
        log: bool,
        /// Opset < 13 coercion to 2-D.
        legacy: bool,
    },
    /// Element-wise unary function.
    Unary(Unary),
    /// Element-wise binary function with broadcasting.
    Binary(Binary),
    /// N-ary element-wise function with broadcasting.
    Variadic(Variadic),
    /// Clamp (inputs: X, optional min, optional max).
    Clip,
    /// Select (inputs: cond, X, Y).
    Where,
    /// Element type conversion.
    Cast(DType),
    /// Reshape (inputs: data, shape).
    Reshape {
        /// A 0 in the shape means 0, not "copy".
        allowzero: bool,
    },
    /// Flatten to 2-D at `axis`.
    Flatten {
        /// Axis (may be negative).
        axis: i64,
    },
    /// Permute axes (`None`: reverse).
    Transpose {
        /// Permutation.
        perm: Option<Vec<usize>>,
    },
    /// Concatenate along `axis`.
    Concat {
        /// Axis (may be negative).
        axis: i64,
    },
    /// Split along `axis` (inputs: data, optional split sizes).
    Split {
        /// Axis (may be negative).
        axis: i64,
        /// Number of outputs.
        num_outputs: usize,
    },
    /// Slice (inputs: data, starts, ends, optional axes, optional steps).
    Slice,
    /// Gather along `axis` (inputs: data, indices).
    Gather {
        /// Axis (may be negative).
        axis: i64,
    },
    /// GatherElements along `axis`.
    GatherElements {
        /// Axis (may be negative).
        axis: i64,
    },
    /// Remove size-1 axes (inputs: data, optional axes).
    Squeeze,
    /// Insert size-1 axes (inputs: data, axes).
    Unsqueeze,
    /// The shape as int64, optionally a slice of it.
    Shape {
        /// First axis.
        start: i64,
        /// End axis (exclusive).
        end: Option<i64>,
    },
    /// Number of elements as an int64 scalar.
    Size,
    /// A tensor of the given shape filled with a value (input: shape).
    ConstantOfShape(Tensor),
    /// Broadcast to a shape (inputs: data, shape).
    Expand,
    /// Arithmetic sequence (inputs: start, limit, delta).
    Range,
    /// Repeat (inputs: data, repeats).
    Tile,
    /// Identity.
    Identity,
    /// Dropout; identity at inference.
    Dropout {
        /// Drop probability (training).
        ratio: f32,
    },
    /// Pad (inputs: data, pads, optional constant value, optional axes).
    Pad(PadMode),
    /// Resize/upsample.
    Resize(Resize),
    /// Reductions (inputs: data, optional axes).
    Reduce(Reduce),
    /// ArgMax / ArgMin.
    ArgReduce {
        /// ArgMax if true, ArgMin otherwise.
        max: bool,
        /// Axis.
        axis: i64,
        /// Keep the reduced axis.
        keepdims: bool,
        /// Pick the last index among ties.
        select_last: bool,
    },
    /// Quantize to int8/uint8 (inputs: x, scale, optional zero point).
    QuantizeLinear {
        /// Channel axis for per-axis scales.
        axis: i64,
        /// Output type when no zero point is given.
        to: DType,
    },
    /// Dequantize (inputs: x, scale, optional zero point).
    DequantizeLinear {
        /// Channel axis for per-axis scales.
        axis: i64,
    },
    /// Quantize then dequantize in one float-to-float op (inputs: x, scale, optional zero
    /// point), for quantization-aware training: its gradient is the straight-through
    /// estimator, zero where `x` saturates. Exported as a QuantizeLinear/DequantizeLinear pair.
    FakeQuant {
        /// Channel axis for per-axis scales.
        axis: i64,
        /// Integer type when no zero point is given.
        to: DType,
    },
    /// A training-only op (gradients, losses); never exported.
    Train(TrainOp),
}

impl Op {
    /// The ONNX op type this op corresponds to.
    pub fn onnx_name(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::ConvTranspose(_) => "ConvTranspose",
            Op::Gemm(_) => "Gemm",
            Op::MatMul => "MatMul",
            Op::BatchNorm(_) => "BatchNormalization",
            Op::LayerNorm(_) => "LayerNormalization",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::GlobalMaxPool => "GlobalMaxPool",
            Op::Softmax { log: false, .. } => "Softmax",
            Op::Softmax { log: true, .. } => "LogSoftmax",
            Op::Unary(u) => unary_name(*u),
            Op::Binary(b) => binary_name(*b),
            Op::Variadic(v) => match v {
                Variadic::Sum => "Sum",
                Variadic::Mean => "Mean",
                Variadic::Max => "Max",
                Variadic::Min => "Min",
            },
            Op::Clip => "Clip",
            Op::Where => "Where",
            Op::Cast(_) => "Cast",
            Op::Reshape { .. } => "Reshape",
            Op::Flatten { .. } => "Flatten",
            Op::Transpose { .. } => "Transpose",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Slice => "Slice",
            Op::Gather { .. } => "Gather",
            Op::GatherElements { .. } => "GatherElements",
            Op::Squeeze => "Squeeze",
            Op::Unsqueeze => "Unsqueeze",
            Op::Shape { .. } => "Shape",
            Op::Size => "Size",
            Op::ConstantOfShape(_) => "ConstantOfShape",
            Op::Expand => "Expand",
            Op::Range => "Range",
            Op::Tile => "Tile",
            Op::Identity => "Identity",
            Op::Dropout { .. } => "Dropout",
            Op::Pad(_) => "Pad",
            Op::Resize(_) => "Resize",
            Op::Reduce(r) => match r.kind {
                ReduceKind::Sum => "ReduceSum",
                ReduceKind::Mean => "ReduceMean",
                ReduceKind::Max => "ReduceMax",
                ReduceKind::Min => "ReduceMin",
                ReduceKind::Prod => "ReduceProd",
                ReduceKind::L1 => "ReduceL1",
                ReduceKind::L2 => "ReduceL2",
                ReduceKind::LogSum => "ReduceLogSum",
                ReduceKind::LogSumExp => "ReduceLogSumExp",
                ReduceKind::SumSquare => "ReduceSumSquare",
            },
            Op::ArgReduce { max: true, .. } => "ArgMax",
            Op::ArgReduce { max: false, .. } => "ArgMin",
            Op::QuantizeLinear { .. } => "QuantizeLinear",
            Op::DequantizeLinear { .. } => "DequantizeLinear",
            Op::FakeQuant { .. } => "FakeQuant",
            Op::Train(t) => t.name(),
        }
    }

    /// True for ops whose result may be computed at graph-build time when all inputs are
    /// constant. Quantization ops never fold, so integer weights behind a DequantizeLinear stay
    /// integers; random and training-mode ops never fold. (A graph can also turn folding off,
    /// or pin values: see `Graph::set_folding` and `Graph::pin`.)
    pub fn foldable(&self) -> bool {
        match self {
            Op::QuantizeLinear { .. } | Op::DequantizeLinear { .. } | Op::FakeQuant { .. } => false,
            Op::Dropout { .. } => false,
            Op::BatchNorm(b) => !b.training,
            Op::Train(t) => !matches!(t, TrainOp::DropoutTrain { .. } | TrainOp::BatchNormTrain { .. }),
            Op::Conv(_)
            | Op::ConvTranspose(_)
            | Op::Gemm(_)
            | Op::MatMul
            | Op::LayerNorm(_)
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool
            | Op::Softmax { .. }
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Variadic(_)
            | Op::Clip
            | Op::Where
            | Op::Cast(_)
            | Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Transpose { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Slice
            | Op::Gather { .. }
            | Op::GatherElements { .. }
            | Op::Squeeze
            | Op::Unsqueeze
            | Op::Shape { .. }
            | Op::Size
            | Op::ConstantOfShape(_)
            | Op::Expand
            | Op::Range
            | Op::Tile
            | Op::Identity
            | Op::Pad(_)
            | Op::Resize(_)
            | Op::Reduce(_)
            | Op::ArgReduce { .. } => true,
        }
    }

    /// Input positions where a float constant is a trainable parameter of the layer
    /// (weights, biases, normalisation scales and shifts, embedding tables). Running
    /// statistics, shapes, axes and quantization parameters are not.
    pub fn param_slots(&self) -> &'static [usize] {
        match self {
            Op::Conv(_) | Op::ConvTranspose(_) => &[1, 2],
            Op::Gemm(_) => &[0, 1, 2],
            Op::MatMul => &[0, 1],
            Op::BatchNorm(_) | Op::LayerNorm(_) => &[1, 2],
            Op::Gather { .. } => &[0],
            Op::Binary(Binary::PRelu) => &[1],
            Op::Binary(_)
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool
            | Op::Softmax { .. }
            | Op::Unary(_)
            | Op::Variadic(_)
            | Op::Clip
            | Op::Where
            | Op::Cast(_)
            | Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Transpose { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Slice
            | Op::GatherElements { .. }
            | Op::Squeeze
            | Op::Unsqueeze
            | Op::Shape { .. }
            | Op::Size
            | Op::ConstantOfShape(_)
            | Op::Expand
            | Op::Range
            | Op::Tile
            | Op::Identity
            | Op::Dropout { .. }
            | Op::Pad(_)
            | Op::Resize(_)
            | Op::Reduce(_)
            | Op::ArgReduce { .. }
            | Op::QuantizeLinear { .. }
            | Op::DequantizeLinear { .. }
            | Op::FakeQuant { .. }
            | Op::Train(_) => &[],
        }
    }
}

/// ONNX name of a unary function.
pub fn unary_name(u: Unary) -> &'static str {
    use Unary::*;
    match u {
        Relu => "Relu",
        Sigmoid => "Sigmoid",
        Tanh => "Tanh",
        Erf => "Erf",
        Exp => "Exp",
        Log => "Log",
        Sqrt => "Sqrt",
        Neg => "Neg",
        Abs => "Abs",
        Floor => "Floor",
        Ceil => "Ceil",
        Round => "Round",
        Reciprocal => "Reciprocal",
        Sin => "Sin",
        Cos => "Cos",
        Tan => "Tan",
        Asin => "Asin",
        Acos => "Acos",
        Atan => "Atan",
        Sinh => "Sinh",
        Cosh => "Cosh",
        Asinh => "Asinh",
        Acosh => "Acosh",
        Atanh => "Atanh",
        Sign => "Sign",
        Not => "Not",
        Softplus => "Softplus",
        Softsign => "Softsign",
        HardSwish => "HardSwish",
        Mish => "Mish",
        IsNaN => "IsNaN",
        Gelu { .. } => "Gelu",
        LeakyRelu(_) => "LeakyRelu",
        Elu(_) => "Elu",
        Celu(_) => "Celu",
        ThresholdedRelu(_) => "ThresholdedRelu",
        Selu { .. } => "Selu",
        HardSigmoid { .. } => "HardSigmoid",
        IsInf { .. } => "IsInf",
    }
}

/// ONNX name of a binary function.
pub fn binary_name(b: Binary) -> &'static str {
    use Binary::*;
    match b {
        Add => "Add",
        Sub => "Sub",
        Mul => "Mul",
        Div => "Div",
        Pow => "Pow",
        Mod { .. } => "Mod",
        Equal => "Equal",
        Less => "Less",
        LessOrEqual => "LessOrEqual",
        Greater => "Greater",
        GreaterOrEqual => "GreaterOrEqual",
        And => "And",
        Or => "Or",
        Xor => "Xor",
        PRelu => "PRelu",
        BitShiftLeft | BitShiftRight => "BitShift",
        BitwiseAnd => "BitwiseAnd",
        BitwiseOr => "BitwiseOr",
        BitwiseXor => "BitwiseXor",
    }
}
