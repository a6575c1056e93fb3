//! What a model costs: parameters, MACs, weight and activation bytes, measured latency and memory.

mod alloc;
mod bench;
mod gate;
mod ort;

pub use alloc::{CountingAlloc, alloc_calls, current_bytes, peak_bytes, reset_peak};
pub(crate) use bench::median;
pub use bench::{
    BenchOptions, BenchResult, StepTime, batch_of, bench, concrete, profile_steps, profile_table,
    random_inputs,
};
pub(crate) use gate::interleaved_medians;
pub use gate::{GateOptions, GateReport, speedup_gate};
pub use ort::{OrtTiming, ort_latency};

use crate::ir::{Graph, fmt_shape};
use crate::tensor::DType;
use anyhow::Result;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Cost of one node.
#[derive(Clone, Debug, Serialize)]
pub struct LayerStats {
    /// Node name.
    pub name: String,
    /// ONNX op type.
    pub op: String,
    /// Output shape of the first output, e.g. `[1,64,56,56]`.
    pub output_shape: String,
    /// Weight elements first used by this node (each constant counted once in the model).
    pub params: u64,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Bytes of the constants counted in `params`.
    pub weight_bytes: u64,
    /// Bytes of this node's outputs.
    pub activation_bytes: u64,
}

/// Whole-model cost.
#[derive(Clone, Debug, Serialize)]
pub struct ModelStats {
    /// Total weight elements (float constants read by nodes).
    pub params: u64,
    /// Total multiply-accumulates (Conv, ConvTranspose, Gemm, MatMul, and normalisation layers).
    pub macs: u64,
    /// Bytes of all constants read by nodes.
    pub weight_bytes: u64,
    /// Sum of every node output's bytes.
    pub activation_bytes: u64,
    /// Largest amount of activation memory alive at once under pare's execution order.
    pub peak_activation_bytes: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Per node, in execution order.
    pub layers: Vec<LayerStats>,
}

fn numel_known(g: &Graph, v: crate::ir::ValueId) -> u64 {
    g.fact(v).shape.iter().map(|d| d.known().unwrap_or(1) as u64).product()
}

/// MACs of one node (see [`Op::macs`]); 0 for a removed node.
pub fn node_macs(g: &Graph, n: crate::ir::NodeId) -> u64 {
    let Ok(node) = g.node(n) else { return 0 };
    let ins: Vec<Option<&crate::ir::Fact>> = node.inputs.iter().map(|i| i.map(|v| g.fact(v))).collect();
    let outs: Vec<&crate::ir::Fact> = node.outputs.iter().map(|&o| g.fact(o)).collect();
    node.op.macs(&ins, &outs)
}

/// Computes per-layer and total costs. Symbolic dims should be made concrete first
/// (`Graph::with_batch`); any left count as 1.
pub fn model_stats(g: &Graph) -> Result<ModelStats> {
    let order = g.topo_order()?;
    let mut seen = HashSet::new();
    let mut layers = Vec::new();
    let bytes = |v: crate::ir::ValueId| numel_known(g, v) * g.fact(v).dtype.size() as u64;
    for &n in &order {
        let node = g.node(n)?;
        let (mut params, mut wbytes) = (0, 0);
        for v in node.inputs.iter().flatten() {
            if g.value(*v).producer.is_none()
                && seen.insert(*v)
                && let Some(k) = &g.fact(*v).konst
            {
                wbytes += k.byte_size() as u64;
                if k.dtype().is_float() || matches!(k.dtype(), DType::I8 | DType::U8) {
                    params += k.len() as u64;
                }
            }
        }
        layers.push(LayerStats {
            name: node.name.clone(),
            op: node.op.onnx_name().to_string(),
            output_shape: fmt_shape(&g.fact(node.outputs[0]).shape),
            params,
            macs: node_macs(g, n),
            weight_bytes: wbytes,
            activation_bytes: node.outputs.iter().map(|&o| bytes(o)).sum(),
        });
    }
    // Peak live activations: a value lives from its producer to its last reader.
    let mut last_read: HashMap<usize, usize> = HashMap::new();
    for (i, &n) in order.iter().enumerate() {
        for v in g.node(n)?.inputs.iter().flatten() {
            last_read.insert(v.0, i);
        }
    }
    for o in g.outputs() {
        last_read.insert(o.0, order.len());
    }
    let mut live: u64 = g.inputs().iter().map(|&v| bytes(v)).sum();
    let mut peak = live;
    let mut dying: Vec<Vec<u64>> = vec![Vec::new(); order.len() + 1];
    for &v in g.inputs() {
        dying[*last_read.get(&v.0).unwrap_or(&0)].push(bytes(v));
    }
    for (i, &n) in order.iter().enumerate() {
        for &o in &g.node(n)?.outputs {
            let b = bytes(o);
            live += b;
            dying[*last_read.get(&o.0).unwrap_or(&i)].push(b);
        }
        peak = peak.max(live);
        live -= dying[i].iter().sum::<u64>();
    }
    Ok(ModelStats {
        params: layers.iter().map(|l| l.params).sum(),
        macs: layers.iter().map(|l| l.macs).sum(),
        weight_bytes: layers.iter().map(|l| l.weight_bytes).sum(),
        activation_bytes: layers.iter().map(|l| l.activation_bytes).sum(),
        peak_activation_bytes: peak,
        nodes: layers.len(),
        layers,
    })
}

/// Human-readable count: 1.23M, 4.5G.
pub fn human(n: u64) -> String {
    let f = n as f64;
    match n {
        0..1_000 => format!("{n}"),
        1_000..1_000_000 => format!("{:.2}K", f / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2}M", f / 1e6),
        _ => format!("{:.2}G", f / 1e9),
    }
}

/// Human-readable bytes: 1.5 MiB.
pub fn human_bytes(n: u64) -> String {
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if n < 1 << 20 {
        format!("{:.1} KiB", f / 1024.0)
    } else if n < 1 << 30 {
        format!("{:.1} MiB", f / (1u64 << 20) as f64)
    } else {
        format!("{:.2} GiB", f / (1u64 << 30) as f64)
    }
}

/// Renders the per-layer table and totals as text.
pub fn stats_table(s: &ModelStats) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let w = s.layers.iter().map(|l| l.name.len()).max().unwrap_or(4).clamp(4, 40);
    let _ = writeln!(
        out,
        "{:<w$}  {:<18} {:<20} {:>9} {:>9} {:>10} {:>10}",
        "name", "op", "output", "params", "MACs", "weights", "activations"
    );
    for l in &s.layers {
        let chars: Vec<char> = l.name.chars().collect();
        let name: String = if chars.len() > w {
            std::iter::once('…').chain(chars[chars.len() - (w - 1)..].iter().copied()).collect()
        } else {
            l.name.clone()
        };
        let _ = writeln!(
            out,
            "{:<w$}  {:<18} {:<20} {:>9} {:>9} {:>10} {:>10}",
            name,
            l.op,
            l.output_shape,
            human(l.params),
            human(l.macs),
            human_bytes(l.weight_bytes),
            human_bytes(l.activation_bytes)
        );
    }
    let _ = writeln!(
        out,
        "\ntotal: {} nodes, {} params, {} MACs, weights {}, activations {} (peak live {})",
        s.nodes,
        human(s.params),
        human(s.macs),
        human_bytes(s.weight_bytes),
        human_bytes(s.activation_bytes),
        human_bytes(s.peak_activation_bytes)
    );
    out
}
