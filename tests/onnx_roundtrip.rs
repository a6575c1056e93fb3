//! ONNX import/export: real models, round trips, opset normalisation checked against
//! onnxruntime, and malformed-file errors.

mod common;

use common::in_ci as ci;
use pare::ir::{Dim, Graph, Op, known_shape};
use pare::onnx::{self, proto};
use pare::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `../shared/models/<name>`, or `None` (skip) when absent outside CI.
fn shared_model(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models").join(name);
    if p.exists() {
        return Some(p);
    }
    assert!(!ci(), "CI is set but the shared model {} is missing", p.display());
    eprintln!("skipping: shared model {} is missing", p.display());
    None
}

/// True when python3 with onnx and onnxruntime is available; under CI (CI=true or CI=1) it must be.
fn have_python() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok || !ci(), "CI is set but python3 with onnx, onnxruntime and numpy is not available");
    if !ok {
        eprintln!("skipping the onnxruntime checks: python3 with onnx, onnxruntime and numpy is missing");
    }
    ok
}

fn tmp_dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx_roundtrip").join(test);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// For each (original, exported) pair: the exported model passes the full checker, and
/// onnxruntime gives the same outputs for both on the same random inputs.
const CHECK_PY: &str = r#"
import sys, numpy as np, onnx, onnxruntime as ort
args = sys.argv[1:]
for orig, exp in zip(args[::2], args[1::2]):
    onnx.checker.check_model(onnx.load(exp), full_check=True)
    so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    a = ort.InferenceSession(orig, so, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(exp, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for i in a.get_inputs():
        shape = [d if isinstance(d, int) else 2 for d in i.shape]
        if i.type == "tensor(float)":
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32) * 3
        elif i.type == "tensor(int64)":
            feeds[i.name] = rng.integers(0, 3, shape).astype(np.int64)
        else:
            raise SystemExit(f"{orig}: input type {i.type} not handled by the test")
    assert [i.name for i in b.get_inputs()] == list(feeds), (orig, [i.name for i in b.get_inputs()])
    ya, yb = a.run(None, feeds), b.run(None, feeds)
    assert len(ya) == len(yb), orig
    for k, (x, y) in enumerate(zip(ya, yb)):
        assert x.shape == y.shape, (orig, k, x.shape, y.shape)
        assert np.allclose(x, y, rtol=1e-4, atol=1e-5), (orig, k, float(np.abs(x - y).max()))
    print("ok", orig)
"#;

fn ort_check(pairs: &[(PathBuf, PathBuf)]) {
    if !have_python() {
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.args(["-c", CHECK_PY]);
    for (a, b) in pairs {
        cmd.arg(a).arg(b);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "onnxruntime check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn op_counts(g: &Graph) -> BTreeMap<&'static str, usize> {
    let mut c = BTreeMap::new();
    for (_, n) in g.live_nodes() {
        *c.entry(n.op.onnx_name()).or_default() += 1;
    }
    c
}

/// Export then re-import gives the same nodes (ops with attributes, in order, with the same
/// output names), inputs, outputs and constant values.
fn assert_same_structure(a: &Graph, b: &Graph) {
    assert_eq!(a.node_count(), b.node_count());
    let (oa, ob) = (a.topo_order().unwrap(), b.topo_order().unwrap());
    for (x, y) in oa.iter().zip(&ob) {
        let (nx, ny) = (a.node(*x).unwrap(), b.node(*y).unwrap());
        assert_eq!(nx.op, ny.op, "node {}", nx.name);
        let names = |g: &Graph, n: &pare::ir::Node| -> Vec<String> {
            n.outputs.iter().map(|v| g.value(*v).name.clone()).collect()
        };
        assert_eq!(names(a, nx), names(b, ny));
        for (ix, iy) in nx.inputs.iter().zip(&ny.inputs) {
            let (fx, fy) = (ix.map(|v| a.fact(v)), iy.map(|v| b.fact(v)));
            assert_eq!(fx, fy, "inputs of node {}", nx.name);
        }
    }
    let facts = |g: &Graph, vs: &[pare::ir::ValueId]| -> Vec<(String, pare::ir::Fact)> {
        vs.iter().map(|&v| (g.value(v).name.clone(), g.fact(v).clone())).collect()
    };
    assert_eq!(facts(a, a.inputs()), facts(b, b.inputs()));
    assert_eq!(facts(a, a.outputs()), facts(b, b.outputs()));
}

fn real_model(file: &str, nodes: usize, counts: &[(&str, usize)], out_shape: Vec<Dim>) {
    let Some(path) = shared_model(file) else { return };
    let g = onnx::load(&path).unwrap();
    g.verify().unwrap();
    assert_eq!(g.node_count(), nodes, "{:?}", op_counts(&g));
    let want: BTreeMap<&str, usize> = counts.iter().copied().collect();
    assert_eq!(op_counts(&g), want);
    assert_eq!(g.outputs().len(), 1);
    assert_eq!(g.fact(g.outputs()[0]).shape, out_shape);
    assert!(g.find(&g.value(g.outputs()[0]).name.clone()).is_some());

    let dir = tmp_dir(file);
    let out = dir.join(file);
    onnx::save(&g, &out).unwrap();
    let back = onnx::load(&out).unwrap();
    back.verify().unwrap();
    assert_same_structure(&g, &back);
    // constants survive bit for bit
    for v in g.used_consts() {
        let name = &g.value(v).name;
        let w = back.find(name).unwrap_or_else(|| panic!("constant {name} lost"));
        assert_eq!(g.fact(v).konst, back.fact(w).konst, "constant {name}");
    }
    ort_check(&[(path, out)]);
}

#[test]
fn mnist_opset8() {
    let counts = [("Conv", 2), ("Add", 3), ("Relu", 2), ("MaxPool", 2), ("Reshape", 1), ("MatMul", 1)];
    real_model("mnist-conv.onnx", 11, &counts, known_shape(&[1, 10]));
    let Some(p) = shared_model("mnist-conv.onnx") else { return };
    let g = onnx::load(&p).unwrap();
    assert_eq!(g.inputs().len(), 1, "initializers listed as inputs are constants");
    assert_eq!(g.value(g.inputs()[0]).name, "Input3");
    assert_eq!(g.fact(g.inputs()[0]).shape, known_shape(&[1, 1, 28, 28]));
    assert_eq!(g.value(g.outputs()[0]).name, "Plus214_Output_0");
}

#[test]
fn mobilenet_v2_opset17() {
    let counts =
        [("Conv", 52), ("Clip", 35), ("Add", 10), ("GlobalAveragePool", 1), ("Flatten", 1), ("Gemm", 1)];
    real_model("mobilenet_v2.onnx", 100, &counts, vec![Dim::Sym("N".into()), Dim::Known(1000)]);
}

#[test]
fn resnet18_opset20() {
    let counts = [
        ("Conv", 20),
        ("Relu", 17),
        ("MaxPool", 1),
        ("Add", 8),
        ("ReduceMean", 1),
        ("Reshape", 1),
        ("Gemm", 1),
    ];
    real_model("resnet18.onnx", 49, &counts, known_shape(&[1, 1000]));
}

// ---- small models built here ----

fn a_int(name: &str, i: i64) -> proto::AttributeProto {
    proto::AttributeProto { name: Some(name.into()), r#type: Some(2), i: Some(i), ..Default::default() }
}
fn a_float(name: &str, f: f32) -> proto::AttributeProto {
    proto::AttributeProto { name: Some(name.into()), r#type: Some(1), f: Some(f), ..Default::default() }
}
fn a_ints(name: &str, v: &[i64]) -> proto::AttributeProto {
    proto::AttributeProto { name: Some(name.into()), r#type: Some(7), ints: v.to_vec(), ..Default::default() }
}
fn a_floats(name: &str, v: &[f32]) -> proto::AttributeProto {
    proto::AttributeProto {
        name: Some(name.into()),
        r#type: Some(6),
        floats: v.to_vec(),
        ..Default::default()
    }
}
fn a_str(name: &str, s: &str) -> proto::AttributeProto {
    let s = Some(s.as_bytes().to_vec());
    proto::AttributeProto { name: Some(name.into()), r#type: Some(3), s, ..Default::default() }
}

fn node(op: &str, ins: &[&str], outs: &[&str], attrs: Vec<proto::AttributeProto>) -> proto::NodeProto {
    proto::NodeProto {
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        name: Some(format!("{op}_{}", outs[0])),
        op_type: Some(op.into()),
        attribute: attrs,
        ..Default::default()
    }
}

fn vi(name: &str, elem: i32, dims: &[i64]) -> proto::ValueInfoProto {
    use proto::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(if d < 0 { Value::DimParam("N".into()) } else { Value::DimValue(d) }),
            ..Default::default()
        })
        .collect();
    let tt =
        proto::type_proto::Tensor { elem_type: Some(elem), shape: Some(proto::TensorShapeProto { dim }) };
    proto::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(tt)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A model with one float input `x` of shape `dims` (-1: symbolic "N") and one output `y`.
fn model(
    opset: i64,
    dims: &[i64],
    nodes: Vec<proto::NodeProto>,
    inits: Vec<proto::TensorProto>,
) -> proto::ModelProto {
    let graph = proto::GraphProto {
        node: nodes,
        name: Some("t".into()),
        initializer: inits,
        input: vec![vi("x", 1, dims)],
        output: vec![proto::ValueInfoProto { name: Some("y".into()), ..Default::default() }],
        ..Default::default()
    };
    proto::ModelProto {
        ir_version: Some(7),
        opset_import: vec![proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        graph: Some(graph),
        ..Default::default()
    }
}

fn encode(m: &proto::ModelProto) -> Vec<u8> {
    prost::Message::encode_to_vec(m)
}

fn i64s(name: &str, v: &[i64]) -> proto::TensorProto {
    onnx::tensor_to_proto(name, &Tensor::from_vec(vec![v.len()], v.to_vec()))
}

/// The single node's op and its inputs' constant values (`None` for run-time or absent inputs).
fn only_node(g: &Graph) -> (Op, Vec<Option<Vec<f64>>>) {
    let (_, n) = g.live_nodes().last().unwrap();
    let ins =
        n.inputs.iter().map(|i| i.and_then(|v| g.fact(v).konst.as_ref().map(|t| t.to_f64_vec()))).collect();
    (n.op.clone(), ins)
}

/// Old-opset attribute forms become inputs, with the newest opset's meaning; each model and
/// its opset-21 export agree in onnxruntime.
#[test]
fn legacy_opsets_normalise_and_export() {
    let dir = tmp_dir("legacy");
    fn f(v: &[f64]) -> Option<Vec<f64>> {
        Some(v.to_vec())
    }
    type Check = fn(&Graph);
    let cases: Vec<(&str, proto::ModelProto, Check)> = vec![
        (
            "softmax_opset11_axis1",
            model(11, &[2, 3, 4], vec![node("Softmax", &["x"], &["y"], vec![])], vec![]),
            |g| assert_eq!(only_node(g).0, Op::Softmax { axis: 1, log: false, legacy: true }),
        ),
        (
            "logsoftmax_opset12_last",
            model(12, &[2, 3, 4], vec![node("LogSoftmax", &["x"], &["y"], vec![a_int("axis", 2)])], vec![]),
            |g| assert_eq!(only_node(g).0, Op::Softmax { axis: 2, log: true, legacy: false }),
        ),
        (
            "softmax_opset13",
            model(13, &[2, 3, 4], vec![node("Softmax", &["x"], &["y"], vec![])], vec![]),
            |g| assert_eq!(only_node(g).0, Op::Softmax { axis: -1, log: false, legacy: false }),
        ),
        (
            "clip_opset10",
            model(
                10,
                &[2, 5],
                vec![node("Clip", &["x"], &["y"], vec![a_float("min", -1.0), a_float("max", 0.5)])],
                vec![],
            ),
            |g| assert_eq!(only_node(g), (Op::Clip, vec![None, Some(vec![-1.0]), Some(vec![0.5])])),
        ),
        (
            "clip_opset10_max_only",
            model(10, &[2, 5], vec![node("Clip", &["x"], &["y"], vec![a_float("max", 0.5)])], vec![]),
            |g| assert_eq!(only_node(g), (Op::Clip, vec![None, None, Some(vec![0.5])])),
        ),
        (
            "squeeze_opset11",
            model(11, &[2, 1, 3], vec![node("Squeeze", &["x"], &["y"], vec![a_ints("axes", &[1])])], vec![]),
            |g| assert_eq!(only_node(g), (Op::Squeeze, vec![None, Some(vec![1.0])])),
        ),
        (
            "unsqueeze_opset9",
            model(9, &[2, 3], vec![node("Unsqueeze", &["x"], &["y"], vec![a_ints("axes", &[0, 3])])], vec![]),
            |g| assert_eq!(only_node(g), (Op::Unsqueeze, vec![None, Some(vec![0.0, 3.0])])),
        ),
        (
            "slice_opset9",
            model(
                9,
                &[4, 6],
                vec![node(
                    "Slice",
                    &["x"],
                    &["y"],
                    vec![a_ints("starts", &[1]), a_ints("ends", &[5]), a_ints("axes", &[1])],
                )],
                vec![],
            ),
            |g| {
                assert_eq!(
                    only_node(g),
                    (Op::Slice, vec![None, Some(vec![1.0]), Some(vec![5.0]), Some(vec![1.0])])
                )
            },
        ),
        (
            "pad_opset10",
            model(
                10,
                &[2, 3],
                vec![node("Pad", &["x"], &["y"], vec![a_ints("pads", &[0, 1, 1, 2]), a_float("value", 1.5)])],
                vec![],
            ),
            |g| {
                let (op, ins) = only_node(g);
                assert_eq!(op, Op::Pad(pare::ir::PadMode::Constant));
                assert_eq!(ins, vec![None, Some(vec![0.0, 1.0, 1.0, 2.0]), Some(vec![1.5])]);
            },
        ),
        (
            "split_opset11",
            model(
                11,
                &[2, 6],
                vec![
                    node("Split", &["x"], &["a", "b"], vec![a_int("axis", 1), a_ints("split", &[2, 4])]),
                    node("Concat", &["b", "a"], &["y"], vec![a_int("axis", 1)]),
                ],
                vec![],
            ),
            |g| {
                let (_, n) = g.live_nodes().next().unwrap();
                assert_eq!(n.op, Op::Split { axis: 1, num_outputs: 2 });
                assert_eq!(
                    g.fact(n.inputs[1].unwrap()).konst.as_ref().unwrap().to_i64_vec().unwrap(),
                    vec![2, 4]
                );
                assert_eq!(g.value(n.outputs[1]).name, "b");
            },
        ),
        (
            "upsample_opset7",
            model(
                7,
                &[1, 1, 2, 3],
                vec![node("Upsample", &["x"], &["y"], vec![a_floats("scales", &[1.0, 1.0, 2.0, 3.0])])],
                vec![],
            ),
            |g| {
                let (op, ins) = only_node(g);
                let Op::Resize(r) = op else { panic!("{op:?}") };
                assert_eq!(r.coord_mode, "asymmetric");
                assert_eq!(ins, vec![None, None, Some(vec![1.0, 1.0, 2.0, 3.0])]);
            },
        ),
        (
            "upsample_opset9",
            model(
                9,
                &[1, 1, 2, 3],
                vec![node("Upsample", &["x", "s"], &["y"], vec![])],
                vec![onnx::tensor_to_proto("s", &Tensor::from_vec(vec![4], vec![1f32, 1., 3., 2.]))],
            ),
            |g| assert_eq!(only_node(g).1, vec![None, None, f(&[1.0, 1.0, 3.0, 2.0])]),
        ),
        (
            "resize_opset10_linear",
            model(
                10,
                &[1, 1, 3, 4],
                vec![node("Resize", &["x", "s"], &["y"], vec![a_str("mode", "linear")])],
                vec![onnx::tensor_to_proto("s", &Tensor::from_vec(vec![4], vec![1f32, 1., 2., 2.]))],
            ),
            |g| {
                let Op::Resize(r) = only_node(g).0 else { panic!() };
                assert_eq!((r.mode, r.coord_mode.as_str()), (pare::ir::ResizeMode::Linear, "asymmetric"));
            },
        ),
        (
            "reducesum_opset11_axes",
            model(
                11,
                &[2, 3, 4],
                vec![node("ReduceSum", &["x"], &["y"], vec![a_ints("axes", &[1]), a_int("keepdims", 0)])],
                vec![],
            ),
            |g| assert_eq!(only_node(g).1, vec![None, f(&[1.0])]),
        ),
        (
            "reducemean_opset13_all",
            model(13, &[2, 3], vec![node("ReduceMean", &["x"], &["y"], vec![])], vec![]),
            |g| assert_eq!(only_node(g).1, vec![None]),
        ),
        (
            "dropout_opset10_and_leakyrelu",
            model(
                10,
                &[-1, 3],
                vec![
                    node("Dropout", &["x"], &["d", "mask"], vec![a_float("ratio", 0.3)]),
                    node("LeakyRelu", &["d"], &["y"], vec![]),
                ],
                vec![],
            ),
            |g| {
                let ops: Vec<Op> = g.live_nodes().map(|(_, n)| n.op.clone()).collect();
                assert_eq!(
                    ops,
                    vec![Op::Dropout { ratio: 0.3 }, Op::Unary(pare::ir::Unary::LeakyRelu(0.01))]
                );
            },
        ),
        (
            "constant_node_and_shape_chain",
            model(
                13,
                &[2, 3, 4],
                vec![
                    node("Shape", &["x"], &["s"], vec![]),
                    node("Gather", &["s", "i"], &["s1"], vec![a_int("axis", 0)]),
                    node("Unsqueeze", &["s1", "zero"], &["s1u"], vec![]),
                    proto::NodeProto {
                        attribute: vec![proto::AttributeProto {
                            name: Some("value".into()),
                            r#type: Some(4),
                            t: Some(i64s("", &[-1])),
                            ..Default::default()
                        }],
                        ..node("Constant", &[], &["m1"], vec![])
                    },
                    node("Concat", &["m1", "s1u"], &["shape"], vec![a_int("axis", 0)]),
                    node("Reshape", &["x", "shape"], &["y"], vec![]),
                ],
                vec![onnx::tensor_to_proto("i", &Tensor::scalar(2i64)), i64s("zero", &[0])],
            ),
            |g| {
                // the input's shape is known: the chain folds to a constant [-1, 4]
                assert_eq!(
                    g.node_count(),
                    1,
                    "{:?}",
                    g.live_nodes().map(|(_, n)| n.op.clone()).collect::<Vec<_>>()
                );
                assert_eq!(only_node(g).1, vec![None, Some(vec![-1.0, 4.0])]);
                assert_eq!(g.fact(g.outputs()[0]).shape, known_shape(&[6, 4]));
            },
        ),
    ];
    let mut pairs = Vec::new();
    let mut failures = Vec::new();
    for (name, m, check) in cases {
        let orig = dir.join(format!("{name}.onnx"));
        std::fs::write(&orig, encode(&m)).unwrap();
        let res = std::panic::catch_unwind(|| {
            let g = onnx::load(&orig).unwrap();
            g.verify().unwrap();
            check(&g);
            let exp = dir.join(format!("{name}.out.onnx"));
            onnx::save(&g, &exp).unwrap();
            let back = onnx::load(&exp).unwrap();
            back.verify().unwrap();
            exp
        });
        match res {
            Ok(exp) => pairs.push((orig, exp)),
            Err(e) => {
                let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
                failures.push(format!("{name}: {msg}"));
            }
        }
    }
    ort_check(&pairs);
    assert!(failures.is_empty(), "failed cases:\n{}", failures.join("\n"));
}

/// A Conv with a fused activation exports as two nodes; a legacy Softmax at an inner axis
/// exports as Flatten -> Softmax -> Reshape; constant and input outputs get Identity nodes.
#[test]
fn export_expansions() {
    use pare::ir::{Act, AutoPad, Conv};
    use pare::tensor::DType;
    let mut g = Graph::new();
    let x =
        g.add_input("x", DType::F32, vec![Dim::Sym("N".into()), Dim::Known(2), Dim::Known(5), Dim::Known(5)]);
    let w = g.add_const(
        "w",
        Tensor::from_vec(vec![3, 2, 3, 3], (0..54).map(|i| (i as f32 - 27.0) / 20.0).collect()),
    );
    let conv = Conv {
        kernel: vec![3, 3],
        strides: vec![],
        dilations: vec![],
        pads: vec![1, 1, 1, 1],
        auto_pad: AutoPad::NotSet,
        group: 1,
        act: Act::Clip { min: 0.0, max: 0.5 },
    };
    let c = g.add_node("conv", Op::Conv(conv), vec![Some(x), Some(w)]).unwrap()[0];
    let s = g.add_node("sm", Op::Softmax { axis: 1, log: false, legacy: true }, vec![Some(c)]).unwrap()[0];
    let k = g.add_const("k", Tensor::from_vec(vec![2], vec![1i64, 2]));
    g.set_outputs(vec![s, k, x, s]);
    let bytes = onnx::to_bytes(&g).unwrap();
    let m: proto::ModelProto = prost::Message::decode(bytes.as_slice()).unwrap();
    let gp = m.graph.as_ref().unwrap();
    let ops: Vec<&str> = gp.node.iter().map(|n| n.op_type.as_deref().unwrap()).collect();
    assert_eq!(
        ops,
        ["Conv", "Clip", "Flatten", "Softmax", "Shape", "Reshape", "Identity", "Identity", "Identity"]
    );
    let outs: Vec<&str> = gp.output.iter().map(|o| o.name.as_deref().unwrap()).collect();
    assert_eq!(outs, ["sm", "k", "x_out", "sm_out"]);
    assert_eq!(m.opset_import[0].version, Some(21));
    let back = onnx::load_bytes(&bytes).unwrap();
    back.verify().unwrap();
    assert_eq!(back.node_count(), 8);
    assert_eq!(back.fact(back.outputs()[0]).rank(), 4);
    assert_eq!(back.fact(back.outputs()[1]).konst, g.fact(k).konst);

    let dir = tmp_dir("expansions");
    let p = dir.join("fused.onnx");
    onnx::save(&g, &p).unwrap();
    if have_python() {
        // Reference: the same computation written directly with numpy.
        let py = r#"
import sys, numpy as np, onnx, onnxruntime as ort
p = sys.argv[1]
onnx.checker.check_model(onnx.load(p), full_check=True)
s = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
x = np.random.default_rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
y, k, xo, y2 = s.run(None, {"x": x})
w = ((np.arange(54, dtype=np.float32) - 27) / 20).reshape(3, 2, 3, 3)
xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
c = np.zeros((2, 3, 5, 5), np.float32)
for i in range(5):
    for j in range(5):
        c[:, :, i, j] = np.einsum("nchw,ochw->no", xp[:, :, i:i + 3, j:j + 3], w)
c = np.clip(c, 0, 0.5).reshape(2, -1)
e = np.exp(c - c.max(1, keepdims=True))
ref = (e / e.sum(1, keepdims=True)).reshape(2, 3, 5, 5)
assert np.allclose(y, ref, atol=1e-5), np.abs(y - ref).max()
assert (y == y2).all() and (xo == x).all() and k.tolist() == [1, 2]
"#;
        let out = Command::new("python3").args(["-c", py]).arg(&p).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn malformed_files_are_clear_errors() {
    let dir = tmp_dir("malformed");
    // garbage
    let p = dir.join("garbage.onnx");
    std::fs::write(&p, b"this is not an onnx model at all\n").unwrap();
    let e = format!("{}", onnx::load(&p).unwrap_err());
    assert!(e.starts_with(&p.display().to_string()) && e.contains("is not an ONNX model"), "{e}");
    // empty file: decodes as an empty message, which has no graph
    std::fs::write(&p, b"").unwrap();
    let e = format!("{}", onnx::load(&p).unwrap_err());
    assert!(e.contains("is not an ONNX model"), "{e}");
    // missing file
    let e = format!("{}", onnx::load(&dir.join("nope.onnx")).unwrap_err());
    assert!(e.contains("nope.onnx") && e.contains("cannot read"), "{e}");
    // truncated: a real model cut in the middle
    let m = model(13, &[2], vec![node("Relu", &["x"], &["y"], vec![])], vec![i64s("big", &[7; 100])]);
    let bytes = encode(&m);
    for cut in [bytes.len() / 2, bytes.len() - 3] {
        let e = format!("{:#}", onnx::load_bytes(&bytes[..cut]).unwrap_err());
        assert!(e.contains("is not an ONNX model"), "cut at {cut}: {e}");
    }
    onnx::load_bytes(&bytes).unwrap();
    // absurd sizes
    let mut big = i64s("huge", &[]);
    big.dims = vec![1 << 20, 1 << 20, 1 << 10];
    let m = model(13, &[2], vec![node("Relu", &["x"], &["y"], vec![])], vec![big]);
    let e = format!("{:#}", onnx::load_bytes(&encode(&m)).unwrap_err());
    assert!(e.contains("huge") && e.contains("2^34"), "{e}");
    // data shorter than the shape
    let mut short = i64s("short", &[1, 2, 3]);
    short.dims = vec![4];
    let m = model(13, &[2], vec![node("Relu", &["x"], &["y"], vec![])], vec![short]);
    let e = format!("{:#}", onnx::load_bytes(&encode(&m)).unwrap_err());
    assert!(e.contains("short") && e.contains("raw_data has 24 bytes"), "{e}");
    // no outputs
    let mut m = model(13, &[2], vec![node("Relu", &["x"], &["y"], vec![])], vec![]);
    m.graph.as_mut().unwrap().output.clear();
    let e = format!("{:#}", onnx::load_bytes(&encode(&m)).unwrap_err());
    assert!(e.contains("no outputs"), "{e}");
    // undefined input, with the node named
    let m = model(13, &[2], vec![node("Add", &["x", "ghost"], &["y"], vec![])], vec![]);
    let e = format!("{:#}", onnx::load_bytes(&encode(&m)).unwrap_err());
    assert!(e.contains("Add \"Add_y\"") && e.contains("ghost"), "{e}");
    // opset too old
    let m = model(6, &[2], vec![node("Relu", &["x"], &["y"], vec![])], vec![]);
    let e = format!("{:#}", onnx::load_bytes(&encode(&m)).unwrap_err());
    assert!(e.contains("opset 6"), "{e}");
    // unsupported dtype of an input
    let mut m = model(13, &[2], vec![node("Relu", &["x"], &["y"], vec![])], vec![]);
    m.graph.as_mut().unwrap().input[0] = vi("x", 16, &[2]);
    let e = format!("{:#}", onnx::load_bytes(&encode(&m)).unwrap_err());
    assert!(e.contains("BFLOAT16"), "{e}");
}

#[test]
fn unsupported_ops_are_all_listed() {
    let mut nodes = vec![
        node("LSTM", &["x"], &["a"], vec![]),
        node("Relu", &["a"], &["b"], vec![]),
        node("NonMaxSuppression", &["b"], &["c"], vec![]),
        node("LSTM", &["c"], &["d"], vec![]),
        node("Relu", &["d"], &["y"], vec![]),
    ];
    let mut fused = node("FusedConv", &["x"], &["z"], vec![]);
    fused.domain = Some("com.microsoft".into());
    nodes.push(fused);
    let m = model(17, &[2], nodes, vec![]);
    let dir = tmp_dir("unsupported");
    let p = dir.join("model.onnx");
    std::fs::write(&p, encode(&m)).unwrap();
    let e = format!("{}", onnx::load(&p).unwrap_err());
    assert_eq!(
        e,
        format!("{}: unsupported ops: LSTM (x2), NonMaxSuppression, com.microsoft.FusedConv", p.display())
    );
}

#[test]
fn nodes_out_of_order_are_sorted() {
    let m = model(
        13,
        &[2, 3],
        vec![node("Relu", &["t"], &["y"], vec![]), node("Neg", &["x"], &["t"], vec![])],
        vec![],
    );
    let g = onnx::load_bytes(&encode(&m)).unwrap();
    let ops: Vec<&str> = g.topo_order().unwrap().iter().map(|&n| g.node(n).unwrap().op.onnx_name()).collect();
    assert_eq!(ops, ["Neg", "Relu"]);
    assert_eq!(g.value(g.outputs()[0]).name, "y");
    assert!(g.find("t").is_some());
}

#[test]
fn node_suite_tensors() {
    let Some(suite) = common::node_suite() else {
        common::skip(
            "ONNX node test suite not found (set PARE_NODE_TESTS or run scripts/setup_python.sh and \
             scripts/gen_node_tests.sh to write target/onnx-node-tests/node)",
        );
        return;
    };
    let dir = suite.join("test_conv_with_strides_padding/test_data_set_0");
    assert!(dir.is_dir(), "the node suite at {} has no {}", suite.display(), dir.display());
    let (name, x) = onnx::read_tensor_pb(&dir.join("input_0.pb")).unwrap();
    assert_eq!(name, "x");
    assert_eq!(x.shape(), &[1, 1, 7, 5]);
    assert_eq!(x.f32s().unwrap()[..3], [0.0, 1.0, 2.0]);
    let (_, y) = onnx::read_tensor_pb(&dir.join("output_0.pb")).unwrap();
    assert_eq!(y.shape(), &[1, 1, 4, 3]);
    // the case's model imports too
    let g = onnx::load(&dir.parent().unwrap().join("model.onnx")).unwrap();
    assert_eq!(g.fact(g.outputs()[0]).shape, known_shape(&[1, 1, 4, 3]));
}
