//! How channels flow through each op. Every op declares, from its attributes and the facts of
//! its inputs and outputs, which tensor axes hold "the same channels"; `crate::ir::channels`
//! lowers these declarations with [`ChannelFlow::lower`] and groups the axes of a whole graph,
//! so structured pruning needs no code per architecture. Declarations are conservative: an axis
//! an op does not tie is blocked (its channels must not be pruned), and [`ChannelFlow::Opaque`]
//! blocks every axis of the node.

use super::{konst_at, norm_axis};
use crate::ir::{Dim, Fact, Gemm, LayerNorm, Op, Reduce, Resize};

/// A node's input or output position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Port {
    /// Input `i`.
    In(usize),
    /// Output `i`.
    Out(usize),
}

/// One axis of a node's input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortAxis {
    /// The input or output.
    pub port: Port,
    /// The axis.
    pub axis: usize,
}

/// Axis `axis` of input `i`.
fn inp(i: usize, axis: usize) -> PortAxis {
    PortAxis { port: Port::In(i), axis }
}

/// Axis `axis` of output `i`.
fn out(i: usize, axis: usize) -> PortAxis {
    PortAxis { port: Port::Out(i), axis }
}

/// A tie between two axes: channel `c` of `coarse` is the entries
/// `[offset + c * block, offset + (c + 1) * block)` of `fine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The axis whose entries are whole channels.
    pub coarse: PortAxis,
    /// The axis that holds them, `block` entries per channel, from `offset` on.
    pub fine: PortAxis,
    /// Entries of `fine` per channel of `coarse` (1: the same channels).
    pub block: usize,
    /// Where channel 0 of `coarse` starts in `fine`.
    pub offset: usize,
}

/// One-to-one tie between two axes.
fn tie(a: PortAxis, b: PortAxis) -> Link {
    Link { coarse: a, fine: b, block: 1, offset: 0 }
}

/// What a weight axis does with the channels it is tied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Its slices create the channels (a Conv weight's axis 0): removing channel k removes slice k.
    Produces,
    /// It reads the channels (a Conv weight's axis 1): removing channel k removes slice k.
    Consumes,
}

/// A flow lowered to what the channel-group analysis consumes. Any axis of a present input or
/// output that is in no link and not `free` is blocked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lowered {
    /// Ties between axes.
    pub links: Vec<Link>,
    /// Weight axes that produce or consume the channels they are tied to.
    pub roles: Vec<(PortAxis, Role)>,
    /// Axes whose channel count an attribute of the op encodes (a depthwise Conv's `group`, a
    /// Split's sizes): the pruner must rewrite it with the group.
    pub counted: Vec<PortAxis>,
    /// Axes the op neither ties nor depends on (Shape's unread axes).
    pub free: Vec<PortAxis>,
}

/// A per-channel parameter input that follows an axis of input 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Follow {
    /// The parameter input.
    pub input: usize,
    /// Its axis that holds the channels.
    pub axis: usize,
    /// The axis of input 0 it follows.
    pub of: usize,
}

/// A weight layer's input that its weight reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consumes {
    /// The data input.
    pub input: usize,
    /// Its channel axis.
    pub axis: usize,
    /// The weight axis that reads it.
    pub weight_axis: usize,
}

/// Input 0's axis `input` reaches output 0's axis `output`, `block` output entries per input
/// entry (1: the same axis; Flatten of `[N, C, H, W]`: axis 1 reaches axis 1 with `block` H*W).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisMap {
    /// Axis of input 0.
    pub input: usize,
    /// Axis of output 0.
    pub output: usize,
    /// Output entries per input entry.
    pub block: usize,
}

