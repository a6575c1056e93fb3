//! onnxruntime as a peer: the same model, inputs, threads, warm-up and run count, timed in a
//! `python3` subprocess (`$PYTHON` overrides the interpreter) when the onnxruntime package is
//! installed. Used by `pare bench --compare-ort` and the speedup gate.

use crate::ir::{Dim, Graph};
use crate::tensor::Tensor;
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const SCRIPT: &str = include_str!("ort_bench.py");

/// One onnxruntime measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OrtTiming {
    /// Median latency of one run (ms).
    pub median_ms: f64,
    /// onnxruntime's version.
    pub version: String,
    /// Whether pare had to write a re-batched copy of the model for onnxruntime (the file's
    /// fixed input shapes did not admit the requested batch).
    pub rebatched: bool,
}

/// A temporary directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "pare-ort-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(Scratch(d))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether every input of `file_graph` (as stored) admits the shapes of `inputs`.
fn admits(file_graph: &Graph, inputs: &[Tensor]) -> bool {
    file_graph.inputs().len() == inputs.len()
        && file_graph.inputs().iter().zip(inputs).all(|(&v, t)| {
            let s = &file_graph.fact(v).shape;
            s.len() == t.shape().len()
                && s.iter().zip(t.shape()).all(|(d, &n)| !matches!(d, Dim::Known(k) if *k != n))
        })
}

/// Times `file` (whose graph as loaded is `file_graph`) in onnxruntime on `inputs`. When the
/// file's fixed shapes do not admit the inputs, `concrete` (the graph at the inputs' shapes)
/// is written to a temporary file and timed instead, and the result says so.
pub fn ort_latency(
    file: Option<&Path>,
    file_graph: &Graph,
    concrete: &Graph,
    inputs: &[Tensor],
    threads: usize,
    warmup: usize,
    iters: usize,
) -> Result<OrtTiming> {
    let scratch = Scratch::new()?;
    let (model, rebatched) = match file {
        Some(f) if admits(file_graph, inputs) => (f.to_path_buf(), false),
        _ => {
            let p = scratch.0.join("model.onnx");
            crate::onnx::save(concrete, &p)?;
            (p, file.is_some())
        }
    };
    let names: Vec<String> = concrete.inputs().iter().map(|&v| concrete.value(v).name.clone()).collect();
    let arrays: Vec<(String, Tensor)> =
        inputs.iter().enumerate().map(|(k, t)| (format!("i{k}"), t.clone())).collect();
    let npz = scratch.0.join("inputs.npz");
    crate::tensor::write_npz(&npz, &arrays)?;
    let names_json = scratch.0.join("names.json");
    std::fs::write(&names_json, serde_json::to_vec(&names)?)?;
    let script = scratch.0.join("ort_bench.py");
    std::fs::write(&script, SCRIPT)?;
    let threads = if threads == 0 { crate::runtime::num_cores() } else { threads };
    let out = std::process::Command::new(python())
        .arg(&script)
        .arg(&model)
        .arg(&npz)
        .arg(&names_json)
        .args([threads.to_string(), warmup.to_string(), iters.max(1).to_string()])
        .output()
        .with_context(|| format!("cannot run {} to time onnxruntime", python()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line).map_err(|_| {
        anyhow!(
            "onnxruntime timing failed (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("no output")
        )
    })?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("{e}");
    }
    Ok(OrtTiming {
        median_ms: v["median_ms"].as_f64().ok_or_else(|| anyhow!("onnxruntime timing: no median"))?,
        version: v["version"].as_str().unwrap_or("?").to_string(),
        rebatched,
    })
}
