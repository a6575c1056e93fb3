//! A QDQ model (int8 weights behind DequantizeLinear, activations through Q→DQ and a
//! FakeQuant) survives build → export → import → export with its integer weights intact,
//! and onnxruntime computes what pare computes.

mod common;

use pare::ir::{Act, AutoPad, Conv, Graph, Op, Unary, known_shape};
use pare::onnx::{self, proto};
use pare::runtime::{RunOptions, Runtime};
use pare::tensor::{DType, Tensor, read_npz, write_npz};

fn qdq_model() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[1, 3, 4, 4]));
    let sx = g.add_const("x_scale", Tensor::scalar(0.02f32));
    let zx = g.add_const("x_zp", Tensor::scalar(128u8));
    let xq = g
        .add_node("x_q", Op::QuantizeLinear { axis: 1, to: DType::U8 }, vec![Some(x), Some(sx), Some(zx)])
        .unwrap()[0];
    let xd =
        g.add_node("x_dq", Op::DequantizeLinear { axis: 1 }, vec![Some(xq), Some(sx), Some(zx)]).unwrap()[0];
    let wq: Vec<i8> = (0..4 * 3 * 9).map(|i: i32| ((i * 37) % 255 - 127) as i8).collect();
    let w = g.add_const("w_int8", Tensor::from_vec(vec![4, 3, 3, 3], wq));
    let sw = g.add_const("w_scale", Tensor::from_vec(vec![4], vec![0.01f32, 0.02, 0.005, 0.015]));
    let wd = g.add_node("w_dq", Op::DequantizeLinear { axis: 0 }, vec![Some(w), Some(sw)]).unwrap()[0];
    let b = g.add_const("b", Tensor::from_vec(vec![4], vec![0.1f32, -0.2, 0.0, 0.3]));
    let conv = Op::Conv(Conv {
        kernel: vec![3, 3],
        strides: vec![],
        dilations: vec![],
        pads: vec![1; 4],
        auto_pad: AutoPad::NotSet,
        group: 1,
        act: Act::None,
    });
    let y = g.add_node("conv", conv, vec![Some(xd), Some(wd), Some(b)]).unwrap()[0];
    let r = g.add_node("relu", Op::Unary(Unary::Relu), vec![Some(y)]).unwrap()[0];
    let so = g.add_const("y_scale", Tensor::scalar(0.05f32));
    let zo = g.add_const("y_zp", Tensor::scalar(0u8));
    let out = g
        .add_node("y_fq", Op::FakeQuant { axis: 1, to: DType::U8 }, vec![Some(r), Some(so), Some(zo)])
        .unwrap()[0];
    g.set_outputs(vec![out]);
    g.verify().unwrap();
    g
}

fn int8_initializer(m: &proto::ModelProto, name: &str) -> Option<Vec<u8>> {
    let gp = m.graph.as_ref()?;
    let t = gp.initializer.iter().find(|t| t.name.as_deref() == Some(name))?;
    assert_eq!(t.data_type, Some(3), "{name} must stay INT8 (ONNX type 3)");
    let t = onnx::tensor_from_proto(t).unwrap();
    Some(t.as_slice::<i8>().unwrap().iter().map(|&v| v as u8).collect())
}

fn ops(g: &Graph) -> Vec<&'static str> {
    g.topo_order().unwrap().iter().map(|&n| g.node(n).unwrap().op.onnx_name()).collect()
}

fn input() -> Tensor {
    Tensor::from_vec(vec![1, 3, 4, 4], (0..48).map(|i| ((i as f32) * 0.61).sin() * 2.0).collect::<Vec<_>>())
}

fn run(g: &Graph, optimize: bool) -> Vec<f32> {
    let rt = Runtime::new(g.clone(), RunOptions { threads: 1, optimize }).unwrap();
    rt.run(vec![input()]).unwrap()[0].f32s().unwrap().to_vec()
}

#[test]
fn qdq_weights_stay_integers_through_import_and_export() {
    let g = qdq_model();
    let want_w: Vec<u8> = g
        .fact(g.find("w_int8").unwrap())
        .konst
        .as_ref()
        .unwrap()
        .as_slice::<i8>()
        .unwrap()
        .iter()
        .map(|&v| v as u8)
        .collect();
    let bytes = onnx::to_bytes(&g).unwrap();
    let m: proto::ModelProto = prost::Message::decode(bytes.as_slice()).unwrap();
    assert_eq!(int8_initializer(&m, "w_int8").unwrap(), want_w);
    let types: Vec<&str> =
        m.graph.as_ref().unwrap().node.iter().filter_map(|n| n.op_type.as_deref()).collect();
    // FakeQuant is written as a standard QuantizeLinear → DequantizeLinear pair.
    assert_eq!(types.iter().filter(|t| **t == "QuantizeLinear").count(), 2, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "DequantizeLinear").count(), 3, "{types:?}");
    assert!(!types.contains(&"FakeQuant"));

    // Import keeps the DequantizeLinear of the constant weight as a node.
    let back = onnx::load_bytes(&bytes).unwrap();
    let w = back.find("w_int8").expect("int8 weight kept by name");
    assert_eq!(back.fact(w).dtype, DType::I8);
    assert_eq!(ops(&back).iter().filter(|o| **o == "DequantizeLinear").count(), 3, "{:?}", ops(&back));
    // Export again: same integer bytes.
    let m2: proto::ModelProto = prost::Message::decode(onnx::to_bytes(&back).unwrap().as_slice()).unwrap();
    assert_eq!(int8_initializer(&m2, "w_int8").unwrap(), want_w);

    // The same outputs before and after, with and without the optimisation passes (which
    // must leave the quantized weight alone).
    let a = run(&g, false);
    assert_eq!(a, run(&back, false));
    assert_eq!(a, run(&back, true));
    assert!(a.iter().any(|v| *v > 0.0), "the test input must give non-zero outputs");
}

#[test]
fn onnxruntime_agrees_on_the_qdq_model() {
    if !common::have_python("numpy, onnxruntime") {
        return;
    }
    let tmp = common::TempDir::new("qdq");
    let model = tmp.0.join("qdq.onnx");
    onnx::save(&qdq_model(), &model).unwrap();
    let (inp, out) = (tmp.0.join("in.npz"), tmp.0.join("out.npz"));
    write_npz(&inp, &[("x".to_string(), input())]).unwrap();
    let res = std::process::Command::new(common::python())
        .arg(common::root().join("tests/py/ort_run.py"))
        .args([&model, &inp, &out])
        .output()
        .unwrap();
    assert!(res.status.success(), "onnxruntime failed: {}", String::from_utf8_lossy(&res.stderr));
    let ort = read_npz(&out).unwrap();
    let got = ort[0].1.f32s().unwrap().to_vec();
    let ours = run(&qdq_model(), false);
    assert_eq!(got.len(), ours.len());
    // Both quantize the output to multiples of 0.05; allow one step where rounding differs.
    let off = got.iter().zip(&ours).filter(|(a, b)| (*a - *b).abs() > 1e-6).count();
    let max = got.iter().zip(&ours).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max <= 0.05 + 1e-6 && off <= 2, "pare vs onnxruntime: {off} differ, max {max}");
}
