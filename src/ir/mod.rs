//! The graph IR: typed values, nodes holding a closed `Op`, shape inference on insertion,
//! `verify()`, and `Patch` for edits.
//!
//! The contract: a `Graph`'s fields are private. Nodes and values are added with
//! [`Graph::add_input`], [`Graph::add_const`] and [`Graph::add_node`] (or through
//! [`Builder`]); every later edit goes through a [`Patch`], which re-infers facts downstream
//! of the edit and verifies the result before it replaces the graph. [`Rebuild`] is the one
//! way to copy a graph node by node into a new one (re-batching, training graphs).

mod builder;
pub mod channels;
#[cfg(test)]
mod contract_tests;
mod fact;
mod op;
mod patch;
mod rebuild;
mod train_op;

pub use builder::{Builder, Init};
pub use fact::*;
pub use op::*;
pub use patch::{PVal, Patch};
pub use rebuild::Rebuild;

use crate::tensor::{DType, Tensor};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::{HashMap, HashSet};

/// Index of a value in a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// Index of a node in a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// A value: a graph input, a constant, or a node output.
#[derive(Clone, Debug)]
pub struct Value {
    /// Name (unique in the graph).
    pub name: String,
    /// What is known about it.
    pub fact: Fact,
    /// The node and output slot that produce it, if any.
    pub producer: Option<(NodeId, usize)>,
}

/// An operator application.
#[derive(Clone, Debug)]
pub struct Node {
    /// Name (for messages and export).
    pub name: String,
    /// The operator.
    pub op: Op,
    /// Positional inputs; `None` for an absent optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// Outputs.
    pub outputs: Vec<ValueId>,
}

/// Size limit (elements) for folding a node whose inputs are all constant at build time.
const FOLD_LIMIT: usize = 1 << 26;

/// A computation graph. Nodes are stored in insertion order; removed nodes leave a hole
/// until [`Graph::compact`].
#[derive(Clone, Debug)]
pub struct Graph {
    values: Vec<Value>,
    nodes: Vec<Option<Node>>,
    inputs: Vec<ValueId>,
    outputs: Vec<ValueId>,
    names: HashMap<String, ValueId>,
    folding: bool,
    pinned: HashSet<ValueId>,
    metadata: Vec<(String, String)>,
}

