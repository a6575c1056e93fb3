//! The import registry: ONNX op type -> builder of an `Op`, normalising every opset's
//! attribute forms to the IR's newest-opset meaning.

use super::attrs::Attrs;
use super::tensor::dtype_from_onnx;
use crate::ir::{
    Act, BatchNorm, Binary, Conv, ConvTranspose, Fact, Gemm, Graph, LayerNorm, Op, PadMode, Pool, Reduce,
    ReduceKind, Resize, ResizeMode, Unary, ValueId, Variadic,
};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, anyhow, bail};

/// What a builder sees of one node while it is being imported.
pub struct Cx<'a> {
    /// The graph under construction (for facts and for adding constant inputs).
    pub g: &'a mut Graph,
    /// The node's attributes.
    pub a: Attrs<'a>,
    /// The model's default-domain opset version.
    pub opset: i64,
    /// The node's name (for naming constants).
    pub name: &'a str,
    /// The node's inputs; builders may rewrite them (attributes that became inputs).
    pub inputs: Vec<Option<ValueId>>,
    /// Number of outputs the node declares.
    pub n_outputs: usize,
    /// For each declared output: whether it is named and read by a node or the graph.
    pub out_used: Vec<bool>,
}

impl Cx<'_> {
    /// Fact of input `i`, if present.
    pub fn fact(&self, i: usize) -> Option<&Fact> {
        self.inputs.get(i).copied().flatten().map(|v| self.g.fact(v))
    }
    /// Constant value of input `i`, if present and constant.
    pub fn konst(&self, i: usize) -> Option<&Tensor> {
        self.fact(i).and_then(|f| f.konst.as_ref())
    }
    /// True if output `i` is named and read.
    pub fn used(&self, i: usize) -> bool {
        self.out_used.get(i).copied().unwrap_or(false)
    }
    /// Dtype of input `i`.
    pub fn dtype(&self, i: usize) -> Result<DType> {
        self.fact(i).map(|f| f.dtype).ok_or_else(|| anyhow!("input {i} is missing"))
    }
    /// Makes input `i` a new constant (padding with absent inputs).
    pub fn set_const(&mut self, i: usize, what: &str, t: Tensor) {
        let name = self.g.unique_name(&format!("{}_{what}", self.name));
        let v = self.g.add_const(&name, t);
        if self.inputs.len() <= i {
            self.inputs.resize(i + 1, None);
        }
        self.inputs[i] = Some(v);
    }
    /// Moves an ints attribute (if present) to input `i` as an int64 constant.
    fn ints_to_input(&mut self, attr: &str, i: usize, required: bool) -> Result<()> {
        match self.a.opt_ints(attr)? {
            Some(v) => self.set_const(i, attr, Tensor::from_vec(vec![v.len()], v)),
            None if required => bail!("attribute '{attr}' is required"),
            None => {}
        }
        Ok(())
    }
    /// Input `i` if present and an empty constant means "absent": drop it.
    fn drop_empty(&mut self, i: usize) {
        if self.konst(i).is_some_and(|t| t.is_empty()) {
            self.inputs[i] = None;
        }
    }
}

/// Builds an `Op` from a node, possibly rewriting its inputs.
pub type Builder = fn(&mut Cx) -> Result<Op>;

