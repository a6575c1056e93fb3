//! One gradient rule per op: given the node and the gradients of its outputs, add the nodes
//! that compute the gradients of the inputs that need one.

use crate::ir::{
    Act, Binary, Builder, Conv, Gemm, Graph, Node, Op, PadMode, ReduceKind, TrainOp, Unary, ValueId, Variadic,
};
use crate::tensor::DType;
use anyhow::{Result, anyhow, bail};

type V = ValueId;

fn input(node: &Node, i: usize) -> Result<V> {
    node.inputs.get(i).copied().flatten().ok_or_else(|| anyhow!("input {i} is missing"))
}

fn konst_ints(g: &Graph, v: Option<V>) -> Result<Option<Vec<i64>>> {
    match v {
        None => Ok(None),
        Some(v) => match &g.fact(v).konst {
            Some(t) => Ok(Some(t.to_i64_vec().ok_or_else(|| anyhow!("expected integers"))?)),
            None => bail!("needs constant \"{}\" to be differentiated", g.value(v).name),
        },
    }
}

/// Gradients of `node`'s inputs (None where not wanted or not differentiable), given the
/// gradients `dys` of its outputs.
pub(super) fn grad(g: &mut Graph, node: &Node, dys: &[Option<V>], want: &[bool]) -> Result<Vec<Option<V>>> {
    let mut c = Builder::on(std::mem::take(g), 0).with_prefix(&format!("{}_grad", node.name));
    let r = grad_with(&mut c, node, dys, want);
    *g = c.into_graph();
    r
}

