//! Whole-model cross-checks with onnxruntime (through `tests/py/ort_run.py`), ONNX export
//! round trips through onnxruntime, and the MNIST accuracy of the zoo's mnist-conv model.
//!
//! Needs `../shared/models`, `../shared/data/mnist` and python3 with numpy + onnxruntime
//! (`scripts/setup_python.sh`); without them the tests skip, or fail under `CI=true`.

mod common;

use common::TempDir;
use pare::ir::{Dim, Graph};
use pare::runtime::{RunOptions, Runtime};
use pare::tensor::{DType, Tensor, read_npz, write_npz};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;
use std::path::{Path, PathBuf};

/// `../shared/models/<name>` if it exists (skips/fails otherwise).
fn model_path(name: &str) -> Option<PathBuf> {
    let p = common::shared().join("models").join(name);
    if p.is_file() {
        Some(p)
    } else {
        common::skip(&format!("{} not found", p.display()));
        None
    }
}

/// Runs `model` in onnxruntime with named inputs; returns its outputs in model order.
fn ort_run(model: &Path, inputs: &[(String, Tensor)], tmp: &Path) -> Vec<(String, Tensor)> {
    let (inp, out) = (tmp.join("ort_inputs.npz"), tmp.join("ort_outputs.npz"));
    write_npz(&inp, inputs).unwrap();
    let script = common::root().join("tests/py/ort_run.py");
    let res = std::process::Command::new(common::python())
        .arg(&script)
        .arg(model)
        .arg(&inp)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "onnxruntime failed on {}:\n{}",
        model.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    read_npz(&out).unwrap()
}

/// Random inputs for every graph input (symbolic dims become 1), from a fixed seed.
fn random_inputs(g: &Graph, seed: u64, pixels: bool) -> Vec<(String, Tensor)> {
    let mut rng = StdRng::seed_from_u64(seed);
    g.inputs()
        .iter()
        .map(|&v| {
            let val = g.value(v);
            assert_eq!(val.fact.dtype, DType::F32, "input {} is {}", val.name, val.fact.dtype);
            let shape: Vec<usize> = val.fact.shape.iter().map(|d: &Dim| d.known().unwrap_or(1)).collect();
            let n = shape.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|_| {
                    if pixels {
                        rng.random_range(0.0f32..255.0)
                    } else {
                        rng.sample::<f32, _>(StandardNormal)
                    }
                })
                .collect();
            (val.name.clone(), Tensor::from_vec(shape, data))
        })
        .collect()
}

/// Max |a - b| over two float tensors of the same shape, and max |b|.
fn diff(a: &Tensor, b: &Tensor, what: &str) -> (f64, f64) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes differ");
    assert_eq!(a.dtype(), b.dtype(), "{what}: dtypes differ");
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    assert!(a.iter().all(|x| x.is_finite()), "{what}: non-finite values");
    let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    (d, b.iter().map(|y| y.abs()).fold(0.0, f64::max))
}

/// Asserts every pare output is within `1e-4 * max|reference|` of the reference outputs.
fn assert_close(what: &str, names: &[String], pare: &[Tensor], reference: &[(String, Tensor)]) {
    assert_eq!(pare.len(), reference.len(), "{what}: output count");
    for ((name, got), (ref_name, want)) in names.iter().zip(pare).zip(reference) {
        assert_eq!(name, ref_name, "{what}: output names differ");
        let (d, scale) = diff(got, want, &format!("{what} output {name}"));
        eprintln!("{what}: output {name} {:?}: max abs diff {d:.3e} (max |ref| {scale:.3e})", want.shape());
        assert!(d <= 1e-4 * scale, "{what}: output {name}: max abs diff {d:e} > 1e-4 * {scale:e}");
    }
}