/// The builder for an ONNX op type of the default domain, or `None` if pare lacks it.
/// (`Constant` is handled by the importer itself: it becomes a graph constant.)
pub fn builder(op_type: &str) -> Option<Builder> {
    use Binary as B;
    use Unary as U;
    let b: Builder = match op_type {
        "Conv" => conv,
        "ConvTranspose" => conv_transpose,
        "Gemm" => |c| {
            let (alpha, beta) = (c.a.float("alpha", 1.0)?, c.a.float("beta", 1.0)?);
            let (trans_a, trans_b) = (c.a.flag("transA", false)?, c.a.flag("transB", false)?);
            Ok(Op::Gemm(Gemm { alpha, beta, trans_a, trans_b, act: Act::None }))
        },
        "MatMul" => |_| Ok(Op::MatMul),
        "BatchNormalization" => |c| {
            let epsilon = c.a.float("epsilon", 1e-5)?;
            let momentum = c.a.float("momentum", 0.9)?;
            Ok(Op::BatchNorm(BatchNorm { epsilon, momentum, training: c.a.flag("training_mode", false)? }))
        },
        "LayerNormalization" => |c| {
            let (axis, epsilon) = (c.a.int("axis", -1)?, c.a.float("epsilon", 1e-5)?);
            Ok(Op::LayerNorm(LayerNorm { axis, epsilon, stats: c.used(1) || c.used(2) }))
        },
        "MaxPool" => |c| {
            if c.a.int("storage_order", 0)? != 0 {
                bail!("MaxPool storage_order=1 (column-major indices) is not supported");
            }
            Ok(Op::MaxPool(pool(c)?))
        },
        "AveragePool" => |c| Ok(Op::AveragePool(pool(c)?)),
        "GlobalAveragePool" => |_| Ok(Op::GlobalAveragePool),
        "GlobalMaxPool" => |_| Ok(Op::GlobalMaxPool),
        "Softmax" => |c| softmax(c, false),
        "LogSoftmax" => |c| softmax(c, true),
        "Relu" => |_| Ok(Op::Unary(U::Relu)),
        "Sigmoid" => |_| Ok(Op::Unary(U::Sigmoid)),
        "Tanh" => |_| Ok(Op::Unary(U::Tanh)),
        "Erf" => |_| Ok(Op::Unary(U::Erf)),
        "Exp" => |_| Ok(Op::Unary(U::Exp)),
        "Log" => |_| Ok(Op::Unary(U::Log)),
        "Sqrt" => |_| Ok(Op::Unary(U::Sqrt)),
        "Neg" => |_| Ok(Op::Unary(U::Neg)),
        "Abs" => |_| Ok(Op::Unary(U::Abs)),
        "Floor" => |_| Ok(Op::Unary(U::Floor)),
        "Ceil" => |_| Ok(Op::Unary(U::Ceil)),
        "Round" => |_| Ok(Op::Unary(U::Round)),
        "Reciprocal" => |_| Ok(Op::Unary(U::Reciprocal)),
        "Sin" => |_| Ok(Op::Unary(U::Sin)),
        "Cos" => |_| Ok(Op::Unary(U::Cos)),
        "Tan" => |_| Ok(Op::Unary(U::Tan)),
        "Asin" => |_| Ok(Op::Unary(U::Asin)),
        "Acos" => |_| Ok(Op::Unary(U::Acos)),
        "Atan" => |_| Ok(Op::Unary(U::Atan)),
        "Sinh" => |_| Ok(Op::Unary(U::Sinh)),
        "Cosh" => |_| Ok(Op::Unary(U::Cosh)),
        "Asinh" => |_| Ok(Op::Unary(U::Asinh)),
        "Acosh" => |_| Ok(Op::Unary(U::Acosh)),
        "Atanh" => |_| Ok(Op::Unary(U::Atanh)),
        "Sign" => |_| Ok(Op::Unary(U::Sign)),
        "Not" => |_| Ok(Op::Unary(U::Not)),
        "Softplus" => |_| Ok(Op::Unary(U::Softplus)),
        "Softsign" => |_| Ok(Op::Unary(U::Softsign)),
        "HardSwish" => |_| Ok(Op::Unary(U::HardSwish)),
        "Mish" => |_| Ok(Op::Unary(U::Mish)),
        "IsNaN" => |_| Ok(Op::Unary(U::IsNaN)),
        "Gelu" => |c| match c.a.string("approximate", "none")?.as_str() {
            "none" => Ok(Op::Unary(U::Gelu { tanh: false })),
            "tanh" => Ok(Op::Unary(U::Gelu { tanh: true })),
            other => bail!("Gelu approximate '{other}' is not 'none' or 'tanh'"),
        },
        "LeakyRelu" => |c| Ok(Op::Unary(U::LeakyRelu(c.a.float("alpha", 0.01)?))),
        "Elu" => |c| Ok(Op::Unary(U::Elu(c.a.float("alpha", 1.0)?))),
        "Celu" => |c| Ok(Op::Unary(U::Celu(c.a.float("alpha", 1.0)?))),
        "ThresholdedRelu" => |c| Ok(Op::Unary(U::ThresholdedRelu(c.a.float("alpha", 1.0)?))),
        "Selu" => |c| {
            let alpha = c.a.float("alpha", 1.673_263_2)?;
            Ok(Op::Unary(U::Selu { alpha, gamma: c.a.float("gamma", 1.050_701)? }))
        },
        "HardSigmoid" => |c| {
            Ok(Op::Unary(U::HardSigmoid { alpha: c.a.float("alpha", 0.2)?, beta: c.a.float("beta", 0.5)? }))
        },
        "IsInf" => |c| {
            let (neg, pos) = (c.a.flag("detect_negative", true)?, c.a.flag("detect_positive", true)?);
            Ok(Op::Unary(U::IsInf { neg, pos }))
        },
        "Add" => |_| Ok(Op::Binary(B::Add)),
        "Sub" => |_| Ok(Op::Binary(B::Sub)),
        "Mul" => |_| Ok(Op::Binary(B::Mul)),
        "Div" => |_| Ok(Op::Binary(B::Div)),
        "Pow" => |_| Ok(Op::Binary(B::Pow)),
        "Mod" => |c| Ok(Op::Binary(B::Mod { fmod: c.a.flag("fmod", false)? })),
        "Equal" => |_| Ok(Op::Binary(B::Equal)),
        "Less" => |_| Ok(Op::Binary(B::Less)),
        "LessOrEqual" => |_| Ok(Op::Binary(B::LessOrEqual)),
        "Greater" => |_| Ok(Op::Binary(B::Greater)),
        "GreaterOrEqual" => |_| Ok(Op::Binary(B::GreaterOrEqual)),
        "And" => |_| Ok(Op::Binary(B::And)),
        "Or" => |_| Ok(Op::Binary(B::Or)),
        "Xor" => |_| Ok(Op::Binary(B::Xor)),
        "PRelu" => |_| Ok(Op::Binary(B::PRelu)),
        "BitShift" => |c| match c.a.string("direction", "")?.as_str() {
            "LEFT" => Ok(Op::Binary(B::BitShiftLeft)),
            "RIGHT" => Ok(Op::Binary(B::BitShiftRight)),
            other => bail!("BitShift direction '{other}' is not LEFT or RIGHT"),
        },
        "BitwiseAnd" => |_| Ok(Op::Binary(B::BitwiseAnd)),
        "BitwiseOr" => |_| Ok(Op::Binary(B::BitwiseOr)),
        "BitwiseXor" => |_| Ok(Op::Binary(B::BitwiseXor)),
        "Sum" => |_| Ok(Op::Variadic(Variadic::Sum)),
        "Mean" => |_| Ok(Op::Variadic(Variadic::Mean)),
        "Max" => |_| Ok(Op::Variadic(Variadic::Max)),
        "Min" => |_| Ok(Op::Variadic(Variadic::Min)),
        "Clip" => clip,
        "Where" => |_| Ok(Op::Where),
        "Cast" => |c| {
            let to = c.a.opt_int("to")?.ok_or_else(|| anyhow!("attribute 'to' is required"))?;
            Ok(Op::Cast(dtype_from_onnx(to as i32)?))
        },
        "CastLike" => |c| {
            let to = c.dtype(1)?;
            c.inputs.truncate(1);
            Ok(Op::Cast(to))
        },
        "Reshape" => |c| Ok(Op::Reshape { allowzero: c.a.flag("allowzero", false)? }),
        "Flatten" => |c| Ok(Op::Flatten { axis: c.a.int("axis", 1)? }),
        "Transpose" => |c| {
            let perm = match c.a.opt_ints("perm")? {
                Some(p) if p.iter().any(|&x| x < 0) => bail!("perm {p:?} has a negative entry"),
                Some(p) => Some(p.into_iter().map(|x| x as usize).collect()),
                None => None,
            };
            Ok(Op::Transpose { perm })
        },
        "Concat" => |c| {
            let axis = c.a.opt_int("axis")?.ok_or_else(|| anyhow!("attribute 'axis' is required"))?;
            Ok(Op::Concat { axis })
        },
        "Split" => |c| {
            if c.opset < 13 {
                c.ints_to_input("split", 1, false)?;
            }
            Ok(Op::Split { axis: c.a.int("axis", 0)?, num_outputs: c.n_outputs })
        },
        "Slice" => |c| {
            if c.opset < 10 {
                c.inputs.truncate(1);
                c.ints_to_input("starts", 1, true)?;
                c.ints_to_input("ends", 2, true)?;
                c.ints_to_input("axes", 3, false)?;
            }
            Ok(Op::Slice)
        },
        "Gather" => |c| Ok(Op::Gather { axis: c.a.int("axis", 0)? }),
        "GatherElements" => |c| Ok(Op::GatherElements { axis: c.a.int("axis", 0)? }),
        "Squeeze" => |c| {
            if c.opset < 13 {
                c.ints_to_input("axes", 1, false)?;
            }
            Ok(Op::Squeeze)
        },
        "Unsqueeze" => |c| {
            if c.opset < 13 {
                c.ints_to_input("axes", 1, true)?;
            }
            Ok(Op::Unsqueeze)
        },
        "Shape" => |c| Ok(Op::Shape { start: c.a.int("start", 0)?, end: c.a.opt_int("end")? }),
        "Size" => |_| Ok(Op::Size),
        "ConstantOfShape" => |c| {
            let v = c.a.opt_tensor("value")?.unwrap_or_else(|| Tensor::from_vec(vec![1], vec![0f32]));
            if v.len() != 1 {
                bail!("ConstantOfShape value must hold one element, got shape {:?}", v.shape());
            }
            Ok(Op::ConstantOfShape(v))
        },
        "Expand" => |_| Ok(Op::Expand),
        "Range" => |_| Ok(Op::Range),
        "Tile" => |_| Ok(Op::Tile),
        "Identity" => |_| Ok(Op::Identity),
        "Dropout" => |c| {
            let ratio = match (c.opset < 12, c.konst(1)) {
                (true, _) => c.a.float("ratio", 0.5)?,
                (false, Some(t)) => t.to_f64_vec().first().copied().unwrap_or(0.5) as f32,
                (false, None) => 0.5,
            };
            c.inputs.truncate(1);
            Ok(Op::Dropout { ratio })
        },
        "Pad" => pad,
        "Upsample" => |c| {
            let mode = resize_mode(&c.a.string("mode", "nearest")?)?;
            if c.opset < 9 {
                let scales =
                    c.a.opt_floats("scales")?.ok_or_else(|| anyhow!("attribute 'scales' is required"))?;
                c.inputs.truncate(1);
                c.set_const(2, "scales", Tensor::from_vec(vec![scales.len()], scales));
            } else {
                c.inputs =
                    vec![c.inputs.first().copied().flatten(), None, c.inputs.get(1).copied().flatten()];
            }
            Ok(Op::Resize(old_resize(mode)))
        },
        "Resize" => resize,
        "ReduceSum" => |c| reduce(c, ReduceKind::Sum, 13),
        "ReduceMean" => |c| reduce(c, ReduceKind::Mean, 18),
        "ReduceMax" => |c| reduce(c, ReduceKind::Max, 18),
        "ReduceMin" => |c| reduce(c, ReduceKind::Min, 18),
        "ReduceProd" => |c| reduce(c, ReduceKind::Prod, 18),
        "ReduceL1" => |c| reduce(c, ReduceKind::L1, 18),
        "ReduceL2" => |c| reduce(c, ReduceKind::L2, 18),
        "ReduceLogSum" => |c| reduce(c, ReduceKind::LogSum, 18),
        "ReduceLogSumExp" => |c| reduce(c, ReduceKind::LogSumExp, 18),
        "ReduceSumSquare" => |c| reduce(c, ReduceKind::SumSquare, 18),
        "ArgMax" => |c| arg_reduce(c, true),
        "ArgMin" => |c| arg_reduce(c, false),
        "QuantizeLinear" => |c| {
            no_blocks(c)?;
            let to = match (c.fact(2), c.a.int("output_dtype", 0)?) {
                (Some(zp), _) => zp.dtype,
                (None, 0) => DType::U8,
                (None, code) => dtype_from_onnx(code as i32)?,
            };
            Ok(Op::QuantizeLinear { axis: c.a.int("axis", 1)?, to })
        },
        "DequantizeLinear" => |c| {
            no_blocks(c)?;
            Ok(Op::DequantizeLinear { axis: c.a.int("axis", 1)? })
        },
        _ => return None,
    };
    Some(b)
}

