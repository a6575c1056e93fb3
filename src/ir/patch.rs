//! Edits to a graph, applied atomically: build a `Patch`, then `Patch::apply`.

use super::{Graph, NodeId, Op, ValueId};
use crate::tensor::Tensor;
use anyhow::{Context, Result};

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

/// A set of edits: new nodes and constants, rewiring of uses, and node removals.
#[derive(Clone, Debug, Default)]
pub struct Patch {
    edits: Vec<Edit>,
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
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty() && self.shunts.is_empty() && self.removes.is_empty()
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
            g.nodes[n.0] = None;
        }
        g.verify().context("graph invalid after applying a patch")?;
        *graph = g;
        Ok(())
    }
}
