//! Fusions around Conv and Gemm: BatchNorm folding, activation fusion, MatMul+Add → Gemm.

use super::Uses;
use crate::ir::{Act, Binary, Dim, Gemm, Graph, NodeId, Op, PVal, Patch, Unary, ValueId};
use crate::tensor::Tensor;

fn konst(g: &Graph, v: Option<ValueId>) -> Option<&Tensor> {
    g.fact(v?).konst.as_ref()
}

fn f32_const(g: &Graph, v: Option<ValueId>) -> Option<Vec<f32>> {
    konst(g, v)?.as_slice::<f32>().map(|s| s.to_vec())
}

/// Conv → BatchNormalization (inference) becomes one Conv with rescaled weights and bias.
pub fn fold_batchnorm(g: &Graph, n: NodeId, uses: &Uses) -> Option<Patch> {
    let bn = g.node(n).ok()?;
    let Op::BatchNorm(attrs) = &bn.op else { return None };
    if attrs.training || bn.outputs.len() != 1 {
        return None;
    }
    let x = bn.inputs.first().copied().flatten()?;
    let (cn, _) = g.value(x).producer?;
    let conv = g.node(cn).ok()?;
    let Op::Conv(c) = &conv.op else { return None };
    if c.act != Act::None || uses.sole_consumer(x) != Some(n) {
        return None;
    }
    let w = konst(g, conv.inputs[1])?;
    let wdata = w.as_slice::<f32>()?;
    let co = *w.shape().first()?;
    let scale = f32_const(g, bn.inputs[1])?;
    let beta = f32_const(g, bn.inputs[2])?;
    let mean = f32_const(g, bn.inputs[3])?;
    let var = f32_const(g, bn.inputs[4])?;
    if [scale.len(), beta.len(), mean.len(), var.len()].iter().any(|&l| l != co) {
        return None;
    }
    let bias = match conv.inputs.get(2).copied().flatten() {
        Some(b) => f32_const(g, Some(b))?,
        None => vec![0.0; co],
    };
    let per = wdata.len() / co;
    let mut nw = wdata.to_vec();
    let mut nb = vec![0f32; co];
    for o in 0..co {
        let a = scale[o] / (var[o] + attrs.epsilon).sqrt();
        nw[o * per..(o + 1) * per].iter_mut().for_each(|v| *v *= a);
        nb[o] = (bias[o] - mean[o]) * a + beta[o];
    }
    let mut p = Patch::new();
    let wv = p.konst(&format!("{}.weight_bn", conv.name), Tensor::from_vec(w.shape().to_vec(), nw));
    let bv = p.konst(&format!("{}.bias_bn", conv.name), Tensor::from_vec(vec![co], nb));
    let x_in = PVal::Old(conv.inputs[0]?);
    let out = p.node(&conv.name, Op::Conv(c.clone()), vec![x_in, wv, bv]);
    p.shunt(bn.outputs[0], out);
    p.remove(n);
    p.remove(cn);
    Some(p)
}

/// The activation a node computes, if it can be fused into a preceding Conv/Gemm.
fn as_act(g: &Graph, n: NodeId) -> Option<Act> {
    let node = g.node(n).ok()?;
    match &node.op {
        Op::Unary(Unary::Relu) => Some(Act::Relu),
        Op::Unary(Unary::LeakyRelu(a)) => Some(Act::LeakyRelu(*a)),
        Op::Unary(Unary::Sigmoid) => Some(Act::Sigmoid),
        Op::Unary(Unary::HardSigmoid { alpha, beta }) => {
            Some(Act::HardSigmoid { alpha: *alpha, beta: *beta })
        }
        Op::Unary(Unary::HardSwish) => Some(Act::HardSwish),
        Op::Clip => {
            let bound = |i: usize, default: f32| -> Option<f32> {
                match node.inputs.get(i).copied().flatten() {
                    None => Some(default),
                    Some(v) => {
                        let t = konst(g, Some(v))?;
                        (t.len() == 1).then(|| t.as_slice::<f32>().map(|s| s[0]))?
                    }
                }
            };
            Some(Act::Clip { min: bound(1, f32::NEG_INFINITY)?, max: bound(2, f32::INFINITY)? })
        }
        _ => None,
    }
}