/// How channels move through an op.
#[derive(Clone, Debug, PartialEq)]
pub enum ChannelFlow {
    /// Channels cannot be followed through the op: every axis of its inputs and outputs is
    /// blocked (GatherElements, Range, a grouped Conv, a Reshape to a computed shape, training
    /// ops, ...).
    Opaque,
    /// Output 0 has input 0's shape, axis a being axis a (element-wise unary ops, Clip, Cast,
    /// Identity, Dropout, BatchNorm, LayerNorm, quantization); `follow` ties per-channel
    /// parameter inputs (BatchNorm's scale, bias, mean and var) to axes of input 0.
    PassThrough {
        /// Per-channel parameters.
        follow: Vec<Follow>,
    },
    /// Broadcasting element-wise op (Add, Mul, Where, Sum, PRelu, ...): each input axis is tied
    /// to the right-aligned output axis unless it broadcasts (a dim of 1 against a larger one).
    /// This ties both branches of a residual Add and a squeeze-excite gate to its input.
    Couple,
    /// A weight layer: `weight`'s axis `weight_axis` produces output 0's axis `out_axis`; the
    /// weight's axis `consumes.weight_axis` reads the data input's channels; `per_channel`
    /// lists `(input, axis)` parameters that follow the output channels (a bias).
    Produces {
        /// The weight input.
        weight: usize,
        /// The weight axis whose slices are the output channels.
        weight_axis: usize,
        /// The output axis it produces.
        out_axis: usize,
        /// The input channels the weight reads, if they are prunable through it.
        consumes: Option<Consumes>,
        /// Parameters that follow the output channels.
        per_channel: Vec<(usize, usize)>,
    },
    /// A depthwise Conv (inputs X, W, optional B; `group` = input channels): output channel
    /// `c * multiplier + j` is computed from input channel `c` alone by weight slice
    /// `c * multiplier + j`, so input axis 1 passes to output axis 1 in blocks of `multiplier`
    /// and the weight's axis 0 and the bias follow the output. `transposed` (a ConvTranspose,
    /// W `[C, multiplier, ...]`): the weight's axis 0 follows the input. The `group` attribute
    /// counts input channels and must follow them.
    Depthwise {
        /// Output channels per input channel.
        multiplier: usize,
        /// ConvTranspose layout of the weight.
        transposed: bool,
    },
    /// Concatenation along `axis`: input i's channel c is output channel `off_i + c`, with
    /// `off_i` the sum of the earlier inputs' sizes; the other axes are tied.
    Concat {
        /// The (normalised) axis.
        axis: usize,
    },
    /// Split along `axis`, the inverse of Concat; the split sizes count the channels.
    Split {
        /// The (normalised) axis.
        axis: usize,
    },
    /// Explicit axis maps from input 0 to output 0 (pooling, Transpose, Squeeze, Softmax,
    /// Reduce, Slice, Pad, Flatten and Reshape as [`AxisMap`] blocks, ...); every other axis is
    /// blocked.
    Axes {
        /// The axes that carry channels through.
        map: Vec<AxisMap>,
    },
    /// The op reads the sizes of input 0's `axes` (Shape, Size): those are blocked, the others
    /// are free.
    Reads {
        /// The axes whose sizes are read.
        axes: Vec<usize>,
    },
}

