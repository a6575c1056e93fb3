//! Unit tests of the runtime's plan (values with several readers, outputs that are
//! constants, inputs or repeated) against a plain node-by-node evaluation, and of
//! `profile::model_stats` against hand-computed costs.

mod common;

use common::naive_eval;
use pare::ir::{Binary, Builder, Graph, Init, Op, Unary, known_shape};
use pare::profile::model_stats;
use pare::runtime::{RunOptions, Runtime};
use pare::tensor::{DType, Tensor};

/// The runtime (with and without optimisation) gives exactly the node-by-node result, and
/// running twice gives the same again (nothing the plan moves out is needed later).
fn same_as_naive(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let want = naive_eval(g, inputs).unwrap();
    for optimize in [false, true] {
        let rt = Runtime::new(g.clone(), RunOptions { threads: 1, optimize }).unwrap();
        for attempt in 0..2 {
            let got = rt.run(inputs.to_vec()).unwrap();
            assert_eq!(got, want, "optimize: {optimize}, run {attempt}");
        }
    }
    want
}

fn x_data() -> Tensor {
    Tensor::from_vec(vec![2, 3], vec![-1.5f32, 0.0, 2.0, -0.25, 3.0, -4.0])
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.f32s().unwrap().to_vec()
}

#[test]
fn value_read_twice_and_an_output_is_not_moved_away() {
    // a = relu(x) is read by Sigmoid, by Add (twice: a + a), by Mul, and is an output.
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[2, 3]));
    let a = g.add_node("a", Op::Unary(Unary::Relu), vec![Some(x)]).unwrap()[0];
    let s = g.add_node("s", Op::Unary(Unary::Sigmoid), vec![Some(a)]).unwrap()[0];
    let d = g.add_node("d", Op::Binary(Binary::Add), vec![Some(a), Some(a)]).unwrap()[0];
    let m = g.add_node("m", Op::Binary(Binary::Mul), vec![Some(d), Some(a)]).unwrap()[0];
    let y = g.add_node("y", Op::Binary(Binary::Add), vec![Some(m), Some(s)]).unwrap()[0];
    // the input is read again by the last node, after everything else
    let z = g.add_node("z", Op::Binary(Binary::Sub), vec![Some(y), Some(x)]).unwrap()[0];
    g.set_outputs(vec![z, a]);
    g.verify().unwrap();
    let out = same_as_naive(&g, &[x_data()]);
    let xs = f32s(&x_data());
    let relu: Vec<f32> = xs.iter().map(|v| v.max(0.0)).collect();
    assert_eq!(f32s(&out[1]), relu, "the output a = relu(x)");
    let want: Vec<f32> =
        xs.iter().zip(&relu).map(|(x, a)| (a + a) * a + 1.0 / (1.0 + (-a).exp()) - x).collect();
    for (got, want) in f32s(&out[0]).iter().zip(&want) {
        assert!((got - want).abs() < 1e-5, "z: {got} vs {want}");
    }
}

#[test]
fn outputs_that_are_a_constant_and_an_input() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[2, 3]));
    let k = g.add_const("k", Tensor::from_vec(vec![3], vec![7f32, 8., 9.]));
    // x is an output and also read by an op that may work in place
    let r = g.add_node("r", Op::Unary(Unary::Relu), vec![Some(x)]).unwrap()[0];
    let n = g.add_node("n", Op::Unary(Unary::Neg), vec![Some(r)]).unwrap()[0];
    g.set_outputs(vec![k, x, n]);
    g.verify().unwrap();
    let out = same_as_naive(&g, &[x_data()]);
    assert_eq!(out[0], Tensor::from_vec(vec![3], vec![7f32, 8., 9.]));
    assert_eq!(out[1], x_data(), "the input comes back unchanged");
    assert_eq!(f32s(&out[2]), vec![-0.0, -0.0, -2.0, -0.0, -3.0, -0.0]);

    // only a constant and an input, no node at all
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[2, 3]));
    let k = g.add_const("k", Tensor::scalar(1.5f32));
    g.set_outputs(vec![x, k]);
    g.verify().unwrap();
    let out = same_as_naive(&g, &[x_data()]);
    assert_eq!(out, vec![x_data(), Tensor::scalar(1.5f32)]);
}

#[test]
fn an_output_listed_twice() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[2, 3]));
    let y = g.add_node("y", Op::Unary(Unary::Abs), vec![Some(x)]).unwrap()[0];
    let z = g.add_node("z", Op::Unary(Unary::Neg), vec![Some(y)]).unwrap()[0];
    g.set_outputs(vec![y, z, y, x, x]);
    g.verify().unwrap();
    let out = same_as_naive(&g, &[x_data()]);
    assert_eq!(out.len(), 5);
    let abs: Vec<f32> = f32s(&x_data()).iter().map(|v| v.abs()).collect();
    assert_eq!(f32s(&out[0]), abs);
    assert_eq!(out[2], out[0]);
    assert_eq!(f32s(&out[1]), abs.iter().map(|v| -v).collect::<Vec<_>>());
    assert_eq!(out[3], x_data());
    assert_eq!(out[4], x_data());
}

