//! The compiled execution plan: one per set of concrete input shapes.
//!
//! At plan time every node gets a kernel (`Kernel`): convolutions and constant-weight matrix
//! products get their weights packed once, epilogues are fused (Conv + bias + residual Add +
//! activation, MatMul + bias, `x * Sigmoid(x)`), and view ops (Reshape, Flatten, ...) become
//! aliases of their input's buffer. Every f32 activation lives in one arena whose layout is
//! planned from value lifetimes, with element-wise ops written in place when their input dies
//! there. Nodes without a native kernel run through `Op::eval_owned` (the `Generic` kernel),
//! which copies in and out of the arena.

use super::kernels::{self as k, Bcast, BinK, DenseWeights, UnaryK};
use super::layout::{self, Layout};
use crate::ir::{Act, Binary, Graph, Node, NodeId, Op, Unary, ValueId};
use crate::ops::nn::{conv::conv_geom, pool::pool_geom};
use crate::tensor::{DType, Tensor};
use anyhow::{Context, Result, anyhow, bail};
use pare_kernels::{ConvGeom, PoolGeom};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kernel variants a plan can choose between per layer: the tuner's search space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Variant {
    /// Conv: im2col tiles (or the input itself for 1×1) times packed weights; the depthwise
    /// kernel for depthwise convs.
    Gemm,
    /// Conv: Winograd F(2×2, 3×3) (3×3 stride-1 convs only).
    WinogradF2,
    /// Conv: Winograd F(4×4, 3×3) (3×3 stride-1 convs only).
    WinogradF4,
    /// Dense: weights pre-packed into GEMM panels once.
    PackedB,
    /// Dense, and 1×1 stride-1 unpadded convs (per image): the blocked `sgemm`, which packs
    /// both operands per call.
    Sgemm,
}

/// The shape of a tunable layer, which decides the variants that apply.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerShape {
    /// A convolution.
    Conv(ConvGeom),
    /// `x[m × k] · W[k × n]` with constant `W`.
    Dense {
        /// Rows.
        m: usize,
        /// Inner size.
        k: usize,
        /// Columns.
        n: usize,
    },
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 5] =
        [Variant::Gemm, Variant::WinogradF2, Variant::WinogradF4, Variant::PackedB, Variant::Sgemm];

    /// Short name used in tables, caches and stored plans.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Gemm => "gemm",
            Variant::WinogradF2 => "winograd-f2",
            Variant::WinogradF4 => "winograd-f4",
            Variant::PackedB => "packed-b",
            Variant::Sgemm => "sgemm",
        }
    }

    /// Parses [`Variant::name`].
    pub fn parse(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Whether the variant can run a layer of this shape.
    pub fn applies(self, l: &LayerShape) -> bool {
        match (self, l) {
            (Variant::Gemm, LayerShape::Conv(_)) => true,
            (Variant::WinogradF2 | Variant::WinogradF4, LayerShape::Conv(g)) => k::winograd_applies(g),
            (Variant::Sgemm, LayerShape::Conv(g)) => k::pointwise_applies(g),
            (Variant::PackedB | Variant::Sgemm, LayerShape::Dense { .. }) => true,
            _ => false,
        }
    }

    /// The variants that can run a layer of this shape.
    pub fn candidates(l: &LayerShape) -> Vec<Variant> {
        Variant::ALL.into_iter().filter(|v| v.applies(l)).collect()
    }

    /// The variant a layer gets without a measurement.
    pub fn heuristic(l: &LayerShape) -> Variant {
        match l {
            LayerShape::Conv(g) => k::heuristic_conv(g),
            LayerShape::Dense { m, .. } => k::heuristic_dense(*m),
        }
    }
}

/// Where a value lives during a run.
#[derive(Clone, Debug)]
pub(crate) enum Loc {
    /// `len` f32s at `off` in the arena.
    Arena { off: usize, len: usize },
    /// A tensor slot (non-f32 values, or values of unknown size).
    Slot(usize),
    /// A constant.
    Const(Tensor),
}

/// What a step computes.
pub(crate) enum Kernel {
    Conv {
        geom: ConvGeom,
        algo: Variant,
        w: Arc<k::ConvWeights>,
        bias: Option<Arc<Vec<f32>>>,
        act: pare_kernels::Act,
        /// Fused residual Add: the value added before the activation.
        residual: Option<ValueId>,
    },
    /// A conv on channels-last activations (output NHWC; input NHWC, or NCHW for GEMM
    /// weights packed for it).
    ConvNhwc {
        geom: ConvGeom,
        w: Arc<k::ConvWeights>,
        bias: Option<Arc<Vec<f32>>>,
        act: pare_kernels::Act,
        residual: Option<ValueId>,
    },
    /// Layout transpose of `[n, c, hw]` data: NCHW → NHWC (`to_nhwc`) or back.
    Reorder {
        to_nhwc: bool,
        n: usize,
        c: usize,
        hw: usize,
    },
    /// GlobalAveragePool of an NHWC input.
    GlobalAvgNhwc {
        n: usize,
        hw: usize,
        c: usize,
    },
    Dense {
        m: usize,
        variant: Variant,
        w: Arc<DenseWeights>,
        act: pare_kernels::Act,
    },
    MaxPool(PoolGeom),
    AvgPool(PoolGeom, bool),
    GlobalAvg {
        planes: usize,
        spatial: usize,
    },
    Unary(UnaryK),
    Silu,
    Binary(BinK, Bcast),
    Alias,
    Softmax {
        n: usize,
    },
    LayerNorm {
        n: usize,
        eps: f32,
    },
    Generic(Op),
}

/// One step: a kernel, its inputs and outputs (value ids of the plan's graph).
pub(crate) struct Step {
    pub name: String,
    pub op: String,
    pub kernel: Kernel,
    pub ins: Vec<Option<ValueId>>,
    pub outs: Vec<ValueId>,
}

/// Mutable per-run storage: the arena and the tensor slots.
pub(crate) struct State {
    arena: Vec<f32>,
    /// First 64-byte aligned index in `arena`.
    base: usize,
    slots: Vec<Option<Tensor>>,
}