impl ChannelFlow {
    /// Lowers the flow to links, roles and counted axes for a node with these input and output
    /// facts. Links that name an absent input or an axis out of range are dropped (the axes
    /// stay blocked).
    pub fn lower(&self, inputs: &[Option<&Fact>], outputs: &[&Fact]) -> Lowered {
        let fact = |p: Port| match p {
            Port::In(i) => inputs.get(i).copied().flatten(),
            Port::Out(i) => outputs.get(i).copied(),
        };
        let rank = |p: Port| fact(p).map_or(0, Fact::rank);
        let dim = |p: PortAxis| fact(p.port).and_then(|f| f.shape.get(p.axis)).and_then(Dim::known);
        let mut l = Lowered::default();
        match self {
            ChannelFlow::Opaque => {}
            ChannelFlow::PassThrough { follow } => {
                l.links.extend((0..rank(Port::In(0))).map(|a| tie(inp(0, a), out(0, a))));
                l.links.extend(follow.iter().map(|f| tie(inp(0, f.of), inp(f.input, f.axis))));
            }
            ChannelFlow::Couple => {
                let Some(y) = outputs.first() else { return l };
                for (i, f) in inputs.iter().enumerate() {
                    let Some(f) = f.filter(|f| f.rank() <= y.rank()) else { continue };
                    let lead = y.rank() - f.rank();
                    for (a, d) in f.shape.iter().enumerate() {
                        if *d != Dim::Unknown && *d == y.shape[lead + a] {
                            l.links.push(tie(out(0, lead + a), inp(i, a)));
                        }
                    }
                }
            }
            ChannelFlow::Produces { weight, weight_axis, out_axis, consumes, per_channel } => {
                let w = inp(*weight, *weight_axis);
                l.links.push(tie(out(0, *out_axis), w));
                l.roles.push((w, Role::Produces));
                if let Some(c) = consumes {
                    let wc = inp(*weight, c.weight_axis);
                    l.links.push(tie(inp(c.input, c.axis), wc));
                    l.roles.push((wc, Role::Consumes));
                }
                l.links.extend(per_channel.iter().map(|&(i, a)| tie(out(0, *out_axis), inp(i, a))));
            }
            ChannelFlow::Depthwise { multiplier, transposed } => {
                l.links.push(Link { coarse: inp(0, 1), fine: out(0, 1), block: *multiplier, offset: 0 });
                let w0 = if *transposed { inp(0, 1) } else { out(0, 1) };
                l.links.push(tie(w0, inp(1, 0)));
                l.links.push(tie(out(0, 1), inp(2, 0)));
                l.counted.push(inp(0, 1));
            }
            ChannelFlow::Concat { axis } => {
                let mut off = Some(0);
                for i in 0..inputs.len() {
                    for a in (0..rank(Port::In(i))).filter(|a| a != axis) {
                        l.links.push(tie(out(0, a), inp(i, a)));
                    }
                    if let Some(o) = off {
                        l.links.push(Link {
                            coarse: inp(i, *axis),
                            fine: out(0, *axis),
                            block: 1,
                            offset: o,
                        });
                    }
                    off = off.zip(dim(inp(i, *axis))).map(|(o, d)| o + d);
                }
                if off.is_none() {
                    l.links.retain(|k| k.fine != out(0, *axis));
                }
            }
            ChannelFlow::Split { axis } => {
                let mut off = Some(0);
                for j in 0..outputs.len() {
                    for a in (0..rank(Port::Out(j))).filter(|a| a != axis) {
                        l.links.push(tie(inp(0, a), out(j, a)));
                    }
                    if let Some(o) = off {
                        l.links.push(Link {
                            coarse: out(j, *axis),
                            fine: inp(0, *axis),
                            block: 1,
                            offset: o,
                        });
                    }
                    off = off.zip(dim(out(j, *axis))).map(|(o, d)| o + d);
                }
                if off.is_none() {
                    l.links.retain(|k| k.fine != inp(0, *axis));
                }
                l.counted.push(inp(0, *axis));
            }
            ChannelFlow::Axes { map } => {
                l.links.extend(map.iter().map(|m| Link {
                    coarse: inp(0, m.input),
                    fine: out(0, m.output),
                    block: m.block,
                    offset: 0,
                }));
            }
            ChannelFlow::Reads { axes } => {
                l.free.extend((0..rank(Port::In(0))).filter(|a| !axes.contains(a)).map(|a| inp(0, a)));
                for j in 0..outputs.len() {
                    l.free.extend((0..rank(Port::Out(j))).map(|a| out(j, a)));
                }
            }
        }
        let exists = |p: &PortAxis| p.axis < rank(p.port) && fact(p.port).is_some();
        l.links.retain(|k| exists(&k.coarse) && exists(&k.fine) && k.block > 0);
        l.roles.retain(|(p, _)| exists(p));
        l.counted.retain(exists);
        l
    }
}