fn conv(c: &mut Cx) -> Result<Op> {
    Ok(Op::Conv(Conv {
        kernel: c.a.usizes("kernel_shape")?,
        strides: c.a.usizes("strides")?,
        dilations: c.a.usizes("dilations")?,
        pads: c.a.usizes("pads")?,
        auto_pad: c.a.auto_pad()?,
        group: group(c)?,
        act: Act::None,
    }))
}

fn conv_transpose(c: &mut Cx) -> Result<Op> {
    Ok(Op::ConvTranspose(ConvTranspose {
        kernel: c.a.usizes("kernel_shape")?,
        strides: c.a.usizes("strides")?,
        dilations: c.a.usizes("dilations")?,
        pads: c.a.usizes("pads")?,
        output_padding: c.a.usizes("output_padding")?,
        output_shape: c.a.usizes("output_shape")?,
        auto_pad: c.a.auto_pad()?,
        group: group(c)?,
    }))
}

fn group(c: &Cx) -> Result<usize> {
    match c.a.int("group", 1)? {
        g if g >= 1 => Ok(g as usize),
        g => bail!("group must be at least 1, got {g}"),
    }
}

fn pool(c: &mut Cx) -> Result<Pool> {
    let kernel = c.a.usizes("kernel_shape")?;
    if kernel.is_empty() {
        bail!("attribute 'kernel_shape' is required");
    }
    Ok(Pool {
        kernel,
        strides: c.a.usizes("strides")?,
        dilations: c.a.usizes("dilations")?,
        pads: c.a.usizes("pads")?,
        auto_pad: c.a.auto_pad()?,
        ceil_mode: c.a.flag("ceil_mode", false)?,
        count_include_pad: c.a.flag("count_include_pad", false)?,
        indices: c.used(1),
    })
}

