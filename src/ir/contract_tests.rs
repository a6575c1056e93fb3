//! Tests of the IR contract: patches (add, replace, rewire, remove) with downstream
//! re-inference, verification of dims, compaction, the folding policy, removed-node lookups.

use super::*;
use crate::runtime::{RunOptions, Runtime};

fn conv_op() -> Op {
    Op::Conv(Conv {
        kernel: vec![1, 1],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        auto_pad: AutoPad::NotSet,
        group: 1,
        act: Act::None,
    })
}

fn ramp(shape: &[usize], k: f32) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), (0..n).map(|i| ((i as f32) * 0.37 + k).sin()).collect::<Vec<_>>())
}

/// x [1,3,2,2] → conv1 (3→4) → relu → conv2 (4→2).
fn two_convs() -> (Graph, ValueId, ValueId, NodeId, NodeId) {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, known_shape(&[1, 3, 2, 2]));
    let w1 = g.add_const("w1", ramp(&[4, 3, 1, 1], 0.0));
    let w2 = g.add_const("w2", ramp(&[2, 4, 1, 1], 1.0));
    let h = g.add_node("conv1", conv_op(), vec![Some(x), Some(w1)]).unwrap()[0];
    let r = g.add_node("relu", Op::Unary(Unary::Relu), vec![Some(h)]).unwrap()[0];
    let y = g.add_node("conv2", conv_op(), vec![Some(r), Some(w2)]).unwrap()[0];
    g.set_outputs(vec![y]);
    let (c1, _) = g.value(h).producer.unwrap();
    let (c2, _) = g.value(y).producer.unwrap();
    (g, w1, w2, c1, c2)
}

fn run(g: &Graph, x: &Tensor) -> Vec<f32> {
    let rt = Runtime::new(g.clone(), RunOptions { threads: 1, optimize: false }).unwrap();
    rt.run(vec![x.clone()]).unwrap()[0].f32s().unwrap().to_vec()
}

#[test]
fn replacing_weights_reinfers_downstream_shapes() {
    let (mut g, w1, w2, c1, _) = two_convs();
    // Prune conv1 to 3 output channels: both weights change, every fact after follows.
    let mut p = Patch::new();
    p.replace_const(w1, ramp(&[3, 3, 1, 1], 0.0));
    p.replace_const(w2, ramp(&[2, 3, 1, 1], 1.0));
    p.apply(&mut g).unwrap();
    let h = g.node(c1).unwrap().outputs[0];
    assert_eq!(g.fact(h).shape, known_shape(&[1, 3, 2, 2]));
    assert_eq!(g.fact(g.outputs()[0]).shape, known_shape(&[1, 2, 2, 2]));
    g.verify().unwrap();
    // Changing only one of them leaves a mismatch, which the patch refuses, graph untouched.
    let before = g.fact(w1).clone();
    let mut p = Patch::new();
    p.replace_const(w1, ramp(&[2, 3, 1, 1], 0.0));
    let err = p.apply(&mut g).unwrap_err();
    assert!(format!("{err:#}").contains("conv2"), "{err:#}");
    assert_eq!(g.fact(w1), &before);
    // Replacing something that is not a constant is an error.
    let mut p = Patch::new();
    p.replace_const(h, ramp(&[1], 0.0));
    assert!(format!("{:#}", p.apply(&mut g).unwrap_err()).contains("not a constant"));
}

#[test]
fn replace_op_rewire_and_remove() {
    let (mut g, _, w2, c1, c2) = two_convs();
    let x = ramp(&[1, 3, 2, 2], 2.0);
    let base = run(&g, &x);
    let relu = g.value(g.node(c2).unwrap().inputs[0].unwrap()).producer.unwrap().0;
    // Relu → Sigmoid in place: outputs change, names and ids stay.
    let mut p = Patch::new();
    p.replace_op(relu, Op::Unary(Unary::Sigmoid));
    p.apply(&mut g).unwrap();
    assert_eq!(g.node(relu).unwrap().op, Op::Unary(Unary::Sigmoid));
    assert_ne!(run(&g, &x), base);
    // Rewire conv2 to read conv1 directly and drop the activation node.
    let h = g.node(c1).unwrap().outputs[0];
    let mut p = Patch::new();
    p.set_input(c2, 0, Some(PVal::Old(h)));
    p.remove(relu);
    p.apply(&mut g).unwrap();
    assert_eq!(g.node_count(), 2);
    // The result equals conv2(conv1(x)) computed with a patch-free graph.
    let mut want = Graph::new();
    let xi = want.add_input("x", DType::F32, known_shape(&[1, 3, 2, 2]));
    let a = want.add_const("w1", ramp(&[4, 3, 1, 1], 0.0));
    let b = want.add_const("w2", g.fact(w2).konst.clone().unwrap());
    let h2 = want.add_node("c1", conv_op(), vec![Some(xi), Some(a)]).unwrap()[0];
    let y2 = want.add_node("c2", conv_op(), vec![Some(h2), Some(b)]).unwrap()[0];
    want.set_outputs(vec![y2]);
    assert_eq!(run(&g, &x), run(&want, &x));
    // Removed nodes are errors on lookup, not panics.
    let err = g.node(relu).unwrap_err();
    assert!(err.to_string().contains("removed"), "{err}");
    assert!(g.node(NodeId(999)).is_err());
    assert!(g.describe_node(relu).contains("removed"));
    // Removing a node whose output is still read fails and leaves the graph as it was.
    let mut p = Patch::new();
    p.remove(c1);
    assert!(p.apply(&mut g).is_err());
    assert!(g.is_live(c1));
}