impl Op {
    /// How channels flow through this op, given the facts of its inputs (`None` for absent
    /// optional ones) and outputs. Conservative: [`ChannelFlow::Opaque`] when unsure.
    pub fn channel_flow(&self, inputs: &[Option<&Fact>], outputs: &[&Fact]) -> ChannelFlow {
        use ChannelFlow::*;
        let x = inputs.first().copied().flatten();
        let r = x.map_or(0, Fact::rank);
        let present = |i: usize| inputs.get(i).copied().flatten().is_some();
        match self {
            Op::Conv(c) => conv_flow(c.group, false, inputs),
            Op::ConvTranspose(c) => conv_flow(c.group, true, inputs),
            Op::Gemm(g) => gemm_flow(g, inputs),
            Op::MatMul => matmul_flow(inputs, outputs),
            Op::BatchNorm(_) if r >= 2 => PassThrough {
                follow: (1..=4)
                    .filter(|&i| present(i))
                    .map(|i| Follow { input: i, axis: 0, of: 1 })
                    .collect(),
            },
            Op::BatchNorm(_) => Opaque,
            Op::LayerNorm(l) => layer_norm_flow(l, inputs),
            Op::MaxPool(_) | Op::AveragePool(_) | Op::GlobalAveragePool | Op::GlobalMaxPool => {
                keep(r, |a| a < 2)
            }
            Op::Softmax { axis, legacy, .. } => match norm_axis(*axis, r) {
                Ok(k) => keep(r, |a| if *legacy { a < k } else { a != k }),
                Err(_) => Opaque,
            },
            Op::Unary(_) | Op::Clip | Op::Cast(_) | Op::Identity | Op::Dropout { .. } => {
                PassThrough { follow: vec![] }
            }
            Op::Binary(_) | Op::Variadic(_) | Op::Where => Couple,
            Op::Reshape { allowzero } => match (x, outputs.first(), konst_at(inputs, 1)) {
                (Some(x), Some(y), Some(s)) => match s.to_i64_vec() {
                    Some(spec) => reshape_flow(&x.shape, &y.shape, &spec, *allowzero),
                    None => Opaque,
                },
                _ => Opaque,
            },
            Op::Flatten { axis } => match x {
                Some(x) => flatten_flow(&x.shape, *axis),
                None => Opaque,
            },
            Op::Transpose { perm } => {
                let p: Vec<usize> = perm.clone().unwrap_or_else(|| (0..r).rev().collect());
                keep(r, |a| p.get(a) == Some(&a))
            }
            Op::Concat { axis } => match norm_axis(*axis, r) {
                Ok(axis) if r > 0 && inputs.iter().all(Option::is_some) => Concat { axis },
                _ => Opaque,
            },
            Op::Split { axis, .. } => match norm_axis(*axis, r) {
                Ok(axis) if r > 0 => Split { axis },
                _ => Opaque,
            },
            Op::Slice => slice_flow(inputs, outputs),
            Op::Gather { axis } => match (norm_axis(*axis, r), inputs.get(1).copied().flatten()) {
                (Ok(g), Some(idx)) if r > 0 => {
                    let k = idx.rank();
                    let map = (0..r).filter(|&a| a != g).map(|a| (a, if a < g { a } else { a - 1 + k }));
                    Axes { map: map.map(|(i, o)| AxisMap { input: i, output: o, block: 1 }).collect() }
                }
                _ => Opaque,
            },
            Op::GatherElements { .. } => Opaque,
            Op::Squeeze => {
                let gone: Option<Vec<usize>> = match inputs.get(1).copied().flatten() {
                    None => x.map(|x| (0..r).filter(|&a| x.shape[a] == Dim::Known(1)).collect()),
                    Some(_) => axes_at(inputs, 1, r),
                };
                match gone {
                    Some(gone) => renumber(r, |a| gone.contains(&a), false),
                    None => Opaque,
                }
            }
            Op::Unsqueeze => match (axes_at(inputs, 1, r + konst_len(inputs, 1)), outputs.first()) {
                (Some(new), Some(y)) => {
                    let kept: Vec<usize> = (0..y.rank()).filter(|a| !new.contains(a)).collect();
                    let map =
                        kept.iter().enumerate().map(|(i, &o)| AxisMap { input: i, output: o, block: 1 });
                    Axes { map: map.filter(|m| m.input < r).collect() }
                }
                _ => Opaque,
            },
            Op::Shape { start, end } => {
                let fix = |v: i64| (if v < 0 { v + r as i64 } else { v }).clamp(0, r as i64) as usize;
                let (s, e) = (fix(*start), fix(end.unwrap_or(r as i64)));
                Reads { axes: (s..e.max(s)).collect() }
            }
            Op::Size => Reads { axes: (0..r).collect() },
            Op::ConstantOfShape(_) | Op::Range => Opaque,
            Op::Expand => expand_flow(inputs, outputs),
            Op::Tile => match konst_at(inputs, 1).and_then(|t| t.to_i64_vec()) {
                Some(reps) => keep(r, |a| reps.get(a) == Some(&1)),
                None => Opaque,
            },
            Op::Pad(_) => pad_flow(inputs),
            Op::Resize(z) => resize_flow(z, inputs),
            Op::Reduce(z) => reduce_flow(z, inputs),
            Op::ArgReduce { axis, keepdims, .. } => match norm_axis(*axis, r) {
                Ok(k) => renumber(r, |a| a == k, *keepdims),
                Err(_) => Opaque,
            },
            Op::QuantizeLinear { axis, .. } | Op::DequantizeLinear { axis } | Op::FakeQuant { axis, .. } => {
                quant_flow(*axis, inputs)
            }
            Op::Train(_) => Opaque,
        }
    }
}