/// A plan for one set of input shapes.
pub(crate) struct Plan {
    pub in_shapes: Vec<Vec<usize>>,
    /// Shapes of the outputs held in the arena (known at plan time), so a run does not
    /// allocate them.
    out_shapes: Vec<Vec<usize>>,
    pub graph: Graph,
    pub steps: Vec<Step>,
    pub locs: Vec<Option<Loc>>,
    arena_len: usize,
    n_slots: usize,
    state: Mutex<Option<State>>,
}

/// Weights packed once per runtime and shared by every plan (keyed by node name and algorithm).
pub(crate) type WeightCache = Mutex<HashMap<(String, Variant), Arc<k::ConvWeights>>>;

/// Inputs to plan building that come from the runtime.
pub(crate) struct PlanCtx<'a> {
    pub choices: &'a HashMap<String, Variant>,
    pub weights: &'a WeightCache,
    /// Run depthwise-conv regions channels-last ([`layout`]).
    pub channels_last: bool,
}

impl PlanCtx<'_> {
    /// The variant chosen for node `name` where one was chosen and applies, else the heuristic.
    fn choice(&self, name: &str, l: &LayerShape) -> Variant {
        self.choices.get(name).copied().filter(|v| v.applies(l)).unwrap_or_else(|| Variant::heuristic(l))
    }
}

fn konst(g: &Graph, v: Option<ValueId>) -> Option<&Tensor> {
    g.fact(v?).konst.as_ref()
}

fn f32_const(g: &Graph, v: Option<ValueId>) -> Option<Vec<f32>> {
    Some(konst(g, v)?.as_slice::<f32>()?.to_vec())
}

/// The activation a node computes, if it is one a kernel epilogue can apply.
fn as_act(g: &Graph, n: NodeId) -> Option<pare_kernels::Act> {
    use pare_kernels::Act as K;
    let node = g.node(n).ok()?;
    Some(match &node.op {
        Op::Unary(Unary::Relu) => K::Relu,
        Op::Unary(Unary::LeakyRelu(a)) => K::LeakyRelu(*a),
        Op::Unary(Unary::Sigmoid) => K::Sigmoid,
        Op::Unary(Unary::HardSigmoid { alpha, beta }) => K::HardSigmoid { alpha: *alpha, beta: *beta },
        Op::Unary(Unary::HardSwish) => K::HardSwish,
        Op::Clip => {
            let (lo, hi) = clip_bounds(g, &node.inputs)?;
            K::Clip { min: lo, max: hi }
        }
        _ => return None,
    })
}

fn clip_bounds(g: &Graph, ins: &[Option<ValueId>]) -> Option<(f32, f32)> {
    let bound = |i: usize, d: f32| -> Option<f32> {
        match ins.get(i).copied().flatten() {
            None => Some(d),
            Some(v) => {
                let t = konst(g, Some(v))?;
                if t.len() != 1 {
                    return None;
                }
                t.as_slice::<f32>().map(|s| s[0])
            }
        }
    };
    Some((bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?))
}

fn ir_act(a: Act) -> pare_kernels::Act {
    crate::ops::nn::kernel_act(a)
}

struct Builder<'g> {
    g: &'g Graph,
    consumers: Vec<Vec<NodeId>>,
    is_output: Vec<bool>,
    arena: Vec<bool>,
    absorbed: Vec<bool>,
    /// Values already computed by emitted steps (or graph inputs).
    ready: Vec<bool>,
    /// Which values are stored NHWC, and the reorder nodes.
    layout: Layout,
}

