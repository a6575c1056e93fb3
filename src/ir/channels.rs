//! Channel groups: which tensor axes of a graph hold the same channels, computed from each
//! op's [`ChannelFlow`](crate::ops::channels::ChannelFlow) with a union-find over (value, axis)
//! pairs, weight constants included. Removing channel `c` of a group removes, from every
//! member, the entries that hold it: rows of the producing weights, slices of the consuming
//! weights and of the per-channel parameters; the activations follow by re-inference.
//!
//! A group's channels are numbered `0..channels`; a member may hold a sub-range of them (one
//! branch of a Concat) and may hold each channel as a block of consecutive entries (the
//! `H * W` entries per channel after a Flatten).

use super::{Graph, NodeId, ValueId};
use crate::ops::channels::{Port, PortAxis, Role};
use anyhow::{Result, bail};
use std::collections::{HashMap, HashSet};

/// One (value, axis) of a group: group channel `c`, for `offset <= c < offset + len`, is the
/// entries `[(c - offset) * block, (c - offset + 1) * block)` of the value's `axis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The value.
    pub value: ValueId,
    /// Its axis.
    pub axis: usize,
    /// First group channel it holds.
    pub offset: usize,
    /// Number of group channels it holds.
    pub len: usize,
    /// Entries of the axis per channel.
    pub block: usize,
}

/// A weight axis with a role in a group: the node reading the weight, the input slot, and the
/// weight's member (a computed weight, e.g. a DequantizeLinear output, has its constants
/// among the group's parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightAxis {
    /// The node that reads the weight.
    pub node: NodeId,
    /// Its input slot.
    pub input: usize,
    /// The weight's axis in the group.
    pub member: Member,
}

/// A set of channels that must be pruned together.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelGroup {
    /// Number of channels.
    pub channels: usize,
    /// Every (value, axis) holding the channels, by value id: activations and constants.
    pub members: Vec<Member>,
    /// Weight axes whose slices create the channels (a Conv weight's axis 0), in graph order.
    pub producers: Vec<WeightAxis>,
    /// Weight axes that read the channels (the next Conv's weight axis 1, a Gemm after a
    /// Flatten in blocks of `H * W`), in graph order.
    pub consumers: Vec<WeightAxis>,
    /// Constant members that are neither producers nor consumers: biases, BatchNorm scale,
    /// bias, mean and var, depthwise weights, PRelu slopes.
    pub params: Vec<Member>,
    /// Nodes with an attribute or size input that counts these channels (a depthwise Conv's
    /// `group`, a Split's sizes), to rewrite with the group.
    pub counted_by: Vec<NodeId>,
    /// Why the channels must not be pruned; empty for a prunable group.
    pub blockers: Vec<String>,
}

impl ChannelGroup {
    /// True when the channels may be pruned.
    pub fn prunable(&self) -> bool {
        self.blockers.is_empty()
    }
    /// The member for a value's axis, if it is in this group.
    pub fn member(&self, v: ValueId, axis: usize) -> Option<&Member> {
        self.members.iter().find(|m| m.value == v && m.axis == axis)
    }
}

/// The channel groups of a graph: those with at least one producing or consuming weight.
#[derive(Clone, Debug, Default)]
pub struct ChannelGroups {
    /// The groups, in the order their first member appears.
    pub groups: Vec<ChannelGroup>,
    index: HashMap<(ValueId, usize), usize>,
}

impl ChannelGroups {
    /// The group holding a value's axis, with its member there.
    pub fn group_of(&self, v: ValueId, axis: usize) -> Option<(&ChannelGroup, &Member)> {
        let g = &self.groups[*self.index.get(&(v, axis))?];
        Some((g, g.member(v, axis)?))
    }
    /// The groups that may be pruned.
    pub fn prunable(&self) -> impl Iterator<Item = &ChannelGroup> {
        self.groups.iter().filter(|g| g.prunable())
    }
}

/// Union-find over axes, each element tied to its parent by an affine channel map: parent
/// channel `c` is the element's entries `[c * block - shift, c * block - shift + block)`.
struct Dsu {
    parent: Vec<usize>,
    block: Vec<i64>,
    shift: Vec<i64>,
}

