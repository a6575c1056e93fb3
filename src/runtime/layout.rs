//! Channels-last regions: which 4-D activations a plan keeps in NHWC order.
//!
//! A depthwise conv vectorises across channels in NHWC, and a 1×1 conv over an NHWC tensor
//! is one GEMM over every position of the batch, so the chains MobileNet- and
//! EfficientNet-style nets are made of run channels-last. A *region* is a connected set of
//! nodes that have an NHWC kernel, joined through the activations they pass each other. A
//! region that holds a depthwise conv goes NHWC; the others stay NCHW. Reorders are
//! inserted at the region's boundaries as `Identity` nodes that the plan runs as layout
//! transposes. Facts (shapes) stay logical NCHW everywhere: only the memory order of the
//! NHWC values differs.

use super::kernels::{BinK, UnaryK};
use crate::ir::{Graph, NodeId, Op, Unary, ValueId};
use crate::ops::nn::conv::conv_geom;
use crate::tensor::DType;
use anyhow::Result;
use std::collections::HashMap;

/// The layout decisions for one graph (after [`assign`] has inserted the reorders).
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// Per value: stored NHWC.
    pub nhwc: Vec<bool>,
    /// Reorder nodes (`Identity`): `true` for NCHW → NHWC, `false` for NHWC → NCHW.
    pub reorders: HashMap<NodeId, bool>,
}

impl Layout {
    /// Whether value `v` is stored NHWC.
    pub fn is_nhwc(&self, v: ValueId) -> bool {
        self.nhwc.get(v.0).copied().unwrap_or(false)
    }
}

/// What an NHWC-capable node is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Depthwise conv (channel multiplier 1): NHWC in and out.
    Depthwise,
    /// 1×1 stride-1 unpadded conv: NHWC in and out.
    Pointwise,
    /// Element-wise op whose 4-D operands are NHWC (others broadcast per channel or are
    /// scalars); NHWC out.
    Elementwise,
    /// GlobalAveragePool: NHWC in, `[N, C, 1, 1]` out (the same memory in both layouts).
    Gap,
}

/// A value whose memory order depends on the layout: a non-constant f32 `[N, C, H, W]` with
/// `C > 1` and `H·W > 1`.
fn relevant(g: &Graph, v: ValueId) -> bool {
    let f = g.fact(v);
    f.konst.is_none()
        && f.dtype == DType::F32
        && f.concrete_shape().is_some_and(|s| s.len() == 4 && s[1] > 1 && s[2] * s[3] > 1)
}

/// A value that reads the same in both layouts: after padding its shape to rank 4 on the
/// left, one channel or one position (`[N, C, 1, 1]`, `[C, 1, 1]`, `[1, 1, H, W]`,
/// scalars). Constants and activations alike.
fn layout_free(g: &Graph, v: ValueId) -> bool {
    let f = g.fact(v);
    if f.dtype != DType::F32 {
        return false;
    }
    let Some(s) = f.concrete_shape() else { return false };
    if s.len() > 4 {
        return false;
    }
    let mut p = vec![1; 4 - s.len()];
    p.extend_from_slice(&s);
    p[1] == 1 || p[2] * p[3] == 1
}

fn kind(g: &Graph, n: NodeId) -> Option<Kind> {
    let node = g.node(n).ok()?;
    let x = node.inputs.first().copied().flatten()?;
    let out = *node.outputs.first()?;
    match &node.op {
        Op::Conv(c) if node.outputs.len() == 1 && relevant(g, x) && relevant(g, out) => {
            let w = g.fact(node.inputs.get(1).copied().flatten()?).konst.as_ref()?;
            if w.dtype() != DType::F32 || w.rank() != 4 {
                return None;
            }
            if let Some(b) = node.inputs.get(2).copied().flatten()
                && g.fact(b).konst.as_ref().is_none_or(|t| t.dtype() != DType::F32)
            {
                return None;
            }
            let xs = g.fact(x).concrete_shape()?;
            let geom = conv_geom(c, &xs, w.shape()).ok()?;
            if geom.groups > 1 && geom.groups == geom.c_in && geom.c_out == geom.c_in {
                Some(Kind::Depthwise)
            } else if super::kernels::pointwise_applies(&geom) {
                Some(Kind::Pointwise)
            } else {
                None
            }
        }
        Op::Unary(u) if relevant(g, x) && (UnaryK::of(*u).is_some() || *u == Unary::Sigmoid) => {
            Some(Kind::Elementwise)
        }
        Op::Clip
            if relevant(g, x) && node.inputs[1..].iter().flatten().all(|b| g.fact(*b).konst.is_some()) =>
        {
            Some(Kind::Elementwise)
        }
        Op::Binary(b) if BinK::of(*b).is_some() && node.inputs.len() == 2 && relevant(g, out) => {
            let ok = node.inputs.iter().all(|v| v.is_some_and(|v| relevant(g, v) || layout_free(g, v)));
            ok.then_some(Kind::Elementwise)
        }
        Op::GlobalAveragePool if relevant(g, x) => Some(Kind::Gap),
        _ => None,
    }
}