impl Builder<'_> {
    fn sole_consumer(&self, v: ValueId) -> Option<NodeId> {
        match self.consumers[v.0].as_slice() {
            [n] if !self.is_output[v.0] => Some(*n),
            _ => None,
        }
    }
    /// PyTorch's exact GELU as exported: `x / √2` (or `x · (1/√2)`) → Erf → `+ 1` → `· x`
    /// → `· 0.5` (the last two multiplies in either order, operands either way round),
    /// starting at node `n`, every intermediate read once. Returns `x`, the nodes after `n`
    /// and the chain's output.
    fn gelu_chain(&self, n: NodeId) -> Option<(ValueId, Vec<NodeId>, ValueId)> {
        use std::f32::consts::{FRAC_1_SQRT_2, SQRT_2};
        let g = self.g;
        let node = g.node(n).ok()?;
        let scalar = |v: Option<ValueId>| -> Option<f32> {
            let t = konst(g, v)?;
            if t.len() != 1 {
                return None;
            }
            t.as_slice::<f32>().map(|s| s[0])
        };
        let near = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs();
        let (x, ok) = match node.op {
            Op::Binary(Binary::Div) => {
                (node.inputs[0]?, scalar(node.inputs[1]).is_some_and(|c| near(c, SQRT_2)))
            }
            Op::Binary(Binary::Mul) => match scalar(node.inputs[1]) {
                Some(c) => (node.inputs[0]?, near(c, FRAC_1_SQRT_2)),
                None => (node.inputs[1]?, scalar(node.inputs[0]).is_some_and(|c| near(c, FRAC_1_SQRT_2))),
            },
            _ => return None,
        };
        if !ok || !self.arena[x.0] || node.outputs.len() != 1 {
            return None;
        }
        let next = |v: ValueId| -> Option<(NodeId, &Node)> {
            let m = self.sole_consumer(v)?;
            Some((m, g.node(m).ok()?))
        };
        let other = |m: &Node, v: ValueId| {
            if m.inputs[0] == Some(v) { m.inputs.get(1).copied().flatten() } else { m.inputs[0] }
        };
        let (en, e) = next(node.outputs[0])?;
        if e.op != Op::Unary(Unary::Erf) {
            return None;
        }
        let (an, a) = next(e.outputs[0])?;
        if a.op != Op::Binary(Binary::Add) || scalar(other(a, e.outputs[0])) != Some(1.0) {
            return None;
        }
        let (m1n, m1) = next(a.outputs[0])?;
        let (m2n, m2) = next(m1.outputs[0])?;
        if m1.op != Op::Binary(Binary::Mul) || m2.op != Op::Binary(Binary::Mul) {
            return None;
        }
        let (o1, o2) = (other(m1, a.outputs[0]), other(m2, m1.outputs[0]));
        let half = |v: Option<ValueId>| scalar(v) == Some(0.5);
        let out = m2.outputs[0];
        let ok = ((o1 == Some(x) && half(o2)) || (half(o1) && o2 == Some(x)))
            && self.arena[out.0]
            && self.shape(out) == self.shape(x);
        ok.then(|| (x, vec![en, an, m1n, m2n], out))
    }
    /// Conv + residual Add (+ activation) fusion: when the conv output `y` is read only by
    /// an Add of a ready arena value of the same shape and layout, the Add (and an activation
    /// reading only its output) join the conv's step. Returns the residual value.
    fn fuse_residual(
        &mut self,
        y: ValueId,
        name: &mut String,
        op_name: &mut String,
        outs: &mut Vec<ValueId>,
        act: &mut pare_kernels::Act,
    ) -> Result<Option<ValueId>> {
        let g = self.g;
        let nhwc = |v: ValueId| self.layout.is_nhwc(v);
        let Some(an) = self.sole_consumer(y) else { return Ok(None) };
        let add = g.node(an)?;
        if add.op != Op::Binary(Binary::Add) {
            return Ok(None);
        }
        let other = if add.inputs[0] == Some(y) { add.inputs[1] } else { add.inputs[0] };
        let Some(r) = other else { return Ok(None) };
        if r == y
            || !self.arena[r.0]
            || !self.ready[r.0]
            || self.shape(r) != self.shape(y)
            || self.shape(add.outputs[0]) != self.shape(y)
            || nhwc(r) != nhwc(y)
            || nhwc(add.outputs[0]) != nhwc(y)
        {
            return Ok(None);
        }
        self.absorbed[an.0] = true;
        *name = format!("{name}+{}", add.name);
        op_name.push_str("+Add");
        *outs = add.outputs.clone();
        if let Some(actn) = self.sole_consumer(outs[0])
            && let Some(a) = as_act(g, actn)
            && nhwc(g.node(actn)?.outputs[0]) == nhwc(y)
        {
            let an = g.node(actn)?;
            *act = a;
            self.absorbed[actn.0] = true;
            *name = format!("{name}+{}", an.name);
            *op_name = format!("{op_name}+{}", an.op.onnx_name());
            *outs = an.outputs.clone();
        }
        Ok(Some(r))
    }
    /// The step of a node that reads or writes channels-last values: a conv, an
    /// element-wise binary op or a GlobalAveragePool ([`layout`] gives no other op an
    /// NHWC value).
    fn step_nhwc(&mut self, n: NodeId, ctx: &PlanCtx) -> Result<Step> {
        let g = self.g;
        let node = g.node(n)?;
        let mut name = node.name.clone();
        let mut op_name = node.op.onnx_name().to_string();
        let mut ins = node.inputs.clone();
        let mut outs = node.outputs.clone();
        let x = ins.first().copied().flatten().ok_or_else(|| anyhow!("missing input"))?;
        let kernel = match &node.op {
            Op::Conv(c) => {
                let w =
                    konst(g, ins[1]).ok_or_else(|| anyhow!("channels-last conv without constant weights"))?;
                let geom = conv_geom(c, &self.shape(x), w.shape())?;
                let bias = match ins.get(2).copied().flatten() {
                    Some(b) => {
                        Some(Arc::new(f32_const(g, Some(b)).ok_or_else(|| anyhow!("bias is not f32"))?))
                    }
                    None => None,
                };
                if !self.layout.is_nhwc(x) || !self.layout.is_nhwc(outs[0]) {
                    bail!("internal: a channels-last conv with an NCHW input or output");
                }
                let mut act = ir_act(c.act);
                let residual = if c.act == Act::None && geom.groups == 1 {
                    self.fuse_residual(outs[0], &mut name, &mut op_name, &mut outs, &mut act)?
                } else {
                    None
                };
                let key = (format!("{}\u{0}nhwc", node.name), Variant::Gemm);
                let wts = {
                    let mut cache = ctx.weights.lock().map_err(|_| anyhow!("weight cache poisoned"))?;
                    match cache.get(&key) {
                        Some(p) if p.matches(&geom) && p.is_nhwc() => p.clone(),
                        _ => {
                            let wf = w.as_slice::<f32>().ok_or_else(|| anyhow!("weight is not f32"))?;
                            let p =
                                Arc::new(k::ConvWeights::nhwc(&geom, wf).ok_or_else(|| {
                                    anyhow!("internal: no channels-last kernel for this conv")
                                })?);
                            cache.insert(key, p.clone());
                            p
                        }
                    }
                };
                if let Some(r) = residual {
                    ins.push(Some(r));
                }
                op_name.push_str(" (nhwc)");
                Kernel::ConvNhwc { geom, w: wts, bias, act, residual }
            }
            Op::Binary(bop) => {
                let op =
                    BinK::of(*bop).ok_or_else(|| anyhow!("internal: {op_name} on channels-last values"))?;
                // Physical shapes: NHWC values permuted; the others read the same in both
                // layouts (one channel or one position), so permuting their padded shape
                // describes their memory too.
                let phys = |v: ValueId| -> Vec<usize> {
                    let s = konst(g, Some(v)).map(|t| t.shape().to_vec()).unwrap_or_else(|| self.shape(v));
                    let mut p = vec![1; 4usize.saturating_sub(s.len())];
                    p.extend_from_slice(&s);
                    vec![p[0], p[2], p[3], p[1]]
                };
                let (a, b) = (x, ins[1].ok_or_else(|| anyhow!("missing input"))?);
                Kernel::Binary(
                    op,
                    Bcast::new(&phys(outs[0]), &phys(a), &phys(b))
                        .ok_or_else(|| anyhow!("internal: channels-last operands do not broadcast"))?,
                )
            }
            Op::GlobalAveragePool => {
                let s = self.shape(x);
                Kernel::GlobalAvgNhwc { n: s[0], c: s[1], hw: s[2] * s[3] }
            }
            other => bail!("internal: {} reads a channels-last value", other.onnx_name()),
        };
        Ok(Step { name, op: op_name, kernel, ins, outs })
    }
    fn in_arena(&self, v: Option<ValueId>) -> bool {
        v.is_some_and(|v| self.arena[v.0])
    }
    fn shape(&self, v: ValueId) -> Vec<usize> {
        self.g.fact(v).concrete_shape().unwrap_or_default()
    }
}