/// pare vs onnxruntime on random inputs, then pare's exported ONNX file in onnxruntime vs pare.
fn cross_check(name: &str, pixels: bool) {
    let Some(model) = model_path(name) else { return };
    if !common::have_python("numpy, onnxruntime") {
        return;
    }
    let tmp = TempDir::new(&format!("ort-{}", name.trim_end_matches(".onnx")));
    let graph = pare::onnx::load(&model).unwrap();
    let inputs = random_inputs(&graph, 1234, pixels);
    let rt = Runtime::new(graph.clone(), RunOptions::default()).unwrap();
    assert_eq!(rt.input_names(), inputs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    let names = rt.output_names();
    let ours = rt.run(inputs.iter().map(|(_, t)| t.clone()).collect()).unwrap();
    let theirs = ort_run(&model, &inputs, &tmp.0);
    assert_close(&format!("{name} pare vs onnxruntime"), &names, &ours, &theirs);

    let exported = tmp.0.join(format!("exported-{name}"));
    pare::onnx::save(&graph, &exported).unwrap();
    let theirs = ort_run(&exported, &inputs, &tmp.0);
    assert_close(&format!("{name} exported, in onnxruntime, vs pare"), &names, &ours, &theirs);
}

#[test]
fn ort_mnist_conv() {
    cross_check("mnist-conv.onnx", true);
}

#[test]
fn ort_mobilenet_v2() {
    cross_check("mobilenet_v2.onnx", false);
}

#[test]
fn ort_resnet18() {
    cross_check("resnet18.onnx", false);
}

#[test]
fn mnist_conv_reference_data() {
    let Some(model) = model_path("mnist-conv.onnx") else { return };
    let set = common::shared().join("models/mnist-conv-testdata/test_data_set_0");
    let (_, input) = pare::onnx::read_tensor_pb(&set.join("input_0.pb")).unwrap();
    let (_, want) = pare::onnx::read_tensor_pb(&set.join("output_0.pb")).unwrap();
    let rt = Runtime::new(pare::onnx::load(&model).unwrap(), RunOptions::default()).unwrap();
    let got = rt.run(vec![input]).unwrap();
    let (d, _) = diff(&got[0], &want, "mnist-conv test_data_set_0");
    // The logits reach ~6.6e3, where one f32 ulp is ~5e-4: compare relative to the output scale.
    let scale = want.f32s().unwrap().iter().fold(0f32, |m, x| m.max(x.abs()));
    eprintln!("mnist-conv test_data_set_0: max abs diff {d:.3e} (output scale {scale:.1})");
    assert!(
        d <= 1e-6 * f64::from(scale.max(1.0)),
        "mnist-conv output differs from output_0.pb by {d:e} (scale {scale})"
    );
}

#[test]
fn mnist_conv_accuracy() {
    let Some(model) = model_path("mnist-conv.onnx") else { return };
    let dir = common::shared().join("data/mnist");
    if !dir.is_dir() {
        common::skip(&format!("{} not found", dir.display()));
        return;
    }
    let (images, labels) = pare::data::load_mnist_split(&dir, false).unwrap();
    let (pixels, labels) = (images.as_slice::<u8>().unwrap(), labels.as_slice::<u8>().unwrap());
    let rt = Runtime::new(pare::onnx::load(&model).unwrap(), RunOptions::default()).unwrap();
    let mut correct = 0;
    for (img, &label) in pixels.chunks_exact(784).zip(labels) {
        let x = Tensor::from_vec(vec![1, 1, 28, 28], img.iter().map(|&p| p as f32).collect::<Vec<_>>());
        let out = rt.run(vec![x]).unwrap();
        let logits = out[0].f32s().unwrap();
        assert_eq!(logits.len(), 10);
        let pred = (0..10).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
        correct += (pred == label as usize) as usize;
    }
    eprintln!(
        "mnist-conv top-1 on the MNIST test set: {correct} / {} ({:.2} %)",
        labels.len(),
        correct as f64 / 100.0
    );
    assert_eq!(labels.len(), 10000);
    assert!(correct >= 9890, "mnist-conv accuracy {correct} / 10000; onnxruntime gets 9891");
}
