use super::*;
use crate::ir::Dim;
use crate::runtime::{RunOptions, Runtime};
use crate::tensor::Tensor;
use crate::tensor::write_npy;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Uniform [0, 1) pixels for a concrete-shaped graph's single input.
fn pixels(g: &Graph, seed: u64) -> Tensor {
    let shape = g.fact(g.inputs()[0]).concrete_shape().unwrap();
    let n = shape.iter().product();
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::from_vec(shape, (0..n).map(|_| rng.random::<f32>()).collect::<Vec<f32>>())
}

fn run(g: &Graph, x: &Tensor, optimize: bool) -> Vec<f32> {
    let rt = Runtime::new(g.with_batch(2).unwrap(), RunOptions { threads: 2, optimize }).unwrap();
    let out = rt.run(vec![x.clone()]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), &[2, 10]);
    out[0].f32s().unwrap().to_vec()
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * scale, "{what}: logit {i}: {x} vs {y}");
    }
}

fn weight<'a>(g: &'a Graph, name: &str) -> &'a [f32] {
    g.fact(g.find(name).unwrap_or_else(|| panic!("no value {name}"))).konst.as_ref().unwrap().f32s().unwrap()
}

#[test]
fn every_model_builds_runs_and_round_trips_through_onnx() {
    for (name, _) in names() {
        let g = build(name, 10, 7).unwrap();
        g.verify().unwrap();
        assert_eq!(g.value(g.inputs()[0]).name, "input");
        assert_eq!(g.value(g.outputs()[0]).name, "logits");
        assert_eq!(g.fact(g.inputs()[0]).shape[0], Dim::Sym("N".into()), "{name}");
        assert_eq!(g.fact(g.outputs()[0]).shape[0], Dim::Sym("N".into()), "{name}");
        let x = pixels(&g.with_batch(2).unwrap(), 1);
        let y = run(&g, &x, true);
        assert!(y.iter().all(|v| v.is_finite()), "{name}: {y:?}");
        // Different inputs give different logits (the graph is not degenerate).
        assert!(y[..10].iter().zip(&y[10..]).any(|(a, b)| a != b), "{name}: {y:?}");
        // The optimised runtime (BN folding, fusion) agrees with the plain one.
        assert_close(&run(&g, &x, false), &y, name);
        let back = crate::onnx::load_bytes(&crate::onnx::to_bytes(&g).unwrap()).unwrap();
        assert_eq!(param_count(&back), param_count(&g), "{name}");
        assert_close(&run(&back, &x, true), &y, name);
    }
}

#[test]
fn parameter_counts() {
    let count = |name: &str| param_count(&build(name, 10, 0).unwrap());
    assert_eq!(count("lenet-300-100"), 266_610);
    assert_eq!(count("lenet-5"), 431_080);
    assert_eq!(count("mlp-1200"), 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10);
    assert_eq!(count("mlp-800"), 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10);
    // conv 3x3 weights + BN scale/bias + fc
    let vgg = 9 * (3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 256 * 256)
        + 2 * (64 + 64 + 128 + 128 + 256 + 256)
        + 256 * 10
        + 10;
    assert_eq!(count("vgg-small"), vgg);
    // Option A counts (269,722 and 853,018) plus the two 1x1 projections with their BNs.
    let proj = 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64;
    assert_eq!(count("resnet-20"), 269_722 + proj);
    assert!((count("resnet-20") as f64 / 0.27e6 - 1.0).abs() < 0.03);
    assert_eq!(count("resnet-56"), 853_018 + proj);
    // torchvision's mobilenet_v2(num_classes=10) has 2,236,682 parameters; the CIFAR
    // adaptation changes only strides.
    assert_eq!(count("mobilenetv2-cifar"), 2_236_682);
    assert_eq!(param_count(&build("resnet-20", 100, 0).unwrap()), 269_722 + proj + 90 * 65);
}

#[test]
fn class_count_and_errors() {
    let g = build("resnet-20", 100, 0).unwrap().with_batch(3).unwrap();
    assert_eq!(g.fact(g.outputs()[0]).concrete_shape().unwrap(), vec![3, 100]);
    let e = format!("{:#}", build("resnet-18", 10, 0).unwrap_err());
    assert!(e.contains("resnet-18") && e.contains("resnet-20") && e.contains("mobilenetv2-cifar"), "{e}");
    assert!(build("lenet-5", 0, 0).is_err());
}

