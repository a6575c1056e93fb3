//! Encoding a `Graph` as an ONNX model (opset 21, standard ops only).

use super::attrs::{attr_float, attr_int, attr_ints, attr_string, attr_tensor, auto_pad_name};
use super::proto::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, ValueInfoProto,
};
use super::tensor::{dtype_to_onnx, tensor_to_proto};
use crate::ir::{
    Act, AutoPad, Binary, Dim, Fact, Graph, Node, Op, PadMode, Pool, ResizeMode, Unary, ValueId,
};
use crate::tensor::{DType, Tensor};
use anyhow::{Context, Result, anyhow, bail};
use prost::Message;
use std::collections::HashSet;
use std::path::Path;

/// The opset every exported model declares.
pub const EXPORT_OPSET: i64 = 21;
/// The IR version every exported model declares.
pub const EXPORT_IR_VERSION: i64 = 10;

/// Serializes a graph as an ONNX model.
pub fn to_bytes(graph: &Graph) -> Result<Vec<u8>> {
    Ok(to_model(graph)?.encode_to_vec())
}

/// Writes a graph as an ONNX model file atomically (temporary file in the same folder,
/// fsync, rename). Errors start with the file's path.
pub fn save(graph: &Graph, path: &Path) -> Result<()> {
    let bytes = to_bytes(graph).map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
    crate::util::write_atomic(path, &bytes).map_err(|e| anyhow!("{}: cannot write: {e:#}", path.display()))
}

/// Builds the ModelProto for a graph.
pub fn to_model(graph: &Graph) -> Result<ModelProto> {
    let mut ex = Ex::new(graph);
    let (outputs, identities) = ex.outputs();
    for n in graph.topo_order()? {
        let node = graph.node(n)?;
        ex.node(node).with_context(|| format!("exporting {}", graph.describe_node(n)))?;
    }
    for (v, out_name) in identities {
        let input = ex.input(Some(v));
        ex.push("Identity", &out_name, vec![input], vec![out_name.clone()], vec![]);
    }
    let inputs = graph.inputs().iter().map(|&v| value_info(&ex.names[v.0], graph.fact(v))).collect();
    let gp = GraphProto {
        node: ex.nodes,
        name: Some("pare".into()),
        initializer: ex.inits,
        input: inputs,
        output: outputs,
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: Some(EXPORT_IR_VERSION),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(EXPORT_OPSET) }],
        producer_name: Some("pare".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(gp),
        metadata_props: graph
            .metadata()
            .iter()
            .map(|(k, v)| StringStringEntryProto { key: Some(k.clone()), value: Some(v.clone()) })
            .collect(),
        ..Default::default()
    })
}

