//! Every gradient rule against central finite differences of the loss, along random
//! directions in parameter space (and, through an added parameter, the op's input).

use super::*;
use crate::ir::{
    Act, AutoPad, Binary, Builder, Conv, Gemm, LayerNorm, Pool, Reduce, ReduceKind, Unary, Variadic,
    known_shape,
};
use crate::runtime::{RunOptions, Runtime};
use crate::tensor::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// A graph under construction for a gradient check: the shared `Builder`, plus the names of
/// the constants to train.
struct B {
    b: Builder,
    extra: Vec<String>,
}

impl B {
    fn new(x_shape: &[usize], seed: u64) -> (B, ValueId) {
        let mut b = Builder::seeded(seed);
        let x = b.input("x", DType::F32, known_shape(x_shape));
        (B { b, extra: vec![] }, x)
    }
    /// A trained constant (always included as a parameter).
    fn param(&mut self, name: &str, shape: &[usize], scale: f32) -> ValueId {
        let t = self.b.uniform(shape, scale);
        self.extra.push(name.into());
        let v = self.b.konst(name, t);
        // A parameter must keep its readers as nodes (a Gather of a constant table by
        // constant indices would otherwise fold away, and with it the gradient to check).
        self.b.graph_mut().pin(v);
        v
    }
    fn konst(&mut self, name: &str, t: Tensor) -> ValueId {
        self.b.konst(name, t)
    }
    fn ints(&mut self, name: &str, v: &[i64]) -> ValueId {
        self.b.konst(name, Tensor::from_vec(vec![v.len()], v.to_vec()))
    }
    fn node(&mut self, name: &str, op: Op, ins: &[ValueId]) -> ValueId {
        self.b.node(name, op, ins).unwrap()
    }
    /// x + p: makes the gradient flowing into x checkable through p.
    fn shifted(&mut self, x: ValueId) -> ValueId {
        let s = self.b.shape(x).unwrap();
        let p = self.param("shift", &s, 0.5);
        self.node("shifted", Op::Binary(Binary::Add), &[x, p])
    }
    fn check(self, out: ValueId, loss: Loss) {
        check_graph(self.b.into_graph(), out, self.extra, loss, false, 7)
    }
}