fn grad_with(c: &mut Builder, node: &Node, dys: &[Option<V>], want: &[bool]) -> Result<Vec<Option<V>>> {
    let w = |i: usize| want.get(i).copied().unwrap_or(false);
    let n_in = node.inputs.len();
    let mut out: Vec<Option<V>> = vec![None; n_in];
    // Split's outputs each have their own gradient (some may be absent): concatenate them.
    if let Op::Split { axis, .. } = &node.op {
        let mut parts = Vec::new();
        for (k, o) in node.outputs.iter().enumerate() {
            parts.push(Some(match dys.get(k).copied().flatten() {
                Some(d) => d,
                None => {
                    let s = c.shape(*o)?;
                    c.zeros(&s)
                }
            }));
        }
        out[0] = Some(c.op_opt(Op::Concat { axis: *axis }, parts)?[0]).filter(|_| w(0));
        return Ok(out);
    }
    let Some(dy) = dys.first().copied().flatten() else { return Ok(out) };
    let y = node.outputs[0];
    match &node.op {
        Op::Identity | Op::Dropout { .. } => out[0] = Some(dy),
        Op::Train(TrainOp::DropoutTrain { .. }) => out[0] = Some(c.bin(Binary::Mul, dy, node.outputs[1])?),
        Op::Cast(to) => {
            let x = input(node, 0)?;
            if c.fact(x).dtype != DType::F32 || *to != DType::F32 {
                bail!("only float32 casts can be differentiated");
            }
            out[0] = Some(dy);
        }
        Op::Unary(u) => {
            if crate::ops::train::has_unary_grad(*u) {
                let x = if *u == Unary::Relu { y } else { input(node, 0)? };
                out[0] = Some(c.op(Op::Train(TrainOp::UnaryGrad(*u)), &[x, dy])?);
            } else {
                bail!("{} has no gradient", crate::ir::unary_name(*u));
            }
        }
        Op::Clip => {
            let ins = vec![
                Some(input(node, 0)?),
                Some(dy),
                node.inputs.get(1).copied().flatten(),
                node.inputs.get(2).copied().flatten(),
            ];
            out[0] = Some(c.op_opt(Op::Train(TrainOp::ClipGrad), ins)?[0]);
        }
        Op::Softmax { axis, log, legacy } => {
            let r = c.shape(y)?.len() as i64;
            if *legacy && (*axis != r - 1 && *axis != -1) {
                bail!(
                    "legacy (opset < 13) softmax over axis {axis} of a rank-{r} tensor has no gradient rule"
                );
            }
            out[0] = Some(c.op(Op::Train(TrainOp::SoftmaxGrad { axis: *axis, log: *log }), &[y, dy])?);
        }
        Op::Binary(b) => binary(c, *b, node, dy, &w, &mut out)?,
        Op::Variadic(v @ (Variadic::Sum | Variadic::Mean)) => {
            let k = n_in as f32;
            let d = if *v == Variadic::Mean {
                let s = c.scalar(1.0 / k);
                c.bin(Binary::Mul, dy, s)?
            } else {
                dy
            };
            for (i, o) in out.iter_mut().enumerate() {
                if w(i) {
                    let s = c.shape(input(node, i)?)?;
                    *o = Some(c.unbroadcast(d, &s)?);
                }
            }
        }
        Op::Where => {
            let cond = input(node, 0)?;
            let zero = c.scalar(0.0);
            for (i, (a, b)) in [(1, (dy, zero)), (2, (zero, dy))] {
                if w(i) {
                    let d = c.op(Op::Where, &[cond, a, b])?;
                    let s = c.shape(input(node, i)?)?;
                    out[i] = Some(c.unbroadcast(d, &s)?);
                }
            }
        }
        Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze => {
            let s = c.shape(input(node, 0)?)?;
            out[0] = Some(c.reshape(dy, &s)?);
        }
        Op::Transpose { perm } => {
            let r = c.shape(dy)?.len();
            let inv = match perm {
                Some(p) => {
                    let mut inv = vec![0; r];
                    p.iter().enumerate().for_each(|(i, &a)| inv[a] = i);
                    Some(inv)
                }
                None => None,
            };
            out[0] = Some(c.op(Op::Transpose { perm: inv }, &[dy])?);
        }
        Op::Expand => {
            let s = c.shape(input(node, 0)?)?;
            out[0] = Some(c.unbroadcast(dy, &s)?);
        }
        Op::Concat { axis } => {
            let r = c.shape(dy)?.len();
            let a = crate::ops::norm_axis(*axis, r)?;
            let mut sizes = Vec::new();
            for i in 0..n_in {
                sizes.push(c.shape(input(node, i)?)?[a] as i64);
            }
            let s = c.ints(&sizes);
            let parts = c.op_opt(Op::Split { axis: *axis, num_outputs: n_in }, vec![Some(dy), Some(s)])?;
            for i in 0..n_in {
                if w(i) {
                    out[i] = Some(parts[i]);
                }
            }
        }
        Op::Slice => {
            let x = input(node, 0)?;
            let xs = c.shape(x)?;
            let starts = konst_ints(c.graph(), node.inputs.get(1).copied().flatten())?.unwrap_or_default();
            let ends = konst_ints(c.graph(), node.inputs.get(2).copied().flatten())?.unwrap_or_default();
            let axes = konst_ints(c.graph(), node.inputs.get(3).copied().flatten())?;
            let steps = konst_ints(c.graph(), node.inputs.get(4).copied().flatten())?;
            let spec = crate::ops::shape::slice_spec(xs.len(), &starts, &ends, axes, steps)?;
            let mut pads = vec![0i64; 2 * xs.len()];
            for (a, s, e, st) in spec {
                if st != 1 {
                    bail!("Slice with step {st} has no gradient rule (only step 1)");
                }
                let sa = crate::ops::shape::slice_axis(xs[a], s, e, st);
                pads[a] = sa.start;
                pads[xs.len() + a] = xs[a] as i64 - sa.start - sa.count as i64;
            }
            let p = c.ints(&pads);
            out[0] = Some(c.op(Op::Pad(PadMode::Constant), &[dy, p])?);
        }
        Op::Pad(PadMode::Constant) => {
            let x = input(node, 0)?;
            let xs = c.shape(x)?;
            let pads = konst_ints(c.graph(), node.inputs.get(1).copied().flatten())?.unwrap_or_default();
            if node.inputs.get(3).copied().flatten().is_some() || pads.len() != 2 * xs.len() {
                bail!("Pad with axes has no gradient rule");
            }
            if pads.iter().any(|&p| p < 0) {
                bail!("Pad with negative pads has no gradient rule");
            }
            let starts: Vec<i64> = pads[..xs.len()].to_vec();
            let ends: Vec<i64> = starts.iter().zip(&xs).map(|(&s, &n)| s + n as i64).collect();
            let (s, e) = (c.ints(&starts), c.ints(&ends));
            out[0] = Some(c.op(Op::Slice, &[dy, s, e])?);
        }
        Op::Gather { axis } => {
            let data = input(node, 0)?;
            let ds = c.shape(data)?;
            let idx = input(node, 1)?;
            out[0] = Some(c.op(Op::Train(TrainOp::GatherGrad { axis: *axis, data_shape: ds }), &[idx, dy])?);
        }
        Op::Reduce(r) if matches!(r.kind, ReduceKind::Sum | ReduceKind::Mean) => {
            let x = input(node, 0)?;
            let xs = c.shape(x)?;
            let axes = konst_ints(c.graph(), node.inputs.get(1).copied().flatten())?;
            let axes: Vec<usize> = match axes {
                Some(a) if !a.is_empty() => {
                    a.iter().map(|&a| crate::ops::norm_axis(a, xs.len())).collect::<Result<_>>()?
                }
                _ if r.noop_with_empty_axes => (0..0).collect(),
                _ => (0..xs.len()).collect(),
            };
            let mut kept = xs.clone();
            axes.iter().for_each(|&a| kept[a] = 1);
            let mut d = c.reshape(dy, &kept)?;
            if r.kind == ReduceKind::Mean {
                let count: usize = axes.iter().map(|&a| xs[a]).product();
                let s = c.scalar(1.0 / count.max(1) as f32);
                d = c.bin(Binary::Mul, d, s)?;
            }
            out[0] = Some(c.expand(d, &xs)?);
        }
        Op::GlobalAveragePool => {
            let xs = c.shape(input(node, 0)?)?;
            let count: usize = xs[2..].iter().product();
            let s = c.scalar(1.0 / count.max(1) as f32);
            let d = c.bin(Binary::Mul, dy, s)?;
            out[0] = Some(c.expand(d, &xs)?);
        }
        Op::MaxPool(p) => {
            let xs = c.shape(input(node, 0)?)?;
            let idx = *node.outputs.get(1).ok_or_else(|| anyhow!("MaxPool was not built with indices"))?;
            let pool = crate::ir::Pool { indices: false, ..p.clone() };
            out[0] = Some(c.op(Op::Train(TrainOp::MaxPoolGrad { pool, x_shape: xs }), &[dy, idx])?);
        }
        Op::AveragePool(p) => {
            let xs = c.shape(input(node, 0)?)?;
            out[0] = Some(c.op(Op::Train(TrainOp::AvgPoolGrad { pool: p.clone(), x_shape: xs }), &[dy])?);
        }
        Op::Conv(conv) => conv_grad(c, conv, node, dy, &w, &mut out)?,
        Op::Gemm(gm) => gemm_grad(c, gm, node, dy, &w, &mut out)?,
        Op::MatMul => matmul_grad(c, node, dy, &w, &mut out)?,
        Op::Train(TrainOp::BatchNormTrain { .. }) => {
            let (x, scale) = (input(node, 0)?, input(node, 1)?);
            let ins = [x, scale, node.outputs[3], node.outputs[4], dy];
            let r = c.op_opt(Op::Train(TrainOp::BatchNormGrad), ins.iter().map(|&v| Some(v)).collect())?;
            (out[0], out[1], out[2]) = (Some(r[0]), Some(r[1]), Some(r[2]));
        }
        Op::LayerNorm(l) => {
            let (x, scale) = (input(node, 0)?, input(node, 1)?);
            let ins = [x, scale, node.outputs[1], node.outputs[2], dy];
            let op = Op::Train(TrainOp::LayerNormGrad { axis: l.axis });
            let r = c.op_opt(op, ins.iter().map(|&v| Some(v)).collect())?;
            out[0] = Some(r[0]);
            out[1] = Some(r[1]);
            if n_in > 2 {
                out[2] = Some(r[2]);
            }
        }
        Op::QuantizeLinear { axis, to } => {
            let ins = vec![
                Some(input(node, 0)?),
                Some(input(node, 1)?),
                node.inputs.get(2).copied().flatten(),
                Some(dy),
            ];
            let op = TrainOp::QuantGrad { axis: *axis, to: *to, rescale: true };
            out[0] = Some(c.op_opt(Op::Train(op), ins)?[0]);
        }
        Op::FakeQuant { axis, to } => {
            let ins = vec![
                Some(input(node, 0)?),
                Some(input(node, 1)?),
                node.inputs.get(2).copied().flatten(),
                Some(dy),
            ];
            let op = TrainOp::QuantGrad { axis: *axis, to: *to, rescale: false };
            out[0] = Some(c.op_opt(Op::Train(op), ins)?[0]);
        }
        Op::DequantizeLinear { axis } => {
            out[0] = Some(c.op(Op::Train(TrainOp::DequantizeGrad { axis: *axis }), &[input(node, 1)?, dy])?);
        }
        // Ops without a gradient rule, listed so that a new op must be placed here or given one.
        Op::ConvTranspose(_)
        | Op::BatchNorm(_)
        | Op::GlobalMaxPool
        | Op::Variadic(Variadic::Max | Variadic::Min)
        | Op::Reduce(_)
        | Op::GatherElements { .. }
        | Op::Shape { .. }
        | Op::Size
        | Op::ConstantOfShape(_)
        | Op::Range
        | Op::Tile
        | Op::Pad(_)
        | Op::Resize(_)
        | Op::ArgReduce { .. }
        | Op::Train(_) => bail!("no gradient rule for {}", node.op.onnx_name()),
        Op::Split { .. } => unreachable!("Split is handled before the single-output path"),
    }
    for (i, o) in out.iter_mut().enumerate() {
        if !w(i) {
            *o = None;
        }
    }
    Ok(out)
}