/// Axis maps keeping input 0's axes for which `kept` holds, at the same positions.
fn keep(rank: usize, kept: impl Fn(usize) -> bool) -> ChannelFlow {
    let map = (0..rank).filter(|&a| kept(a)).map(|a| AxisMap { input: a, output: a, block: 1 });
    ChannelFlow::Axes { map: map.collect() }
}

/// Axis maps of a reduction over the axes for which `gone` holds (dropped unless `keepdims`).
fn renumber(rank: usize, gone: impl Fn(usize) -> bool, keepdims: bool) -> ChannelFlow {
    let mut map = vec![];
    let mut o = 0;
    for a in 0..rank {
        if !gone(a) {
            map.push(AxisMap { input: a, output: o, block: 1 });
        }
        if keepdims || !gone(a) {
            o += 1;
        }
    }
    ChannelFlow::Axes { map }
}

/// Normalised constant axes of input `i` against `rank`; `None` when absent, not constant or
/// out of range.
fn axes_at(inputs: &[Option<&Fact>], i: usize, rank: usize) -> Option<Vec<usize>> {
    let v = konst_at(inputs, i)?.to_i64_vec()?;
    v.iter().map(|&a| norm_axis(a, rank).ok()).collect()
}

/// Number of entries of constant input `i` (0 when absent or not constant).
fn konst_len(inputs: &[Option<&Fact>], i: usize) -> usize {
    konst_at(inputs, i).map_or(0, |t| t.len())
}

/// Conv (W `[C_out, C_in / group, ...]`) and ConvTranspose (`transposed`, W
/// `[C_in, C_out / group, ...]`): group 1 produces and consumes; group = C_in is depthwise;
/// other groupings are opaque (their channels must be pruned group-balanced).
fn conv_flow(group: usize, transposed: bool, inputs: &[Option<&Fact>]) -> ChannelFlow {
    let (Some(x), Some(w)) = (inputs.first().copied().flatten(), inputs.get(1).copied().flatten()) else {
        return ChannelFlow::Opaque;
    };
    if x.rank() < 2 || w.rank() < 2 {
        return ChannelFlow::Opaque;
    }
    let (w_out, w_in) = if transposed { (1, 0) } else { (0, 1) };
    if group == 1 {
        return ChannelFlow::Produces {
            weight: 1,
            weight_axis: w_out,
            out_axis: 1,
            consumes: Some(Consumes { input: 0, axis: 1, weight_axis: w_in }),
            per_channel: inputs.get(2).copied().flatten().map(|_| (2, 0)).into_iter().collect(),
        };
    }
    match (x.shape[1].known(), w.shape[0].known(), w.shape[1].known()) {
        (Some(c), Some(n), Some(1)) if !transposed && group == c && n % c == 0 => {
            ChannelFlow::Depthwise { multiplier: n / c, transposed }
        }
        (Some(c), Some(n), Some(m)) if transposed && group == c && n == c => {
            ChannelFlow::Depthwise { multiplier: m, transposed }
        }
        _ => ChannelFlow::Opaque,
    }
}

/// True for an input that is a constant.
fn is_const(inputs: &[Option<&Fact>], i: usize) -> bool {
    konst_at(inputs, i).is_some()
}

