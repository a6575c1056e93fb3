//! Changing a model's batch size, including models exported with a fixed batch.

use crate::ir::{Dim, Graph, Op, Rebuild};
use crate::tensor::Tensor;
use anyhow::{Context, Result, bail};

/// Returns a copy of `g` whose inputs have batch size `n` (dim 0). Symbolic batch dims are
/// set directly; for a fixed batch `b`, constant Reshape targets that start with `b` while
/// their data input's batch is `n` are rewritten too, so models exported with batch 1 run
/// at any batch size. Shapes are re-inferred; an error names the node that does not fit.
pub fn set_batch(g: &Graph, n: usize) -> Result<Graph> {
    if n == 0 {
        bail!("batch size must be at least 1");
    }
    let b0 = g.inputs().iter().find_map(|&i| g.fact(i).shape.first().and_then(Dim::known));
    let mut r = Rebuild::new(g);
    r.copy_inputs(|_, v| {
        let mut shape = v.fact.shape.clone();
        if let Some(d) = shape.first_mut() {
            *d = Dim::Known(n);
        }
        shape
    });
    r.copy_consts();
    for nid in g.topo_order()? {
        let node = g.node(nid)?;
        let mut ins = r.inputs_of(node)?;
        if let (Op::Reshape { .. }, Some(b0), [Some(x), Some(s), ..]) = (&node.op, b0, ins.as_slice()) {
            let x_batch = r.dst.fact(*x).shape.first().and_then(Dim::known);
            if let Some(shape) = r.dst.fact(*s).konst.as_ref().and_then(|t| t.to_i64_vec())
                && shape.first() == Some(&(b0 as i64))
                && x_batch == Some(n)
                && b0 != n
            {
                let mut new = shape.clone();
                new[0] = n as i64;
                let name = format!("{}.shape_batch{}", node.name, n);
                ins[1] = Some(r.dst.add_const(&name, Tensor::from_vec(vec![new.len()], new)));
            }
        }
        r.copy_node(nid, node.op.clone(), ins).with_context(|| format!("setting the batch size to {n}"))?;
    }
    r.finish()
}
