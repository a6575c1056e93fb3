//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// True when running under CI (`CI=true`), where missing prerequisites fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing prerequisite: panics under CI, otherwise prints a SKIP line.
pub fn skip(why: &str) {
    assert!(!in_ci(), "required under CI=true: {why}");
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
