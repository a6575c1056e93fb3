//! The compiled plan stored in a model's ONNX `metadata_props` (key `pare.plan`), so the
//! file stays standard (onnxruntime ignores it) and `pare run` / `pare bench` use it.
//!
//! The plan carries a fingerprint of the graph it was tuned for. A file edited after
//! compiling no longer matches and its plan is ignored with a warning; a plan measured on
//! another CPU is ignored too (its choices were fastest there, not here).

use super::cpu::CpuId;
use crate::ir::Graph;
use crate::runtime::Variant;
use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The metadata key.
pub const KEY: &str = "pare.plan";
/// Version of the stored layout.
const FORMAT: u32 = 1;

/// What `pare compile` stores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredPlan {
    /// Layout version.
    pub format: u32,
    /// pare version that compiled it.
    pub pare: String,
    /// The machine it was measured on.
    pub cpu: CpuId,
    /// Threads it was tuned for.
    pub threads: usize,
    /// Batch it was tuned for.
    pub batch: usize,
    /// [`fingerprint`] of the graph as written.
    pub fingerprint: String,
    /// Kernel variant per node name (nodes not listed get the heuristic).
    pub choices: BTreeMap<String, String>,
}

impl StoredPlan {
    /// A plan for `graph` (the graph as it will be read back from the file).
    pub fn new(
        graph: &Graph,
        threads: usize,
        batch: usize,
        choices: &HashMap<String, Variant>,
    ) -> Result<Self> {
        Ok(StoredPlan {
            format: FORMAT,
            pare: env!("CARGO_PKG_VERSION").to_string(),
            cpu: CpuId::detect(),
            threads,
            batch,
            fingerprint: fingerprint(graph)?,
            choices: choices.iter().map(|(k, v)| (k.clone(), v.name().to_string())).collect(),
        })
    }
}

/// A hash of the graph's structure: every node's op and attributes, name, and input and
/// output value names, and the dtype and shape of every value they touch, in execution
/// order. Weight values and metadata are left out (a plan depends on shapes, not numbers).
pub fn fingerprint(g: &Graph) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let mut s = String::new();
    let val = |s: &mut String, v: crate::ir::ValueId| {
        let _ = write!(s, "{}:{};", g.value(v).name, g.fact(v));
    };
    for &v in g.inputs() {
        val(&mut s, v);
    }
    s.push('|');
    for n in g.topo_order()? {
        let node = g.node(n)?;
        let _ = write!(s, "{}={:?}(", node.name, node.op);
        for i in &node.inputs {
            match i {
                Some(v) => val(&mut s, *v),
                None => s.push_str("-;"),
            }
        }
        s.push_str(")->");
        for &o in &node.outputs {
            val(&mut s, o);
        }
        s.push('\n');
    }
    for &v in g.outputs() {
        val(&mut s, v);
    }
    let h = Sha256::digest(s.as_bytes());
    Ok(h.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `graph` as an ONNX file (atomically) with a plan of `choices`, tuned for `threads`
/// and `batch`, in its metadata. The fingerprint is taken of the graph as it will be read
/// back from the file.
pub fn save(
    graph: &Graph,
    path: &std::path::Path,
    threads: usize,
    batch: usize,
    choices: &HashMap<String, Variant>,
) -> Result<()> {
    let mut out = graph.clone();
    out.set_metadata(KEY, None);
    let back = crate::onnx::load_bytes(&crate::onnx::to_bytes(&out)?)?;
    let plan = StoredPlan::new(&back, threads, batch, choices)?;
    out.set_metadata(KEY, Some(serde_json::to_string(&plan)?));
    crate::onnx::save(&out, path)
}

/// The stored plan's choices for running `g` (as loaded from its file) on `threads` threads
/// (0: all cores), with messages for the user: why a plan was ignored, or how it differs
/// from this run. A model without a plan gives no choices and no messages.
pub fn choices_for(g: &Graph, threads: usize) -> (HashMap<String, Variant>, Vec<String>) {
    let Some(text) = g.metadata_value(KEY) else { return (HashMap::new(), Vec::new()) };
    match check(g, text, threads) {
        Ok((c, notes)) => (c, notes),
        Err(e) => {
            (HashMap::new(), vec![format!("warning: stored plan ignored: {e:#}; using heuristic kernels")])
        }
    }
}

fn check(g: &Graph, text: &str, threads: usize) -> Result<(HashMap<String, Variant>, Vec<String>)> {
    let plan: StoredPlan = serde_json::from_str(text).map_err(|e| anyhow!("it is corrupt ({e})"))?;
    if plan.format != FORMAT {
        return Err(anyhow!("it has layout {} (this pare reads {FORMAT})", plan.format));
    }
    if plan.fingerprint != fingerprint(g)? {
        return Err(anyhow!("the model was changed after it was compiled (graph fingerprint differs)"));
    }
    let cpu = CpuId::detect();
    if plan.cpu != cpu {
        return Err(anyhow!(
            "it was tuned on another CPU ({}; this is {}); run `pare compile` here",
            plan.cpu.describe(),
            cpu.describe()
        ));
    }
    let mut choices = HashMap::new();
    for (node, v) in &plan.choices {
        let v = Variant::parse(v).ok_or_else(|| anyhow!("unknown kernel variant \"{v}\" for node {node}"))?;
        choices.insert(node.clone(), v);
    }
    let mut notes = Vec::new();
    let run_threads = if threads == 0 { crate::runtime::num_cores() } else { threads };
    if run_threads != plan.threads {
        notes.push(format!(
            "note: the stored plan was tuned for {} threads; this run uses {run_threads}",
            plan.threads
        ));
    }
    Ok((choices, notes))
}