fn find(p: &mut [usize], mut x: usize) -> usize {
    while p[x] != x {
        p[x] = p[p[x]];
        x = p[x];
    }
    x
}

/// Chooses the NHWC regions of `g` and inserts the reorders at their boundaries.
pub(crate) fn assign(g: &mut Graph) -> Result<Layout> {
    let order = g.topo_order()?;
    let kinds: HashMap<NodeId, Kind> = order.iter().filter_map(|&n| Some((n, kind(g, n)?))).collect();
    if !kinds.values().any(|k| *k == Kind::Depthwise) {
        return Ok(Layout { nhwc: vec![false; g.value_count()], ..Layout::default() });
    }
    // Regions: union nodes through the NHWC activations they pass each other.
    let mut parent: Vec<usize> = (0..g.node_slots()).collect();
    for &n in kinds.keys() {
        for v in g.node(n)?.inputs.iter().flatten() {
            if !relevant(g, *v) {
                continue;
            }
            if let Some((pn, _)) = g.value(*v).producer
                && kinds.get(&pn).is_some_and(|pk| *pk != Kind::Gap)
            {
                let (a, b) = (find(&mut parent, n.0), find(&mut parent, pn.0));
                parent[a] = b;
            }
        }
    }
    let mut chosen_root = vec![false; g.node_slots()];
    for (&n, &k) in &kinds {
        if k == Kind::Depthwise {
            let r = find(&mut parent, n.0);
            chosen_root[r] = true;
        }
    }
    let chosen: HashMap<NodeId, Kind> =
        kinds.iter().filter(|(n, _)| chosen_root[find(&mut parent, n.0)]).map(|(n, k)| (*n, *k)).collect();
    let mut nhwc = vec![false; g.value_count()];
    for (&n, &k) in &chosen {
        if k != Kind::Gap {
            for o in &g.node(n)?.outputs {
                nhwc[o.0] = relevant(g, *o);
            }
        }
    }
    // Reorders: one per value and direction, shared by every reader that needs it.
    let mut made: HashMap<(ValueId, bool), ValueId> = HashMap::new();
    let mut reorders = HashMap::new();
    let mut reorder = |g: &mut Graph, v: ValueId, to_nhwc: bool, nhwc: &mut Vec<bool>| -> Result<ValueId> {
        if let Some(r) = made.get(&(v, to_nhwc)) {
            return Ok(*r);
        }
        let name =
            g.unique_name(&format!("{}/{}", g.value(v).name, if to_nhwc { "to_nhwc" } else { "to_nchw" }));
        let r = g.add_node(&name, Op::Identity, vec![Some(v)])?[0];
        let rn = NodeId(g.node_slots() - 1);
        reorders.insert(rn, to_nhwc);
        nhwc.resize(g.value_count(), false);
        nhwc[r.0] = to_nhwc;
        made.insert((v, to_nhwc), r);
        Ok(r)
    };
    for &n in &order {
        let ins = g.node(n)?.inputs.clone();
        let reads_nhwc = chosen.contains_key(&n);
        for (i, v) in ins.iter().enumerate() {
            let Some(v) = *v else { continue };
            if !relevant(g, v) {
                continue;
            }
            if nhwc[v.0] != reads_nhwc {
                let r = reorder(g, v, reads_nhwc, &mut nhwc)?;
                g.set_node_input(n, i, r)?;
            }
        }
    }
    let mut outs = g.outputs().to_vec();
    for o in outs.iter_mut() {
        if nhwc[o.0] {
            let r = reorder(g, *o, false, &mut nhwc)?;
            let name = g.value(*o).name.clone();
            g.rename(*o, &format!("{name}/nhwc"));
            g.rename(r, &name);
            *o = r;
        }
    }
    g.set_outputs(outs);
    nhwc.resize(g.value_count(), false);
    Ok(Layout { nhwc, reorders })
}