fn binary(
    c: &mut Builder,
    b: Binary,
    node: &Node,
    dy: V,
    w: &dyn Fn(usize) -> bool,
    out: &mut [Option<V>],
) -> Result<()> {
    let (a, bb) = (input(node, 0)?, input(node, 1)?);
    let (sa, sb) = (c.shape(a)?, c.shape(bb)?);
    let y = node.outputs[0];
    let (da, db) = match b {
        Binary::Add => (w(0).then_some(dy), w(1).then_some(dy)),
        Binary::Sub => {
            let db = if w(1) { Some(c.op(Op::Unary(Unary::Neg), &[dy])?) } else { None };
            (w(0).then_some(dy), db)
        }
        Binary::Mul => {
            let da = if w(0) { Some(c.bin(Binary::Mul, dy, bb)?) } else { None };
            let db = if w(1) { Some(c.bin(Binary::Mul, dy, a)?) } else { None };
            (da, db)
        }
        Binary::Div => {
            let da = if w(0) { Some(c.bin(Binary::Div, dy, bb)?) } else { None };
            let db = if w(1) {
                let t = c.bin(Binary::Mul, dy, y)?;
                let t = c.bin(Binary::Div, t, bb)?;
                Some(c.op(Op::Unary(Unary::Neg), &[t])?)
            } else {
                None
            };
            (da, db)
        }
        Binary::Pow => {
            if w(1) {
                bail!("Pow's exponent has no gradient rule");
            }
            let one = c.scalar(1.0);
            let e1 = c.bin(Binary::Sub, bb, one)?;
            let p = c.bin(Binary::Pow, a, e1)?;
            let t = c.bin(Binary::Mul, p, bb)?;
            (Some(c.bin(Binary::Mul, dy, t)?), None)
        }
        Binary::Mod { .. }
        | Binary::Equal
        | Binary::Less
        | Binary::LessOrEqual
        | Binary::Greater
        | Binary::GreaterOrEqual
        | Binary::And
        | Binary::Or
        | Binary::Xor
        | Binary::PRelu
        | Binary::BitShiftLeft
        | Binary::BitShiftRight
        | Binary::BitwiseAnd
        | Binary::BitwiseOr
        | Binary::BitwiseXor => bail!("no gradient rule for {}", crate::ir::binary_name(b)),
    };
    if let Some(d) = da {
        out[0] = Some(c.unbroadcast(d, &sa)?);
    }
    if let Some(d) = db {
        out[1] = Some(c.unbroadcast(d, &sb)?);
    }
    Ok(())
}