/// Conv/Gemm followed by an activation becomes one node with a fused epilogue.
pub fn fuse_activation(g: &Graph, n: NodeId, uses: &Uses) -> Option<Patch> {
    let node = g.node(n).ok()?;
    let new_op = match &node.op {
        Op::Conv(c) if c.act == Act::None => Op::Conv(c.clone()),
        Op::Gemm(m) if m.act == Act::None => Op::Gemm(m.clone()),
        _ => return None,
    };
    if g.fact(node.outputs[0]).dtype != crate::tensor::DType::F32 {
        return None;
    }
    let next = uses.sole_consumer(node.outputs[0])?;
    let act = as_act(g, next)?;
    let new_op = match new_op {
        Op::Conv(mut c) => {
            c.act = act;
            Op::Conv(c)
        }
        Op::Gemm(mut m) => {
            m.act = act;
            Op::Gemm(m)
        }
        _ => unreachable!(),
    };
    let mut p = Patch::new();
    let ins = node.inputs.iter().map(|i| i.map(PVal::Old)).collect();
    let e = p.add_node(&node.name, new_op, ins);
    p.shunt(g.node(next).ok()?.outputs[0], PVal::New(e, 0));
    p.remove(next);
    p.remove(n);
    Some(p)
}

/// MatMul of a 2-D input by a constant 2-D matrix, followed by Add of a constant bias
/// broadcastable to [N], becomes Gemm.
pub fn matmul_add_to_gemm(g: &Graph, n: NodeId, uses: &Uses) -> Option<Patch> {
    let mm = g.node(n).ok()?;
    if mm.op != Op::MatMul {
        return None;
    }
    let a = mm.inputs[0]?;
    let b = mm.inputs[1]?;
    let bt = konst(g, Some(b))?;
    if g.fact(a).rank() != 2 || bt.rank() != 2 || bt.dtype() != crate::tensor::DType::F32 {
        return None;
    }
    let ncols = bt.shape()[1];
    let add_n = uses.sole_consumer(mm.outputs[0])?;
    let add = g.node(add_n).ok()?;
    if add.op != Op::Binary(Binary::Add) {
        return None;
    }
    let other = if add.inputs[0] == Some(mm.outputs[0]) { add.inputs[1] } else { add.inputs[0] };
    let c = konst(g, other)?;
    let c_ok = c.dtype() == crate::tensor::DType::F32
        && c.len() == ncols
        && (c.rank() == 1 || (c.rank() == 2 && c.shape()[0] == 1));
    let out_rank_ok =
        g.fact(add.outputs[0]).shape.len() == 2 && g.fact(add.outputs[0]).shape[1] == Dim::Known(ncols);
    if !c_ok || !out_rank_ok {
        return None;
    }
    let mut p = Patch::new();
    let gemm = Op::Gemm(Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: false, act: Act::None });
    let out = p.node(&mm.name, gemm, vec![PVal::Old(a), PVal::Old(b), PVal::Old(other?)]);
    p.shunt(add.outputs[0], out);
    p.remove(add_n);
    p.remove(n);
    Some(p)
}

/// The per-output-channel values of a constant that broadcasts against a conv output
/// `[N, C, spatial...]` along the channel axis only (shapes like `[C,1,1]`, `[1,C,1,1]`, `[1]`).
fn per_channel(t: &Tensor, out_rank: usize, c: usize) -> Option<Vec<f32>> {
    let v = t.as_slice::<f32>()?;
    if t.len() == 1 {
        return Some(vec![v[0]; c]);
    }
    if t.rank() > out_rank || t.len() != c {
        return None;
    }
    // the one non-1 dim must sit at the channel axis (index 1 of the output)
    let axis = out_rank - t.rank() + t.shape().iter().position(|&d| d == c)?;
    (axis == 1 && t.shape().iter().filter(|&&d| d != 1).count() == 1).then(|| v.to_vec())
}