impl Dsu {
    fn new(n: usize) -> Dsu {
        Dsu { parent: (0..n).collect(), block: vec![1; n], shift: vec![0; n] }
    }

    /// The root of `e` and the map from the root's channels to `e`'s entries.
    fn find(&mut self, e: usize) -> (usize, i64, i64) {
        let mut path = vec![];
        let mut r = e;
        while self.parent[r] != r {
            path.push(r);
            r = self.parent[r];
        }
        for &y in path.iter().rev() {
            let p = self.parent[y];
            if p != r {
                let (b1, k1, b2, k2) = (self.block[y], self.shift[y], self.block[p], self.shift[p]);
                self.block[y] = b1.saturating_mul(b2);
                self.shift[y] = k2.saturating_mul(b1).saturating_add(k1);
                self.parent[y] = r;
            }
        }
        if e == r { (r, 1, 0) } else { (r, self.block[e], self.shift[e]) }
    }

    /// Ties `fine` to `coarse`: coarse channel `c` is fine's entries `[c * block - shift, +block)`.
    /// False when this contradicts earlier ties (the elements are tied anyway).
    fn union(&mut self, fine: usize, coarse: usize, block: i64, shift: i64) -> bool {
        let (rf, bf, kf) = self.find(fine);
        let (rk, bk, kk) = self.find(coarse);
        let (b2, k2) = (block.saturating_mul(bk), kk.saturating_mul(block).saturating_add(shift));
        if rf == rk {
            return (b2, k2) == (bf, kf);
        }
        let (child, root, b, k, ok) = if b2 % bf == 0 && (k2 - kf) % bf == 0 {
            (rf, rk, b2 / bf, (k2 - kf) / bf, true)
        } else if bf % b2 == 0 && (kf - k2) % b2 == 0 {
            (rk, rf, bf / b2, (kf - k2) / b2, true)
        } else {
            (rf, rk, 1, 0, false)
        };
        self.parent[child] = root;
        self.block[child] = b;
        self.shift[child] = k;
        ok
    }
}

/// What the walk learned about one axis.
enum Note {
    Role(Role, NodeId, usize),
    Counted(NodeId),
    Block(String),
}

