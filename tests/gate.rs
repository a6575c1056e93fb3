//! The speedup gate reports both sides of a transform, measured, and refuses graphs that
//! do not take the same inputs. (Speed itself is never asserted: only that it is measured
//! and reported consistently.)

mod common;

use pare::profile::{GateOptions, speedup_gate};

#[test]
fn gate_reports_before_and_after() {
    let before = pare::zoo::build("lenet-5", 10, 1).unwrap();
    let mut after = before.clone();
    pare::passes::optimize(&mut after).unwrap();
    let want_ort = common::have_python("numpy, onnxruntime");
    let opts =
        GateOptions { batch: Some(2), threads: 1, runs: 5, onnxruntime: want_ort, ..Default::default() };
    let r = speedup_gate(&before, &after, &opts).unwrap();
    assert_eq!((r.batch, r.threads, r.runs), (2, 1, 5));
    assert!(r.before_ms > 0.0 && r.after_ms > 0.0);
    assert!((r.speedup - r.before_ms / r.after_ms).abs() < 1e-9);
    assert_eq!(r.pays, r.speedup >= opts.min_speedup);
    assert_eq!(r.before_bytes, pare::onnx::to_bytes(&before).unwrap().len() as u64);
    assert_eq!(r.after_bytes, pare::onnx::to_bytes(&after).unwrap().len() as u64);
    assert!(r.max_abs_diff.unwrap() < 1e-3, "{:?}", r.max_abs_diff);
    let text = r.summary("optimize");
    assert!(text.contains("ms ->") && text.contains("batch 2, 1 threads"), "{text}");
    assert_eq!(text.contains("does not pay"), !r.pays, "{text}");
    if want_ort {
        let (b, a) = r.ort.as_ref().unwrap_or_else(|| panic!("onnxruntime not timed: {:?}", r.ort_error));
        assert!(b.median_ms > 0.0 && a.median_ms > 0.0);
        assert!(text.contains("onnxruntime"), "{text}");
    }

    // Graphs with different inputs cannot be compared.
    let other = pare::zoo::build("vgg-small", 10, 1).unwrap();
    let e = speedup_gate(&before, &other, &opts).unwrap_err().to_string();
    assert!(e.contains("same inputs"), "{e}");
}