/// Before opset 13, Softmax flattens to 2-D at `axis` (default 1); from 13 it works along
/// `axis` (default -1). When `axis` is the last axis both agree, so `legacy` is dropped.
fn softmax(c: &mut Cx, log: bool) -> Result<Op> {
    let legacy = c.opset < 13;
    let axis = c.a.int("axis", if legacy { 1 } else { -1 })?;
    let last = c.fact(0).is_some_and(|f| {
        let r = f.rank() as i64;
        axis == -1 || axis == r - 1
    });
    Ok(Op::Softmax { axis, log, legacy: legacy && !last })
}

fn clip(c: &mut Cx) -> Result<Op> {
    if c.opset < 11 {
        let dtype = c.dtype(0)?;
        c.inputs.truncate(1);
        if let Some(min) = c.a.opt_float("min")? {
            c.set_const(1, "min", Tensor::scalar(min).cast(dtype));
        }
        if let Some(max) = c.a.opt_float("max")? {
            c.set_const(2, "max", Tensor::scalar(max).cast(dtype));
        }
    }
    Ok(Op::Clip)
}

fn pad(c: &mut Cx) -> Result<Op> {
    let mode = match c.a.string("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        other => bail!("Pad mode '{other}' is not constant, reflect, edge or wrap"),
    };
    if c.opset < 11 {
        let dtype = c.dtype(0)?;
        c.inputs.truncate(1);
        c.ints_to_input("pads", 1, true)?;
        let value = c.a.float("value", 0.0)?;
        if value != 0.0 {
            c.set_const(2, "value", Tensor::scalar(value).cast(dtype));
        }
    }
    Ok(Op::Pad(mode))
}