/// Computes the channel groups of `g`'s live nodes. A group is prunable unless it touches a
/// graph input or output, an axis an op does not carry (an Opaque op, a Transpose that moves
/// it, ...), a member whose size is unknown or does not split into whole channels, or has no
/// producing weight.
pub fn channel_groups(g: &Graph) -> Result<ChannelGroups> {
    let order = g.topo_order()?;
    let n = g.value_count();
    let mut base = Vec::with_capacity(n);
    let mut total = 0;
    for i in 0..n {
        base.push(total);
        total += g.fact(ValueId(i)).rank();
    }
    let (mut live, mut read) = (vec![false; n], vec![false; n]);
    for &v in g.inputs().iter().chain(g.outputs()) {
        live[v.0] = true;
    }
    for &v in g.outputs() {
        read[v.0] = true;
    }
    for &id in &order {
        let node = g.node(id)?;
        for &v in node.inputs.iter().flatten() {
            (live[v.0], read[v.0]) = (true, true);
        }
        node.outputs.iter().for_each(|v| live[v.0] = true);
    }
    let mut dsu = Dsu::new(total);
    let mut notes: Vec<(usize, Note)> = vec![];
    for &id in &order {
        let node = g.node(id)?;
        let ins: Vec<_> = node.inputs.iter().map(|i| i.map(|v| g.fact(v))).collect();
        let outs: Vec<_> = node.outputs.iter().map(|&v| g.fact(v)).collect();
        let low = node.op.channel_flow(&ins, &outs).lower(&ins, &outs);
        let value = |p: Port| match p {
            Port::In(i) => node.inputs.get(i).copied().flatten(),
            Port::Out(i) => node.outputs.get(i).copied(),
        };
        let elem = |p: PortAxis| match value(p.port) {
            Some(v) if p.axis < g.fact(v).rank() => Ok(base[v.0] + p.axis),
            _ => bail!("{}: its channel flow names a missing axis {p:?}", g.describe_node(id)),
        };
        let mut covered: HashSet<PortAxis> = low.free.iter().copied().collect();
        for l in &low.links {
            let (f, c) = (elem(l.fine)?, elem(l.coarse)?);
            covered.extend([l.fine, l.coarse]);
            if !dsu.union(f, c, l.block as i64, -(l.offset as i64)) {
                let why = format!("{}: channel ranges do not line up", g.describe_node(id));
                notes.push((f, Note::Block(why)));
            }
        }
        for &(p, role) in &low.roles {
            let Port::In(slot) = p.port else { continue };
            notes.push((elem(p)?, Note::Role(role, id, slot)));
        }
        for &p in &low.counted {
            notes.push((elem(p)?, Note::Counted(id)));
        }
        let ports = node.inputs.iter().enumerate().filter_map(|(i, v)| v.map(|v| (Port::In(i), v)));
        let outs =
            node.outputs.iter().enumerate().filter(|(_, v)| read[v.0]).map(|(i, &v)| (Port::Out(i), v));
        for (port, v) in ports.chain(outs) {
            for axis in (0..g.fact(v).rank()).filter(|&axis| !covered.contains(&PortAxis { port, axis })) {
                let why = format!(
                    "{} \"{}\" does not carry channels of \"{}\" axis {axis}",
                    node.op.onnx_name(),
                    node.name,
                    g.value(v).name
                );
                notes.push((base[v.0] + axis, Note::Block(why)));
            }
        }
    }
    for (&v, what) in g.inputs().iter().map(|v| (v, "input")).chain(g.outputs().iter().map(|v| (v, "output")))
    {
        for axis in 0..g.fact(v).rank() {
            let why = format!("\"{}\" axis {axis} is a graph {what}", g.value(v).name);
            notes.push((base[v.0] + axis, Note::Block(why)));
        }
    }
    // Gather members and notes by root, in the order roots are first seen.
    let mut slot_of: HashMap<usize, usize> = HashMap::new();
    let mut members: Vec<Vec<(ValueId, usize, i64, i64)>> = vec![];
    for v in (0..n).filter(|&v| live[v]).map(ValueId) {
        for axis in 0..g.fact(v).rank() {
            let (r, b, k) = dsu.find(base[v.0] + axis);
            let s = *slot_of.entry(r).or_insert_with(|| {
                members.push(vec![]);
                members.len() - 1
            });
            members[s].push((v, axis, b, k));
        }
    }
    let mut group_notes: Vec<Vec<(usize, Note)>> = members.iter().map(|_| vec![]).collect();
    for (e, note) in notes {
        if let Some(&s) = slot_of.get(&dsu.find(e).0) {
            group_notes[s].push((e, note));
        }
    }
    let mut out = ChannelGroups::default();
    for (ms, notes) in members.into_iter().zip(group_notes) {
        if !notes.iter().any(|(_, n)| matches!(n, Note::Role(..))) {
            continue;
        }
        let group = build_group(g, &base, ms, notes);
        let gi = out.groups.len();
        out.index.extend(group.members.iter().map(|m| ((m.value, m.axis), gi)));
        out.groups.push(group);
    }
    Ok(out)
}