/// Gemm `Y = A' B' + C`: the constant operand (B, else A) is the weight.
fn gemm_flow(g: &Gemm, inputs: &[Option<&Fact>]) -> ChannelFlow {
    let ranks: Option<Vec<usize>> =
        (0..2).map(|i| inputs.get(i).copied().flatten().map(Fact::rank)).collect();
    if ranks != Some(vec![2, 2]) {
        return ChannelFlow::Opaque;
    }
    // A' is [M, K] (A is [K, M] with trans_a); B' is [K, N].
    let (a_m, a_k) = if g.trans_a { (1, 0) } else { (0, 1) };
    let (b_k, b_n) = if g.trans_b { (1, 0) } else { (0, 1) };
    let (weight, weight_axis, out_axis, consumes) = if is_const(inputs, 1) {
        (1, b_n, 1, Consumes { input: 0, axis: a_k, weight_axis: b_k })
    } else if is_const(inputs, 0) {
        (0, a_m, 0, Consumes { input: 1, axis: b_k, weight_axis: a_k })
    } else {
        return ChannelFlow::Opaque;
    };
    let mut per_channel = vec![];
    if let Some(c) = inputs.get(2).copied().flatten().filter(|c| c.rank() <= 2) {
        // C broadcasts (right-aligned) to [M, N]; its axis aligned with `out_axis` follows it
        // unless it broadcasts.
        let lead = 2 - c.rank();
        if out_axis >= lead && c.shape[out_axis - lead] != Dim::Known(1) {
            per_channel.push((2, out_axis - lead));
        }
    }
    ChannelFlow::Produces { weight, weight_axis, out_axis, consumes: Some(consumes), per_channel }
}

/// MatMul with a constant 2-D operand: a right weight `[K, N]` produces the last output axis,
/// a left one `[M, K]` the second last.
fn matmul_flow(inputs: &[Option<&Fact>], outputs: &[&Fact]) -> ChannelFlow {
    let (Some(a), Some(b), Some(y)) =
        (inputs.first().copied().flatten(), inputs.get(1).copied().flatten(), outputs.first())
    else {
        return ChannelFlow::Opaque;
    };
    if is_const(inputs, 1) && b.rank() == 2 && a.rank() >= 1 {
        return ChannelFlow::Produces {
            weight: 1,
            weight_axis: 1,
            out_axis: y.rank() - 1,
            consumes: Some(Consumes { input: 0, axis: a.rank() - 1, weight_axis: 0 }),
            per_channel: vec![],
        };
    }
    if is_const(inputs, 0) && a.rank() == 2 && b.rank() >= 2 {
        return ChannelFlow::Produces {
            weight: 0,
            weight_axis: 0,
            out_axis: y.rank() - 2,
            consumes: Some(Consumes { input: 1, axis: b.rank() - 2, weight_axis: 1 }),
            per_channel: vec![],
        };
    }
    ChannelFlow::Opaque
}

/// LayerNorm: Y like X; scale and bias (right-aligned to X) follow the axes they match.
fn layer_norm_flow(l: &LayerNorm, inputs: &[Option<&Fact>]) -> ChannelFlow {
    let Some(x) = inputs.first().copied().flatten() else { return ChannelFlow::Opaque };
    let Ok(k) = norm_axis(l.axis, x.rank()) else { return ChannelFlow::Opaque };
    let mut follow = vec![];
    for i in [1, 2] {
        let Some(p) = inputs.get(i).copied().flatten().filter(|p| p.rank() <= x.rank()) else { continue };
        let lead = x.rank() - p.rank();
        for (j, d) in p.shape.iter().enumerate() {
            if lead + j >= k && *d != Dim::Known(1) && *d == x.shape[lead + j] {
                follow.push(Follow { input: i, axis: j, of: lead + j });
            }
        }
    }
    ChannelFlow::PassThrough { follow }
}

/// Quantization ops: element-wise; a per-axis scale (and zero point) follows `axis`.
fn quant_flow(axis: i64, inputs: &[Option<&Fact>]) -> ChannelFlow {
    let (Some(x), Some(s)) = (inputs.first().copied().flatten(), inputs.get(1).copied().flatten()) else {
        return ChannelFlow::Opaque;
    };
    if s.rank() == 0 || s.numel() == Some(1) {
        return ChannelFlow::PassThrough { follow: vec![] };
    }
    let Ok(a) = norm_axis(axis, x.rank()) else { return ChannelFlow::Opaque };
    if s.rank() != 1 || s.shape[0] != x.shape[a] {
        return ChannelFlow::Opaque;
    }
    let zp = inputs.get(2).copied().flatten().filter(|z| z.shape == s.shape);
    let mut follow = vec![Follow { input: 1, axis: 0, of: a }];
    follow.extend(zp.map(|_| Follow { input: 2, axis: 0, of: a }));
    ChannelFlow::PassThrough { follow }
}