fn resize_mode(s: &str) -> Result<ResizeMode> {
    Ok(match s {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        "cubic" | "bicubic" => ResizeMode::Cubic,
        other => bail!("resize mode '{other}' is not nearest, linear or cubic"),
    })
}

/// Upsample (opset 7-9) and Resize-10: asymmetric coordinates, floor for nearest.
fn old_resize(mode: ResizeMode) -> Resize {
    Resize {
        mode,
        coord_mode: "asymmetric".into(),
        nearest_mode: "floor".into(),
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        axes: vec![],
        aspect_policy: "stretch".into(),
    }
}

fn resize(c: &mut Cx) -> Result<Op> {
    let mode = resize_mode(&c.a.string("mode", "nearest")?)?;
    if c.opset < 11 {
        c.inputs = vec![c.inputs.first().copied().flatten(), None, c.inputs.get(1).copied().flatten()];
        return Ok(Op::Resize(old_resize(mode)));
    }
    if c.a.flag("antialias", false)? {
        bail!("Resize antialias=1 is not supported");
    }
    for i in 1..c.inputs.len().min(4) {
        c.drop_empty(i);
    }
    Ok(Op::Resize(Resize {
        mode,
        coord_mode: c.a.string("coordinate_transformation_mode", "half_pixel")?,
        nearest_mode: c.a.string("nearest_mode", "round_prefer_floor")?,
        cubic_coeff_a: c.a.float("cubic_coeff_a", -0.75)?,
        exclude_outside: c.a.flag("exclude_outside", false)?,
        extrapolation_value: c.a.float("extrapolation_value", 0.0)?,
        axes: c.a.ints("axes")?,
        aspect_policy: c.a.string("keep_aspect_ratio_policy", "stretch")?,
    }))
}

/// `axes_input_since`: the opset from which `axes` is an input rather than an attribute.
fn reduce(c: &mut Cx, kind: ReduceKind, axes_input_since: i64) -> Result<Op> {
    if c.opset < axes_input_since {
        c.inputs.truncate(1);
        c.ints_to_input("axes", 1, false)?;
    }
    Ok(Op::Reduce(Reduce {
        kind,
        keepdims: c.a.flag("keepdims", true)?,
        noop_with_empty_axes: c.a.flag("noop_with_empty_axes", false)?,
    }))
}

fn arg_reduce(c: &mut Cx, max: bool) -> Result<Op> {
    Ok(Op::ArgReduce {
        max,
        axis: c.a.int("axis", 0)?,
        keepdims: c.a.flag("keepdims", true)?,
        select_last: c.a.flag("select_last_index", false)?,
    })
}

fn no_blocks(c: &Cx) -> Result<()> {
    match c.a.int("block_size", 0)? {
        0 => Ok(()),
        b => bail!("blocked quantization (block_size={b}) is not supported"),
    }
}