/// Turns one root's members (with their maps from the root's channels) and notes into a group.
fn build_group(
    g: &Graph,
    base: &[usize],
    ms: Vec<(ValueId, usize, i64, i64)>,
    notes: Vec<(usize, Note)>,
) -> ChannelGroup {
    let mut blockers = vec![];
    let mut spans = vec![];
    for &(v, axis, b, k) in &ms {
        let name = &g.value(v).name;
        match g.fact(v).shape[axis].known().map(|n| n as i64) {
            Some(len) if b > 0 && k % b == 0 && len % b == 0 => spans.push(Some((k / b, len / b))),
            Some(_) => {
                blockers.push(format!("\"{name}\" axis {axis} does not hold whole channels of its group"));
                spans.push(None);
            }
            None => {
                blockers.push(format!("\"{name}\" axis {axis} has an unknown size"));
                spans.push(None);
            }
        }
    }
    let lo = spans.iter().flatten().map(|s| s.0).min().unwrap_or(0);
    let hi = spans.iter().flatten().map(|s| s.0 + s.1).max().unwrap_or(0);
    let members: Vec<Member> = ms
        .iter()
        .zip(&spans)
        .map(|(&(value, axis, b, _), s)| {
            let (offset, len) = s.map_or((0, 0), |(start, len)| ((start - lo) as usize, len as usize));
            Member { value, axis, offset, len, block: b.max(1) as usize }
        })
        .collect();
    let by_elem: HashMap<usize, Member> = members.iter().map(|m| (base[m.value.0] + m.axis, *m)).collect();
    let member_at = |e: usize| by_elem.get(&e).copied();
    let (mut producers, mut consumers, mut counted_by) = (vec![], vec![], vec![]);
    let mut roles = HashSet::new();
    for (e, note) in notes {
        match note {
            Note::Role(role, node, input) => {
                let Some(member) = member_at(e) else { continue };
                roles.insert((member.value, member.axis));
                let list = if role == Role::Produces { &mut producers } else { &mut consumers };
                let w = WeightAxis { node, input, member };
                if !list.contains(&w) {
                    list.push(w);
                }
            }
            Note::Counted(node) if !counted_by.contains(&node) => counted_by.push(node),
            Note::Counted(_) => {}
            Note::Block(why) => blockers.push(why),
        }
    }
    let is_const = |v: ValueId| g.value(v).producer.is_none() && g.fact(v).konst.is_some();
    let params = members
        .iter()
        .copied()
        .filter(|m| is_const(m.value) && !roles.contains(&(m.value, m.axis)))
        .collect();
    if producers.is_empty() {
        blockers.push("no weight produces these channels".into());
    }
    let mut seen = HashSet::new();
    blockers.retain(|b| seen.insert(b.clone()));
    ChannelGroup { channels: (hi - lo) as usize, members, producers, consumers, params, counted_by, blockers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Binary, Builder, Init, Op, Unary, known_shape};
    use crate::tensor::{DType, Tensor};

    const K: Init = Init::KaimingRelu;

    fn id(g: &Graph, name: &str) -> ValueId {
        g.find(name).unwrap_or_else(|| panic!("no value {name}"))
    }
    /// The group holding `name`'s `axis`.
    fn group<'a>(cg: &'a ChannelGroups, g: &Graph, name: &str, axis: usize) -> &'a ChannelGroup {
        cg.group_of(id(g, name), axis).unwrap_or_else(|| panic!("{name} axis {axis} is in no group")).0
    }
    /// (node, weight, axis, offset, len, block) of weight axes.
    fn roles(g: &Graph, ws: &[WeightAxis]) -> Vec<(String, String, usize, usize, usize, usize)> {
        ws.iter()
            .map(|w| {
                let m = w.member;
                (
                    g.node(w.node).unwrap().name.clone(),
                    g.value(m.value).name.clone(),
                    m.axis,
                    m.offset,
                    m.len,
                    m.block,
                )
            })
            .collect()
    }
    fn r(
        node: &str,
        w: &str,
        axis: usize,
        offset: usize,
        len: usize,
        block: usize,
    ) -> (String, String, usize, usize, usize, usize) {
        (node.into(), w.into(), axis, offset, len, block)
    }
    /// Sorted names of the parameters (all on axis 0 in these graphs).
    fn params(g: &Graph, grp: &ChannelGroup) -> Vec<String> {
        assert!(grp.params.iter().all(|m| m.axis == 0), "{:?}", grp.params);
        let mut v: Vec<String> = grp.params.iter().map(|m| g.value(m.value).name.clone()).collect();
        v.sort();
        v
    }
    fn bn_params(name: &str) -> Vec<String> {
        ["bias", "running_mean", "running_var", "weight"].iter().map(|p| format!("{name}.{p}")).collect()
    }
    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }
    fn image(b: &mut Builder, c: usize, hw: usize) -> ValueId {
        b.input("x", DType::F32, known_shape(&[1, c, hw, hw]))
    }

    #[test]
    fn channels_of_a_conv_bn_relu_conv_chain() {
        let mut b = Builder::seeded(1);
        let x = image(&mut b, 3, 8);
        let y = b.conv("conv1", x, 8, 3, 1, 1, 1, true, K).unwrap();
        let y = b.bn("bn", y).unwrap();
        let y = b.relu("relu", y).unwrap();
        let y = b.conv("conv2", y, 4, 3, 1, 1, 1, false, K).unwrap();
        let g = b.finish(&[y]).unwrap();
        let cg = channel_groups(&g).unwrap();
        // The input's channels (read by conv1), the middle ones, the output's.
        assert_eq!(cg.groups.len(), 3);
        assert_eq!(cg.prunable().count(), 1);
        let mid = group(&cg, &g, "relu", 1);
        assert!(mid.prunable(), "{:?}", mid.blockers);
        assert_eq!(mid.channels, 8);
        assert_eq!(roles(&g, &mid.producers), vec![r("conv1", "conv1.weight", 0, 0, 8, 1)]);
        assert_eq!(roles(&g, &mid.consumers), vec![r("conv2", "conv2.weight", 1, 0, 8, 1)]);
        let mut want = bn_params("bn");
        want.push("conv1.bias".into());
        assert_eq!(params(&g, mid), sorted(want));
        let acts: Vec<&str> = mid.members.iter().map(|m| g.value(m.value).name.as_str()).collect();
        for a in ["conv1", "bn", "relu"] {
            assert!(acts.contains(&a), "{acts:?}");
        }
        assert_eq!(mid.members.len(), 3 + 5 + 2);
        assert!(mid.counted_by.is_empty());
        // conv1's input channels are a different group.
        assert!(!std::ptr::eq(group(&cg, &g, "conv1.weight", 1), mid));
    }

    #[test]
    fn channels_of_a_residual_block_form_one_group() {
        let mut b = Builder::seeded(2);
        let x = image(&mut b, 3, 8);
        let s = b.conv("stem", x, 8, 3, 1, 1, 1, false, K).unwrap();
        let s = b.bn("stem.bn", s).unwrap();
        let h = b.relu("stem.relu", s).unwrap();
        let y = b.conv("b.conv1", h, 6, 3, 1, 1, 1, false, K).unwrap();
        let y = b.bn("b.bn1", y).unwrap();
        let y = b.relu("b.relu1", y).unwrap();
        let y = b.conv("b.conv2", y, 8, 3, 1, 1, 1, false, K).unwrap();
        let y = b.bn("b.bn2", y).unwrap();
        let y = b.add("b.add", h, y).unwrap();
        let y = b.relu("b.relu", y).unwrap();
        let y = b.conv("head", y, 4, 1, 1, 0, 1, false, K).unwrap();
        let g = b.finish(&[y]).unwrap();
        let cg = channel_groups(&g).unwrap();
        let res = group(&cg, &g, "b.add", 1);
        assert!(res.prunable(), "{:?}", res.blockers);
        assert_eq!(res.channels, 8);
        assert_eq!(
            roles(&g, &res.producers),
            vec![r("stem", "stem.weight", 0, 0, 8, 1), r("b.conv2", "b.conv2.weight", 0, 0, 8, 1)]
        );
        assert_eq!(
            roles(&g, &res.consumers),
            vec![r("b.conv1", "b.conv1.weight", 1, 0, 8, 1), r("head", "head.weight", 1, 0, 8, 1)]
        );
        let mut want = bn_params("stem.bn");
        want.extend(bn_params("b.bn2"));
        assert_eq!(params(&g, res), sorted(want));
        // The block's inner channels are their own group.
        let inner = group(&cg, &g, "b.relu1", 1);
        assert!(inner.prunable());
        assert_eq!(inner.channels, 6);
        assert_eq!(roles(&g, &inner.producers), vec![r("b.conv1", "b.conv1.weight", 0, 0, 6, 1)]);
        assert_eq!(roles(&g, &inner.consumers), vec![r("b.conv2", "b.conv2.weight", 1, 0, 6, 1)]);
        assert_eq!(params(&g, inner), bn_params("b.bn1"));
        assert_eq!(cg.groups.len(), 4);
        assert_eq!(cg.prunable().count(), 2);
    }

    #[test]
    fn channels_of_a_concat_carry_offsets() {
        let mut b = Builder::seeded(3);
        let x = image(&mut b, 3, 8);
        let s = b.conv("stem", x, 4, 3, 1, 1, 1, true, K).unwrap();
        let s = b.relu("s", s).unwrap();
        let a = b.conv("a", s, 3, 3, 1, 1, 1, true, K).unwrap();
        let c = b.conv("b", s, 5, 1, 1, 0, 1, false, K).unwrap();
        let cat = b.node("cat", Op::Concat { axis: 1 }, &[a, c]).unwrap();
        let y = b.conv("c", cat, 6, 1, 1, 0, 1, false, K).unwrap();
        let g = b.finish(&[y]).unwrap();
        let cg = channel_groups(&g).unwrap();
        let grp = group(&cg, &g, "cat", 1);
        assert!(grp.prunable(), "{:?}", grp.blockers);
        assert_eq!(grp.channels, 8);
        assert_eq!(
            roles(&g, &grp.producers),
            vec![r("a", "a.weight", 0, 0, 3, 1), r("b", "b.weight", 0, 3, 5, 1)]
        );
        assert_eq!(roles(&g, &grp.consumers), vec![r("c", "c.weight", 1, 0, 8, 1)]);
        assert_eq!(params(&g, grp), vec!["a.bias"]);
        let m = |name: &str| *grp.member(id(&g, name), 1).unwrap();
        assert_eq!((m("a").offset, m("a").len), (0, 3));
        assert_eq!((m("b").offset, m("b").len), (3, 5));
        assert_eq!((m("cat").offset, m("cat").len), (0, 8));
        // The stem's channels feed both branches: one group, two consumers.
        let stem = group(&cg, &g, "s", 1);
        assert!(stem.prunable());
        assert_eq!(
            roles(&g, &stem.consumers),
            vec![r("a", "a.weight", 1, 0, 4, 1), r("b", "b.weight", 1, 0, 4, 1)]
        );
        assert_eq!(params(&g, stem), vec!["stem.bias"]);
    }

    #[test]
    fn channels_pass_through_a_depthwise_conv() {
        for mult in [1, 2] {
            let mut b = Builder::seeded(4);
            let x = image(&mut b, 4, 8);
            let e = b.conv("expand", x, 24, 1, 1, 0, 1, true, K).unwrap();
            let e = b.relu6("expand.act", e).unwrap();
            let d = b.conv("dw", e, 24 * mult, 3, 1, 1, 24, true, K).unwrap();
            let d = b.relu("dw.act", d).unwrap();
            let y = b.conv("project", d, 4, 1, 1, 0, 1, false, K).unwrap();
            let g = b.finish(&[y]).unwrap();
            let cg = channel_groups(&g).unwrap();
            let grp = group(&cg, &g, "expand", 1);
            assert!(grp.prunable(), "{:?}", grp.blockers);
            assert_eq!(grp.channels, 24);
            assert_eq!(roles(&g, &grp.producers), vec![r("expand", "expand.weight", 0, 0, 24, 1)]);
            assert_eq!(roles(&g, &grp.consumers), vec![r("project", "project.weight", 1, 0, 24, mult)]);
            assert_eq!(params(&g, grp).len(), 3, "{:?}", params(&g, grp));
            let dw_w = grp.member(id(&g, "dw.weight"), 0).unwrap();
            assert_eq!((dw_w.len, dw_w.block), (24, mult));
            assert_eq!(grp.member(id(&g, "dw.bias"), 0).unwrap().block, mult);
            assert_eq!(grp.member(id(&g, "dw.act"), 1).unwrap().block, mult);
            assert!(grp.member(id(&g, "dw.weight"), 1).is_none());
            assert_eq!(grp.counted_by.len(), 1);
            assert_eq!(g.node(grp.counted_by[0]).unwrap().name, "dw");
            // expand's weight, bias, output and activation; dw's weight, bias, output and
            // activation; project's weight.
            assert_eq!(grp.members.len(), 9);
        }
    }

    #[test]
    fn channels_of_squeeze_excite() {
        let mut b = Builder::seeded(5);
        let x = image(&mut b, 3, 8);
        let s = b.conv("stem", x, 8, 3, 1, 1, 1, false, K).unwrap();
        let s = b.relu("s", s).unwrap();
        let p = b.node("se.pool", Op::GlobalAveragePool, &[s]).unwrap();
        let q = b.conv("se.fc1", p, 2, 1, 1, 0, 1, true, K).unwrap();
        let q = b.relu("se.relu", q).unwrap();
        let q = b.conv("se.fc2", q, 8, 1, 1, 0, 1, true, K).unwrap();
        let gate = b.node("se.gate", Op::Unary(Unary::Sigmoid), &[q]).unwrap();
        let y = b.node("se.mul", Op::Binary(Binary::Mul), &[s, gate]).unwrap();
        let y = b.conv("head", y, 4, 1, 1, 0, 1, false, K).unwrap();
        let g = b.finish(&[y]).unwrap();
        let cg = channel_groups(&g).unwrap();
        let red = group(&cg, &g, "se.relu", 1);
        assert!(red.prunable(), "{:?}", red.blockers);
        assert_eq!(red.channels, 2);
        assert_eq!(roles(&g, &red.producers), vec![r("se.fc1", "se.fc1.weight", 0, 0, 2, 1)]);
        assert_eq!(roles(&g, &red.consumers), vec![r("se.fc2", "se.fc2.weight", 1, 0, 2, 1)]);
        assert_eq!(params(&g, red), vec!["se.fc1.bias"]);
        // The Mul ties the gate's channels to x's.
        let c = group(&cg, &g, "se.gate", 1);
        assert!(std::ptr::eq(c, group(&cg, &g, "s", 1)) && std::ptr::eq(c, group(&cg, &g, "se.mul", 1)));
        assert!(c.prunable(), "{:?}", c.blockers);
        assert_eq!(c.channels, 8);
        assert_eq!(
            roles(&g, &c.producers),
            vec![r("stem", "stem.weight", 0, 0, 8, 1), r("se.fc2", "se.fc2.weight", 0, 0, 8, 1)]
        );
        assert_eq!(
            roles(&g, &c.consumers),
            vec![r("se.fc1", "se.fc1.weight", 1, 0, 8, 1), r("head", "head.weight", 1, 0, 8, 1)]
        );
        assert_eq!(params(&g, c), vec!["se.fc2.bias"]);
        assert!(c.member(id(&g, "se.pool"), 1).is_some());
        // The gate's 1x1 spatial axes are not tied to x's.
        assert!(c.member(id(&g, "se.gate"), 2).is_none());
    }

    #[test]
    fn channels_reach_a_gemm_in_blocks_after_flatten() {
        let build = |shape: Option<&[i64]>| {
            let mut b = Builder::seeded(6);
            let x = b.input("x", DType::F32, known_shape(&[2, 3, 3, 3]));
            let y = b.conv("conv", x, 4, 3, 1, 1, 1, true, K).unwrap();
            let y = b.relu("relu", y).unwrap();
            let y = match shape {
                None => b.flatten("flat", y).unwrap(),
                Some(s) => {
                    let s = b.konst("flat.shape", Tensor::from_vec(vec![s.len()], s.to_vec()));
                    b.node("flat", Op::Reshape { allowzero: false }, &[y, s]).unwrap()
                }
            };
            let y = b.fc("fc", y, 10, K).unwrap();
            b.finish(&[y]).unwrap()
        };
        for shape in [None, Some(&[0i64, -1][..])] {
            let g = build(shape);
            let cg = channel_groups(&g).unwrap();
            let grp = group(&cg, &g, "conv", 1);
            assert!(grp.prunable(), "{:?}", grp.blockers);
            assert_eq!(grp.channels, 4);
            assert_eq!(roles(&g, &grp.producers), vec![r("conv", "conv.weight", 0, 0, 4, 1)]);
            assert_eq!(roles(&g, &grp.consumers), vec![r("fc", "fc.weight", 1, 0, 4, 9)]);
            assert_eq!(params(&g, grp), vec!["conv.bias"]);
            let flat = grp.member(id(&g, "flat"), 1).unwrap();
            assert_eq!((flat.offset, flat.len, flat.block), (0, 4, 9));
            // The logits are a graph output.
            let fc = group(&cg, &g, "fc.weight", 0);
            assert!(!fc.prunable());
            assert!(fc.blockers.iter().any(|b| b.contains("graph output")), "{:?}", fc.blockers);
        }
        // A literal shape would break after pruning: not prunable.
        let g = build(Some(&[2, 36]));
        let cg = channel_groups(&g).unwrap();
        let grp = group(&cg, &g, "conv", 1);
        assert!(!grp.prunable());
        assert!(grp.blockers.iter().any(|b| b.contains("Reshape \"flat\"")), "{:?}", grp.blockers);
    }

    #[test]
    fn graph_inputs_outputs_and_opaque_ops_block_groups() {
        let mut b = Builder::seeded(7);
        let x = image(&mut b, 3, 8);
        let y = b.conv("c", x, 4, 3, 1, 1, 1, true, K).unwrap();
        let g = b.finish(&[y]).unwrap();
        let cg = channel_groups(&g).unwrap();
        assert_eq!(cg.groups.len(), 2);
        let input = group(&cg, &g, "x", 1);
        assert!(!input.prunable());
        assert!(
            input.blockers.contains(&"\"x\" axis 1 is a graph input".to_string()),
            "{:?}",
            input.blockers
        );
        assert_eq!(roles(&g, &input.consumers), vec![r("c", "c.weight", 1, 0, 3, 1)]);
        let output = group(&cg, &g, "c.weight", 0);
        assert!(!output.prunable());
        assert_eq!(output.blockers, vec!["\"c\" axis 1 is a graph output".to_string()]);
        assert_eq!(params(&g, output), vec!["c.bias"]);

        // A Transpose that moves the channel axis blocks its group; one that does not, not.
        let build = |perm: Vec<usize>| {
            let mut b = Builder::seeded(8);
            let x = image(&mut b, 3, 8);
            let y = b.conv("c1", x, 4, 3, 1, 1, 1, false, K).unwrap();
            let y = b.relu("r", y).unwrap();
            let inv: Vec<usize> = (0..4).map(|i| perm.iter().position(|&p| p == i).unwrap()).collect();
            let y = b.node("t", Op::Transpose { perm: Some(perm) }, &[y]).unwrap();
            let y = b.node("t2", Op::Transpose { perm: Some(inv) }, &[y]).unwrap();
            let y = b.conv("c2", y, 4, 3, 1, 1, 1, false, K).unwrap();
            b.finish(&[y]).unwrap()
        };
        let g = build(vec![0, 2, 3, 1]);
        let cg = channel_groups(&g).unwrap();
        let grp = group(&cg, &g, "r", 1);
        assert!(!grp.prunable());
        assert_eq!(grp.blockers, vec!["Transpose \"t\" does not carry channels of \"r\" axis 1".to_string()]);
        assert_eq!(roles(&g, &grp.producers), vec![r("c1", "c1.weight", 0, 0, 4, 1)]);
        assert!(grp.consumers.is_empty());
        let after = group(&cg, &g, "t2", 1);
        assert!(!after.prunable() && after.producers.is_empty());
        let g = build(vec![0, 1, 3, 2]);
        let cg = channel_groups(&g).unwrap();
        let grp = group(&cg, &g, "r", 1);
        assert!(grp.prunable(), "{:?}", grp.blockers);
        assert_eq!(roles(&g, &grp.consumers), vec![r("c2", "c2.weight", 1, 0, 4, 1)]);
    }
}
