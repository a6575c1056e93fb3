//! Removal of no-op nodes.

use super::Uses;
use crate::ir::{Graph, NodeId, Op, PVal, Patch};

/// Identity and inference-mode Dropout forward their input.
pub fn remove_identity(g: &Graph, n: NodeId, uses: &Uses) -> Option<Patch> {
    let node = g.node(n).ok()?;
    if !matches!(node.op, Op::Identity | Op::Dropout { .. }) {
        return None;
    }
    let input = node.inputs.first().copied().flatten()?;
    let out = node.outputs[0];
    // A graph output must stay a node output with its own name; keep the Identity then
    // unless the input is itself produced by a node that nothing else reads.
    if uses.is_output(out) && (g.value(input).producer.is_none() || uses.sole_consumer(input) != Some(n)) {
        return None;
    }
    if node.outputs[1..].iter().any(|o| uses.is_output(*o) || !uses.readers(*o).is_empty()) {
        return None;
    }
    let mut p = Patch::new();
    p.shunt(out, PVal::Old(input));
    p.remove(n);
    Some(p)
}