fn value_info(name: &str, fact: &Fact) -> ValueInfoProto {
    use proto::tensor_shape_proto::{Dimension, dimension::Value as DV};
    let dim = fact
        .shape
        .iter()
        .map(|d| Dimension {
            value: match d {
                Dim::Known(n) => Some(DV::DimValue(*n as i64)),
                Dim::Sym(s) => Some(DV::DimParam(s.to_string())),
                Dim::Unknown => None,
            },
            ..Default::default()
        })
        .collect();
    let tt = proto::type_proto::Tensor {
        elem_type: Some(dtype_to_onnx(fact.dtype)),
        shape: Some(proto::TensorShapeProto { dim }),
    };
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(tt)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Ex<'g> {
    g: &'g Graph,
    /// Export name of each value.
    names: Vec<String>,
    taken: HashSet<String>,
    node_names: HashSet<String>,
    written_consts: HashSet<usize>,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

impl<'g> Ex<'g> {
    fn new(g: &'g Graph) -> Ex<'g> {
        let mut taken: HashSet<String> = g.values().map(|(_, v)| v.name.clone()).collect();
        let mut names = Vec::with_capacity(g.value_count());
        let mut seen = HashSet::new();
        for (ValueId(i), v) in g.values() {
            if !v.name.is_empty() && seen.insert(v.name.clone()) {
                names.push(v.name.clone());
            } else {
                let n = fresh_in(&mut taken, &format!("v{i}"));
                names.push(n);
            }
        }
        Ex {
            g,
            names,
            taken,
            node_names: HashSet::new(),
            written_consts: HashSet::new(),
            nodes: Vec::new(),
            inits: Vec::new(),
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        fresh_in(&mut self.taken, base)
    }

    /// Graph outputs, and the Identity nodes (input, output) that constants, inputs and
    /// repeated outputs need. Renames constant outputs' initializers, so it runs first.
    fn outputs(&mut self) -> (Vec<ValueInfoProto>, Vec<(ValueId, String)>) {
        let mut used = HashSet::new();
        let mut out = Vec::new();
        let mut identities = Vec::new();
        for &v in self.g.outputs() {
            let val = self.g.value(v);
            let name = self.names[v.0].clone();
            if val.producer.is_some() && used.insert(v) {
                out.push(value_info(&name, &val.fact));
                continue;
            }
            let out_name = if val.fact.konst.is_some() && val.producer.is_none() && used.insert(v) {
                // the output keeps the constant's name; the initializer gets a new one
                let init_name = self.fresh(&format!("{name}_value"));
                self.names[v.0] = init_name;
                name
            } else {
                self.fresh(&format!("{name}_out"))
            };
            out.push(value_info(&out_name, &val.fact));
            identities.push((v, out_name));
        }
        (out, identities)
    }

    /// The name of an input value, writing it as an initializer if it is a constant.
    fn input(&mut self, v: Option<ValueId>) -> String {
        let Some(v) = v else { return String::new() };
        let val = self.g.value(v);
        if val.producer.is_none()
            && let Some(t) = &val.fact.konst
            && self.written_consts.insert(v.0)
        {
            self.inits.push(tensor_to_proto(&self.names[v.0], t));
        }
        self.names[v.0].clone()
    }

    /// A new initializer.
    fn konst(&mut self, base: &str, t: &Tensor) -> String {
        let name = self.fresh(base);
        self.inits.push(tensor_to_proto(&name, t));
        name
    }

    fn push(
        &mut self,
        op_type: &str,
        name: &str,
        mut inputs: Vec<String>,
        outputs: Vec<String>,
        attrs: Vec<AttributeProto>,
    ) {
        while inputs.last().is_some_and(|s| s.is_empty()) {
            inputs.pop();
        }
        let base = if name.is_empty() { op_type } else { name };
        let name = fresh_in(&mut self.node_names, base);
        self.nodes.push(NodeProto {
            input: inputs,
            output: outputs,
            name: Some(name),
            op_type: Some(op_type.to_string()),
            domain: Some(String::new()),
            attribute: attrs,
            ..Default::default()
        });
    }

    fn node(&mut self, node: &Node) -> Result<()> {
        let mut inputs: Vec<String> = node.inputs.iter().map(|&v| self.input(v)).collect();
        let outputs: Vec<String> = node.outputs.iter().map(|v| self.names[v.0].clone()).collect();
        let mut attrs = Vec::new();
        let mut act = Act::None;
        let mut op_type = node.op.onnx_name();
        match &node.op {
            Op::Conv(c) => {
                conv_attrs(&mut attrs, &c.kernel, &c.strides, &c.dilations, &c.pads, c.auto_pad, c.group);
                act = c.act;
            }
            Op::ConvTranspose(c) => {
                conv_attrs(&mut attrs, &c.kernel, &c.strides, &c.dilations, &c.pads, c.auto_pad, c.group);
                opt_ints(&mut attrs, "output_padding", &c.output_padding);
                opt_ints(&mut attrs, "output_shape", &c.output_shape);
            }
            Op::Gemm(gm) => {
                attrs.push(attr_float("alpha", gm.alpha));
                attrs.push(attr_float("beta", gm.beta));
                attrs.push(attr_int("transA", gm.trans_a as i64));
                attrs.push(attr_int("transB", gm.trans_b as i64));
                act = gm.act;
            }
            Op::BatchNorm(b) => {
                attrs.push(attr_float("epsilon", b.epsilon));
                attrs.push(attr_float("momentum", b.momentum));
                if b.training {
                    attrs.push(attr_int("training_mode", 1));
                }
            }
            Op::LayerNorm(l) => {
                attrs.push(attr_int("axis", l.axis));
                attrs.push(attr_float("epsilon", l.epsilon));
            }
            Op::MaxPool(p) => pool_attrs(&mut attrs, p, false),
            Op::AveragePool(p) => pool_attrs(&mut attrs, p, true),
            Op::Softmax { axis, legacy, .. } => {
                let rank = self.g.fact(node.inputs[0].ok_or_else(|| anyhow!("Softmax has no input"))?).rank();
                let a = if *axis < 0 { *axis + rank as i64 } else { *axis };
                if *legacy && a != rank as i64 - 1 {
                    return self.legacy_softmax(node, op_type, a, &inputs[0], &outputs[0]);
                }
                attrs.push(attr_int("axis", *axis));
            }
            Op::Unary(u) => unary_attrs(&mut attrs, *u),
            Op::Binary(Binary::Mod { fmod }) => attrs.push(attr_int("fmod", *fmod as i64)),
            Op::Binary(Binary::BitShiftLeft) => attrs.push(attr_string("direction", "LEFT")),
            Op::Binary(Binary::BitShiftRight) => attrs.push(attr_string("direction", "RIGHT")),
            Op::Cast(d) => attrs.push(attr_int("to", dtype_to_onnx(*d) as i64)),
            Op::Reshape { allowzero } => {
                if *allowzero {
                    attrs.push(attr_int("allowzero", 1));
                }
            }
            Op::Flatten { axis }
            | Op::Concat { axis }
            | Op::Gather { axis }
            | Op::GatherElements { axis } => attrs.push(attr_int("axis", *axis)),
            Op::Transpose { perm } => {
                if let Some(p) = perm {
                    attrs.push(attr_ints("perm", p.iter().map(|&x| x as i64)));
                }
            }
            Op::Split { axis, num_outputs } => {
                attrs.push(attr_int("axis", *axis));
                if inputs.get(1).is_none_or(|s| s.is_empty()) {
                    attrs.push(attr_int("num_outputs", *num_outputs as i64));
                }
            }
            Op::Shape { start, end } => {
                if *start != 0 {
                    attrs.push(attr_int("start", *start));
                }
                if let Some(e) = end {
                    attrs.push(attr_int("end", *e));
                }
            }
            Op::ConstantOfShape(t) => {
                let t1 = t.reshape(vec![1]).map_err(|e| anyhow!("ConstantOfShape value: {e}"))?;
                attrs.push(attr_tensor("value", &t1));
            }
            Op::Dropout { ratio } => {
                if *ratio != 0.5 {
                    inputs.truncate(1);
                    let r = self.konst(&format!("{}_ratio", node.name), &Tensor::scalar(*ratio));
                    inputs.push(r);
                }
            }
            Op::Pad(mode) => {
                let m = match mode {
                    PadMode::Constant => "constant",
                    PadMode::Reflect => "reflect",
                    PadMode::Edge => "edge",
                    PadMode::Wrap => "wrap",
                };
                attrs.push(attr_string("mode", m));
            }
            Op::Resize(r) => {
                let mode = match r.mode {
                    ResizeMode::Nearest => "nearest",
                    ResizeMode::Linear => "linear",
                    ResizeMode::Cubic => "cubic",
                };
                attrs.push(attr_string("mode", mode));
                attrs.push(attr_string("coordinate_transformation_mode", &r.coord_mode));
                attrs.push(attr_string("nearest_mode", &r.nearest_mode));
                attrs.push(attr_float("cubic_coeff_a", r.cubic_coeff_a));
                attrs.push(attr_int("exclude_outside", r.exclude_outside as i64));
                attrs.push(attr_float("extrapolation_value", r.extrapolation_value));
                if !r.axes.is_empty() {
                    attrs.push(attr_ints("axes", r.axes.iter().copied()));
                }
                attrs.push(attr_string("keep_aspect_ratio_policy", &r.aspect_policy));
            }
            Op::Reduce(r) => {
                attrs.push(attr_int("keepdims", r.keepdims as i64));
                if r.noop_with_empty_axes {
                    attrs.push(attr_int("noop_with_empty_axes", 1));
                }
            }
            Op::ArgReduce { axis, keepdims, select_last, .. } => {
                attrs.push(attr_int("axis", *axis));
                attrs.push(attr_int("keepdims", *keepdims as i64));
                attrs.push(attr_int("select_last_index", *select_last as i64));
            }
            Op::QuantizeLinear { axis, to } => {
                attrs.push(attr_int("axis", *axis));
                if inputs.get(2).is_none_or(|s| s.is_empty()) && *to != DType::U8 {
                    attrs.push(attr_int("output_dtype", dtype_to_onnx(*to) as i64));
                }
            }
            Op::DequantizeLinear { axis } => attrs.push(attr_int("axis", *axis)),
            Op::FakeQuant { axis, to } => {
                // QuantizeLinear → DequantizeLinear, with the same scale and zero point.
                let q = self.fresh(&format!("{}_q", outputs[0]));
                let mut q_attrs = vec![attr_int("axis", *axis)];
                if inputs.get(2).is_none_or(|s| s.is_empty()) && *to != DType::U8 {
                    q_attrs.push(attr_int("output_dtype", dtype_to_onnx(*to) as i64));
                }
                let qname = format!("{}_quantize", node.name);
                self.push("QuantizeLinear", &qname, inputs.clone(), vec![q.clone()], q_attrs);
                inputs[0] = q;
                op_type = "DequantizeLinear";
                attrs.push(attr_int("axis", *axis));
            }
            Op::MatMul
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool
            | Op::Binary(_)
            | Op::Variadic(_)
            | Op::Clip
            | Op::Where
            | Op::Slice
            | Op::Squeeze
            | Op::Unsqueeze
            | Op::Size
            | Op::Expand
            | Op::Range
            | Op::Tile
            | Op::Identity => {}
            Op::Train(t) => {
                bail!(
                    "node \"{}\" is the training-only op {}; export the forward model instead",
                    node.name,
                    t.name()
                )
            }
        }
        if act == Act::None {
            self.push(op_type, &node.name, inputs, outputs, attrs);
            return Ok(());
        }
        // A fused activation becomes its own node after the op.
        let y = outputs[0].clone();
        let pre = self.fresh(&format!("{y}_preact"));
        let mut main_outs = outputs;
        main_outs[0] = pre.clone();
        self.push(op_type, &node.name, inputs, main_outs, attrs);
        let dtype = self.g.fact(node.outputs[0]).dtype;
        let mut act_ins = vec![pre];
        let mut act_attrs = vec![];
        op_type = match act {
            Act::None => unreachable!(),
            Act::Relu => "Relu",
            Act::Sigmoid => "Sigmoid",
            Act::HardSwish => "HardSwish",
            Act::LeakyRelu(alpha) => {
                act_attrs.push(attr_float("alpha", alpha));
                "LeakyRelu"
            }
            Act::HardSigmoid { alpha, beta } => {
                act_attrs.push(attr_float("alpha", alpha));
                act_attrs.push(attr_float("beta", beta));
                "HardSigmoid"
            }
            Act::Clip { min, max } => {
                act_ins.push(self.konst(&format!("{y}_min"), &Tensor::scalar(min).cast(dtype)));
                act_ins.push(self.konst(&format!("{y}_max"), &Tensor::scalar(max).cast(dtype)));
                "Clip"
            }
        };
        self.push(op_type, &format!("{}_act", node.name), act_ins, vec![y], act_attrs);
        Ok(())
    }

    /// Opset < 13 Softmax at a non-last axis: Flatten(axis) -> Softmax(-1) -> Reshape to the
    /// input's shape (a constant when known, else a Shape node).
    fn legacy_softmax(&mut self, node: &Node, op_type: &str, axis: i64, x: &str, y: &str) -> Result<()> {
        let flat = self.fresh(&format!("{y}_flat"));
        let soft = self.fresh(&format!("{y}_soft2d"));
        let n = &node.name;
        let flatten_attrs = vec![attr_int("axis", axis)];
        self.push("Flatten", &format!("{n}_flatten"), vec![x.into()], vec![flat.clone()], flatten_attrs);
        self.push(op_type, n, vec![flat], vec![soft.clone()], vec![attr_int("axis", -1)]);
        let in_fact = self.g.fact(node.inputs[0].ok_or_else(|| anyhow!("Softmax has no input"))?);
        let shape = match in_fact.concrete_shape() {
            Some(s) => {
                let t = Tensor::from_vec(vec![s.len()], s.iter().map(|&d| d as i64).collect());
                self.konst(&format!("{y}_shape"), &t)
            }
            None => {
                let shape = self.fresh(&format!("{y}_shape"));
                self.push("Shape", &format!("{n}_shape"), vec![x.into()], vec![shape.clone()], vec![]);
                shape
            }
        };
        self.push("Reshape", &format!("{n}_reshape"), vec![soft, shape], vec![y.into()], vec![]);
        Ok(())
    }
}

fn fresh_in(taken: &mut HashSet<String>, base: &str) -> String {
    let base = if base.is_empty() { "v" } else { base };
    let name = if taken.contains(base) {
        (1..).map(|i| format!("{base}_{i}")).find(|n| !taken.contains(n)).unwrap()
    } else {
        base.to_string()
    };
    taken.insert(name.clone());
    name
}

fn opt_ints(attrs: &mut Vec<AttributeProto>, name: &str, v: &[usize]) {
    if !v.is_empty() {
        attrs.push(attr_ints(name, v.iter().map(|&x| x as i64)));
    }
}

fn conv_attrs(
    attrs: &mut Vec<AttributeProto>,
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[usize],
    auto_pad: AutoPad,
    group: usize,
) {
    opt_ints(attrs, "kernel_shape", kernel);
    opt_ints(attrs, "strides", strides);
    opt_ints(attrs, "dilations", dilations);
    opt_ints(attrs, "pads", pads);
    if auto_pad != AutoPad::NotSet {
        attrs.push(attr_string("auto_pad", auto_pad_name(auto_pad)));
    }
    attrs.push(attr_int("group", group as i64));
}

fn pool_attrs(attrs: &mut Vec<AttributeProto>, p: &Pool, average: bool) {
    opt_ints(attrs, "kernel_shape", &p.kernel);
    opt_ints(attrs, "strides", &p.strides);
    opt_ints(attrs, "dilations", &p.dilations);
    opt_ints(attrs, "pads", &p.pads);
    if p.auto_pad != AutoPad::NotSet {
        attrs.push(attr_string("auto_pad", auto_pad_name(p.auto_pad)));
    }
    if p.ceil_mode {
        attrs.push(attr_int("ceil_mode", 1));
    }
    if average && p.count_include_pad {
        attrs.push(attr_int("count_include_pad", 1));
    }
}

fn unary_attrs(attrs: &mut Vec<AttributeProto>, u: Unary) {
    match u {
        Unary::Gelu { tanh } => attrs.push(attr_string("approximate", if tanh { "tanh" } else { "none" })),
        Unary::LeakyRelu(a) | Unary::Elu(a) | Unary::Celu(a) | Unary::ThresholdedRelu(a) => {
            attrs.push(attr_float("alpha", a))
        }
        Unary::Selu { alpha, gamma } => {
            attrs.push(attr_float("alpha", alpha));
            attrs.push(attr_float("gamma", gamma));
        }
        Unary::HardSigmoid { alpha, beta } => {
            attrs.push(attr_float("alpha", alpha));
            attrs.push(attr_float("beta", beta));
        }
        Unary::IsInf { neg, pos } => {
            attrs.push(attr_int("detect_negative", neg as i64));
            attrs.push(attr_int("detect_positive", pos as i64));
        }
        _ => {}
    }
}