fn rand_input(rng: &mut StdRng, f: &crate::ir::Fact, classes: usize) -> Tensor {
    let s = f.concrete_shape().unwrap();
    let n: usize = s.iter().product();
    match f.dtype {
        DType::I64 if s.is_empty() => Tensor::scalar(42i64),
        DType::I64 => {
            Tensor::from_vec(s, (0..n).map(|_| rng.random_range(0..classes as i64)).collect::<Vec<_>>())
        }
        _ => Tensor::from_vec(s, (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>()),
    }
}

/// Builds the training graph, then compares the analytic directional derivative Σ g·v with
/// (L(θ + h v) − L(θ − h v)) / 2h for three random directions v.
fn check_graph(mut g: Graph, out: ValueId, extra: Vec<String>, loss: Loss, soft: bool, seed: u64) {
    g.set_outputs(vec![out]);
    let batch = g.fact(g.inputs()[0]).shape[0].known().unwrap();
    let spec = TrainSpec {
        loss,
        output: 0,
        frozen: HashSet::new(),
        batch,
        extra: extra.into_iter().collect(),
        soft_target: soft,
    };
    let tg = build(&g, &spec).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let classes = g.fact(out).shape.last().and_then(|d| d.known()).unwrap_or(1);
    let mut inputs: Vec<Tensor> = Vec::new();
    for (i, &v) in tg.graph.inputs().iter().enumerate() {
        let f = tg.graph.fact(v);
        let t = match tg.params.iter().find(|p| p.input == i) {
            Some(p) => g.fact(g.find(&p.name).unwrap()).konst.clone().unwrap(),
            None if i == tg.target_input && soft => {
                // probabilities
                let s = f.concrete_shape().unwrap();
                let (n, c) = (s[0], s[1]);
                let mut v: Vec<f32> = (0..n * c).map(|_| rng.random_range(0.05f32..1.0)).collect();
                for r in v.chunks_mut(c) {
                    let sum: f32 = r.iter().sum();
                    r.iter_mut().for_each(|x| *x /= sum);
                }
                Tensor::from_vec(s, v)
            }
            None => rand_input(&mut rng, f, classes),
        };
        inputs.push(t);
    }
    for optimize in [false, true] {
        let rt = Runtime::new(tg.graph.clone(), RunOptions { threads: 2, optimize }).unwrap();
        let outs = rt.run(inputs.clone()).unwrap();
        let loss_of = |ins: Vec<Tensor>| rt.run(ins).unwrap()[LOSS_OUTPUT].f32s().unwrap()[0] as f64;
        for trial in 0..3 {
            let mut analytic = 0f64;
            // Directions lean towards the gradient (so the derivative is large when the gradient
            // is right) with random noise (so a zero or wrong gradient cannot hide).
            let dirs: Vec<Vec<f32>> = tg
                .params
                .iter()
                .map(|p| {
                    let gr = outs[p.grad_output].f32s().unwrap();
                    let rms =
                        (gr.iter().map(|v| v * v).sum::<f32>() / gr.len().max(1) as f32).sqrt().max(1e-12);
                    gr.iter()
                        .map(|&g| {
                            g / rms
                                + 0.5 * {
                                    let n: f32 = StandardNormal.sample(&mut rng);
                                    n
                                }
                        })
                        .collect()
                })
                .collect();
            for (p, d) in tg.params.iter().zip(&dirs) {
                let gr = outs[p.grad_output].f32s().unwrap();
                assert_eq!(gr.len(), d.len(), "gradient of {} has the wrong size", p.name);
                analytic += gr.iter().zip(d).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>();
            }
            let h = 1e-3f32;
            let shifted = |sign: f32| {
                let mut ins = inputs.clone();
                for (p, d) in tg.params.iter().zip(&dirs) {
                    let base = inputs[p.input].f32s().unwrap();
                    let v: Vec<f32> = base.iter().zip(d).map(|(&b, &dd)| b + sign * h * dd).collect();
                    ins[p.input] = Tensor::from_vec(p.shape.clone(), v);
                }
                ins
            };
            let (lp, lm) = (loss_of(shifted(1.0)), loss_of(shifted(-1.0)));
            let numeric = (lp - lm) / (2.0 * h as f64);
            assert!(
                numeric.abs() > 5e-4,
                "trial {trial} (optimize={optimize}): the loss barely moves ({lp} vs {lm}, analytic {analytic})"
            );
            let tol = 1e-2 * analytic.abs().max(numeric.abs()) + 2e-4;
            assert!(
                (analytic - numeric).abs() <= tol,
                "trial {trial} (optimize={optimize}): analytic {analytic} vs numeric {numeric}; params {:?}",
                tg.params.iter().map(|p| &p.name).collect::<Vec<_>>()
            );
        }
    }
}

fn mse() -> Loss {
    Loss::Mse
}

fn conv_attrs(strides: &[usize], dil: &[usize], pads: &[usize], group: usize) -> Conv {
    Conv {
        kernel: vec![],
        strides: strides.to_vec(),
        dilations: dil.to_vec(),
        pads: pads.to_vec(),
        auto_pad: AutoPad::NotSet,
        group,
        act: Act::None,
    }
}

#[test]
fn conv_strided_dilated_asymmetric_pads() {
    let (mut b, x) = B::new(&[2, 3, 9, 8], 1);
    let h = b.shifted(x);
    let w = b.param("w", &[4, 3, 3, 2], 0.5);
    let bias = b.param("b", &[4], 0.5);
    let y = b.node("conv", Op::Conv(conv_attrs(&[2, 1], &[2, 1], &[1, 0, 2, 1], 1)), &[h, w, bias]);
    b.check(y, mse());
}

#[test]
fn conv_grouped_and_depthwise() {
    let (mut b, x) = B::new(&[2, 4, 7, 7], 2);
    let h = b.shifted(x);
    let w = b.param("w", &[6, 2, 3, 3], 0.5);
    let y = b.node("gconv", Op::Conv(conv_attrs(&[1, 1], &[1, 1], &[1, 1, 1, 1], 2)), &[h, w]);
    let dw = b.param("dw", &[6, 1, 3, 3], 0.5);
    let z = b.node("dwconv", Op::Conv(conv_attrs(&[2, 2], &[1, 1], &[1, 1, 1, 1], 6)), &[y, dw]);
    b.check(z, mse());
}

#[test]
fn conv_1d_and_auto_pad() {
    let (mut b, x) = B::new(&[3, 2, 11], 3);
    let h = b.shifted(x);
    let w = b.param("w", &[3, 2, 4], 0.5);
    let mut c = conv_attrs(&[2], &[1], &[], 1);
    c.auto_pad = AutoPad::SameUpper;
    let y = b.node("conv1d", Op::Conv(c), &[h, w]);
    b.check(y, mse());
}

#[test]
fn gemm_every_transpose_with_alpha_beta() {
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let (mut b, x) = B::new(&[4, 5], 4);
        let h = b.shifted(x);
        let a = if ta { b.node("t", Op::Transpose { perm: None }, &[h]) } else { h };
        let w = b.param("w", if tb { &[3, 5] } else { &[5, 3] }, 0.5);
        let c = b.param("c", &[3], 0.5);
        let op = Op::Gemm(Gemm { alpha: 0.7, beta: 1.3, trans_a: ta, trans_b: tb, act: Act::None });
        let y = b.node("gemm", op, &[a, w, c]);
        b.check(y, mse());
    }
}