#[test]
fn verify_compares_known_dims() {
    let (g, ..) = two_convs();
    g.verify().unwrap();
    // A stale dim in a recorded fact (same dtype and rank) is caught.
    let mut bad = g.clone();
    let out = bad.outputs()[0];
    bad.values[out.0].fact.shape = known_shape(&[1, 5, 2, 2]);
    let err = bad.verify().unwrap_err();
    assert!(err.to_string().contains("recorded as float32[1,5,2,2]"), "{err}");
    // A symbolic dim recorded where inference knows the size is caught too.
    let mut bad = g.clone();
    bad.values[out.0].fact.shape[0] = Dim::Sym("N".into());
    assert!(bad.verify().is_err());
}

#[test]
fn compact_drops_dead_values_and_keeps_outputs() {
    let (mut g, w1, w2, ..) = two_convs();
    let x = ramp(&[1, 3, 2, 2], 3.0);
    // Ten rounds of rewriting the weights leave ten old tensors behind until compaction.
    for k in 0..10 {
        let mut p = Patch::new();
        let a = p.konst("w1_new", ramp(&[4, 3, 1, 1], k as f32));
        let conv1 = g.value(g.find("conv1").unwrap()).producer.unwrap().0;
        p.set_input(conv1, 1, Some(a));
        p.apply(&mut g).unwrap();
    }
    let before = run(&g, &x);
    let n_values = g.value_count();
    g.compact().unwrap();
    assert_eq!(run(&g, &x), before);
    // x, the newest w1, w2, three node outputs.
    assert_eq!(g.value_count(), 6, "was {n_values}");
    assert!(g.find("w2").is_some() && g.find("conv2").is_some());
    assert_eq!(g.value(g.outputs()[0]).name, "conv2");
    let _ = (w1, w2);
}

#[test]
fn folding_policy_keeps_quantized_weights() {
    let mut g = Graph::new();
    let q = g.add_const("wq", Tensor::from_vec(vec![2], vec![10i8, -20]));
    let s = g.add_const("s", Tensor::scalar(0.5f32));
    // DequantizeLinear of a constant stays a node: the int8 weight survives.
    let dq = g.add_node("dq", Op::DequantizeLinear { axis: 0 }, vec![Some(q), Some(s)]).unwrap()[0];
    assert!(g.value(dq).producer.is_some());
    assert_eq!(g.fact(q).dtype, DType::I8);
    // Other constant ops fold by default …
    let a = g.add_const("a", Tensor::from_vec(vec![2], vec![1f32, 2.]));
    let n = g.add_node("neg", Op::Unary(Unary::Neg), vec![Some(a)]).unwrap()[0];
    assert!(g.fact(n).konst.is_some());
    // … but not when a technique pinned the input, nor when folding is off.
    g.pin(a);
    let n = g.add_node("neg2", Op::Unary(Unary::Neg), vec![Some(a)]).unwrap()[0];
    assert!(g.value(n).producer.is_some());
    let b = g.add_const("b", Tensor::from_vec(vec![2], vec![1f32, 2.]));
    g.set_folding(false);
    let n = g.add_node("neg3", Op::Unary(Unary::Neg), vec![Some(b)]).unwrap()[0];
    assert!(g.value(n).producer.is_some());
    // Rebuilding keeps the policy and the pins.
    g.set_outputs(vec![dq, n]);
    let r = g.reinfer().unwrap();
    assert!(!r.folding());
    assert_eq!(r.node_count(), 2);
}

#[test]
fn reading_a_missing_value_is_an_error() {
    let mut g = Graph::new();
    let err = g.add_node("r", Op::Unary(Unary::Relu), vec![Some(ValueId(7))]).unwrap_err();
    assert!(err.to_string().contains("#7"), "{err}");
}