/// Product of known dims.
fn known_product(ds: &[Dim]) -> Option<usize> {
    ds.iter().map(Dim::known).product()
}

/// Flatten at `axis`: each output axis holds the first merged input axis in blocks of the
/// product of the others; the others are blocked.
fn flatten_flow(shape: &[Dim], axis: i64) -> ChannelFlow {
    let r = shape.len();
    let k = if axis < 0 { axis + r as i64 } else { axis };
    if !(0..=r as i64).contains(&k) {
        return ChannelFlow::Opaque;
    }
    let k = k as usize;
    let mut map = vec![];
    for (lead, end, o) in [(0, k, 0), (k, r, 1)] {
        if lead < end
            && let Some(block) = known_product(&shape[lead + 1..end])
        {
            map.push(AxisMap { input: lead, output: o, block });
        }
    }
    ChannelFlow::Axes { map }
}

/// Reshape with a constant shape `spec`. Leading and trailing dims equal in input and output
/// are the same axes; a middle run of input axes merged into one output axis is mapped like
/// Flatten. An axis is only mapped when `spec` does not spell its size out (a -1, or a 0 that
/// copies it), so that the reshape stays valid after pruning.
fn reshape_flow(xs: &[Dim], ys: &[Dim], spec: &[i64], allowzero: bool) -> ChannelFlow {
    let (ri, ro) = (xs.len(), ys.len());
    if spec.len() != ro {
        return ChannelFlow::Opaque;
    }
    let copies = |o: usize, i: usize| spec[o] == -1 || (spec[o] == 0 && !allowzero && o == i);
    let same = |i: usize, o: usize| xs[i] != Dim::Unknown && xs[i] == ys[o];
    let mut map = vec![];
    let mut p = 0;
    while p < ri && p < ro && same(p, p) {
        if copies(p, p) {
            map.push(AxisMap { input: p, output: p, block: 1 });
        }
        p += 1;
    }
    let mut q = 0;
    while q < ri - p && q < ro - p && same(ri - 1 - q, ro - 1 - q) {
        let (i, o) = (ri - 1 - q, ro - 1 - q);
        if copies(o, i) {
            map.push(AxisMap { input: i, output: o, block: 1 });
        }
        q += 1;
    }
    if ro - q == p + 1
        && ri - q >= p + 2
        && spec[p] == -1
        && let Some(block) = known_product(&xs[p + 1..ri - q])
    {
        map.push(AxisMap { input: p, output: p, block });
    }
    ChannelFlow::Axes { map }
}

/// Slice: unsliced axes pass, as do sliced ones kept whole (same size, step 1).
fn slice_flow(inputs: &[Option<&Fact>], outputs: &[&Fact]) -> ChannelFlow {
    let (Some(x), Some(y)) = (inputs.first().copied().flatten(), outputs.first()) else {
        return ChannelFlow::Opaque;
    };
    let r = x.rank();
    let Some(n) = konst_at(inputs, 1).map(|t| t.len()) else { return ChannelFlow::Opaque };
    let axes = match inputs.get(3).copied().flatten() {
        None => (0..n).collect(),
        Some(_) => match axes_at(inputs, 3, r) {
            Some(a) => a,
            None => return ChannelFlow::Opaque,
        },
    };
    let steps = match inputs.get(4).copied().flatten() {
        None => vec![1; axes.len()],
        Some(_) => match konst_at(inputs, 4).and_then(|t| t.to_i64_vec()) {
            Some(s) => s,
            None => return ChannelFlow::Opaque,
        },
    };
    keep(r, |a| match axes.iter().position(|&s| s == a) {
        None => true,
        Some(i) => steps.get(i) == Some(&1) && x.shape[a].known().is_some() && x.shape[a] == y.shape[a],
    })
}