/// x [1,2,5,5] → Conv(2→4, 3x3, stride 2, pad 1, groups 2, bias) → Relu → Flatten → Gemm(36→5).
fn small_net() -> Graph {
    let mut b = Builder::seeded(3);
    let x = b.input("x", DType::F32, known_shape(&[1, 2, 5, 5]));
    let c = b.conv("conv", x, 4, 3, 2, 1, 2, true, Init::Lecun).unwrap();
    let r = b.relu("relu", c).unwrap();
    let f = b.flatten("flatten", r).unwrap();
    let y = b.fc("fc", f, 5, Init::Lecun).unwrap();
    b.finish(&[y]).unwrap()
}

#[test]
fn model_stats_match_hand_counts() {
    let g = small_net();
    let s = model_stats(&g).unwrap();
    // Conv: weight [4, 2/2, 3, 3] = 36 + bias 4; output [1,4,3,3] = 36 elements, each
    // 1 * 3 * 3 = 9 MACs (Cin/groups * k * k).
    // Gemm: weight [5, 36] = 180 + bias 5; output [1,5], each 36 MACs (K).
    let names: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv", "relu", "flatten", "fc"]);
    let ops: Vec<&str> = s.layers.iter().map(|l| l.op.as_str()).collect();
    assert_eq!(ops, ["Conv", "Relu", "Flatten", "Gemm"]);
    let shapes: Vec<&str> = s.layers.iter().map(|l| l.output_shape.as_str()).collect();
    assert_eq!(shapes, ["[1,4,3,3]", "[1,4,3,3]", "[1,36]", "[1,5]"]);
    let params: Vec<u64> = s.layers.iter().map(|l| l.params).collect();
    assert_eq!(params, [40, 0, 0, 185]);
    let macs: Vec<u64> = s.layers.iter().map(|l| l.macs).collect();
    assert_eq!(macs, [36 * 9, 0, 0, 5 * 36]);
    let wbytes: Vec<u64> = s.layers.iter().map(|l| l.weight_bytes).collect();
    assert_eq!(wbytes, [40 * 4, 0, 0, 185 * 4]);
    let abytes: Vec<u64> = s.layers.iter().map(|l| l.activation_bytes).collect();
    assert_eq!(abytes, [144, 144, 144, 20]);
    assert_eq!(s.params, 225);
    assert_eq!(s.macs, 324 + 180);
    assert_eq!(s.weight_bytes, 900);
    assert_eq!(s.activation_bytes, 144 * 3 + 20);
    assert_eq!(s.nodes, 4);
    // Peak: while the Conv runs, its input x (2*5*5*4 = 200 bytes) and its output (144)
    // are both alive; later steps hold at most 144 + 144.
    assert_eq!(s.peak_activation_bytes, 200 + 144);
}

#[test]
fn peak_activation_counts_values_alive_across_a_branch() {
    // x → a = relu(x) → b = sigmoid(a) → c = a + b: while c is computed, a, b and c are
    // all alive (x died after relu). Each is 2*8 floats = 64 bytes.
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[2, 8]));
    let a = g.add_node("a", Op::Unary(Unary::Relu), vec![Some(x)]).unwrap()[0];
    let b = g.add_node("b", Op::Unary(Unary::Sigmoid), vec![Some(a)]).unwrap()[0];
    let c = g.add_node("c", Op::Binary(Binary::Add), vec![Some(a), Some(b)]).unwrap()[0];
    g.set_outputs(vec![c]);
    let s = model_stats(&g).unwrap();
    let order: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(order, ["a", "b", "c"]);
    assert_eq!(s.peak_activation_bytes, 3 * 64);
    assert_eq!((s.params, s.macs, s.weight_bytes, s.activation_bytes), (0, 0, 0, 3 * 64));
    // without the branch (c = b + b) a dies after b, and the peak is two values
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[2, 8]));
    let a = g.add_node("a", Op::Unary(Unary::Relu), vec![Some(x)]).unwrap()[0];
    let b = g.add_node("b", Op::Unary(Unary::Sigmoid), vec![Some(a)]).unwrap()[0];
    let c = g.add_node("c", Op::Binary(Binary::Add), vec![Some(b), Some(b)]).unwrap()[0];
    g.set_outputs(vec![c]);
    assert_eq!(model_stats(&g).unwrap().peak_activation_bytes, 2 * 64);
}

fn close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (a, b)) in f32s(got).iter().zip(f32s(want)).enumerate() {
        assert!((a - b).abs() <= tol * b.abs().max(1.0), "{what}[{i}]: {a} vs {b}");
    }
}

fn spread(shape: &[usize], lo: f32, hi: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n).map(|i| lo + (hi - lo) * ((i * 7919) % n) as f32 / n as f32).collect();
    Tensor::from_vec(shape.to_vec(), v)
}