impl Default for Graph {
    fn default() -> Graph {
        Graph {
            values: Vec::new(),
            nodes: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            names: HashMap::new(),
            folding: true,
            pinned: HashSet::new(),
            metadata: Vec::new(),
        }
    }
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Value by id.
    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.0]
    }
    /// Fact of a value.
    pub fn fact(&self, v: ValueId) -> &Fact {
        &self.values[v.0].fact
    }
    /// Every value ever created, with its id (some may be unused until [`Graph::compact`]).
    pub fn values(&self) -> impl Iterator<Item = (ValueId, &Value)> {
        self.values.iter().enumerate().map(|(i, v)| (ValueId(i), v))
    }
    /// Number of values (an upper bound for `ValueId`s).
    pub fn value_count(&self) -> usize {
        self.values.len()
    }
    /// Number of node slots, removed ones included (an upper bound for `NodeId`s).
    pub fn node_slots(&self) -> usize {
        self.nodes.len()
    }
    /// Node by id; an error for a removed node or an id out of range.
    pub fn node(&self, n: NodeId) -> Result<&Node> {
        match self.nodes.get(n.0) {
            Some(Some(node)) => Ok(node),
            Some(None) => Err(anyhow!("node #{} was removed from the graph", n.0)),
            None => {
                Err(anyhow!("node #{} does not exist (the graph has {} node slots)", n.0, self.nodes.len()))
            }
        }
    }
    /// True when `n` names a live node.
    pub fn is_live(&self, n: NodeId) -> bool {
        matches!(self.nodes.get(n.0), Some(Some(_)))
    }
    /// Live nodes with their ids, in insertion order.
    pub fn live_nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes.iter().enumerate().filter_map(|(i, n)| n.as_ref().map(|n| (NodeId(i), n)))
    }
    /// The run-time inputs, in order.
    pub fn inputs(&self) -> &[ValueId] {
        &self.inputs
    }
    /// The outputs, in order.
    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }
    /// Sets the outputs (each must be a value of this graph).
    pub fn set_outputs(&mut self, outputs: Vec<ValueId>) {
        debug_assert!(outputs.iter().all(|o| o.0 < self.values.len()));
        self.outputs = outputs;
    }
    /// Makes input `i` of node `n` read `v`, without re-inferring anything: for callers that
    /// swap in a value with the same fact (the runtime's layout reorders).
    pub(crate) fn set_node_input(&mut self, n: NodeId, i: usize, v: ValueId) -> Result<()> {
        let Some(node) = self.nodes.get_mut(n.0).and_then(|n| n.as_mut()) else {
            bail!("node #{} does not exist", n.0)
        };
        let Some(slot) = node.inputs.get_mut(i) else { bail!("node \"{}\" has no input {i}", node.name) };
        *slot = Some(v);
        Ok(())
    }
    /// Looks a value up by name.
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.names.get(name).copied()
    }
    /// The node that produces `v`, if any.
    pub fn producer(&self, v: ValueId) -> Option<&Node> {
        self.value(v).producer.and_then(|(n, _)| self.nodes.get(n.0)?.as_ref())
    }

    /// Model-level metadata (ONNX `metadata_props`), in file order.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }
    /// The model-level metadata value stored under `key`.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// Sets (or, with `None`, removes) the model-level metadata value under `key`.
    pub fn set_metadata(&mut self, key: &str, value: Option<String>) {
        self.metadata.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.metadata.push((key.to_string(), v));
        }
    }
    /// Whether nodes whose inputs are all constant are evaluated when added (default: yes).
    pub fn folding(&self) -> bool {
        self.folding
    }
    /// Turns build-time constant folding on or off for nodes added from now on (also by
    /// patches). A technique that must keep a graph's structure (e.g. int8 weights behind a
    /// DequantizeLinear) turns it off.
    pub fn set_folding(&mut self, on: bool) {
        self.folding = on;
    }
    /// Marks a value so that no node reading it is folded at build time (e.g. a weight a
    /// technique will rewrite, which must keep its own node).
    pub fn pin(&mut self, v: ValueId) {
        self.pinned.insert(v);
    }
    /// True if `v` was pinned with [`Graph::pin`].
    pub fn is_pinned(&self, v: ValueId) -> bool {
        self.pinned.contains(&v)
    }

    /// Returns `base` or `base_N`, whichever is not yet a value name.
    pub fn unique_name(&self, base: &str) -> String {
        if !self.names.contains_key(base) {
            return base.to_string();
        }
        (1..).map(|i| format!("{base}_{i}")).find(|n| !self.names.contains_key(n)).unwrap()
    }

    fn push_value(&mut self, name: &str, fact: Fact, producer: Option<(NodeId, usize)>) -> ValueId {
        let name = self.unique_name(name);
        let id = ValueId(self.values.len());
        self.names.insert(name.clone(), id);
        self.values.push(Value { name, fact, producer });
        id
    }

    /// Adds a run-time input.
    pub fn add_input(&mut self, name: &str, dtype: DType, shape: Shape) -> ValueId {
        let id = self.push_value(name, Fact::new(dtype, shape), None);
        self.inputs.push(id);
        id
    }

    /// Adds a constant (an initializer).
    pub fn add_const(&mut self, name: &str, t: Tensor) -> ValueId {
        self.push_value(name, Fact::konst(t), None)
    }

    /// True when a node `op` reading `inputs` would be evaluated at build time: folding is
    /// on, the op is foldable, every input is a constant and none is pinned.
    fn folds(&self, op: &Op, inputs: &[Option<ValueId>], out_facts: &[Fact]) -> bool {
        self.folding
            && op.foldable()
            && !inputs.is_empty()
            && inputs.iter().flatten().all(|&v| self.fact(v).konst.is_some() && !self.pinned.contains(&v))
            && out_facts.iter().all(|f| f.numel().is_some_and(|n| n <= FOLD_LIMIT))
    }

    /// Adds a node, inferring output facts. When the folding policy allows it (see
    /// [`Graph::set_folding`], [`Graph::pin`], [`Op::foldable`]) and every input is constant,
    /// the node is evaluated now and its outputs become constants (no node is added).
    pub fn add_node(&mut self, name: &str, op: Op, inputs: Vec<Option<ValueId>>) -> Result<Vec<ValueId>> {
        if let Some(v) = inputs.iter().flatten().find(|v| v.0 >= self.values.len()) {
            bail!("{} \"{name}\" reads value #{} that does not exist", op.onnx_name(), v.0);
        }
        let facts: Vec<Option<&Fact>> = inputs.iter().map(|i| i.map(|v| self.fact(v))).collect();
        let out_facts = op.infer(&facts).with_context(|| self.describe(name, &op, &inputs))?;
        if self.folds(&op, &inputs, &out_facts) {
            let ts: Vec<Option<&Tensor>> = facts.iter().map(|f| f.and_then(|f| f.konst.as_ref())).collect();
            let outs = op.eval(&ts).with_context(|| self.describe(name, &op, &inputs))?;
            return Ok(outs
                .into_iter()
                .enumerate()
                .map(|(i, t)| self.add_const(&output_name(name, i), t))
                .collect());
        }
        let nid = NodeId(self.nodes.len());
        let outputs: Vec<ValueId> = out_facts
            .into_iter()
            .enumerate()
            .map(|(i, f)| self.push_value(&output_name(name, i), f, Some((nid, i))))
            .collect();
        self.nodes.push(Some(Node { name: name.to_string(), op, inputs, outputs: outputs.clone() }));
        Ok(outputs)
    }

    /// Renames a value (keeps names unique by suffixing).
    pub fn rename(&mut self, v: ValueId, name: &str) {
        let old = std::mem::take(&mut self.values[v.0].name);
        self.names.remove(&old);
        let name = self.unique_name(name);
        self.names.insert(name.clone(), v);
        self.values[v.0].name = name;
    }

    /// "Conv \"name\" (inputs: x float32[1,3,224,224], w float32[...])" for error messages.
    pub fn describe(&self, name: &str, op: &Op, inputs: &[Option<ValueId>]) -> String {
        let ins: Vec<String> = inputs
            .iter()
            .map(|i| match i {
                Some(v) if v.0 < self.values.len() => format!("{} {}", self.value(*v).name, self.fact(*v)),
                Some(v) => format!("#{} (missing)", v.0),
                None => "(absent)".into(),
            })
            .collect();
        format!("{} \"{}\" (inputs: {})", op.onnx_name(), name, ins.join(", "))
    }

    /// Describes a node for error messages.
    pub fn describe_node(&self, n: NodeId) -> String {
        match self.node(n) {
            Ok(node) => self.describe(&node.name, &node.op, &node.inputs),
            Err(e) => e.to_string(),
        }
    }

    /// Node ids in an order where every node comes after the producers of its inputs,
    /// restricted to nodes the outputs depend on.
    pub fn topo_order(&self) -> Result<Vec<NodeId>> {
        let mut order = Vec::new();
        let mut state = vec![0u8; self.nodes.len()]; // 0 new, 1 on stack, 2 done
        for &out in &self.outputs {
            let Some((root, _)) = self.value(out).producer else { continue };
            let mut stack = vec![(root, 0usize)];
            while let Some((n, i)) = stack.pop() {
                if i == 0 {
                    if state[n.0] == 2 {
                        continue;
                    }
                    state[n.0] = 1;
                }
                let node = self.node(n)?;
                if let Some(inp) = node.inputs.get(i) {
                    stack.push((n, i + 1));
                    if let Some((p, _)) = inp.and_then(|v| self.value(v).producer) {
                        match state[p.0] {
                            0 => stack.push((p, 0)),
                            1 => bail!("graph has a cycle through node \"{}\"", self.node(p)?.name),
                            _ => {}
                        }
                    }
                } else {
                    state[n.0] = 2;
                    order.push(n);
                }
            }
        }
        Ok(order)
    }

    /// For each value, the nodes that read it.
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut c = vec![Vec::new(); self.values.len()];
        for (id, n) in self.live_nodes() {
            for v in n.inputs.iter().flatten() {
                if !c[v.0].contains(&id) {
                    c[v.0].push(id);
                }
            }
        }
        c
    }

    fn defined(&self, v: ValueId) -> bool {
        let val = self.value(v);
        match val.producer {
            Some((p, _)) => self.is_live(p),
            None => val.fact.konst.is_some() || self.inputs.contains(&v),
        }
    }

    /// Checks the graph's invariants: ids in range, producers consistent, no cycles, every
    /// node output's recorded fact equal to the re-inferred one (dtype, rank, and every dim
    /// the inference knows), outputs defined.
    pub fn verify(&self) -> Result<()> {
        for (id, node) in self.live_nodes() {
            for v in node.inputs.iter().flatten() {
                if v.0 >= self.values.len() {
                    bail!("node \"{}\" reads value #{} that does not exist", node.name, v.0);
                }
                if !self.defined(*v) {
                    bail!("node \"{}\" reads \"{}\", which nothing defines", node.name, self.value(*v).name);
                }
            }
            for (i, o) in node.outputs.iter().enumerate() {
                if self.value(*o).producer != Some((id, i)) {
                    bail!("output {} of node \"{}\" has an inconsistent producer", i, node.name);
                }
            }
            let facts: Vec<Option<&Fact>> = node.inputs.iter().map(|i| i.map(|v| self.fact(v))).collect();
            let inferred = node.op.infer(&facts).with_context(|| self.describe_node(id))?;
            if inferred.len() != node.outputs.len() {
                bail!(
                    "node \"{}\" has {} outputs but its op infers {}",
                    node.name,
                    node.outputs.len(),
                    inferred.len()
                );
            }
            for (o, f) in node.outputs.iter().zip(&inferred) {
                let have = self.fact(*o);
                if !fact_agrees(have, f) {
                    bail!(
                        "node \"{}\": output \"{}\" is recorded as {} but infers as {}",
                        node.name,
                        self.value(*o).name,
                        have,
                        f
                    );
                }
            }
        }
        for &o in &self.outputs {
            if o.0 >= self.values.len() || !self.defined(o) {
                bail!("graph output #{} is not defined", o.0);
            }
        }
        self.topo_order()?;
        Ok(())
    }

    /// Re-infers the facts of every live node's outputs in topological order (after a
    /// patch changed a constant, an op or a wiring). Constants are not re-folded.
    fn refresh_facts(&mut self) -> Result<()> {
        let mut order = self.topo_order()?;
        // Nodes no output depends on still get fresh facts, after the live ones.
        let seen: HashSet<NodeId> = order.iter().copied().collect();
        order.extend(self.live_nodes().map(|(id, _)| id).filter(|id| !seen.contains(id)).collect::<Vec<_>>());
        for n in order {
            let node = self.node(n)?;
            let facts: Vec<Option<&Fact>> = node.inputs.iter().map(|i| i.map(|v| self.fact(v))).collect();
            let inferred = node.op.infer(&facts).with_context(|| self.describe_node(n))?;
            let outs = node.outputs.clone();
            if inferred.len() != outs.len() {
                bail!(
                    "{}: the op now has {} outputs, the node {}",
                    self.describe_node(n),
                    inferred.len(),
                    outs.len()
                );
            }
            for (o, f) in outs.into_iter().zip(inferred) {
                self.values[o.0].fact = f;
            }
        }
        Ok(())
    }

    /// Re-runs shape inference over the whole graph (after input shapes change), folding
    /// nodes whose inputs became constant. Returns the rebuilt graph.
    pub fn reinfer(&self) -> Result<Graph> {
        let mut r = Rebuild::new(self);
        r.copy_inputs(|_, v| v.fact.shape.clone());
        r.copy_consts();
        r.copy_nodes()?;
        r.finish()
    }

    /// A copy with some inputs' shapes replaced (e.g. a concrete batch size), re-inferred.
    pub fn with_input_shapes(&self, shapes: &[(ValueId, Shape)]) -> Result<Graph> {
        let wanted: HashMap<ValueId, &Shape> = shapes.iter().map(|(v, s)| (*v, s)).collect();
        let mut r = Rebuild::new(self);
        r.copy_inputs(|id, v| wanted.get(&id).map_or_else(|| v.fact.shape.clone(), |s| (*s).clone()));
        r.copy_consts();
        r.copy_nodes()?;
        r.finish()
    }

    /// A copy with every symbolic or unknown dim of every input set to `n`.
    pub fn with_batch(&self, n: usize) -> Result<Graph> {
        let shapes: Vec<(ValueId, Shape)> = self
            .inputs
            .iter()
            .map(|&i| {
                let s = self.fact(i).shape.iter().map(|d| Dim::Known(d.known().unwrap_or(n))).collect();
                (i, s)
            })
            .collect();
        self.with_input_shapes(&shapes)
    }

    /// Removes nodes that no output depends on.
    pub fn remove_dead(&mut self) -> Result<usize> {
        let live: HashSet<NodeId> = self.topo_order()?.into_iter().collect();
        let mut removed = 0;
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() && !live.contains(&NodeId(i)) {
                self.nodes[i] = None;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Drops dead nodes and every value that no live node, input or output refers to (old
    /// weights left behind by rewrites), renumbering ids. Ids held from before are invalid
    /// afterwards; names are kept.
    pub fn compact(&mut self) -> Result<()> {
        self.remove_dead()?;
        let mut keep = vec![false; self.values.len()];
        for &v in self.inputs.iter().chain(&self.outputs) {
            keep[v.0] = true;
        }
        for (_, n) in self.live_nodes() {
            n.inputs.iter().flatten().chain(&n.outputs).for_each(|v| keep[v.0] = true);
        }
        let mut vmap = vec![usize::MAX; self.values.len()];
        let mut nmap = vec![usize::MAX; self.nodes.len()];
        let mut k = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            if n.is_some() {
                nmap[i] = k;
                k += 1;
            }
        }
        let mut values = Vec::new();
        for (i, v) in std::mem::take(&mut self.values).into_iter().enumerate() {
            if keep[i] {
                vmap[i] = values.len();
                let producer = v.producer.map(|(n, s)| (NodeId(nmap[n.0]), s));
                values.push(Value { producer, ..v });
            }
        }
        let vm = |v: ValueId| ValueId(vmap[v.0]);
        self.nodes = std::mem::take(&mut self.nodes)
            .into_iter()
            .flatten()
            .map(|n| Node {
                inputs: n.inputs.iter().map(|i| i.map(vm)).collect(),
                outputs: n.outputs.iter().map(|&o| vm(o)).collect(),
                ..n
            })
            .map(Some)
            .collect();
        self.inputs = self.inputs.iter().map(|&v| vm(v)).collect();
        self.outputs = self.outputs.iter().map(|&v| vm(v)).collect();
        self.pinned = self.pinned.iter().filter(|v| keep[v.0]).map(|&v| vm(v)).collect();
        self.values = values;
        self.names = self.values.iter().enumerate().map(|(i, v)| (v.name.clone(), ValueId(i))).collect();
        self.verify().context("graph invalid after compaction")
    }

    /// Number of live nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.iter().flatten().count()
    }

    /// Constant values that live nodes read (the model's weights), each once.
    pub fn used_consts(&self) -> Vec<ValueId> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (_, n) in self.live_nodes() {
            for &v in n.inputs.iter().flatten() {
                if self.value(v).producer.is_none() && self.fact(v).konst.is_some() && seen.insert(v) {
                    out.push(v);
                }
            }
        }
        for &v in &self.outputs {
            if self.value(v).producer.is_none() && self.fact(v).konst.is_some() && seen.insert(v) {
                out.push(v);
            }
        }
        out
    }
}