fn conv_grad(
    c: &mut Builder,
    conv: &Conv,
    node: &Node,
    dy: V,
    w: &dyn Fn(usize) -> bool,
    out: &mut [Option<V>],
) -> Result<()> {
    if conv.act != Act::None {
        bail!("a Conv with a fused activation cannot be differentiated; train the unoptimised graph");
    }
    let (x, wt) = (input(node, 0)?, input(node, 1)?);
    let (xs, ws) = (c.shape(x)?, c.shape(wt)?);
    if w(0) {
        let op = TrainOp::ConvGradInput { conv: conv.clone(), x_shape: xs.clone() };
        out[0] = Some(c.op(Op::Train(op), &[dy, wt])?);
    }
    if w(1) {
        let op = TrainOp::ConvGradWeight { conv: conv.clone(), w_shape: ws };
        out[1] = Some(c.op(Op::Train(op), &[x, dy])?);
    }
    if w(2) {
        out[2] = Some(c.op(Op::Train(TrainOp::ChannelSum), &[dy])?);
    }
    Ok(())
}

fn gemm_grad(
    c: &mut Builder,
    gm: &Gemm,
    node: &Node,
    dy: V,
    w: &dyn Fn(usize) -> bool,
    out: &mut [Option<V>],
) -> Result<()> {
    if gm.act != Act::None {
        bail!("a Gemm with a fused activation cannot be differentiated; train the unoptimised graph");
    }
    let (a, b) = (input(node, 0)?, input(node, 1)?);
    let (ta, tb, al) = (gm.trans_a, gm.trans_b, gm.alpha);
    if w(0) {
        out[0] = Some(if !ta { c.gemm(dy, b, false, !tb, al)? } else { c.gemm(b, dy, tb, true, al)? });
    }
    if w(1) {
        out[1] = Some(if !tb { c.gemm(a, dy, !ta, false, al)? } else { c.gemm(dy, a, true, ta, al)? });
    }
    if w(2) {
        let cs = c.shape(input(node, 2)?)?;
        let mut d = dy;
        if gm.beta != 1.0 {
            let s = c.scalar(gm.beta);
            d = c.bin(Binary::Mul, dy, s)?;
        }
        out[2] = Some(c.unbroadcast(d, &cs)?);
    }
    Ok(())
}

