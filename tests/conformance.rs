//! The ONNX backend node conformance suite: each case is imported, run and compared with its
//! reference outputs. Cases on `tests/conformance_allow.txt` must pass; the list only grows
//! (`PARE_UPDATE_ALLOWLIST=1` adds every case that passes now).
//!
//! The suite lives in `$PARE_NODE_TESTS` or `target/onnx-node-tests/node` (`scripts/gen_node_tests.sh`).
//! `PARE_CONFORMANCE_FILTER=substr` runs only the cases whose name contains `substr`.

mod common;

use pare::onnx::proto;
use pare::runtime::{RunOptions, Runtime};
use pare::tensor::{DType, Tensor};
use prost::Message;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-5;

/// Outcome of one case.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Pass,
    Fail,
    Unsupported,
    Error,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unsupported => "unsupported",
            Status::Error => "error",
        }
    }
}

struct CaseResult {
    name: String,
    op: String,
    status: Status,
    detail: String,
    secs: f64,
}

/// Where the suite's case folders are, if generated.
fn suite_dir() -> Option<PathBuf> {
    let candidates = match std::env::var_os("PARE_NODE_TESTS") {
        Some(p) => vec![PathBuf::from(&p).join("node"), PathBuf::from(p)],
        None => vec![common::root().join("target/onnx-node-tests/node")],
    };
    candidates.into_iter().find(|d| d.join("test_abs/model.onnx").is_file() || has_cases(d))
}

fn has_cases(d: &Path) -> bool {
    std::fs::read_dir(d)
        .is_ok_and(|mut it| it.any(|e| e.is_ok_and(|e| e.path().join("model.onnx").is_file())))
}

/// The op a case tests (the single node's op type, else a name prefix) and why it cannot run, if known.
fn model_info(name: &str, model: &Path) -> (String, Option<String>) {
    let prefix = || format!("{}*", name.trim_start_matches("test_").split('_').next().unwrap_or(name));
    let Ok(m) = std::fs::read(model)
        .map_err(|_| ())
        .and_then(|b| proto::ModelProto::decode(b.as_slice()).map_err(|_| ()))
    else {
        return (prefix(), None);
    };
    let g = m.graph.unwrap_or_default();
    let op = match g.node.as_slice() {
        [n] => {
            let op = n.op_type.clone().unwrap_or_default();
            match n.domain.as_deref() {
                None | Some("") | Some("ai.onnx") => op,
                Some(d) => format!("{d}.{op}"),
            }
        }
        _ => prefix(),
    };
    let non_tensor = g.input.iter().chain(&g.output).find_map(|v| {
        match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(proto::type_proto::Value::TensorType(_)) | None => None,
            Some(other) => {
                let kind = match other {
                    proto::type_proto::Value::SequenceType(_) => "sequence",
                    proto::type_proto::Value::MapType(_) => "map",
                    proto::type_proto::Value::OptionalType(_) => "optional",
                    proto::type_proto::Value::SparseTensorType(_) => "sparse tensor",
                    _ => "opaque",
                };
                Some(format!("unsupported {kind} value \"{}\"", v.name.as_deref().unwrap_or("")))
            }
        }
    });
    (op, non_tensor)
}

/// `<dir>/<prefix>_<k>.pb` files in numeric order.
fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let k = n.strip_prefix(prefix)?.strip_prefix('_')?.strip_suffix(".pb")?.parse().ok()?;
                    Some((k, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// Import errors that say a feature is unsupported ("unsupported", "not supported").
fn is_unsupported(e: &anyhow::Error) -> bool {
    let msg = format!("{e:#}").to_lowercase();
    msg.contains("unsupported") || msg.contains("not supported")
}

/// Runs one case: import (errors mentioning "unsupported" make it Unsupported), run, compare.
fn run_case(dir: &Path, pre: Option<String>) -> (Status, String) {
    if let Some(why) = pre {
        return (Status::Unsupported, why);
    }
    let import_err = |e: anyhow::Error| {
        let s = if is_unsupported(&e) { Status::Unsupported } else { Status::Error };
        (s, format!("import: {e:#}"))
    };
    let graph = match pare::onnx::load(&dir.join("model.onnx")) {
        Ok(g) => g,
        Err(e) => return import_err(e),
    };
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    sets.sort();
    if sets.is_empty() {
        return (Status::Error, "no test_data_set_* folder".into());
    }
    let rt = match Runtime::new(graph, RunOptions { threads: 1, ..Default::default() }) {
        Ok(rt) => rt,
        Err(e) => return (Status::Error, format!("runtime: {e:#}")),
    };
    for set in &sets {
        let read = |prefix: &str| -> anyhow::Result<Vec<Tensor>> {
            numbered(set, prefix).iter().map(|p| pare::onnx::read_tensor_pb(p).map(|(_, t)| t)).collect()
        };
        let (inputs, want) = match (read("input"), read("output")) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => return import_err(e),
        };
        let n_in = rt.input_names().len();
        if inputs.len() != n_in {
            return (Status::Error, format!("{} input files for {n_in} graph inputs", inputs.len()));
        }
        let got = match rt.run(inputs) {
            Ok(g) => g,
            Err(e) => return (Status::Error, format!("run: {e:#}")),
        };
        if got.len() != want.len() {
            return (Status::Fail, format!("{} outputs, reference has {}", got.len(), want.len()));
        }
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            if let Err(why) = compare(g, w) {
                return (
                    Status::Fail,
                    format!("{}: output {k}: {why}", set.file_name().unwrap().to_string_lossy()),
                );
            }
        }
    }
    (Status::Pass, String::new())
}

