//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// True when running under CI (`CI` is `true` in any case, or `1`), where missing
/// prerequisites fail instead of skipping. The library's unit tests use the same rule
/// (`crate::data::in_ci` in src/data/mod.rs, compiled for unit tests only).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Reports a missing prerequisite: panics under CI, otherwise prints a SKIP line.
pub fn skip(why: &str) {
    assert!(!in_ci(), "required under CI (CI=true or CI=1): {why}");
    eprintln!("SKIP: {why}");
}

/// The project's root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared data folder (`../shared` from the project root).
pub fn shared() -> PathBuf {
    root().join("../shared")
}

/// The ONNX backend node test suite's case folders (`test_abs/`, ...): `$PARE_NODE_TESTS`
/// (the suite folder or its `node` subfolder), else `target/onnx-node-tests/node` as written
/// by `scripts/gen_node_tests.sh`. `None` when no case is there.
pub fn node_suite() -> Option<PathBuf> {
    let candidates = match std::env::var_os("PARE_NODE_TESTS") {
        Some(p) => vec![PathBuf::from(&p).join("node"), PathBuf::from(p)],
        None => vec![root().join("target/onnx-node-tests/node")],
    };
    candidates.into_iter().find(|d| {
        std::fs::read_dir(d)
            .is_ok_and(|mut it| it.any(|e| e.is_ok_and(|e| e.path().join("model.onnx").is_file())))
    })
}

/// Evaluates `g` node by node with `Op::eval` in topological order, independently of the
/// runtime's plan (slots, moves, buffer reuse). Outputs in graph-output order.
pub fn naive_eval(
    g: &pare::ir::Graph,
    inputs: &[pare::tensor::Tensor],
) -> anyhow::Result<Vec<pare::tensor::Tensor>> {
    use anyhow::{Context, anyhow};
    use pare::ir::ValueId;
    use pare::tensor::Tensor;
    use std::collections::HashMap;
    anyhow::ensure!(inputs.len() == g.inputs().len(), "{} inputs for {}", inputs.len(), g.inputs().len());
    let mut env: HashMap<ValueId, Tensor> = g.inputs().iter().copied().zip(inputs.iter().cloned()).collect();
    let get = |env: &HashMap<ValueId, Tensor>, v: ValueId| -> anyhow::Result<Tensor> {
        env.get(&v)
            .or(g.fact(v).konst.as_ref())
            .cloned()
            .ok_or_else(|| anyhow!("value \"{}\" was not computed", g.value(v).name))
    };
    for n in g.topo_order()? {
        let node = g.node(n)?;
        let ins = node
            .inputs
            .iter()
            .map(|i| i.map(|v| get(&env, v)).transpose())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let refs: Vec<Option<&Tensor>> = ins.iter().map(Option::as_ref).collect();
        let outs = node.op.eval(&refs).with_context(|| g.describe_node(n))?;
        for (&o, t) in node.outputs.iter().zip(outs) {
            env.insert(o, t);
        }
    }
    g.outputs().iter().map(|&o| get(&env, o)).collect()
}

/// Python interpreter to use for cross-checks.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Checks that python can import `modules` (e.g. "numpy, onnxruntime"); skips/fails otherwise.
pub fn have_python(modules: &str) -> bool {
    let out = std::process::Command::new(python()).args(["-c", &format!("import {modules}")]).output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            skip(&format!(
                "{} cannot import {modules} (run scripts/setup_python.sh): {}",
                python(),
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            ));
            false
        }
        Err(e) => {
            skip(&format!("cannot run {}: {e}", python()));
            false
        }
    }
}

/// A fresh empty temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `<tmp>/pare-<tag>-<pid>`.
    pub fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("pare-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asserts exit code 2, no panic, and that stderr contains every needle.
pub fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

/// A path as `&str` for command lines.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