#[test]
fn matmul_2d_3d_and_batched_broadcast() {
    let (mut b, x) = B::new(&[2, 3, 4], 5);
    let h = b.shifted(x);
    let w = b.param("w", &[4, 5], 0.5);
    let y = b.node("mm", Op::MatMul, &[h, w]);
    let w2 = b.param("w2", &[1, 5, 2], 0.5);
    let z = b.node("bmm", Op::MatMul, &[y, w2]);
    let bias = b.param("bias", &[2], 0.5);
    let z = b.node("add", Op::Binary(Binary::Add), &[z, bias]);
    b.check(z, mse());
}

#[test]
fn batchnorm_training() {
    let (mut b, x) = B::new(&[4, 3, 5, 5], 6);
    let h = b.shifted(x);
    let s = b.param("scale", &[3], 1.0);
    let bias = b.param("bias", &[3], 1.0);
    let m = b.konst("mean", Tensor::zeros(DType::F32, vec![3]));
    let v = b.konst("var", Tensor::from_vec(vec![3], vec![1f32; 3]));
    let op = Op::BatchNorm(crate::ir::BatchNorm { epsilon: 1e-5, momentum: 0.9, training: false });
    let y = b.node("bn", op, &[h, s, bias, m, v]);
    b.check(y, mse());
}

#[test]
fn activations() {
    use Unary::*;
    let all = [
        Relu,
        Sigmoid,
        Tanh,
        Erf,
        Exp,
        Neg,
        Abs,
        Sin,
        Cos,
        Softplus,
        Softsign,
        HardSwish,
        Mish,
        Gelu { tanh: false },
        Gelu { tanh: true },
        LeakyRelu(0.1),
        Elu(0.8),
        Celu(1.2),
        Selu { alpha: 1.67, gamma: 1.05 },
        HardSigmoid { alpha: 0.2, beta: 0.5 },
    ];
    for (i, u) in all.into_iter().enumerate() {
        let (mut b, x) = B::new(&[3, 6], 10 + i as u64);
        let h = b.shifted(x);
        let w = b.param("w", &[6, 6], 1.0);
        let y = b.node("mm", Op::MatMul, &[h, w]);
        let z = b.node("act", Op::Unary(u), &[y]);
        eprintln!("checking {u:?}");
        b.check(z, mse());
    }
    // Log, Sqrt and Reciprocal on positive values.
    for u in [Log, Sqrt, Reciprocal] {
        let (mut b, x) = B::new(&[3, 4], 30);
        let h = b.shifted(x);
        let pos = b.node("exp", Op::Unary(Exp), &[h]);
        let z = b.node("f", Op::Unary(u), &[pos]);
        b.check(z, mse());
    }
}

