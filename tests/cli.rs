//! The `pare` binary end to end: commands work, and bad input gives a clear error with exit code 2.

mod common;

use common::{fails_with, s};
use pare::ir::{Dim, Graph, Op, Unary, known_shape};
use pare::onnx::proto;
use pare::tensor::{DType, Tensor, read_npy, write_npy};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MNIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist-conv.onnx");

fn pare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pare")).args(args).output().expect("run pare")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pare-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn inspect_json_has_the_documented_keys() {
    let out = pare(&["inspect", MNIST, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["params", "macs", "weight_bytes", "activation_bytes", "layers"] {
        assert!(v.get(k).is_some(), "missing key {k}");
    }
    // 200 + 3,200 + 2,560 weights and 8 + 16 + 10 biases; conv1 8x1x5x5 on 28x28 = 156,800 MACs.
    assert_eq!(v["params"], 5994);
    assert_eq!(v["layers"][0]["macs"], 156_800);
}

#[test]
fn bench_json_has_the_documented_keys() {
    let out = pare(&["bench", MNIST, "--iters", "5", "--warmup", "1", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["p50", "p90", "p99"] {
        assert!(v["latency_ms"][k].as_f64().unwrap() > 0.0);
    }
    assert!(v["throughput_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["peak_memory_bytes"].as_u64().unwrap() > 0);
}

/// A model `y = relu(x)` with a symbolic batch and an output name that needs sanitising.
fn relu_model(dir: &Path) -> PathBuf {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![Dim::Sym("N".into()), Dim::Known(4)]);
    let y = g.add_node("out/0:y", Op::Unary(Unary::Relu), vec![Some(x)]).unwrap()[0];
    g.set_outputs(vec![y]);
    let p = dir.join("relu.onnx");
    pare::onnx::save(&g, &p).unwrap();
    p
}

#[test]
fn run_writes_sanitised_outputs_and_propagates_nan() {
    let d = tmpdir("run");
    let model = relu_model(&d);
    let x = d.join("x.npy");
    write_npy(&x, &Tensor::from_vec(vec![2, 4], vec![-1f32, 2., f32::NAN, 0., 5., -3., 1., f32::NAN]))
        .unwrap();
    let outdir = d.join("o");
    let out = pare(&["run", s(&model), "--input", &format!("x={}", s(&x)), "--output-dir", s(&outdir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let y = read_npy(&outdir.join("out_0_y.npy")).unwrap();
    let v = y.f32s().unwrap();
    assert_eq!(y.shape(), &[2, 4]);
    assert_eq!(&v[..2], &[0., 2.]);
    assert!(v[2].is_nan() && v[7].is_nan());
    // zero-size batch runs and gives an empty output
    write_npy(&x, &Tensor::from_vec(vec![0, 4], Vec::<f32>::new())).unwrap();
    let out = pare(&["run", s(&model), "--input", &format!("x={}", s(&x)), "--output-dir", s(&outdir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_npy(&outdir.join("out_0_y.npy")).unwrap().shape(), &[0, 4]);
}

#[test]
fn truncated_and_garbage_files() {
    let d = tmpdir("trunc");
    let bytes = std::fs::read(MNIST).unwrap();
    let t = d.join("truncated.onnx");
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(&pare(&["inspect", s(&t)]), &["truncated.onnx"]);
    let g = d.join("garbage.onnx");
    std::fs::write(&g, b"this is not a model at all").unwrap();
    fails_with(&pare(&["run", s(&g)]), &["garbage.onnx"]);
    fails_with(&pare(&["bench", s(&d.join("missing.onnx"))]), &["missing.onnx"]);
}

#[test]
fn wrong_input_shape_dtype_and_name() {
    let d = tmpdir("inputs");
    let x = d.join("x.npy");
    write_npy(&x, &Tensor::zeros(DType::F32, vec![1, 1, 27, 28])).unwrap();
    let arg = format!("Input3={}", s(&x));
    fails_with(&pare(&["run", MNIST, "--input", &arg]), &["Input3", "[1,1,28,28]", "27"]);
    write_npy(&x, &Tensor::zeros(DType::F64, vec![1, 1, 28, 28])).unwrap();
    fails_with(&pare(&["run", MNIST, "--input", &arg]), &["Input3", "float64"]);
    let arg = format!("Nope={}", s(&x));
    fails_with(&pare(&["run", MNIST, "--input", &arg]), &["Nope", "Input3"]);
}

fn node(op: &str, ins: &[&str], outs: &[&str]) -> proto::NodeProto {
    proto::NodeProto {
        op_type: Some(op.into()),
        name: Some(format!("{op}_node")),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> proto::ValueInfoProto {
    use proto::tensor_shape_proto::{Dimension, dimension::Value};
    let shape = proto::TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| Dimension { value: Some(Value::DimValue(d)), ..Default::default() })
            .collect(),
    };
    let tt = proto::type_proto::Tensor { elem_type: Some(1), shape: Some(shape) };
    proto::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(tt)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn write_model(path: &Path, nodes: Vec<proto::NodeProto>, inits: Vec<proto::TensorProto>, input: &[i64]) {
    let graph = proto::GraphProto {
        name: Some("g".into()),
        node: nodes,
        initializer: inits,
        input: vec![value_info("x", input)],
        output: vec![value_info("y", &[])],
        ..Default::default()
    };
    let model = proto::ModelProto {
        ir_version: Some(8),
        opset_import: vec![proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(graph),
        ..Default::default()
    };
    std::fs::write(path, model.encode_to_vec()).unwrap();
}

#[test]
fn unsupported_ops_are_all_named() {
    let d = tmpdir("unsupported");
    let p = d.join("weird.onnx");
    let nodes =
        vec![node("FooBar", &["x"], &["a"]), node("Relu", &["a"], &["b"]), node("BazQux", &["b"], &["y"])];
    write_model(&p, nodes, vec![], &[1, 4]);
    fails_with(&pare(&["inspect", s(&p)]), &["weird.onnx", "FooBar", "BazQux"]);
}

#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let d = tmpdir("absurd");
    // an initializer that claims 2^40 x 2^40 elements with no data
    let p = d.join("huge-init.onnx");
    let w = proto::TensorProto {
        name: Some("w".into()),
        data_type: Some(1),
        dims: vec![1 << 40, 1 << 40],
        ..Default::default()
    };
    write_model(&p, vec![node("Add", &["x", "w"], &["y"])], vec![w], &[1, 4]);
    fails_with(&pare(&["inspect", s(&p)]), &["huge-init.onnx"]);
    // an input that declares 10^12 elements: running with random inputs must refuse
    let p = d.join("huge-input.onnx");
    write_model(&p, vec![node("Relu", &["x"], &["y"])], vec![], &[1_000_000, 1_000_000]);
    fails_with(&pare(&["run", s(&p), "--output-dir", s(&d.join("o"))]), &["x"]);
    // ConstantOfShape asked at run time for a huge tensor
    let p = d.join("huge-cos.onnx");
    let mut shape_in = value_info("x", &[2]);
    if let Some(proto::type_proto::Value::TensorType(t)) =
        shape_in.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = Some(7); // int64
    }
    let graph = proto::GraphProto {
        name: Some("g".into()),
        node: vec![node("ConstantOfShape", &["x"], &["y"])],
        input: vec![shape_in],
        output: vec![value_info("y", &[])],
        ..Default::default()
    };
    let model = proto::ModelProto {
        ir_version: Some(8),
        opset_import: vec![proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(graph),
        ..Default::default()
    };
    std::fs::write(&p, model.encode_to_vec()).unwrap();
    let x = d.join("shape.npy");
    write_npy(&x, &Tensor::from_vec(vec![2], vec![1i64 << 30, 1i64 << 30])).unwrap();
    fails_with(
        &pare(&["run", s(&p), "--input", &format!("x={}", s(&x)), "--output-dir", s(&d.join("o"))]),
        &["ConstantOfShape"],
    );
}

#[test]
fn optimize_refuses_to_overwrite_its_input_and_writes_a_loadable_model() {
    let d = tmpdir("optimize");
    let m = d.join("m.onnx");
    std::fs::copy(MNIST, &m).unwrap();
    fails_with(&pare(&["optimize", s(&m), "-o", s(&m)]), &["refusing to overwrite"]);
    assert_eq!(std::fs::read(&m).unwrap(), std::fs::read(MNIST).unwrap());
    let o = d.join("opt.onnx");
    let out = pare(&["optimize", s(&m), "-o", s(&o)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let g = pare::onnx::load(&o).unwrap();
    assert!(g.node_count() < 11, "optimised graph has {} nodes", g.node_count());
    assert_eq!(g.fact(g.outputs()[0]).shape, known_shape(&[1, 10]));
    same_outputs(Path::new(MNIST), &o, &d);
}

/// The model written by `pare optimize` computes what the original does, on a random input:
/// with onnxruntime on both files when python3 has it, and always with pare's runtime
/// (optimisation off, so each file runs as written).
fn same_outputs(original: &Path, optimised: &Path, dir: &Path) {
    use pare::runtime::{RunOptions, Runtime};
    use rand::{Rng, SeedableRng};
    let a = pare::onnx::load(original).unwrap();
    let b = pare::onnx::load(optimised).unwrap();
    let names =
        |g: &Graph, vs: &[pare::ir::ValueId]| vs.iter().map(|&v| g.value(v).name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a, a.inputs()), names(&b, b.inputs()), "the optimised model's inputs");
    assert_eq!(names(&a, a.outputs()), names(&b, b.outputs()), "the optimised model's outputs");
    let shape = a.fact(a.inputs()[0]).concrete_shape().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let n = shape.iter().product();
    let x = Tensor::from_vec(shape, (0..n).map(|_| rng.random_range(0.0f32..255.0)).collect());
    let run = |g: Graph| {
        Runtime::new(g, RunOptions { threads: 1, optimize: false }).unwrap().run(vec![x.clone()]).unwrap()
    };
    let (ya, yb) = (run(a), run(b));
    assert_eq!(ya.len(), yb.len());
    for (p, q) in ya.iter().zip(&yb) {
        assert_eq!(p.shape(), q.shape());
        let (p, q) = (p.f32s().unwrap(), q.f32s().unwrap());
        let scale = p.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = p.iter().zip(q).fold(0f32, |m, (u, v)| m.max((u - v).abs()));
        assert!(
            diff <= 1e-4 * scale + 1e-5,
            "pare runtime: optimised differs by {diff} (scale {scale}): {p:?} vs {q:?}"
        );
    }
    if !python_has_onnxruntime() {
        eprintln!("python3 with onnxruntime and numpy is missing: compared with pare's runtime only");
        return;
    }
    let xin = dir.join("random_input.npy");
    write_npy(&xin, &x).unwrap();
    let out = Command::new(common::python())
        .args(["-c", ORT_SAME, s(original), s(optimised), s(&xin)])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "onnxruntime: the optimised model differs or does not load:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs two models on the same input with onnxruntime and compares every output.
const ORT_SAME: &str = r#"
import sys, numpy as np, onnxruntime as ort
a, b, x = sys.argv[1:4]
so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sa = ort.InferenceSession(a, so, providers=["CPUExecutionProvider"])
sb = ort.InferenceSession(b, so, providers=["CPUExecutionProvider"])
feeds = {sa.get_inputs()[0].name: np.load(x)}
ya, yb = sa.run(None, feeds), sb.run(None, feeds)
assert len(ya) == len(yb), (len(ya), len(yb))
for k, (p, q) in enumerate(zip(ya, yb)):
    assert p.shape == q.shape, (k, p.shape, q.shape)
    tol = 1e-4 * float(np.abs(p).max()) + 1e-5
    d = float(np.abs(p - q).max())
    assert d <= tol, f"output {k} differs by {d} (tolerance {tol})"
print("onnxruntime: same outputs")
"#;

/// True when python3 imports onnxruntime and numpy (not required: the check is optional).
fn python_has_onnxruntime() -> bool {
    Command::new(common::python())
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn compile_writes_a_standard_model_with_its_plan() {
    let d = tmpdir("compile");
    let (o, cache) = (d.join("compiled.onnx"), d.join("cache"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pare"))
            .args(args)
            .env("PARE_CACHE_DIR", &cache)
            .output()
            .expect("run pare")
    };
    fails_with(&run(&["compile", MNIST, "-o", MNIST]), &["refusing to overwrite"]);
    fails_with(&run(&["compile", MNIST, "-o", s(&o), "--budget=-1"]), &["--budget must be"]);
    let out = run(&["compile", MNIST, "-o", s(&o), "--budget", "2", "--threads", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for want in ["layer", "chosen", "speedup", "Times212", "measured", "written to"] {
        assert!(text.contains(want), "compile output lacks {want:?}:\n{text}");
    }
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(
        files.iter().any(|f| f.to_string_lossy().starts_with("tune-")),
        "no tuning cache written: {files:?}"
    );
    let g = pare::onnx::load(&o).unwrap();
    assert!(g.metadata_value(pare::compile::stored::KEY).is_some());
    let (_, notes) = pare::compile::stored::choices_for(&g, 1);
    assert!(notes.is_empty(), "{notes:?}");
    // The compiled file is a standard model: same outputs in pare and onnxruntime.
    same_outputs(Path::new(MNIST), &o, &d);
    // bench uses the stored plan and says when the thread count differs from it.
    let b = run(&["bench", s(&o), "--threads", "2", "--iters", "3", "--warmup", "1"]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert!(String::from_utf8_lossy(&b.stderr).contains("tuned for 1 threads"));
}

#[test]
fn bench_compare_ort_times_the_same_file() {
    if !common::have_python("numpy, onnxruntime") {
        return;
    }
    // Batch 1 runs the file itself; batch 3 does not fit its fixed input, so onnxruntime
    // gets a re-batched copy, and the output says so.
    for (batch, rebatched) in [("1", false), ("3", true)] {
        let out = pare(&[
            "bench",
            MNIST,
            "--batch",
            batch,
            "--threads",
            "1",
            "--iters",
            "3",
            "--compare-ort",
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let o = &v["onnxruntime"];
        assert!(o["median_ms"].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(o["rebatched"].as_bool(), Some(rebatched), "{v}");
        let ratio = v["pare_over_ort_time"].as_f64().unwrap();
        let want = v["latency_ms"]["p50"].as_f64().unwrap() / o["median_ms"].as_f64().unwrap();
        assert!((ratio - want).abs() < 1e-9 * want, "{v}");
    }
}

#[test]
fn optimize_explain_lists_rewrites_and_near_misses() {
    let d = tmpdir("explain");
    let o = d.join("opt.onnx");
    // mnist-conv: activations fuse into its convs.
    let out = pare(&["optimize", MNIST, "-o", s(&o), "--explain", "--no-gate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fuse_activation: fired") && text.contains("fired on Conv"), "{text}");

    // A Conv read by both a BatchNorm and a Relu: neither rule may fire, and both say why.
    let m = d.join("shared_conv.onnx");
    let t = |name: &str, v: Vec<f32>, shape: Vec<usize>| {
        pare::onnx::tensor_to_proto(name, &Tensor::from_vec(shape, v))
    };
    let inits = vec![
        t("w", vec![0.5; 4], vec![2, 2, 1, 1]),
        t("s", vec![1.0, 2.0], vec![2]),
        t("b", vec![0.0, 0.1], vec![2]),
        t("m", vec![0.0, 0.0], vec![2]),
        t("v", vec![1.0, 1.0], vec![2]),
    ];
    let nodes = vec![
        node("Conv", &["x", "w"], &["c"]),
        node("BatchNormalization", &["c", "s", "b", "m", "v"], &["bn"]),
        node("Relu", &["c"], &["r"]),
        node("Add", &["bn", "r"], &["y"]),
    ];
    write_model(&m, nodes, inits, &[1, 2, 4, 4]);
    let out = pare(&["optimize", s(&m), "-o", s(&o), "--explain", "--no-gate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fold_batchnorm: fired 0 time(s), 1 near miss(es)"), "{text}");
    assert!(text.contains("fuse_activation: fired 0 time(s), 1 near miss(es)"), "{text}");
    assert_eq!(text.matches("has 2 readers").count(), 2, "{text}");
}
