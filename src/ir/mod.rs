//! The graph IR: typed values, nodes holding a closed `Op`, shape inference on insertion,
//! `verify()`, and `Patch` for edits.

mod fact;
mod op;
mod patch;
mod train_op;

pub use fact::*;
pub use op::*;
pub use patch::{PVal, Patch};

use crate::tensor::{DType, Tensor};
use anyhow::{Context, Result, bail};
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

/// A computation graph. Nodes are stored in insertion order; removed nodes leave a hole.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// All values ever created (some may be unused).
    pub values: Vec<Value>,
    /// Nodes; `None` where a node was removed.
    pub nodes: Vec<Option<Node>>,
    /// Graph inputs (non-constant, supplied at run time).
    pub inputs: Vec<ValueId>,
    /// Graph outputs.
    pub outputs: Vec<ValueId>,
    names: HashMap<String, ValueId>,
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
    /// Node by id; panics on a removed node.
    pub fn node(&self, n: NodeId) -> &Node {
        self.nodes[n.0].as_ref().expect("removed node")
    }
    /// Live nodes with their ids, in insertion order.
    pub fn live_nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes.iter().enumerate().filter_map(|(i, n)| n.as_ref().map(|n| (NodeId(i), n)))
    }
    /// Looks a value up by name.
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.names.get(name).copied()
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

    /// Adds a node, inferring output facts. When every input is constant and the op is
    /// foldable, the node is evaluated now and its outputs become constants (no node is added).
    pub fn add_node(&mut self, name: &str, op: Op, inputs: Vec<Option<ValueId>>) -> Result<Vec<ValueId>> {
        let facts: Vec<Option<&Fact>> = inputs.iter().map(|i| i.map(|v| self.fact(v))).collect();
        let out_facts = op.infer(&facts).with_context(|| self.describe(name, &op, &inputs))?;
        let all_const = facts.iter().all(|f| f.is_none_or(|f| f.konst.is_some()));
        let small = out_facts.iter().all(|f| f.numel().is_some_and(|n| n <= FOLD_LIMIT));
        if all_const && op.foldable() && small && !inputs.is_empty() {
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
                Some(v) => format!("{} {}", self.value(*v).name, self.fact(*v)),
                None => "(absent)".into(),
            })
            .collect();
        format!("{} \"{}\" (inputs: {})", op.onnx_name(), name, ins.join(", "))
    }

    /// Describes a node for error messages.
    pub fn describe_node(&self, n: NodeId) -> String {
        let node = self.node(n);
        self.describe(&node.name, &node.op, &node.inputs)
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
                let node = self.node(n);
                if let Some(inp) = node.inputs.get(i) {
                    stack.push((n, i + 1));
                    if let Some((p, _)) = inp.and_then(|v| self.value(v).producer) {
                        match state[p.0] {
                            0 => stack.push((p, 0)),
                            1 => bail!("graph has a cycle through node \"{}\"", self.node(p).name),
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

    /// Checks the graph's invariants: ids in range, producers consistent, no cycles,
    /// node outputs' facts agree with re-inferred ones, outputs defined.
    pub fn verify(&self) -> Result<()> {
        let inputs: HashSet<ValueId> = self.inputs.iter().copied().collect();
        for (id, node) in self.live_nodes() {
            for v in node.inputs.iter().flatten() {
                if v.0 >= self.values.len() {
                    bail!("node \"{}\" reads value #{} that does not exist", node.name, v.0);
                }
                let val = self.value(*v);
                let defined = match val.producer {
                    Some((p, _)) => self.nodes.get(p.0).is_some_and(|n| n.is_some()),
                    None => val.fact.konst.is_some() || inputs.contains(v),
                };
                if !defined {
                    bail!("node \"{}\" reads \"{}\", which nothing defines", node.name, val.name);
                }
            }
            for (i, o) in node.outputs.iter().enumerate() {
                if self.value(*o).producer != Some((id, i)) {
                    bail!("output {} of node \"{}\" has an inconsistent producer", i, node.name);
                }
            }
            let facts: Vec<Option<&Fact>> = node.inputs.iter().map(|i| i.map(|v| self.fact(v))).collect();
            let inferred = node.op.infer(&facts).with_context(|| self.describe_node(id))?;
            for (o, f) in node.outputs.iter().zip(&inferred) {
                let have = self.fact(*o);
                if have.dtype != f.dtype || have.rank() != f.rank() {
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
            let val = self.value(o);
            let ok = match val.producer {
                Some((p, _)) => self.nodes[p.0].is_some(),
                None => val.fact.konst.is_some() || inputs.contains(&o),
            };
            if !ok {
                bail!("graph output \"{}\" is not defined", val.name);
            }
        }
        self.topo_order()?;
        Ok(())
    }

    /// Re-runs shape inference over the whole graph (after input shapes change), folding
    /// nodes whose inputs became constant. Returns the rebuilt graph.
    pub fn reinfer(&self) -> Result<Graph> {
        let mut g = Graph::new();
        let mut map: HashMap<ValueId, ValueId> = HashMap::new();
        for &i in &self.inputs {
            let v = self.value(i);
            map.insert(i, g.add_input(&v.name, v.fact.dtype, v.fact.shape.clone()));
        }
        for (id, v) in self.values.iter().enumerate() {
            if v.producer.is_none() && v.fact.konst.is_some() {
                map.insert(ValueId(id), g.add_const(&v.name, v.fact.konst.clone().unwrap()));
            }
        }
        for n in self.topo_order()? {
            let node = self.node(n);
            let ins = node.inputs.iter().map(|i| i.map(|v| map[&v])).collect();
            let outs = g.add_node(&node.name, node.op.clone(), ins)?;
            for (o, new) in node.outputs.iter().zip(outs) {
                g.rename(new, &self.value(*o).name);
                map.insert(*o, new);
            }
        }
        g.outputs = self.outputs.iter().map(|o| map[o]).collect();
        Ok(g)
    }

    /// A copy with some inputs' shapes replaced (e.g. a concrete batch size), re-inferred.
    pub fn with_input_shapes(&self, shapes: &[(ValueId, Shape)]) -> Result<Graph> {
        let mut g = self.clone();
        for (v, s) in shapes {
            g.values[v.0].fact.shape = s.clone();
        }
        g.reinfer()
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