#[test]
fn softmax_logsoftmax_and_clip() {
    for (axis, log) in [(1, false), (-1, true), (1, true)] {
        let (mut b, x) = B::new(&[2, 4, 3], 40);
        let h = b.shifted(x);
        let y = b.node("sm", Op::Softmax { axis, log, legacy: false }, &[h]);
        b.check(y, mse());
    }
    let (mut b, x) = B::new(&[4, 5], 41);
    let h = b.shifted(x);
    let lo = b.konst("lo", Tensor::scalar(-0.3f32));
    let hi = b.konst("hi", Tensor::scalar(0.4f32));
    let y = b.node("clip", Op::Clip, &[h, lo, hi]);
    b.check(y, mse());
}

fn pool(kernel: &[usize], strides: &[usize], pads: &[usize], ceil: bool, cip: bool) -> Pool {
    Pool {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        dilations: vec![],
        pads: pads.to_vec(),
        auto_pad: AutoPad::NotSet,
        ceil_mode: ceil,
        count_include_pad: cip,
        indices: false,
    }
}

#[test]
fn pooling() {
    let (mut b, x) = B::new(&[2, 3, 7, 6], 50);
    let h = b.shifted(x);
    let y = b.node("mp", Op::MaxPool(pool(&[3, 2], &[2, 2], &[1, 0, 1, 1], false, false)), &[h]);
    b.check(y, mse());
    for (ceil, cip) in [(false, false), (true, true), (true, false)] {
        let (mut b, x) = B::new(&[2, 3, 7, 6], 51);
        let h = b.shifted(x);
        let y = b.node("ap", Op::AveragePool(pool(&[3, 3], &[2, 2], &[1, 1, 1, 0], ceil, cip)), &[h]);
        b.check(y, mse());
    }
    let (mut b, x) = B::new(&[2, 3, 4, 5], 52);
    let h = b.shifted(x);
    let y = b.node("gap", Op::GlobalAveragePool, &[h]);
    b.check(y, mse());
}

#[test]
fn broadcasting_binary_and_variadic() {
    for op in [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div] {
        let (mut b, x) = B::new(&[3, 4, 5], 60);
        let h = b.shifted(x);
        // Values in [1.5, 2.5] keep Div away from 0 (a constant op on a constant would fold).
        let t = b.b.uniform(&[4, 1], 0.5);
        let v: Vec<f32> = t.f32s().unwrap().iter().map(|v| v + 2.0).collect();
        let p = b.konst("p", Tensor::from_vec(vec![4, 1], v));
        b.extra.push("p".into());
        let y = b.node("bin", Op::Binary(op), &[h, p]);
        eprintln!("checking {op:?}");
        b.check(y, mse());
    }
    let (mut b, x) = B::new(&[3, 4], 61);
    let h = b.shifted(x);
    let e = b.konst("e", Tensor::scalar(3.0f32));
    let y = b.node("pow", Op::Binary(Binary::Pow), &[h, e]);
    let q = b.param("q", &[4], 1.0);
    let z = b.node("sum", Op::Variadic(Variadic::Sum), &[y, q, h]);
    let m = b.node("mean", Op::Variadic(Variadic::Mean), &[z, q]);
    b.check(m, mse());
}

