//! Decoding a ModelProto into a `Graph`.

use super::attrs::Attrs;
use super::proto::{self, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use super::registry::{Cx, builder};
use super::tensor::{dtype_from_onnx, tensor_from_proto};
use crate::ir::{Dim, Graph, Shape, ValueId};
use crate::tensor::Tensor;
use anyhow::{Context, Result, anyhow, bail};
use prost::Message;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::Path;

/// Oldest and newest default-domain opsets accepted.
const OPSETS: std::ops::RangeInclusive<i64> = 7..=23;

/// Reads an ONNX model file into a graph. Errors start with the file's path.
pub fn load(path: &Path) -> Result<Graph> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    load_bytes(&bytes).map_err(|e| anyhow!("{}: {e:#}", path.display()))
}

/// Decodes a serialized ONNX model into a graph.
pub fn load_bytes(bytes: &[u8]) -> Result<Graph> {
    let model = ModelProto::decode(bytes).map_err(|e| anyhow!("is not an ONNX model (protobuf: {e})"))?;
    let graph = model.graph.as_ref().ok_or_else(|| anyhow!("is not an ONNX model (it has no graph)"))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .map(|o| o.version.unwrap_or(1))
        .ok_or_else(|| anyhow!("is not an ONNX model (it imports no default-domain opset)"))?;
    if !OPSETS.contains(&opset) {
        bail!("opset {opset} is not supported (pare reads opsets {} to {})", OPSETS.start(), OPSETS.end());
    }
    let mut g = import_graph(graph, opset)?;
    for e in &model.metadata_props {
        if let Some(k) = &e.key {
            g.set_metadata(k, Some(e.value.clone().unwrap_or_default()));
        }
    }
    Ok(g)
}

fn is_default_domain(d: Option<&str>) -> bool {
    matches!(d, None | Some("") | Some("ai.onnx"))
}

/// The op type as shown in messages: `LSTM`, or `com.microsoft.FusedConv` for other domains.
fn qualified(n: &NodeProto) -> String {
    let ty = n.op_type.as_deref().unwrap_or("");
    match n.domain.as_deref() {
        d if is_default_domain(d) => ty.to_string(),
        Some(d) => format!("{d}.{ty}"),
        None => unreachable!(),
    }
}