/// Conv followed by Add or Mul of a per-channel constant folds it into the bias/weights.
pub fn conv_absorb_affine(g: &Graph, n: NodeId, uses: &Uses) -> Option<Patch> {
    let conv = g.node(n).ok()?;
    let Op::Conv(c) = &conv.op else { return None };
    if c.act != Act::None {
        return None;
    }
    let y = conv.outputs[0];
    let next_n = uses.sole_consumer(y)?;
    let next = g.node(next_n).ok()?;
    let is_mul = match next.op {
        Op::Binary(Binary::Add) => false,
        Op::Binary(Binary::Mul) => true,
        _ => return None,
    };
    let other = if next.inputs[0] == Some(y) { next.inputs[1] } else { next.inputs[0] };
    let w = konst(g, conv.inputs[1])?;
    let co = w.shape()[0];
    let out_rank = g.fact(y).rank();
    let k = per_channel(konst(g, other)?, out_rank, co)?;
    if g.fact(next.outputs[0]).shape != g.fact(y).shape {
        return None;
    }
    let mut bias = match conv.inputs.get(2).copied().flatten() {
        Some(b) => f32_const(g, Some(b))?,
        None => vec![0.0; co],
    };
    let mut p = Patch::new();
    let mut wv = PVal::Old(conv.inputs[1]?);
    if is_mul {
        let per = w.len() / co;
        let mut nw = w.as_slice::<f32>()?.to_vec();
        for o in 0..co {
            nw[o * per..(o + 1) * per].iter_mut().for_each(|x| *x *= k[o]);
            bias[o] *= k[o];
        }
        wv = p.konst(&format!("{}.weight_scaled", conv.name), Tensor::from_vec(w.shape().to_vec(), nw));
    } else {
        bias.iter_mut().zip(&k).for_each(|(b, k)| *b += k);
    }
    let bv = p.konst(&format!("{}.bias_folded", conv.name), Tensor::from_vec(vec![co], bias));
    let out = p.node(&conv.name, Op::Conv(c.clone()), vec![PVal::Old(conv.inputs[0]?), wv, bv]);
    p.shunt(next.outputs[0], out);
    p.remove(next_n);
    p.remove(n);
    Some(p)
}