#[test]
fn shape_ops() {
    let (mut b, x) = B::new(&[2, 3, 4], 70);
    let h = b.shifted(x);
    let t = b.node("tr", Op::Transpose { perm: Some(vec![2, 0, 1]) }, &[h]);
    let f = b.node("fl", Op::Flatten { axis: 1 }, &[t]);
    let s = b.ints("shape", &[4, 2, 3]);
    let r = b.node("rs", Op::Reshape { allowzero: false }, &[f, s]);
    let q = b.param("q", &[4, 1, 3], 1.0);
    let c = b.node("cat", Op::Concat { axis: 1 }, &[r, q]);
    let sizes = b.ints("sizes", &[1, 2]);
    let parts =
        b.b.nodes("split", Op::Split { axis: 1, num_outputs: 2 }, vec![Some(c), Some(sizes)]).unwrap();
    let (st, en, ax) = (b.ints("st", &[1, 0]), b.ints("en", &[3, 2]), b.ints("ax", &[0, 2]));
    let sl = b.node("slice", Op::Slice, &[parts[1], st, en, ax]);
    let axes = b.ints("axes", &[1]);
    let un = b.node("unsq", Op::Unsqueeze, &[sl, axes]);
    let sq = b.node("sq", Op::Squeeze, &[un, axes]);
    let pads = b.ints("pads", &[0, 1, 0, 1, 0, 2]);
    let pd = b.node("pad", Op::Pad(crate::ir::PadMode::Constant), &[sq, pads]);
    let ex_shape = b.ints("exs", &[2, 3, 3, 4]);
    let ex = b.node("expand", Op::Expand, &[pd, ex_shape]);
    let ra = b.ints("raxes", &[1]);
    let red = Reduce { kind: ReduceKind::Mean, keepdims: false, noop_with_empty_axes: false };
    let y = b.node("rmean", Op::Reduce(red), &[ex, ra]);
    let red2 = Reduce { kind: ReduceKind::Sum, keepdims: true, noop_with_empty_axes: false };
    let ra2 = b.ints("raxes2", &[2]);
    let y2 = b.node("rsum", Op::Reduce(red2), &[y, ra2]);
    b.check(y2, mse());
}

#[test]
fn gather_layernorm_where_dropout() {
    let (mut b, x) = B::new(&[2, 3], 80);
    let table = b.param("table", &[5, 4], 1.0);
    let idx = b.konst("idx", Tensor::from_vec(vec![2, 3], vec![0i64, 4, 1, 4, -2, 0]));
    let e = b.node("gather", Op::Gather { axis: 0 }, &[table, idx]); // [2,3,4]
    let xs = b.ints("xs", &[2, 3, 1]);
    let xr = b.node("xr", Op::Reshape { allowzero: false }, &[x, xs]);
    let h = b.node("h", Op::Binary(Binary::Add), &[e, xr]);
    let sc = b.param("ln.scale", &[4], 1.0);
    let bi = b.param("ln.bias", &[4], 1.0);
    let ln = b.node("ln", Op::LayerNorm(LayerNorm { axis: -1, epsilon: 1e-5, stats: false }), &[h, sc, bi]);
    let zero = b.konst("zero", Tensor::scalar(0.0f32));
    let cond = b.node("gt", Op::Binary(Binary::Greater), &[xr, zero]);
    let q = b.param("q", &[4], 1.0);
    let wh = b.node("where", Op::Where, &[cond, ln, q]);
    let d = b.node("drop", Op::Dropout { ratio: 0.3 }, &[wh]);
    b.check(d, mse());
}

#[test]
fn losses_against_finite_differences() {
    for (loss, soft) in [
        (Loss::CrossEntropy { label_smoothing: 0.0, temperature: 1.0 }, false),
        (Loss::CrossEntropy { label_smoothing: 0.1, temperature: 1.0 }, false),
        (Loss::CrossEntropy { label_smoothing: 0.0, temperature: 4.0 }, true),
        (Loss::KlDiv { temperature: 2.0 }, true),
    ] {
        let (mut b, x) = B::new(&[5, 6], 90);
        let w = b.param("w", &[6, 4], 1.0);
        let y = b.node("mm", Op::MatMul, &[x, w]);
        check_graph(b.b.into_graph(), y, b.extra, loss, soft, 3);
    }
}