/// Pad with constant pads: unpadded axes pass.
fn pad_flow(inputs: &[Option<&Fact>]) -> ChannelFlow {
    let Some(x) = inputs.first().copied().flatten() else { return ChannelFlow::Opaque };
    let r = x.rank();
    let Some(pads) = konst_at(inputs, 1).and_then(|t| t.to_i64_vec()) else { return ChannelFlow::Opaque };
    let axes = match inputs.get(3).copied().flatten() {
        None => (0..r).collect(),
        Some(_) => match axes_at(inputs, 3, r) {
            Some(a) => a,
            None => return ChannelFlow::Opaque,
        },
    };
    if pads.len() != 2 * axes.len() {
        return ChannelFlow::Opaque;
    }
    let n = axes.len();
    keep(r, |a| axes.iter().position(|&s| s == a).is_none_or(|i| pads[i] == 0 && pads[n + i] == 0))
}

/// Expand with a constant shape: axes of the data that the shape leaves alone (a 1 or no
/// entry) pass; an axis whose size the shape spells out is blocked.
fn expand_flow(inputs: &[Option<&Fact>], outputs: &[&Fact]) -> ChannelFlow {
    let (Some(x), Some(y)) = (inputs.first().copied().flatten(), outputs.first()) else {
        return ChannelFlow::Opaque;
    };
    let Some(target) = konst_at(inputs, 1).and_then(|t| t.to_i64_vec()) else { return ChannelFlow::Opaque };
    let (r, ro) = (x.rank(), y.rank());
    if r > ro || target.len() > ro {
        return ChannelFlow::Opaque;
    }
    let mut map = vec![];
    for a in 0..r {
        let o = ro - r + a;
        let t = (o + target.len()).checked_sub(ro).map(|i| target[i]);
        if x.shape[a] != Dim::Unknown && x.shape[a] == y.shape[o] && t.is_none_or(|t| t == 1) {
            map.push(AxisMap { input: a, output: o, block: 1 });
        }
    }
    ChannelFlow::Axes { map }
}

/// Resize: axes not resized pass, as do axes with a constant scale of 1 (no sizes given,
/// no cropping).
fn resize_flow(z: &Resize, inputs: &[Option<&Fact>]) -> ChannelFlow {
    let Some(x) = inputs.first().copied().flatten() else { return ChannelFlow::Opaque };
    let r = x.rank();
    let axes: Vec<usize> = if z.axes.is_empty() {
        (0..r).collect()
    } else {
        match z.axes.iter().map(|&a| norm_axis(a, r).ok()).collect() {
            Some(a) => a,
            None => return ChannelFlow::Opaque,
        }
    };
    let present = |i: usize| inputs.get(i).copied().flatten().filter(|f| f.numel() != Some(0));
    let scales = match (present(2), present(3)) {
        (Some(_), None) => konst_at(inputs, 2).map(|t| t.to_f64_vec()),
        _ => None,
    };
    let crop = z.coord_mode == "tf_crop_and_resize";
    keep(r, |a| match axes.iter().position(|&s| s == a) {
        None => true,
        Some(i) => !crop && scales.as_ref().is_some_and(|s| s.get(i) == Some(&1.0)),
    })
}

/// Reductions with constant axes: the reduced axes are blocked, the others pass.
fn reduce_flow(z: &Reduce, inputs: &[Option<&Fact>]) -> ChannelFlow {
    let Some(x) = inputs.first().copied().flatten() else { return ChannelFlow::Opaque };
    let r = x.rank();
    let axes = match inputs.get(1).copied().flatten() {
        None => vec![],
        Some(f) if f.numel() == Some(0) => vec![],
        Some(_) => match axes_at(inputs, 1, r) {
            Some(a) => a,
            None => return ChannelFlow::Opaque,
        },
    };
    match (axes.is_empty(), z.noop_with_empty_axes) {
        (true, true) => ChannelFlow::PassThrough { follow: vec![] },
        (true, false) => renumber(r, |_| true, z.keepdims),
        _ => renumber(r, |a| axes.contains(&a), z.keepdims),
    }
}

#[cfg(test)]
#[path = "channels_tests.rs"]
mod tests;