/// Why a fusion rule did not fire on a node where its pattern nearly matched (the anchor
/// ops are there but a condition fails), for `pare optimize --explain`. Run on the graph
/// after the rules reached their fixed point; each entry is `(rule, node description, why)`.
pub fn near_misses(g: &Graph) -> Vec<(&'static str, String, String)> {
    let uses = Uses::of(g);
    let mut out = Vec::new();
    let Ok(order) = g.topo_order() else { return out };
    let readers = |v: ValueId| {
        let k = uses.readers(v).len();
        if uses.is_output(v) {
            format!("is a graph output and has {k} reader(s)")
        } else {
            format!("has {k} readers")
        }
    };
    for n in order {
        let Ok(node) = g.node(n) else { continue };
        let here = g.describe_node(n);
        let producer = |i: usize| {
            let v = node.inputs.get(i).copied().flatten()?;
            let (p, _) = g.value(v).producer?;
            Some((v, p, g.node(p).ok()?))
        };
        match &node.op {
            Op::BatchNorm(a) => {
                let why = match producer(0) {
                    _ if a.training => Some("it is in training mode".to_string()),
                    None => Some("its input is not produced by a node (a graph input or constant)".into()),
                    Some((_, _, p)) if !matches!(p.op, Op::Conv(_)) => {
                        Some(format!("its input comes from {} \"{}\", not a Conv", p.op.onnx_name(), p.name))
                    }
                    Some((_, _, p)) if matches!(&p.op, Op::Conv(c) if c.act != Act::None) => {
                        Some(format!("Conv \"{}\" already has a fused activation", p.name))
                    }
                    Some((v, _, p)) if uses.sole_consumer(v) != Some(n) => {
                        Some(format!("the output of Conv \"{}\" {}", p.name, readers(v)))
                    }
                    Some((_, _, p)) if konst(g, p.inputs[1]).is_none() => {
                        Some(format!("the weights of Conv \"{}\" are not constant", p.name))
                    }
                    Some(_) => Some("its scale, bias, mean or variance is not a constant f32 tensor".into()),
                };
                out.extend(why.map(|w| ("fold_batchnorm", here.clone(), w)));
            }
            _ if as_act(g, n).is_some() => {
                let Some((v, _, p)) = producer(0) else { continue };
                let why = match &p.op {
                    Op::Conv(c) if c.act != Act::None => {
                        Some(format!("Conv \"{}\" already has an activation", p.name))
                    }
                    Op::Gemm(m) if m.act != Act::None => {
                        Some(format!("Gemm \"{}\" already has an activation", p.name))
                    }
                    Op::Conv(_) | Op::Gemm(_) if uses.sole_consumer(v) != Some(n) => {
                        Some(format!("the output of {} \"{}\" {}", p.op.onnx_name(), p.name, readers(v)))
                    }
                    Op::Conv(_) | Op::Gemm(_) if g.fact(v).dtype != crate::tensor::DType::F32 => {
                        Some(format!("the output of \"{}\" is {}, not f32", p.name, g.fact(v).dtype))
                    }
                    Op::MatMul => Some(format!(
                        "it follows MatMul \"{}\", which has no fused epilogue (MatMul+Add becomes a Gemm only \
                         with a 2-D input, a constant 2-D weight and a per-column constant bias)",
                        p.name
                    )),
                    _ => None,
                };
                out.extend(why.map(|w| ("fuse_activation", here.clone(), w)));
            }
            Op::MatMul => {
                let Some(next) = uses.sole_consumer(node.outputs[0]) else { continue };
                let Ok(add) = g.node(next) else { continue };
                if add.op != Op::Binary(Binary::Add) {
                    continue;
                }
                let a_rank = node.inputs[0].map(|a| g.fact(a).rank());
                let why = match konst(g, node.inputs[1]) {
                    None => "its weight (second input) is not constant".to_string(),
                    Some(b) if b.rank() != 2 => format!("its constant weight is rank {}, not 2", b.rank()),
                    Some(_) if a_rank != Some(2) => format!(
                        "its input is rank {}; Gemm is 2-D (pare's runtime still fuses a constant bias into its dense kernel at plan time)",
                        a_rank.unwrap_or(0)
                    ),
                    Some(_) => "the added operand is not a constant per-column bias".to_string(),
                };
                out.push(("matmul_add_to_gemm", here.clone(), why));
            }
            Op::Conv(c) if c.act == Act::None => {
                let y = node.outputs[0];
                let Some(next) = uses.sole_consumer(y) else { continue };
                let Ok(nx) = g.node(next) else { continue };
                if !matches!(nx.op, Op::Binary(Binary::Add) | Op::Binary(Binary::Mul)) {
                    continue;
                }
                let other = if nx.inputs[0] == Some(y) { nx.inputs[1] } else { nx.inputs[0] };
                let why = match konst(g, other) {
                    None => format!(
                        "its {} \"{}\" adds a computed tensor (a residual is fused at plan time instead)",
                        nx.op.onnx_name(),
                        nx.name
                    ),
                    Some(t) => format!(
                        "the {} operand of \"{}\" has shape {:?}, not one value per output channel",
                        nx.op.onnx_name(),
                        nx.name,
                        t.shape()
                    ),
                };
                out.push(("conv_absorb_affine", here.clone(), why));
            }
            _ => {}
        }
    }
    out
}