fn matmul_grad(
    c: &mut Builder,
    node: &Node,
    dy: V,
    w: &dyn Fn(usize) -> bool,
    out: &mut [Option<V>],
) -> Result<()> {
    let (a, b) = (input(node, 0)?, input(node, 1)?);
    let (sa, sb) = (c.shape(a)?, c.shape(b)?);
    if sa.len() < 2 || sb.len() < 2 {
        bail!("MatMul with a 1-D operand has no gradient rule");
    }
    if sa.len() == 2 && sb.len() == 2 {
        if w(0) {
            out[0] = Some(c.gemm(dy, b, false, true, 1.0)?);
        }
        if w(1) {
            out[1] = Some(c.gemm(a, dy, true, false, 1.0)?);
        }
        return Ok(());
    }
    if w(0) {
        let bt = c.transpose_last2(b)?;
        let d = c.op(Op::MatMul, &[dy, bt])?;
        out[0] = Some(c.unbroadcast(d, &sa)?);
    }
    if w(1) {
        if sb.len() == 2 {
            // [.., M, K] x [K, N]: fold the batch into rows.
            let (k, n) = (sb[0], sb[1]);
            let a2 = c.reshape(a, &[sa.iter().product::<usize>() / k, k])?;
            let rows = c.shape(dy)?.iter().product::<usize>() / n;
            let d2 = c.reshape(dy, &[rows, n])?;
            out[1] = Some(c.gemm(a2, d2, true, false, 1.0)?);
        } else {
            let at = c.transpose_last2(a)?;
            let d = c.op(Op::MatMul, &[at, dy])?;
            out[1] = Some(c.unbroadcast(d, &sb)?);
        }
    }
    Ok(())
}
