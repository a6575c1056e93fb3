//! Edits to a graph, applied atomically: build a `Patch`, then `Patch::apply`.

use super::{Fact, Graph, NodeId, Op, ValueId};
use crate::tensor::Tensor;
use anyhow::{Context, Result, bail};

/// A value referred to by a patch: one already in the graph, or one the patch creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PVal {
    /// A value of the graph.
    Old(ValueId),
    /// Output `1` of the patch's edit number `0`.
    New(usize, usize),
}

impl From<ValueId> for PVal {
    fn from(v: ValueId) -> PVal {
        PVal::Old(v)
    }
}

#[derive(Clone, Debug)]
enum Edit {
    Node { name: String, op: Op, inputs: Vec<Option<PVal>> },
    Const { name: String, tensor: Tensor },
}

/// A set of edits: new nodes and constants, replaced constants and ops, rewired inputs and
/// uses, and node removals. Applying it re-infers every fact downstream of the edits (so a
/// weight replaced by a smaller one shrinks the shapes after it) and verifies the result.
#[derive(Clone, Debug, Default)]
pub struct Patch {
    edits: Vec<Edit>,
    consts: Vec<(ValueId, Tensor)>,
    ops: Vec<(NodeId, Op)>,
    rewires: Vec<(NodeId, usize, Option<PVal>)>,
    shunts: Vec<(ValueId, PVal)>,
    removes: Vec<NodeId>,
}

impl Patch {
    /// An empty patch.
    pub fn new() -> Patch {
        Patch::default()
    }
    /// Adds a node; its output `i` is `PVal::New(returned index, i)`.
    pub fn add_node(&mut self, name: &str, op: Op, inputs: Vec<Option<PVal>>) -> usize {
        self.edits.push(Edit::Node { name: name.into(), op, inputs });
        self.edits.len() - 1
    }
    /// Adds a node and returns its first output.
    pub fn node(&mut self, name: &str, op: Op, inputs: Vec<PVal>) -> PVal {
        PVal::New(self.add_node(name, op, inputs.into_iter().map(Some).collect()), 0)
    }
    /// Adds a constant.
    pub fn konst(&mut self, name: &str, tensor: Tensor) -> PVal {
        self.edits.push(Edit::Const { name: name.into(), tensor });
        PVal::New(self.edits.len() - 1, 0)
    }
    /// Makes every reader of `old` (nodes and graph outputs) read `new` instead.
    pub fn shunt(&mut self, old: ValueId, new: PVal) {
        self.shunts.push((old, new));
    }
    /// Removes a node (its outputs must be unused once the shunts are applied).
    pub fn remove(&mut self, n: NodeId) {
        self.removes.push(n);
    }
    /// Replaces the content of constant `v` (its shape and dtype may change; readers'
    /// facts are re-inferred).
    pub fn replace_const(&mut self, v: ValueId, t: Tensor) {
        self.consts.push((v, t));
    }
    /// Replaces node `n`'s op, keeping its inputs, outputs and name.
    pub fn replace_op(&mut self, n: NodeId, op: Op) {
        self.ops.push((n, op));
    }
    /// Makes input `i` of node `n` read `v` (`None`: absent); `i` may be one past the end.
    pub fn set_input(&mut self, n: NodeId, i: usize, v: Option<PVal>) {
        self.rewires.push((n, i, v));
    }
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
            && self.consts.is_empty()
            && self.ops.is_empty()
            && self.rewires.is_empty()
            && self.shunts.is_empty()
            && self.removes.is_empty()
    }

    /// Applies the patch; on any error the graph is left unchanged. The result is verified.
    pub fn apply(self, graph: &mut Graph) -> Result<()> {
        let mut g = graph.clone();
        let mut made: Vec<Vec<ValueId>> = Vec::with_capacity(self.edits.len());
        let resolve = |made: &Vec<Vec<ValueId>>, p: PVal| -> ValueId {
            match p {
                PVal::Old(v) => v,
                PVal::New(e, i) => made[e][i],
            }
        };
        for e in self.edits {
            match e {
                Edit::Node { name, op, inputs } => {
                    let ins = inputs.iter().map(|i| i.map(|p| resolve(&made, p))).collect();
                    let name = g.unique_name(&name);
                    made.push(g.add_node(&name, op, ins)?);
                }
                Edit::Const { name, tensor } => made.push(vec![g.add_const(&name, tensor)]),
            }
        }
        for (v, t) in self.consts {
            let val = &g.values[v.0];
            if val.producer.is_some() || val.fact.konst.is_none() {
                bail!("cannot replace \"{}\": it is not a constant", val.name);
            }
            g.values[v.0].fact = Fact::konst(t);
        }
        for (n, op) in self.ops {
            g.node(n)?;
            g.nodes[n.0].as_mut().expect("checked").op = op;
        }
        for (n, i, v) in self.rewires {
            let v = v.map(|p| resolve(&made, p));
            let node = g.nodes.get_mut(n.0).and_then(|n| n.as_mut());
            let Some(node) = node else { bail!("cannot rewire node #{}: it does not exist", n.0) };
            if i > node.inputs.len() {
                bail!("node \"{}\" has {} inputs; cannot set input {i}", node.name, node.inputs.len());
            }
            if i == node.inputs.len() {
                node.inputs.push(v);
            } else {
                node.inputs[i] = v;
            }
            while node.inputs.last() == Some(&None) {
                node.inputs.pop();
            }
        }
        for (old, new) in self.shunts {
            let new = resolve(&made, new);
            for node in g.nodes.iter_mut().flatten() {
                for i in node.inputs.iter_mut().flatten() {
                    if *i == old {
                        *i = new;
                    }
                }
            }
            if g.outputs.contains(&old) {
                // keep the graph's output names stable
                let name = g.values[old.0].name.clone();
                g.outputs.iter_mut().filter(|o| **o == old).for_each(|o| *o = new);
                if g.values[new.0].producer.is_some() && !g.outputs.contains(&old) {
                    g.rename(old, &format!("{name}__replaced"));
                    g.rename(new, &name);
                }
            }
        }
        for n in self.removes {
            g.node(n).context("removing a node")?;
            g.nodes[n.0] = None;
        }
        g.refresh_facts().context("re-inferring facts after a patch")?;
        g.verify().context("graph invalid after applying a patch")?;
        *graph = g;
        Ok(())
    }
}
