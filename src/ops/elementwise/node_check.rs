//! Temporary: runs the ONNX node-suite cases that use this family's ops (and reductions).
//! `cargo test --lib node_suite_elementwise -- --ignored --nocapture`

use crate::ir::Op;
use crate::runtime::{RunOptions, Runtime};
use crate::tensor::Tensor;
use std::path::Path;

fn mine(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_)
            | Op::Binary(_)
            | Op::Variadic(_)
            | Op::Clip
            | Op::Where
            | Op::Cast(_)
            | Op::Reduce(_)
            | Op::ArgReduce { .. }
    )
}

fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() || got.shape() != want.shape() {
        return Err(format!(
            "got {:?} {:?}, want {:?} {:?}",
            got.dtype(),
            got.shape(),
            want.dtype(),
            want.shape()
        ));
    }
    for (i, (g, w)) in got.to_f64_vec().iter().zip(want.to_f64_vec()).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == &w || (g - w).abs() <= 1e-7 + 1e-3 * w.abs();
        if !ok {
            return Err(format!("at {i}: got {g}, want {w}"));
        }
    }
    Ok(())
}

fn run_case(dir: &Path) -> Result<Option<()>, String> {
    let g = crate::onnx::load(&dir.join("model.onnx")).map_err(|e| format!("load: {e:#}"))?;
    if !g.live_nodes().any(|(_, n)| mine(&n.op)) {
        return Ok(None);
    }
    let data = dir.join("test_data_set_0");
    let mut ins = Vec::new();
    let mut outs = Vec::new();
    for i in 0.. {
        let p = data.join(format!("input_{i}.pb"));
        if !p.exists() {
            break;
        }
        ins.push(crate::onnx::read_tensor_pb(&p).map_err(|e| format!("{e:#}"))?.1);
    }
    for i in 0.. {
        let p = data.join(format!("output_{i}.pb"));
        if !p.exists() {
            break;
        }
        outs.push(crate::onnx::read_tensor_pb(&p).map_err(|e| format!("{e:#}"))?.1);
    }
    let rt =
        Runtime::new(g, RunOptions { threads: 1, optimize: false }).map_err(|e| format!("plan: {e:#}"))?;
    let got = rt.run(ins).map_err(|e| format!("run: {e:#}"))?;
    for (k, (g, w)) in got.iter().zip(&outs).enumerate() {
        close(g, w).map_err(|e| format!("output {k}: {e}"))?;
    }
    Ok(Some(()))
}

const PREFIXES: &[&str] = &[
    "test_abs",
    "test_acos",
    "test_add",
    "test_and",
    "test_argm",
    "test_asin",
    "test_atan",
    "test_bitshift",
    "test_bitwise",
    "test_cast",
    "test_ceil",
    "test_celu",
    "test_clip",
    "test_cos",
    "test_div",
    "test_elu",
    "test_equal",
    "test_erf",
    "test_exp_",
    "test_exp",
    "test_floor",
    "test_gelu",
    "test_greater",
    "test_hard",
    "test_isinf",
    "test_isnan",
    "test_leakyrelu",
    "test_less",
    "test_log_",
    "test_max_",
    "test_mean",
    "test_min_",
    "test_mish",
    "test_mod",
    "test_mul",
    "test_neg",
    "test_not",
    "test_or",
    "test_pow",
    "test_prelu",
    "test_reciprocal",
    "test_reduce",
    "test_relu",
    "test_round",
    "test_selu",
    "test_sigmoid",
    "test_sign",
    "test_sin",
    "test_softplus",
    "test_softsign",
    "test_sqrt",
    "test_sub",
    "test_sum",
    "test_tan",
    "test_thresholdedrelu",
    "test_where",
    "test_xor",
];

#[test]
#[ignore]
fn node_suite_elementwise() {
    let root = Path::new("/tmp/nodetests/node");
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    let (mut pass, mut fail) = (Vec::new(), Vec::new());
    for n in names {
        let r = std::panic::catch_unwind(|| run_case(&root.join(&n)));
        match r {
            Ok(Ok(Some(()))) => pass.push(n),
            Ok(Ok(None)) => {}
            Ok(Err(e)) if e.starts_with("load") && !PREFIXES.iter().any(|p| n.starts_with(p)) => {}
            Ok(Err(e)) => fail.push(format!("{n}: {e}")),
            Err(_) => fail.push(format!("{n}: PANIC")),
        }
    }
    println!("PASS {}\n{}", pass.len(), pass.join("\n"));
    println!("FAIL {}\n{}", fail.len(), fail.join("\n"));
}