/// Lists every op type pare cannot import, sorted, with counts.
fn check_supported(nodes: &[NodeProto]) -> Result<()> {
    let mut missing: BTreeMap<String, usize> = BTreeMap::new();
    for n in nodes {
        let ty = n.op_type.as_deref().unwrap_or("");
        let ok = is_default_domain(n.domain.as_deref()) && (ty == "Constant" || builder(ty).is_some());
        if !ok {
            *missing.entry(qualified(n)).or_default() += 1;
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> =
        missing.into_iter().map(|(t, c)| if c > 1 { format!("{t} (x{c})") } else { t }).collect();
    bail!("unsupported ops: {}", list.join(", "))
}

fn shape_of(vi: &ValueInfoProto) -> Result<(crate::tensor::DType, Shape)> {
    let name = vi.name.as_deref().unwrap_or("");
    let tt = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(proto::type_proto::Value::TensorType(t)) => t,
        Some(_) => {
            bail!("input \"{name}\" is not a tensor (sequences, maps and optionals are not supported)")
        }
        None => bail!("input \"{name}\" has no type"),
    };
    let dtype = dtype_from_onnx(tt.elem_type.unwrap_or(0)).with_context(|| format!("input \"{name}\""))?;
    let shape = tt
        .shape
        .as_ref()
        .ok_or_else(|| anyhow!("input \"{name}\" has no shape (unknown rank is not supported)"))?;
    let dims = shape
        .dim
        .iter()
        .map(|d| {
            use proto::tensor_shape_proto::dimension::Value;
            match &d.value {
                Some(Value::DimValue(v)) if *v >= 0 => Ok(Dim::Known(*v as usize)),
                Some(Value::DimValue(v)) => bail!("input \"{name}\" has a negative dimension {v}"),
                Some(Value::DimParam(p)) if !p.is_empty() => Ok(Dim::Sym(p.as_str().into())),
                _ => Ok(Dim::Unknown),
            }
        })
        .collect::<Result<Shape>>()?;
    Ok((dtype, dims))
}

/// Node indices in an order where producers come first (the file's order when it already is).
fn topo_sort(nodes: &[NodeProto]) -> Result<Vec<usize>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            producer.insert(o.as_str(), i);
        }
    }
    let deps: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| n.input.iter().filter_map(|i| producer.get(i.as_str()).copied()).collect())
        .collect();
    if deps.iter().enumerate().all(|(i, d)| d.iter().all(|&p| p < i)) {
        return Ok((0..nodes.len()).collect());
    }
    let mut pending: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, d) in deps.iter().enumerate() {
        for &p in d {
            users[p].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..nodes.len()).filter(|&i| pending[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            pending[u] -= 1;
            if pending[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    if order.len() < nodes.len() {
        let stuck = (0..nodes.len()).find(|&i| pending[i] > 0).unwrap();
        bail!("the graph has a cycle through node {}", node_label(&nodes[stuck], stuck));
    }
    Ok(order)
}

fn node_label(n: &NodeProto, i: usize) -> String {
    let name = n.name.as_deref().filter(|s| !s.is_empty());
    match name {
        Some(s) => format!("{} \"{s}\"", qualified(n)),
        None => format!("{} #{i}", qualified(n)),
    }
}

/// Values by ONNX name while importing.
struct Scope {
    vals: HashMap<String, ValueId>,
}

impl Scope {
    fn define(&mut self, g: &mut Graph, name: &str, v: ValueId) -> Result<()> {
        if self.vals.insert(name.to_string(), v).is_some() {
            bail!("value \"{name}\" is defined twice");
        }
        g.rename(v, name);
        Ok(())
    }
    fn get(&self, name: &str) -> Result<ValueId> {
        self.vals.get(name).copied().ok_or_else(|| {
            anyhow!("reads \"{name}\", which is not a graph input, an initializer or a node output")
        })
    }
}

fn import_graph(gp: &GraphProto, opset: i64) -> Result<Graph> {
    if gp.output.is_empty() {
        bail!("the model has no outputs");
    }
    if !gp.sparse_initializer.is_empty() {
        bail!("sparse initializers are not supported");
    }
    check_supported(&gp.node)?;
    let mut g = Graph::new();
    let mut scope = Scope { vals: HashMap::new() };
    for t in &gp.initializer {
        let name = t.name.clone().unwrap_or_default();
        let v = g.add_const(&name, tensor_from_proto(t)?);
        scope.define(&mut g, &name, v)?;
    }
    for vi in &gp.input {
        let name = vi.name.as_deref().unwrap_or("");
        if scope.vals.contains_key(name) {
            continue; // an initializer listed as an input: a constant
        }
        let (dtype, shape) = shape_of(vi)?;
        let v = g.add_input(name, dtype, shape);
        scope.define(&mut g, name, v)?;
    }
    let used: HashSet<&str> = gp
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(gp.output.iter().filter_map(|o| o.name.as_ref()))
        .map(|s| s.as_str())
        .collect();
    for i in topo_sort(&gp.node)? {
        let n = &gp.node[i];
        import_node(&mut g, &mut scope, n, opset, &used).with_context(|| node_label(n, i))?;
    }
    let mut outputs = Vec::new();
    for o in &gp.output {
        let name = o.name.as_deref().unwrap_or("");
        outputs.push(scope.get(name).with_context(|| format!("graph output \"{name}\""))?);
    }
    g.set_outputs(outputs);
    // Nodes whose outputs were all folded into constants (e.g. Shape of a known shape), or
    // that nothing reads, are dropped.
    g.remove_dead()?;
    Ok(g)
}

fn constant_value(a: &Attrs) -> Result<Tensor> {
    if let Some(t) = a.opt_tensor("value")? {
        return Ok(t);
    }
    if let Some(f) = a.opt_float("value_float")? {
        return Ok(Tensor::scalar(f));
    }
    if let Some(v) = a.opt_floats("value_floats")? {
        return Ok(Tensor::from_vec(vec![v.len()], v));
    }
    if let Some(i) = a.opt_int("value_int")? {
        return Ok(Tensor::scalar(i));
    }
    if let Some(v) = a.opt_ints("value_ints")? {
        return Ok(Tensor::from_vec(vec![v.len()], v));
    }
    if a.has("sparse_value") || a.has("value_string") || a.has("value_strings") {
        bail!("sparse and string constants are not supported");
    }
    bail!("Constant has no value attribute")
}

fn import_node(
    g: &mut Graph,
    scope: &mut Scope,
    n: &NodeProto,
    opset: i64,
    used: &HashSet<&str>,
) -> Result<()> {
    let op_type = n.op_type.as_deref().unwrap_or("");
    let attrs = Attrs::new(n);
    if op_type == "Constant" {
        let t = constant_value(&attrs)?;
        let out =
            n.output.first().filter(|o| !o.is_empty()).ok_or_else(|| anyhow!("Constant has no output"))?;
        let v = g.add_const(out, t);
        return scope.define(g, out, v);
    }
    let build = builder(op_type).ok_or_else(|| anyhow!("unsupported op {op_type}"))?;
    let inputs = n
        .input
        .iter()
        .map(|i| if i.is_empty() { Ok(None) } else { scope.get(i).map(Some) })
        .collect::<Result<Vec<_>>>()?;
    let name =
        n.name.clone().filter(|s| !s.is_empty()).or_else(|| n.output.first().cloned()).unwrap_or_default();
    let out_used = n.output.iter().map(|o| !o.is_empty() && used.contains(o.as_str())).collect();
    let mut cx = Cx { g, a: attrs, opset, name: &name, inputs, n_outputs: n.output.len(), out_used };
    let op = build(&mut cx)?;
    let mut inputs = cx.inputs;
    while inputs.last() == Some(&None) {
        inputs.pop();
    }
    let outs = g.add_node(if name.is_empty() { op_type } else { &name }, op, inputs)?;
    // Rename in two steps so that a temporary name never blocks a final one.
    for &v in &outs {
        let tmp = g.unique_name("\u{1}tmp");
        g.rename(v, &tmp);
    }
    for (i, oname) in n.output.iter().enumerate() {
        if oname.is_empty() {
            continue;
        }
        match outs.get(i) {
            Some(&v) => scope.define(g, oname, v)?,
            None if !used.contains(oname.as_str()) => {}
            None => {
                bail!("output {i} (\"{oname}\") is used, but pare computes only {} output(s)", outs.len())
            }
        }
    }
    for (i, &v) in outs.iter().enumerate() {
        if n.output.get(i).is_none_or(|o| o.is_empty()) {
            let unused = g.unique_name(&format!("{name}:{i}"));
            g.rename(v, &unused);
        }
    }
    Ok(())
}