impl Plan {
    /// Builds the plan for `graph`, whose inputs all have concrete shapes.
    pub(crate) fn build(mut graph: Graph, ctx: &PlanCtx) -> Result<Plan> {
        let layout = if ctx.channels_last {
            layout::assign(&mut graph).context("choosing channels-last regions")?
        } else {
            Layout { nhwc: vec![false; graph.value_count()], ..Layout::default() }
        };
        let g = &graph;
        let in_shapes = g
            .inputs()
            .iter()
            .map(|&v| {
                g.fact(v).concrete_shape().ok_or_else(|| anyhow!("input {} is not concrete", g.value(v).name))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut is_output = vec![false; g.value_count()];
        for o in g.outputs() {
            is_output[o.0] = true;
        }
        // Placement: f32 non-constant values of known size live in the arena.
        let arena: Vec<bool> = (0..g.value_count())
            .map(|i| {
                let f = g.fact(ValueId(i));
                f.konst.is_none() && f.dtype == DType::F32 && f.concrete_shape().is_some()
            })
            .collect();
        let mut b = Builder {
            g,
            consumers: g.consumers(),
            is_output,
            arena,
            absorbed: vec![false; g.node_slots()],
            ready: vec![false; g.value_count()],
            layout,
        };
        for v in g.inputs() {
            b.ready[v.0] = true;
        }
        let mut steps = Vec::new();
        for n in g.topo_order()? {
            if b.absorbed[n.0] {
                continue;
            }
            let step = b.step(n, ctx).with_context(|| g.describe_node(n))?;
            for o in &step.outs {
                b.ready[o.0] = true;
            }
            steps.push(step);
        }
        let arena = std::mem::take(&mut b.arena);
        drop(b);
        let (locs, arena_len, n_slots) = place(g, &steps, &arena);
        let out_shapes =
            graph.outputs().iter().map(|v| graph.fact(*v).concrete_shape().unwrap_or_default()).collect();
        Ok(Plan { in_shapes, out_shapes, steps, locs, arena_len, n_slots, state: Mutex::new(None), graph })
    }
}

/// Assigns arena offsets from lifetimes (with aliases and in-place reuse) and tensor slots.
fn place(g: &Graph, steps: &[Step], arena: &[bool]) -> (Vec<Option<Loc>>, usize, usize) {
    {
        let nv = g.value_count();
        // Union-find over values sharing a buffer.
        let mut parent: Vec<usize> = (0..nv).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        for s in steps {
            if let Kernel::Alias = s.kernel
                && let Some(i) = s.ins[0]
                && arena[i.0]
                && arena[s.outs[0].0]
            {
                let (a, o) = (find(&mut parent, i.0), find(&mut parent, s.outs[0].0));
                parent[o] = a;
            }
        }
        // Last use of every buffer (root); graph outputs live to the end.
        let end = steps.len();
        let last_use = |parent: &mut Vec<usize>, steps: &[Step]| {
            let mut last = vec![0usize; nv];
            for (i, s) in steps.iter().enumerate() {
                for v in s.ins.iter().flatten().chain(&s.outs) {
                    let r = find(parent, v.0);
                    last[r] = last[r].max(i);
                }
            }
            for o in g.outputs() {
                let r = find(parent, o.0);
                last[r] = end;
            }
            last
        };
        let mut last = last_use(&mut parent, steps);
        // In place: an element-wise output takes over an input buffer that dies at this step.
        for (i, s) in steps.iter().enumerate() {
            let candidates: Vec<ValueId> = match &s.kernel {
                Kernel::Unary(_) | Kernel::Silu | Kernel::Softmax { .. } | Kernel::LayerNorm { .. } => {
                    s.ins[0].into_iter().collect()
                }
                Kernel::Binary(..) => s.ins.iter().flatten().copied().collect(),
                _ => Vec::new(),
            };
            let o = s.outs[0];
            if !arena[o.0] {
                continue;
            }
            let on = g.fact(o).numel();
            for c in candidates {
                let (rc, ro) = (find(&mut parent, c.0), find(&mut parent, o.0));
                let is_input = g.inputs().iter().any(|v| find(&mut parent, v.0) == rc);
                if arena[c.0] && rc != ro && last[rc] == i && g.fact(c).numel() == on && !is_input {
                    parent[ro] = rc;
                    last[rc] = last[rc].max(last[ro]);
                    break;
                }
            }
        }
        let last = last_use(&mut parent, steps);
        // Blocks: greedy best fit in step order.
        let mut block_of: Vec<Option<usize>> = vec![None; nv];
        let mut sizes: Vec<usize> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut need = vec![0usize; nv];
        for (v, _) in arena.iter().enumerate().filter(|(_, a)| **a) {
            let r = find(&mut parent, v);
            let len = g.fact(ValueId(v)).numel().unwrap_or(0);
            need[r] = need[r].max(len.next_multiple_of(16).max(16));
        }
        let alloc =
            |r: usize, block_of: &mut Vec<Option<usize>>, sizes: &mut Vec<usize>, free: &mut Vec<usize>| {
                if block_of[r].is_some() {
                    return;
                }
                let n = need[r];
                let fit =
                    free.iter().enumerate().filter(|(_, b)| sizes[**b] >= n).min_by_key(|(_, b)| sizes[**b]);
                let blk = if let Some((i, _)) = fit {
                    free.swap_remove(i)
                } else if let Some((i, _)) = free.iter().enumerate().max_by_key(|(_, b)| sizes[**b]) {
                    let b = free.swap_remove(i);
                    sizes[b] = n;
                    b
                } else {
                    sizes.push(n);
                    sizes.len() - 1
                };
                block_of[r] = Some(blk);
            };
        for v in g.inputs() {
            if arena[v.0] {
                let r = find(&mut parent, v.0);
                alloc(r, &mut block_of, &mut sizes, &mut free);
            }
        }
        for (i, s) in steps.iter().enumerate() {
            for o in &s.outs {
                if arena[o.0] {
                    let r = find(&mut parent, o.0);
                    alloc(r, &mut block_of, &mut sizes, &mut free);
                }
            }
            let mut dying: Vec<usize> = s
                .ins
                .iter()
                .flatten()
                .chain(&s.outs)
                .filter(|v| arena[v.0])
                .map(|v| find(&mut parent, v.0))
                .filter(|&r| last[r] == i)
                .collect();
            dying.sort_unstable();
            dying.dedup();
            for r in dying {
                if let Some(b) = block_of[r] {
                    free.push(b);
                }
            }
        }
        let mut offs = Vec::with_capacity(sizes.len());
        let mut total = 0;
        for s in &sizes {
            offs.push(total);
            total += s;
        }
        let mut locs: Vec<Option<Loc>> = vec![None; nv];
        let mut n_slots = 0;
        for v in 0..nv {
            let f = g.fact(ValueId(v));
            locs[v] = if let Some(k) = &f.konst {
                Some(Loc::Const(k.clone()))
            } else if arena[v] {
                let r = find(&mut parent, v);
                // None: never written nor read.
                block_of[r].map(|b| Loc::Arena { off: offs[b], len: f.numel().unwrap_or(0) })
            } else {
                n_slots += 1;
                Some(Loc::Slot(n_slots - 1))
            };
        }
        (locs, total, n_slots)
    }
}

/// Asks Linux to back a large, not yet touched buffer with transparent huge pages (where
/// THP is in `madvise` mode, as on many distributions): a batch-32 arena spans hundreds of
/// MB, and with 4 KiB pages every layer's sweep over it misses the TLB. Advisory only: the
/// buffer is valid either way.
fn huge_pages(buf: &[f32]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let (start, len) = (buf.as_ptr() as usize, std::mem::size_of_val(buf));
        let lo = start.next_multiple_of(HUGE);
        let hi = (start + len) / HUGE * HUGE;
        if hi > lo {
            // SAFETY: the range lies inside `buf`; MADV_HUGEPAGE changes no contents.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

impl Plan {
    /// Floats in the activation arena.
    pub(crate) fn arena_floats(&self) -> usize {
        self.arena_len
    }

    fn new_state(&self) -> State {
        let arena = vec![0f32; self.arena_len + 16];
        huge_pages(&arena);
        let base = arena.as_ptr().align_offset(64).min(15);
        State { arena, base, slots: vec![None; self.n_slots] }
    }

    /// Runs the plan. `inputs` match `in_shapes`; outputs go to `sink(i, shape, data)`.
    /// With `times`, records each step's wall time.
    pub(crate) fn execute(
        &self,
        inputs: &[Tensor],
        pool: &rayon::ThreadPool,
        mut times: Option<&mut Vec<Duration>>,
        mut sink: impl FnMut(usize, &[usize], Out<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut guard = self.state.try_lock().ok();
        let mut own;
        let st: &mut State = match guard.as_deref_mut() {
            Some(s) => s.get_or_insert_with(|| self.new_state()),
            None => {
                own = self.new_state();
                &mut own
            }
        };
        let base = st.base;
        let ptr = st.arena[base..].as_mut_ptr();
        let cx = Cx { locs: &self.locs, ptr };
        for (v, t) in self.graph.inputs().iter().zip(inputs) {
            match &self.locs[v.0] {
                Some(Loc::Arena { .. }) => cx.out(*v).copy_from_slice(t.f32s()?),
                Some(Loc::Slot(s)) => st.slots[*s] = Some(t.clone()),
                _ => {}
            }
        }
        let slots = &mut st.slots;
        pool.install(|| -> Result<()> {
            for s in &self.steps {
                let t0 = times.as_ref().map(|_| Instant::now());
                self.run_step(s, &cx, slots).with_context(|| format!("node {} ({})", s.name, s.op))?;
                if let (Some(ts), Some(t0)) = (times.as_deref_mut(), t0) {
                    ts.push(t0.elapsed());
                }
            }
            Ok(())
        })?;
        for (i, v) in self.graph.outputs().iter().enumerate() {
            match &self.locs[v.0] {
                Some(Loc::Arena { .. }) => sink(i, &self.out_shapes[i], Out::F32(cx.inp(*v)))?,
                Some(Loc::Slot(s)) => {
                    let t = slots[*s].as_ref().ok_or_else(|| anyhow!("output {i} was not computed"))?;
                    sink(i, t.shape(), Out::Tensor(t))?
                }
                Some(Loc::Const(t)) => sink(i, t.shape(), Out::Tensor(t))?,
                None => bail!("output {i} has no storage"),
            }
        }
        // Slots hold references to tensors between runs otherwise.
        slots.iter_mut().for_each(|s| *s = None);
        Ok(())
    }

    fn run_step(&self, s: &Step, cx: &Cx, slots: &mut [Option<Tensor>]) -> Result<()> {
        let i0 = || s.ins[0].ok_or_else(|| anyhow!("missing input"));
        match &s.kernel {
            Kernel::Conv { geom, w, bias, act, residual, .. } => {
                let x = cx.inp(i0()?);
                let o = s.outs[0];
                match residual {
                    Some(r) if cx.same(*r, o) => {
                        k::conv(geom, w, x, bias.as_deref().map(|b| b.as_slice()), true, *act, cx.out(o))
                    }
                    Some(r) => {
                        let out = cx.out(o);
                        out.copy_from_slice(cx.inp(*r));
                        k::conv(geom, w, x, bias.as_deref().map(|b| b.as_slice()), true, *act, out)
                    }
                    None => k::conv(
                        geom,
                        w,
                        x,
                        bias.as_deref().map(|b| b.as_slice()),
                        false,
                        *act,
                        cx.out(s.outs[0]),
                    ),
                }
            }
            Kernel::ConvNhwc { geom, w, bias, act, residual } => {
                let x = cx.inp(i0()?);
                let o = s.outs[0];
                let bias = bias.as_deref().map(|b| b.as_slice());
                match residual {
                    Some(r) if cx.same(*r, o) => k::conv_nhwc(geom, w, x, bias, true, *act, cx.out(o)),
                    Some(r) => {
                        let out = cx.out(o);
                        out.copy_from_slice(cx.inp(*r));
                        k::conv_nhwc(geom, w, x, bias, true, *act, out)
                    }
                    None => k::conv_nhwc(geom, w, x, bias, false, *act, cx.out(o)),
                }
            }
            Kernel::Reorder { to_nhwc, n, c, hw } => {
                let (x, o) = (cx.inp(i0()?), cx.out(s.outs[0]));
                if *to_nhwc {
                    pare_kernels::nchw_to_nhwc(*n, *c, *hw, x, o)
                } else {
                    pare_kernels::nhwc_to_nchw(*n, *c, *hw, x, o)
                }
            }
            Kernel::GlobalAvgNhwc { n, hw, c } => {
                pare_kernels::global_avg_pool_nhwc(*n, *hw, *c, cx.inp(i0()?), cx.out(s.outs[0]))
            }
            Kernel::Dense { m, w, act, .. } => k::dense(*m, w, cx.inp(i0()?), *act, cx.out(s.outs[0])),
            Kernel::MaxPool(geom) => pare_kernels::max_pool(geom, cx.inp(i0()?), cx.out(s.outs[0]), None),
            Kernel::AvgPool(geom, inc) => {
                pare_kernels::avg_pool(geom, cx.inp(i0()?), cx.out(s.outs[0]), *inc)
            }
            Kernel::GlobalAvg { planes, spatial } => {
                pare_kernels::global_avg_pool(*planes, *spatial, cx.inp(i0()?), cx.out(s.outs[0]))
            }
            Kernel::Unary(u) => {
                let (x, o) = (i0()?, s.outs[0]);
                if cx.same(x, o) {
                    k::unary_inplace(*u, cx.out(o))
                } else {
                    k::unary(*u, cx.inp(x), cx.out(o))
                }
            }
            Kernel::Silu => {
                let (x, o) = (i0()?, s.outs[0]);
                if cx.same(x, o) { k::silu_inplace(cx.out(o)) } else { k::silu(cx.inp(x), cx.out(o)) }
            }
            Kernel::Binary(op, bc) => {
                let (a, b) = (i0()?, s.ins[1].ok_or_else(|| anyhow!("missing input"))?);
                let o = s.outs[0];
                let (sa, sb) = (cx.src(a, o), cx.src(b, o));
                k::binary(*op, bc, sa, sb, cx.out(o));
            }
            Kernel::Alias => {
                let (x, o) = (i0()?, s.outs[0]);
                if !cx.same(x, o) {
                    cx.out(o).copy_from_slice(cx.inp(x));
                }
            }
            Kernel::Softmax { n } => {
                let (x, o) = (i0()?, s.outs[0]);
                if !cx.same(x, o) {
                    cx.out(o).copy_from_slice(cx.inp(x));
                }
                k::softmax_rows(cx.out(o), *n);
            }
            Kernel::LayerNorm { n, eps } => {
                let (x, o) = (i0()?, s.outs[0]);
                let scale = cx.inp(s.ins[1].ok_or_else(|| anyhow!("missing scale"))?);
                let bias = s.ins.get(2).copied().flatten().map(|b| cx.inp(b));
                if !cx.same(x, o) {
                    cx.out(o).copy_from_slice(cx.inp(x));
                }
                k::layer_norm_rows(cx.out(o), *n, *eps, scale, bias);
            }
            Kernel::Generic(op) => {
                let ins: Vec<Option<Tensor>> = s
                    .ins
                    .iter()
                    .map(|i| {
                        i.map(|v| match &self.locs[v.0] {
                            Some(Loc::Arena { .. }) => {
                                let shape = self.graph.fact(v).concrete_shape().unwrap_or_default();
                                Ok(Tensor::from_vec(shape, cx.inp(v).to_vec()))
                            }
                            Some(Loc::Slot(sl)) => {
                                slots[*sl].clone().ok_or_else(|| anyhow!("input {} not computed", v.0))
                            }
                            Some(Loc::Const(t)) => Ok(t.clone()),
                            None => bail!("input has no storage"),
                        })
                        .transpose()
                    })
                    .collect::<Result<_>>()?;
                let outs = op.eval_owned(ins)?;
                for (v, t) in s.outs.iter().zip(outs) {
                    match &self.locs[v.0] {
                        Some(Loc::Arena { len, .. }) => {
                            let d = t.f32s()?;
                            if d.len() != *len {
                                bail!(
                                    "output {} has {} elements, the plan expected {len} (shape {:?})",
                                    self.graph.value(*v).name,
                                    d.len(),
                                    t.shape()
                                );
                            }
                            cx.out(*v).copy_from_slice(d);
                        }
                        Some(Loc::Slot(sl)) => slots[*sl] = Some(t),
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// An output handed to the sink: arena data or a tensor.
pub(crate) enum Out<'a> {
    F32(&'a [f32]),
    Tensor(&'a Tensor),
}

/// Access to arena values during a run.
pub(crate) struct Cx<'a> {
    locs: &'a [Option<Loc>],
    ptr: *mut f32,
}

impl Cx<'_> {
    fn range(&self, v: ValueId) -> (usize, usize) {
        match &self.locs[v.0] {
            Some(Loc::Arena { off, len }) => (*off, *len),
            _ => (0, 0),
        }
    }
    /// True when two values share storage.
    fn same(&self, a: ValueId, b: ValueId) -> bool {
        matches!((&self.locs[a.0], &self.locs[b.0]), (Some(Loc::Arena { off: x, .. }), Some(Loc::Arena { off: y, .. })) if x == y)
    }
    /// Reads a value (arena or constant f32).
    fn inp(&self, v: ValueId) -> &[f32] {
        match &self.locs[v.0] {
            Some(Loc::Const(t)) => t.as_slice::<f32>().unwrap_or(&[]),
            _ => {
                let (off, len) = self.range(v);
                // SAFETY: the arena outlives the run; the plan never hands out a mutable view of
                // a buffer while a step reads it through another value (in-place steps use
                // `out` only, see `same`).
                unsafe { std::slice::from_raw_parts(self.ptr.add(off), len) }
            }
        }
    }
    #[allow(clippy::mut_from_ref)]
    fn out(&self, v: ValueId) -> &mut [f32] {
        let (off, len) = self.range(v);
        // SAFETY: as in `inp`; each step writes only its own outputs' buffers.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(off), len) }
    }
    fn src(&self, v: ValueId, o: ValueId) -> k::Src<'_> {
        if self.same(v, o) { k::Src::Out } else { k::Src::Slice(self.inp(v)) }
    }
}

// SAFETY: Cx is only shared across rayon tasks that write disjoint parts.
unsafe impl Sync for Cx<'_> {}
unsafe impl Send for Cx<'_> {}

impl Builder<'_> {
    fn step(&mut self, n: NodeId, ctx: &PlanCtx) -> Result<Step> {
        let g = self.g;
        let node = g.node(n)?;
        let mut name = node.name.clone();
        let mut op_name = node.op.onnx_name().to_string();
        let mut ins = node.inputs.clone();
        let mut outs = node.outputs.clone();
        let f32_out = outs.iter().all(|o| self.arena[o.0]);
        let generic = Kernel::Generic(node.op.clone());
        if let Some((x, chain, out)) = self.gelu_chain(n) {
            for m in &chain {
                self.absorbed[m.0] = true;
                name = format!("{name}+{}", g.node(*m)?.name);
            }
            return Ok(Step {
                name,
                op: "Gelu".into(),
                kernel: Kernel::Unary(UnaryK::Gelu),
                ins: vec![Some(x)],
                outs: vec![out],
            });
        }
        if let Some(&to_nhwc) = self.layout.reorders.get(&n) {
            let s = self.shape(ins[0].ok_or_else(|| anyhow!("missing input"))?);
            let kernel = Kernel::Reorder { to_nhwc, n: s[0], c: s[1], hw: s[2] * s[3] };
            let op = if to_nhwc { "Reorder(nchw>nhwc)" } else { "Reorder(nhwc>nchw)" };
            return Ok(Step { name, op: op.into(), kernel, ins, outs });
        }
        if node.inputs.iter().flatten().chain(&node.outputs).any(|v| self.layout.is_nhwc(*v)) {
            match node.op {
                Op::Conv(_) | Op::Binary(_) | Op::GlobalAveragePool => return self.step_nhwc(n, ctx),
                // Element-wise: the memory order does not matter.
                Op::Unary(_) | Op::Clip => {}
                _ => bail!("internal: {op_name} reads a channels-last value"),
            }
        }
        let kernel = match &node.op {
            Op::Conv(c) if f32_out && self.in_arena(ins[0]) && outs.len() == 1 => {
                let (Some(w), true) = (
                    konst(g, ins[1]),
                    ins.get(2).copied().flatten().is_none_or(|b| konst(g, Some(b)).is_some()),
                ) else {
                    return Ok(Step { name, op: op_name, kernel: generic, ins, outs });
                };
                let geom = conv_geom(c, &self.shape(ins[0].unwrap()), w.shape())?;
                let bias = match ins.get(2).copied().flatten() {
                    Some(b) => {
                        Some(Arc::new(f32_const(g, Some(b)).ok_or_else(|| anyhow!("bias is not f32"))?))
                    }
                    None => None,
                };
                let mut act = ir_act(c.act);
                let residual = if c.act == Act::None {
                    self.fuse_residual(outs[0], &mut name, &mut op_name, &mut outs, &mut act)?
                } else {
                    None
                };
                let algo = ctx.choice(&node.name, &LayerShape::Conv(geom.clone()));
                let key = (node.name.clone(), algo);
                let wts = {
                    let mut cache = ctx.weights.lock().map_err(|_| anyhow!("weight cache poisoned"))?;
                    match cache.get(&key) {
                        Some(p) if p.matches(&geom) => p.clone(),
                        _ => {
                            let wf = w.as_slice::<f32>().ok_or_else(|| anyhow!("weight is not f32"))?;
                            let p = Arc::new(k::ConvWeights::new(&geom, wf, algo));
                            cache.insert(key, p.clone());
                            p
                        }
                    }
                };
                if let Some(r) = residual {
                    ins.push(Some(r));
                }
                Kernel::Conv { geom, algo, w: wts, bias, act, residual }
            }
            Op::Gemm(m) if f32_out && self.in_arena(ins[0]) && !m.trans_a => {
                let (Some(b), true) = (
                    konst(g, ins[1]),
                    ins.get(2).copied().flatten().is_none_or(|c| konst(g, Some(c)).is_some()),
                ) else {
                    return Ok(Step { name, op: op_name, kernel: generic, ins, outs });
                };
                let xs = self.shape(ins[0].unwrap());
                let bs = b.shape();
                if xs.len() != 2 || bs.len() != 2 {
                    return Ok(Step { name, op: op_name, kernel: generic, ins, outs });
                }
                let (kk, nn) = if m.trans_b { (bs[1], bs[0]) } else { (bs[0], bs[1]) };
                let bias = match ins.get(2).copied().flatten() {
                    Some(c) => {
                        let t = konst(g, Some(c)).unwrap();
                        let v = t.as_slice::<f32>().ok_or_else(|| anyhow!("C is not f32"))?;
                        match (t.rank(), t.len()) {
                            (_, 1) => Some(vec![v[0] * m.beta; nn]),
                            (1, l) | (2, l) if l == nn && (t.rank() == 1 || t.shape()[0] == 1) => {
                                Some(v.iter().map(|x| x * m.beta).collect())
                            }
                            _ => return Ok(Step { name, op: op_name, kernel: generic, ins, outs }),
                        }
                    }
                    None => None,
                };
                let bf = b.as_slice::<f32>().ok_or_else(|| anyhow!("B is not f32"))?;
                let variant = ctx.choice(&node.name, &LayerShape::Dense { m: xs[0], k: kk, n: nn });
                let w = Arc::new(DenseWeights::new(variant, kk, nn, bf, m.trans_b, m.alpha, bias));
                ins.truncate(1);
                Kernel::Dense { m: xs[0], variant, w, act: ir_act(m.act) }
            }
            Op::MatMul if f32_out && self.in_arena(ins[0]) => {
                let Some(b) = konst(g, ins[1]) else {
                    return Ok(Step { name, op: op_name, kernel: generic, ins, outs });
                };
                let xs = self.shape(ins[0].unwrap());
                if b.rank() != 2 || xs.len() < 2 || b.dtype() != DType::F32 {
                    return Ok(Step { name, op: op_name, kernel: generic, ins, outs });
                }
                let (kk, nn) = (b.shape()[0], b.shape()[1]);
                let m: usize = xs[..xs.len() - 1].iter().product();
                // Fuse a following Add of a constant [N] bias.
                let mut bias = None;
                if let Some(an) = self.sole_consumer(outs[0])
                    && let Ok(add) = g.node(an)
                    && add.op == Op::Binary(Binary::Add)
                {
                    let other = if add.inputs[0] == Some(outs[0]) { add.inputs[1] } else { add.inputs[0] };
                    if let Some(c) = konst(g, other)
                        && c.len() == nn
                        && c.shape().last() == Some(&nn)
                        && self.shape(add.outputs[0]) == self.shape(outs[0])
                        && let Some(v) = c.as_slice::<f32>()
                    {
                        bias = Some(v.to_vec());
                        self.absorbed[an.0] = true;
                        name = format!("{name}+{}", add.name);
                        op_name.push_str("+Add");
                        outs = add.outputs.clone();
                    }
                }
                let bf = b.as_slice::<f32>().unwrap();
                let variant = ctx.choice(&node.name, &LayerShape::Dense { m, k: kk, n: nn });
                let w = Arc::new(DenseWeights::new(variant, kk, nn, bf, false, 1.0, bias));
                ins.truncate(1);
                Kernel::Dense { m, variant, w, act: pare_kernels::Act::None }
            }
            Op::MaxPool(p) if f32_out && self.in_arena(ins[0]) && !p.indices => {
                Kernel::MaxPool(pool_geom(p, &self.shape(ins[0].unwrap()))?.0)
            }
            Op::AveragePool(p) if f32_out && self.in_arena(ins[0]) => {
                Kernel::AvgPool(pool_geom(p, &self.shape(ins[0].unwrap()))?.0, p.count_include_pad)
            }
            Op::GlobalAveragePool if f32_out && self.in_arena(ins[0]) => {
                let xs = self.shape(ins[0].unwrap());
                if xs.len() < 2 {
                    generic
                } else {
                    Kernel::GlobalAvg { planes: xs[0] * xs[1], spatial: xs[2..].iter().product() }
                }
            }
            Op::Unary(Unary::Sigmoid) if f32_out && self.in_arena(ins[0]) => {
                // x * Sigmoid(x) → SiLU.
                let x = ins[0].unwrap();
                let mul = self.sole_consumer(outs[0]).and_then(|mn| {
                    let m = g.node(mn).ok()?;
                    if m.op != Op::Binary(Binary::Mul) || m.inputs.len() != 2 {
                        return None;
                    }
                    let other = if m.inputs[0] == Some(outs[0]) { m.inputs[1] } else { m.inputs[0] };
                    (other == Some(x)).then_some((mn, m))
                });
                if let Some((mn, m)) = mul {
                    self.absorbed[mn.0] = true;
                    name = format!("{name}+{}", m.name);
                    op_name = "SiLU".into();
                    outs = m.outputs.clone();
                    Kernel::Silu
                } else {
                    Kernel::Unary(UnaryK::Act(pare_kernels::Act::Sigmoid))
                }
            }
            Op::Unary(u) if f32_out && self.in_arena(ins[0]) => match UnaryK::of(*u) {
                Some(k) => Kernel::Unary(k),
                None => generic,
            },
            Op::Clip if f32_out && self.in_arena(ins[0]) => match clip_bounds(g, &ins) {
                Some((lo, hi)) => {
                    ins.truncate(1);
                    Kernel::Unary(UnaryK::Act(pare_kernels::Act::Clip { min: lo, max: hi }))
                }
                None => generic,
            },
            Op::Binary(bop) if f32_out && ins.len() == 2 => {
                let (a, b) = (ins[0].unwrap(), ins[1].unwrap());
                let ok = |v: ValueId| {
                    self.arena[v.0] || konst(g, Some(v)).is_some_and(|t| t.dtype() == DType::F32)
                };
                match BinK::of(*bop) {
                    Some(op) if ok(a) && ok(b) => {
                        let sh = |v: ValueId| -> Vec<usize> {
                            konst(g, Some(v)).map(|t| t.shape().to_vec()).unwrap_or_else(|| self.shape(v))
                        };
                        match Bcast::new(&self.shape(outs[0]), &sh(a), &sh(b)) {
                            Some(bc) => Kernel::Binary(op, bc),
                            None => generic,
                        }
                    }
                    _ => generic,
                }
            }
            Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze | Op::Identity
                if f32_out && self.in_arena(ins[0]) && outs.len() == 1 =>
            {
                ins.truncate(1);
                Kernel::Alias
            }
            Op::Dropout { .. } if f32_out && self.in_arena(ins[0]) && outs.len() == 1 => {
                ins.truncate(1);
                Kernel::Alias
            }
            Op::Softmax { axis, log: false, legacy } if f32_out && self.in_arena(ins[0]) => {
                let xs = self.shape(ins[0].unwrap());
                let r = xs.len() as i64;
                let ax = if *axis < 0 { axis + r } else { *axis };
                // Opset < 13 flattens to 2-D at the axis: rows of prod(dims[axis..]).
                if ax == r - 1 || (*legacy && (0..r).contains(&ax)) {
                    Kernel::Softmax { n: xs[ax as usize..].iter().product::<usize>().max(1) }
                } else {
                    generic
                }
            }
            Op::LayerNorm(l) if f32_out && self.in_arena(ins[0]) && !l.stats => {
                let xs = self.shape(ins[0].unwrap());
                let r = xs.len() as i64;
                let ax = if l.axis < 0 { l.axis + r } else { l.axis };
                let n = *xs.last().unwrap_or(&1);
                let pok = |v: Option<ValueId>| {
                    v.is_none_or(|v| {
                        konst(g, Some(v)).is_some_and(|t| t.len() == n && t.dtype() == DType::F32)
                    })
                };
                if ax == r - 1
                    && ins.get(1).copied().flatten().is_some()
                    && pok(ins[1])
                    && pok(ins.get(2).copied().flatten())
                {
                    Kernel::LayerNorm { n, eps: l.epsilon }
                } else {
                    generic
                }
            }
            _ => generic,
        };
        Ok(Step { name, op: op_name, kernel, ins, outs })
    }
}

impl Plan {
    /// The graph node names and ops of the steps, for profiles.
    pub(crate) fn step_names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.steps.iter().map(|s| (s.name.as_str(), s.op.as_str()))
    }
}