/// True when a recorded fact agrees with a freshly inferred one: same dtype and rank, and
/// equal wherever the inferred shape knows a dim.
fn fact_agrees(have: &Fact, inferred: &Fact) -> bool {
    have.dtype == inferred.dtype
        && have.rank() == inferred.rank()
        && have.shape.iter().zip(&inferred.shape).all(|(h, i)| match i {
            Dim::Known(_) | Dim::Sym(_) => h == i,
            Dim::Unknown => true,
        })
}

/// Name of output `i` of a node called `node`.
fn output_name(node: &str, i: usize) -> String {
    if i == 0 { node.to_string() } else { format!("{node}:{i}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_infer_fold_and_order() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![Dim::Sym("N".into()), Dim::Known(4)]);
        let a = g.add_const("a", Tensor::from_vec(vec![4], vec![1f32, 2., 3., 4.]));
        let b = g.add_const("b", Tensor::from_vec(vec![4], vec![1f32, 1., 1., 1.]));
        // constant + constant folds at build time
        let c = g.add_node("c", Op::Binary(Binary::Add), vec![Some(a), Some(b)]).unwrap()[0];
        assert_eq!(g.fact(c).konst.as_ref().unwrap().f32s().unwrap(), &[2., 3., 4., 5.]);
        assert_eq!(g.node_count(), 0);
        let y = g.add_node("y", Op::Binary(Binary::Mul), vec![Some(x), Some(c)]).unwrap()[0];
        let z = g.add_node("z", Op::Unary(Unary::Relu), vec![Some(y)]).unwrap()[0];
        g.outputs = vec![z];
        assert_eq!(g.fact(z).shape, vec![Dim::Sym("N".into()), Dim::Known(4)]);
        assert_eq!(g.topo_order().unwrap(), vec![NodeId(0), NodeId(1)]);
        g.verify().unwrap();
        let g2 = g.with_batch(3).unwrap();
        assert_eq!(g2.fact(g2.outputs[0]).shape, known_shape(&[3, 4]));
    }

    #[test]
    fn bad_shapes_name_the_node() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, known_shape(&[2, 3]));
        let y = g.add_input("y", DType::F32, known_shape(&[4]));
        let err = g.add_node("adder", Op::Binary(Binary::Add), vec![Some(x), Some(y)]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("adder") && msg.contains("Add") && msg.contains("[2,3]"), "{msg}");
    }
}