/// PyTorch's exported exact GELU, `((x / √2) → Erf → + 1) · x · 0.5`, in three operand
/// orders; `erf_is_output` makes the intermediate an output, which must block the fusion.
fn gelu_graph(variant: usize, erf_is_output: bool) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[3, 700]));
    let c = |g: &mut Graph, name: &str, v: f32| g.add_const(name, Tensor::scalar(v));
    let d = if variant == 2 {
        let r = c(&mut g, "r", std::f32::consts::FRAC_1_SQRT_2);
        g.add_node("div", Op::Binary(Binary::Mul), vec![Some(r), Some(x)]).unwrap()[0]
    } else {
        let s = c(&mut g, "s", std::f32::consts::SQRT_2);
        g.add_node("div", Op::Binary(Binary::Div), vec![Some(x), Some(s)]).unwrap()[0]
    };
    let e = g.add_node("erf", Op::Unary(Unary::Erf), vec![Some(d)]).unwrap()[0];
    let one = c(&mut g, "one", 1.0);
    let a = g.add_node("add", Op::Binary(Binary::Add), vec![Some(one), Some(e)]).unwrap()[0];
    let half = c(&mut g, "half", 0.5);
    let y = if variant == 1 {
        let h = g.add_node("m1", Op::Binary(Binary::Mul), vec![Some(a), Some(half)]).unwrap()[0];
        g.add_node("m2", Op::Binary(Binary::Mul), vec![Some(x), Some(h)]).unwrap()[0]
    } else {
        let m = g.add_node("m1", Op::Binary(Binary::Mul), vec![Some(x), Some(a)]).unwrap()[0];
        g.add_node("m2", Op::Binary(Binary::Mul), vec![Some(m), Some(half)]).unwrap()[0]
    };
    g.set_outputs(if erf_is_output { vec![y, e] } else { vec![y] });
    g.verify().unwrap();
    g
}

#[test]
fn exported_gelu_chain_runs_as_one_step() {
    let x = spread(&[3, 700], -6.0, 6.0);
    for variant in 0..3 {
        let g = gelu_graph(variant, false);
        let want = naive_eval(&g, std::slice::from_ref(&x)).unwrap();
        let rt = Runtime::new(g, RunOptions { threads: 2, optimize: true }).unwrap();
        let (got, steps) = rt.profile(vec![x.clone()]).unwrap();
        close(&got[0], &want[0], 1e-6, &format!("gelu variant {variant}"));
        let ops: Vec<&str> = steps.iter().map(|s| s.op.as_str()).collect();
        assert_eq!(ops, ["Gelu"], "variant {variant}: five nodes become one step");
        assert_eq!(steps[0].name, "div+erf+add+m1+m2");
    }
    // An intermediate that is also an output keeps the chain apart, and exact.
    let g = gelu_graph(0, true);
    let rt = Runtime::new(g.clone(), RunOptions { threads: 2, optimize: true }).unwrap();
    let (got, steps) = rt.profile(vec![x.clone()]).unwrap();
    assert!(steps.iter().all(|s| s.op != "Gelu"), "{steps:?}");
    assert_eq!(got, naive_eval(&g, &[x]).unwrap());
}

/// The multiversioned element loops (AVX-512, AVX2, baseline) agree with the node-by-node
/// evaluation on every instruction set this CPU has, forced one at a time.
#[test]
fn element_kernels_on_every_isa() {
    use pare_kernels::{Isa, detected_isa, force_isa};
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[4, 1000]));
    let mut outs = Vec::new();
    for (name, u) in [
        ("exp", Unary::Exp),
        ("erf", Unary::Erf),
        ("tanh", Unary::Tanh),
        ("gelu", Unary::Gelu { tanh: false }),
    ] {
        outs.push(g.add_node(name, Op::Unary(u), vec![Some(x)]).unwrap()[0]);
    }
    let s = g.add_node("sig", Op::Unary(Unary::Sigmoid), vec![Some(x)]).unwrap()[0];
    outs.push(g.add_node("silu", Op::Binary(Binary::Mul), vec![Some(x), Some(s)]).unwrap()[0]);
    let sm = Op::Softmax { axis: -1, log: false, legacy: false };
    outs.push(g.add_node("softmax", sm, vec![Some(x)]).unwrap()[0]);
    g.set_outputs(outs);
    g.verify().unwrap();
    let x = spread(&[4, 1000], -12.0, 12.0);
    let want = naive_eval(&g, std::slice::from_ref(&x)).unwrap();
    let rt = Runtime::new(g, RunOptions { threads: 2, optimize: true }).unwrap();
    let isas = [Isa::Scalar, Isa::Avx2, Isa::Avx512];
    for isa in isas.into_iter().filter(|i| *i <= detected_isa()) {
        force_isa(Some(isa));
        let got = rt.run(vec![x.clone()]);
        force_isa(None);
        for (i, (got, want)) in got.unwrap().iter().zip(&want).enumerate() {
            close(got, want, 2e-6, &format!("{isa:?} output {i}"));
        }
    }
}
