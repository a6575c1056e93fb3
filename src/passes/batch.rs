//! Changing a model's batch size, including models exported with a fixed batch.

use crate::ir::{Dim, Graph, Op, ValueId};
use crate::tensor::Tensor;
use anyhow::{Context, Result, bail};
use std::collections::HashMap;

/// Returns a copy of `g` whose inputs have batch size `n` (dim 0). Symbolic batch dims are
/// set directly; for a fixed batch `b`, constant Reshape targets that start with `b` while
/// their data input's batch is `n` are rewritten too, so models exported with batch 1 run
/// at any batch size. Shapes are re-inferred; an error names the node that does not fit.
pub fn set_batch(g: &Graph, n: usize) -> Result<Graph> {
    if n == 0 {
        bail!("batch size must be at least 1");
    }
    let old: Vec<Option<usize>> =
        g.inputs.iter().map(|&i| g.fact(i).shape.first().and_then(Dim::known)).collect();
    let b0 = old.iter().flatten().next().copied();
    let mut out = Graph::new();
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for &i in &g.inputs {
        let v = g.value(i);
        let mut shape = v.fact.shape.clone();
        if let Some(d) = shape.first_mut() {
            *d = Dim::Known(n);
        }
        map.insert(i, out.add_input(&v.name, v.fact.dtype, shape));
    }
    for (id, v) in g.values.iter().enumerate() {
        if v.producer.is_none() && v.fact.konst.is_some() {
            map.insert(ValueId(id), out.add_const(&v.name, v.fact.konst.clone().unwrap()));
        }
    }
    for nid in g.topo_order()? {
        let node = g.node(nid);
        let mut ins: Vec<Option<ValueId>> = node.inputs.iter().map(|i| i.map(|v| map[&v])).collect();
        if let (Op::Reshape { .. }, Some(b0), [Some(x), Some(s), ..]) = (&node.op, b0, ins.as_slice()) {
            let x_batch = out.fact(*x).shape.first().and_then(Dim::known);
            if let Some(shape) = out.fact(*s).konst.as_ref().and_then(|t| t.to_i64_vec())
                && shape.first() == Some(&(b0 as i64))
                && x_batch == Some(n)
                && b0 != n
            {
                let mut new = shape.clone();
                new[0] = n as i64;
                let name = format!("{}.shape_batch{}", node.name, n);
                ins[1] = Some(out.add_const(&name, Tensor::from_vec(vec![new.len()], new)));
            }
        }
        let outs = out
            .add_node(&node.name, node.op.clone(), ins)
            .with_context(|| format!("setting the batch size to {n}"))?;
        for (o, new) in node.outputs.iter().zip(outs) {
            out.rename(new, &g.value(*o).name);
            map.insert(*o, new);
        }
    }
    out.outputs = g.outputs.iter().map(|o| map[o]).collect();
    out.verify()?;
    Ok(out)
}