#[test]
fn loss_values_by_hand() {
    // logits [[0, ln 3]] → p = [0.25, 0.75]; label 1 → CE = -ln 0.75.
    let z = Tensor::from_vec(vec![1, 2], vec![0.0f32, 3f32.ln()]);
    let l = Tensor::from_vec(vec![1], vec![1i64]);
    let ce = Loss::CrossEntropy { label_smoothing: 0.0, temperature: 1.0 };
    let out = Op::Train(TrainOp::Loss(ce)).eval(&[Some(&z), Some(&l)]).unwrap();
    assert!((out[0].f32s().unwrap()[0] - (-(0.75f32).ln())).abs() < 1e-6);
    let g = out[1].f32s().unwrap();
    assert!((g[0] - 0.25).abs() < 1e-6 && (g[1] + 0.25).abs() < 1e-6, "{g:?}");
    // Smoothing 0.2 over 2 classes: target [0.1, 0.9].
    let ls = Loss::CrossEntropy { label_smoothing: 0.2, temperature: 1.0 };
    let out = Op::Train(TrainOp::Loss(ls)).eval(&[Some(&z), Some(&l)]).unwrap();
    let want = -(0.1 * 0.25f32.ln() + 0.9 * 0.75f32.ln());
    assert!((out[0].f32s().unwrap()[0] - want).abs() < 1e-6);
    // KL of a distribution with itself is 0.
    let p = Tensor::from_vec(vec![1, 2], vec![0.25f32, 0.75]);
    let out = Op::Train(TrainOp::Loss(Loss::KlDiv { temperature: 1.0 })).eval(&[Some(&z), Some(&p)]).unwrap();
    assert!(out[0].f32s().unwrap()[0].abs() < 1e-6);
    // A label out of range names the row.
    let bad = Tensor::from_vec(vec![1], vec![7i64]);
    let err = Op::Train(TrainOp::Loss(Loss::CrossEntropy { label_smoothing: 0.0, temperature: 1.0 }))
        .eval(&[Some(&z), Some(&bad)])
        .unwrap_err();
    assert!(format!("{err:#}").contains("label 7 (batch row 0) is out of range for 2 classes"), "{err:#}");
}

#[test]
fn frozen_and_untrainable_errors() {
    let (mut b, x) = B::new(&[2, 3], 100);
    let w = b.konst("w", Tensor::from_vec(vec![3, 2], vec![1f32; 6]));
    let y = b.node("mm", Op::MatMul, &[x, w]);
    let g = b.b.finish(&[y]).unwrap();
    let mut spec = TrainSpec::classification(2);
    assert_eq!(build(&g, &spec).unwrap().params.len(), 1);
    spec.frozen.insert("w".into());
    let err = build(&g, &spec).unwrap_err();
    assert!(format!("{err:#}").contains("no trainable parameters"), "{err:#}");

    // An op without a gradient rule on the path names the node and the op.
    let (mut b, x) = B::new(&[2, 3], 101);
    let w = b.param("w", &[3, 4], 1.0);
    let y = b.node("mm", Op::MatMul, &[x, w]);
    let axes = b.ints("axes", &[1]);
    let r = Reduce { kind: ReduceKind::Max, keepdims: true, noop_with_empty_axes: false };
    let z = b.node("rmax", Op::Reduce(r), &[y, axes]);
    let mut spec = TrainSpec::classification(2);
    spec.loss = Loss::Mse;
    spec.extra.insert("w".into());
    let err = build(&b.b.finish(&[z]).unwrap(), &spec).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("rmax") && msg.contains("no gradient rule for ReduceMax"), "{msg}");

    // A parameter that reaches the loss only through a boolean value gets no gradient: an
    // error naming it, not a silent zero.
    let (mut b, x) = B::new(&[2, 3], 102);
    let w = b.param("w", &[3, 3], 1.0);
    let p = b.param("p", &[3], 1.0);
    let y = b.node("mm", Op::MatMul, &[x, w]);
    let q = b.node("q", Op::Binary(Binary::Add), &[y, p]);
    let nan = b.node("isnan", Op::Unary(Unary::IsNaN), &[q]);
    let c = b.node("cast", Op::Cast(DType::F32), &[nan]);
    let z = b.node("mul", Op::Binary(Binary::Mul), &[y, c]);
    let g = b.b.finish(&[z]).unwrap();
    let mut spec = TrainSpec::classification(2);
    spec.loss = Loss::Mse;
    spec.extra = ["w".to_string(), "p".to_string()].into_iter().collect();
    let err = build(&g, &spec).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("parameter \"p\" gets no gradient") && msg.contains("Add \"q\""), "{msg}");
    // Freezing it is the way out.
    spec.frozen.insert("p".into());
    assert_eq!(build(&g, &spec).unwrap().params.len(), 1);
}

