//! The one way to copy a graph node by node into a new graph, re-inferring facts: used for
//! re-shaping inputs, re-batching models and building training graphs.

use super::{Graph, Node, NodeId, Op, Shape, Value, ValueId};
use anyhow::{Context, Result, anyhow};
use std::collections::HashMap;

/// A copy in progress from `src` into [`Rebuild::dst`], with the map from old value ids to
/// new ones. Typical use: [`Rebuild::copy_inputs`], [`Rebuild::copy_consts`], then
/// [`Rebuild::copy_nodes`] (or [`Rebuild::copy_node`] per node with a changed op or
/// inputs), then [`Rebuild::finish`].
pub struct Rebuild<'a> {
    src: &'a Graph,
    /// The graph being built.
    pub dst: Graph,
    map: HashMap<ValueId, ValueId>,
}

impl<'a> Rebuild<'a> {
    /// Starts an empty copy of `src` with the same folding policy and metadata.
    pub fn new(src: &'a Graph) -> Rebuild<'a> {
        let mut dst = Graph::new();
        dst.set_folding(src.folding());
        for (k, v) in src.metadata() {
            dst.set_metadata(k, Some(v.clone()));
        }
        Rebuild { src, dst, map: HashMap::new() }
    }
    /// The graph being copied.
    pub fn src(&self) -> &'a Graph {
        self.src
    }
    /// Records that `old` (of the source) is `new` (of the copy).
    pub fn map(&mut self, old: ValueId, new: ValueId) {
        if self.src.is_pinned(old) {
            self.dst.pin(new);
        }
        self.map.insert(old, new);
    }
    /// The copy of a source value, if made.
    pub fn get(&self, old: ValueId) -> Option<ValueId> {
        self.map.get(&old).copied()
    }
    /// Copies the source's inputs in order, each with the shape `shape` gives it.
    pub fn copy_inputs(&mut self, mut shape: impl FnMut(ValueId, &Value) -> Shape) {
        for &i in self.src.inputs() {
            let v = self.src.value(i);
            let new = self.dst.add_input(&v.name, v.fact.dtype, shape(i, v));
            self.map(i, new);
        }
    }
    /// Copies every constant that a live node or an output reads and that is not mapped yet.
    pub fn copy_consts(&mut self) {
        for v in self.src.used_consts() {
            if self.map.contains_key(&v) {
                continue;
            }
            let val = self.src.value(v);
            let t = val.fact.konst.clone().expect("used_consts returns constants");
            let new = self.dst.add_const(&val.name, t);
            self.map(v, new);
        }
    }
    /// The copies of a source node's inputs; an error names a value not copied yet.
    pub fn inputs_of(&self, node: &Node) -> Result<Vec<Option<ValueId>>> {
        node.inputs
            .iter()
            .map(|i| match i {
                None => Ok(None),
                Some(v) => self.get(*v).map(Some).ok_or_else(|| {
                    anyhow!(
                        "node \"{}\" reads \"{}\", which was not copied",
                        node.name,
                        self.src.value(*v).name
                    )
                }),
            })
            .collect()
    }
    /// Adds source node `n` to the copy as `op` reading `inputs`, keeping the names of its
    /// outputs, and maps them. Returns the new outputs.
    pub fn copy_node(&mut self, n: NodeId, op: Op, inputs: Vec<Option<ValueId>>) -> Result<Vec<ValueId>> {
        let node = self.src.node(n)?;
        let outs = self.dst.add_node(&node.name, op, inputs).with_context(|| self.src.describe_node(n))?;
        for (o, &new) in node.outputs.iter().zip(&outs) {
            self.dst.rename(new, &self.src.value(*o).name);
            self.map(*o, new);
        }
        Ok(outs)
    }
    /// Copies every node the outputs depend on, unchanged, in topological order.
    pub fn copy_nodes(&mut self) -> Result<()> {
        for n in self.src.topo_order()? {
            let node = self.src.node(n)?;
            let ins = self.inputs_of(node)?;
            self.copy_node(n, node.op.clone(), ins)?;
        }
        Ok(())
    }
    /// Sets the copy's outputs to the copies of the source's outputs, verifies it and returns it.
    pub fn finish(mut self) -> Result<Graph> {
        let outs = self
            .src
            .outputs()
            .iter()
            .map(|o| {
                self.get(*o).ok_or_else(|| anyhow!("output \"{}\" was not copied", self.src.value(*o).name))
            })
            .collect::<Result<Vec<_>>>()?;
        self.dst.set_outputs(outs);
        self.dst.verify()?;
        Ok(self.dst)
    }
}