#[test]
fn seeds_and_initialisation() {
    let a = build("resnet-20", 10, 1).unwrap();
    let b = build("resnet-20", 10, 1).unwrap();
    let c = build("resnet-20", 10, 2).unwrap();
    for w in ["conv1.weight", "layer2.0.shortcut.conv.weight", "layer3.2.conv2.weight", "fc.weight"] {
        assert_eq!(weight(&a, w), weight(&b, w), "{w}");
        assert_ne!(weight(&a, w), weight(&c, w), "{w}");
    }
    assert_eq!(weight(&a, "layer1.0.bn1.weight"), &[1.0; 16]);
    assert_eq!(weight(&a, "layer1.0.bn1.running_var"), &[1.0; 16]);
    assert_eq!(weight(&a, "layer1.0.bn1.bias"), &[0.0; 16]);
    assert_eq!(weight(&a, "normalize.std"), &[0.2470, 0.2435, 0.2616]);

    let stats = |w: &[f32]| {
        let n = w.len() as f64;
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt(), w.iter().fold(0f32, |m, v| m.max(v.abs())) as f64)
    };
    let g = build("mlp-1200", 10, 3).unwrap();
    // Kaiming normal, fan-in 784: std sqrt(2/784); 940,800 samples give ~0.1% error.
    let (m, s, _) = stats(weight(&g, "fc1.weight"));
    assert!(m.abs() < 1e-3 && (s / (2.0f64 / 784.0).sqrt() - 1.0).abs() < 0.01, "{m} {s}");
    let (_, s, _) = stats(weight(&g, "fc2.weight"));
    assert!((s / (2.0f64 / 1200.0).sqrt() - 1.0).abs() < 0.01, "{s}");
    // Classifier: U(-1/sqrt(1200), 1/sqrt(1200)), std bound/sqrt(3).
    let bound = 1.0 / 1200f64.sqrt();
    let (_, s, max) = stats(weight(&g, "fc3.weight"));
    assert!(max <= bound + 1e-7 && (s / (bound / 3f64.sqrt()) - 1.0).abs() < 0.05, "{s} {max}");
    assert!(weight(&g, "fc1.bias").iter().all(|&v| v == 0.0));
    // Depthwise conv: fan-in 9, so std sqrt(2/9).
    let g = build("mobilenetv2-cifar", 10, 3).unwrap();
    let (_, s, _) = stats(weight(&g, "layers.16.conv2.weight"));
    assert!((s / (2.0f64 / 9.0).sqrt() - 1.0).abs() < 0.05, "{s}");
}

/// The exported files pass onnx's full checker and onnxruntime gives pare's logits.
/// Skipped when python3 with onnx and onnxruntime is missing (required under CI: CI=true or CI=1).
#[test]
fn exported_models_match_onnxruntime() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!crate::data::in_ci(), "CI is set (CI=true or CI=1) but python3/onnxruntime is missing");
        eprintln!("skipping: python3 with onnx and onnxruntime is missing");
        return;
    }
    let dir = std::env::temp_dir().join(format!("pare-zoo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = Vec::new();
    for name in ["lenet-5", "resnet-20", "mobilenetv2-cifar", "vgg-small"] {
        let g = build(name, 10, 5).unwrap();
        let x = pixels(&g.with_batch(2).unwrap(), 9);
        let y = run(&g, &x, true);
        let base = dir.join(name);
        crate::onnx::save(&g, &base.with_extension("onnx")).unwrap();
        write_npy(&base.with_extension("x.npy"), &x).unwrap();
        write_npy(&base.with_extension("y.npy"), &Tensor::from_vec(vec![2, 10], y)).unwrap();
        args.push(base.to_str().unwrap().to_string());
    }
    let script = r#"
import sys, numpy as np, onnx, onnxruntime as ort
for base in sys.argv[1:]:
    m = onnx.load(base + ".onnx")
    onnx.checker.check_model(m, full_check=True)
    s = ort.InferenceSession(base + ".onnx", providers=["CPUExecutionProvider"])
    assert [i.name for i in s.get_inputs()] == ["input"] and s.get_outputs()[0].name == "logits"
    y = s.run(None, {"input": np.load(base + ".x.npy")})[0]
    want = np.load(base + ".y.npy")
    assert y.shape == want.shape, (base, y.shape)
    err = float(np.abs(y - want).max() / max(1.0, np.abs(want).max()))
    assert err < 1e-4, (base, err)
"#;
    let out = std::process::Command::new("python3").arg("-c").arg(script).args(&args).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