/// Gradients pass a QuantizeLinear → DequantizeLinear pair and a FakeQuant with the
/// straight-through estimator: equal to the float gradient where x does not saturate, zero
/// where it does. Checked against the gradient of the same graph without quantization.
#[test]
fn gradients_pass_quantization_straight_through() {
    let scale = 0.02f32;
    for fake in [false, true] {
        let build_graph = |quant: bool| {
            let (mut b, x) = B::new(&[2, 3], 110);
            let w = b.param("w", &[3, 4], 1.0);
            let y = b.node("mm", Op::MatMul, &[x, w]);
            let y = if quant {
                let s = b.konst("scale", Tensor::scalar(scale));
                let zp = b.konst("zp", Tensor::scalar(0i8));
                if fake {
                    b.node("fq", Op::FakeQuant { axis: 1, to: DType::I8 }, &[y, s, zp])
                } else {
                    let q = b.node("q", Op::QuantizeLinear { axis: 1, to: DType::I8 }, &[y, s, zp]);
                    b.node("dq", Op::DequantizeLinear { axis: 1 }, &[q, s, zp])
                }
            } else {
                y
            };
            let g = b.b.finish(&[y]).unwrap();
            (g, b.extra)
        };
        let grads = |quant: bool| {
            let (g, extra) = build_graph(quant);
            let mut spec = TrainSpec::classification(2);
            spec.loss = Loss::Mse;
            spec.extra = extra.into_iter().collect();
            let tg = build(&g, &spec).unwrap();
            let rt = Runtime::new(tg.graph.clone(), RunOptions { threads: 1, optimize: false }).unwrap();
            let mut rng = StdRng::seed_from_u64(5);
            // x in [-3, 3]: |x·w| often exceeds 127 · 0.02, so some outputs saturate.
            let xs: Vec<f32> = (0..6).map(|_| rng.random_range(-3.0f32..3.0)).collect();
            let xs_copy = xs.clone();
            let target = Tensor::from_vec(vec![2, 4], vec![0f32; 8]);
            let w = g.fact(g.find("w").unwrap()).konst.clone().unwrap();
            let outs = rt.run(vec![Tensor::from_vec(vec![2, 3], xs), target, w.clone()]).unwrap();
            let y = outs[PRED_OUTPUT].f32s().unwrap().to_vec();
            (outs[tg.params[0].grad_output].f32s().unwrap().to_vec(), y, xs_copy)
        };
        let (gq, yq, x) = grads(true);
        let (_, yf, _) = grads(false);
        // Expected: dL/dw = xᵀ · (2 yq / n · mask), mask = 0 where y / scale saturates int8.
        let mask: Vec<f32> = yf
            .iter()
            .map(|v| if ((v / scale).round_ties_even()).abs() <= 127.0 { 1.0 } else { 0.0 })
            .collect();
        assert!(
            mask.contains(&0.0) && mask.contains(&1.0),
            "the test needs saturated and unsaturated outputs"
        );
        let dy: Vec<f32> = yq.iter().zip(&mask).map(|(y, m)| 2.0 * y / 8.0 * m).collect();
        for i in 0..3 {
            for j in 0..4 {
                let want: f32 = (0..2).map(|r| x[r * 3 + i] * dy[r * 4 + j]).sum();
                let got = gq[i * 4 + j];
                assert!((got - want).abs() < 1e-5, "fake={fake} w[{i},{j}]: {got} vs {want}");
            }
        }
    }
}