/// Compares a result with the reference: same dtype and shape; floats within
/// `ATOL + RTOL * |want|` (NaN equals NaN), everything else exactly.
fn compare(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {} but reference is {}", got.dtype(), want.dtype()));
    }
    if got.shape() != want.shape() {
        return Err(format!("shape {:?} but reference is {:?}", got.shape(), want.shape()));
    }
    let (mut bad, mut first, mut worst) = (0usize, None, 0f64);
    if want.dtype().is_float() {
        for (i, (&g, &w)) in got.to_f64_vec().iter().zip(&want.to_f64_vec()).enumerate() {
            let ok = g == w || (g.is_nan() && w.is_nan()) || (g - w).abs() <= ATOL + RTOL * w.abs();
            if !ok {
                bad += 1;
                first.get_or_insert((i, g.to_string(), w.to_string()));
                worst = worst.max(if (g - w).is_nan() { f64::INFINITY } else { (g - w).abs() });
            }
        }
    } else if want.dtype() == DType::U64 {
        // U64 through i64 wraps the same way on both sides, so equality is still exact.
        for (i, (g, w)) in got.to_i64_vec().unwrap().iter().zip(&want.to_i64_vec().unwrap()).enumerate() {
            if g != w {
                bad += 1;
                first.get_or_insert((i, (*g as u64).to_string(), (*w as u64).to_string()));
            }
        }
    } else {
        for (i, (g, w)) in got.to_i64_vec().unwrap().iter().zip(&want.to_i64_vec().unwrap()).enumerate() {
            if g != w {
                bad += 1;
                first.get_or_insert((i, g.to_string(), w.to_string()));
            }
        }
    }
    match first {
        None => Ok(()),
        Some((i, g, w)) => Err(format!(
            "{bad} of {} elements of {} {:?} differ; first at flat index {i}: got {g}, want {w}{}",
            want.len(),
            want.dtype(),
            want.shape(),
            if worst > 0.0 { format!("; max abs diff {worst:.3e}") } else { String::new() }
        )),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn allow_path() -> PathBuf {
    common::root().join("tests/conformance_allow.txt")
}

fn read_allow() -> BTreeSet<String> {
    std::fs::read_to_string(allow_path())
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn onnx_node_conformance() {
    let Some(suite) = suite_dir() else {
        common::skip(
            "ONNX node test suite not found (set PARE_NODE_TESTS or run scripts/gen_node_tests.sh \
             to write target/onnx-node-tests/node)",
        );
        return;
    };
    let filter = std::env::var("PARE_CONFORMANCE_FILTER").ok();
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(&suite)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.onnx").is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect();
    cases.sort();
    eprintln!("conformance: {} cases from {}", cases.len(), suite.display());

    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let t0 = Instant::now();
    let results: Vec<CaseResult> = cases
        .par_iter()
        .map(|(name, dir)| {
            let start = Instant::now();
            let (op, pre) = model_info(name, &dir.join("model.onnx"));
            let (status, detail) = catch_unwind(AssertUnwindSafe(|| run_case(dir, pre)))
                .unwrap_or_else(|p| (Status::Fail, format!("panic: {}", panic_message(p.as_ref()))));
            CaseResult { name: name.clone(), op, status, detail, secs: start.elapsed().as_secs_f64() }
        })
        .collect();
    std::panic::set_hook(hook);
    let wall = t0.elapsed().as_secs_f64();

    // Per-op table.
    let mut per_op: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    let mut total = [0usize; 4];
    for r in &results {
        per_op.entry(r.op.as_str()).or_default()[r.status as usize] += 1;
        total[r.status as usize] += 1;
    }
    let mut table = format!("{:<36} {:>5} {:>5} {:>6} {:>5}\n", "op", "pass", "fail", "unsup", "error");
    for (op, c) in &per_op {
        writeln!(table, "{op:<36} {:>5} {:>5} {:>6} {:>5}", c[0], c[1], c[2], c[3]).unwrap();
    }
    writeln!(
        table,
        "{:<36} {:>5} {:>5} {:>6} {:>5}\nTOTAL {} cases: {} pass, {} fail, {} unsupported, {} error ({wall:.1} s)",
        "total",
        total[0],
        total[1],
        total[2],
        total[3],
        results.len(),
        total[0],
        total[1],
        total[2],
        total[3]
    )
    .unwrap();
    eprintln!("{table}");
    let mut slow: Vec<&CaseResult> = results.iter().collect();
    slow.sort_by(|a, b| b.secs.total_cmp(&a.secs));
    let slow: Vec<String> = slow.iter().take(5).map(|r| format!("{} {:.2}s", r.name, r.secs)).collect();
    eprintln!("slowest: {}", slow.join(", "));

    let mut full = String::new();
    for r in &results {
        writeln!(full, "{}\t{}\t{}\t{}", r.status.name(), r.name, r.op, r.detail.replace(['\n', '\t'], " "))
            .unwrap();
    }
    let out = common::root().join("target/conformance-results.txt");
    let _ = std::fs::create_dir_all(out.parent().unwrap());
    std::fs::write(&out, format!("# status\tcase\top\tdetail\n{full}\n{table}")).unwrap();
    eprintln!("per-case results: {}", out.display());

    // Allow-list.
    let allow = read_allow();
    let by_name: BTreeMap<&str, &CaseResult> = results.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut regressions = Vec::new();
    for name in &allow {
        match by_name.get(name.as_str()) {
            Some(r) if r.status == Status::Pass => {}
            Some(r) => regressions.push(format!("{name}: {} {}", r.status.name(), r.detail)),
            None if filter.is_none() => {
                regressions.push(format!("{name}: not in the suite at {}", suite.display()))
            }
            None => {}
        }
    }
    let new: Vec<&str> = results
        .iter()
        .filter(|r| r.status == Status::Pass && !allow.contains(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    if !new.is_empty() {
        eprintln!("{} passing cases are not on the allow-list:\n  {}", new.len(), new.join("\n  "));
        if std::env::var("PARE_UPDATE_ALLOWLIST").is_ok_and(|v| v == "1") {
            let merged: BTreeSet<String> =
                allow.iter().cloned().chain(new.iter().map(|s| s.to_string())).collect();
            let text: String = merged.iter().map(|s| format!("{s}\n")).collect();
            std::fs::write(allow_path(), text).unwrap();
            eprintln!("added them to {} ({} cases now)", allow_path().display(), merged.len());
        } else {
            eprintln!("(PARE_UPDATE_ALLOWLIST=1 adds them)");
        }
    }
    assert!(
        regressions.is_empty(),
        "{} allow-listed conformance cases do not pass:\n  {}",
        regressions.len(),
        regressions.join("\n  ")
    );
}

#[test]
fn compare_rules() {
    let f = |v: Vec<f32>| Tensor::from_vec(vec![v.len()], v);
    assert!(
        compare(&f(vec![1.0, f32::NAN, f32::INFINITY]), &f(vec![1.0005, f32::NAN, f32::INFINITY])).is_ok()
    );
    assert!(compare(&f(vec![0.0]), &f(vec![2e-5])).unwrap_err().contains("1 of 1 elements"));
    assert!(compare(&f(vec![1.0, 2.0]), &f(vec![1.0, f32::NAN])).is_err());
    assert!(
        compare(&f(vec![1.0, 2.0]), &Tensor::from_vec(vec![1, 2], vec![1.0f32, 2.0]))
            .unwrap_err()
            .contains("shape")
    );
    assert!(compare(&f(vec![1.0]), &Tensor::from_vec(vec![1], vec![1.0f64])).unwrap_err().contains("dtype"));
    let i = |v: Vec<i64>| Tensor::from_vec(vec![v.len()], v);
    assert!(compare(&i(vec![1, 2]), &i(vec![1, 2])).is_ok());
    assert!(compare(&i(vec![1, 2]), &i(vec![1, 3])).unwrap_err().contains("got 2, want 3"));
    let u = Tensor::from_vec(vec![1], vec![u64::MAX]);
    assert!(
        compare(&u, &Tensor::from_vec(vec![1], vec![u64::MAX - 1]))
            .unwrap_err()
            .contains(&u64::MAX.to_string())
    );
}
