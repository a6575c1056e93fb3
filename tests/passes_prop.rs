//! Property test: on random valid graphs, every optimisation rule alone and the whole
//! `optimize` pipeline preserve outputs and leave a graph that verifies, and ONNX export
//! followed by import preserves outputs and input/output names.
//!
//! A graph is built step by step from a stream of choices (so proptest shrinks a failure
//! to a short graph of simple ops); each step picks an op valid for the current value's
//! shape. Weights and inputs come from seeded generators. Set `PROPTEST_CASES` and
//! `PROPTEST_RNG_SEED` to run more or other cases than the fixed default.

mod common;

use anyhow::{Context, Result, bail, ensure};
use common::naive_eval;
use pare::ir::{Act, AutoPad, BatchNorm, Binary, Conv, Gemm, Graph, Op, Pool, Unary, ValueId, known_shape};
use pare::onnx;
use pare::passes::{self, Rule};
use pare::runtime::{RunOptions, Runtime};
use pare::tensor::{DType, Tensor};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Each rule of the default pipeline, as `passes::optimize` names them.
const RULES: [(&str, Rule); 5] = [
    ("remove_identity", passes::remove_identity),
    ("fold_batchnorm", passes::fold_batchnorm),
    ("conv_absorb_affine", passes::conv_absorb_affine),
    ("matmul_add_to_gemm", passes::matmul_add_to_gemm),
    ("fuse_activation", passes::fuse_activation),
];

// ---------------------------------------------------------------------------------------
// Graph generation
// ---------------------------------------------------------------------------------------

/// What one generation step adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Act,
    Identity,
    Dropout,
    ConstAffine,
    Residual,
    Concat,
    Reshape,
    Transpose,
    Softmax,
    Flatten,
    Conv,
    ConvBlock,
    BatchNorm,
    MaxPool,
    AvgPool,
    GlobalAvgPool,
    MatMulAdd,
    Gemm,
}

/// Largest channel count a Conv or a channel Concat may produce or read.
const MAX_CHANNELS: usize = 16;
/// Largest feature count a MatMul/Gemm reads or a rank-2 Concat produces.
const MAX_FEATURES: usize = 1024;

struct Gen<'a> {
    choices: &'a [u32],
    pos: usize,
    rng: StdRng,
    g: Graph,
    /// Non-constant f32 values that later nodes may read (the inputs and node outputs).
    vals: Vec<ValueId>,
    /// Conv weights made so far (a later Conv may share one).
    weights: Vec<ValueId>,
    count: usize,
}

impl<'a> Gen<'a> {
    fn new(choices: &'a [u32], weight_seed: u64) -> Gen<'a> {
        Gen {
            choices,
            pos: 0,
            rng: StdRng::seed_from_u64(weight_seed),
            g: Graph::new(),
            vals: vec![],
            weights: vec![],
            count: 0,
        }
    }

    /// A choice in `0..n` from the stream (0 once the stream is exhausted).
    fn pick(&mut self, n: usize) -> usize {
        let v = self.choices.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        v as usize % n.max(1)
    }
    fn flip(&mut self) -> bool {
        self.pick(2) == 1
    }
    fn one_of<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.pick(xs.len())]
    }

    fn shape(&self, v: ValueId) -> Vec<usize> {
        self.g.fact(v).concrete_shape().expect("generated graphs have concrete shapes")
    }

    fn uniform(&mut self, shape: Vec<usize>, lo: f32, hi: f32) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.rng.random_range(lo..hi)).collect();
        Tensor::from_vec(shape, v)
    }

    fn konst(&mut self, base: &str, t: Tensor) -> ValueId {
        self.g.add_const(base, t)
    }

    fn scalar(&mut self, base: &str, x: f32) -> ValueId {
        self.g.add_const(base, Tensor::scalar(x))
    }

    fn ints(&mut self, base: &str, v: &[i64]) -> ValueId {
        self.g.add_const(base, Tensor::from_vec(vec![v.len()], v.to_vec()))
    }

    /// Adds a node named `n<k>_<what>` and makes its output available.
    fn node(&mut self, what: &str, op: Op, ins: Vec<Option<ValueId>>) -> Result<ValueId> {
        self.count += 1;
        let name = format!("n{}_{what}", self.count);
        let desc = self.g.describe(&name, &op, &ins);
        let outs =
            self.g.add_node(&name, op, ins).with_context(|| format!("generator built an invalid {desc}"))?;
        ensure!(
            self.g.value(outs[0]).producer.is_some(),
            "{desc} was folded to a constant; the generator must read a non-constant value"
        );
        self.vals.push(outs[0]);
        Ok(outs[0])
    }

    /// Values whose shape is `s`.
    fn same_shape(&self, s: &[usize]) -> Vec<ValueId> {
        self.vals.iter().copied().filter(|&v| self.shape(v) == s).collect()
    }

    /// Values that can be concatenated with `s` along axis 1 without exceeding the limits.
    fn concat_peers(&self, s: &[usize]) -> Vec<ValueId> {
        let limit = if s.len() == 4 { MAX_CHANNELS } else { MAX_FEATURES };
        self.vals
            .iter()
            .copied()
            .filter(|&v| {
                let t = self.shape(v);
                t.len() == s.len()
                    && t.iter().zip(s).enumerate().all(|(i, (a, b))| i == 1 || a == b)
                    && t[1] + s[1] <= limit
            })
            .collect()
    }

    /// The kinds valid for a value of shape `s`, simplest first (a shrunk choice is 0).
    fn kinds(&self, s: &[usize]) -> Vec<Kind> {
        let r = s.len();
        let mut k =
            vec![Kind::Act, Kind::Identity, Kind::Dropout, Kind::ConstAffine, Kind::Residual, Kind::Softmax];
        if r >= 2 {
            k.extend([Kind::Transpose, Kind::Reshape, Kind::Flatten, Kind::BatchNorm]);
            if !self.concat_peers(s).is_empty() {
                k.push(Kind::Concat);
            }
        }
        if r == 4 && s[1] <= MAX_CHANNELS {
            k.extend([Kind::Conv, Kind::ConvBlock, Kind::ConvBlock]);
        }
        if r == 3 || r == 4 {
            k.extend([Kind::MaxPool, Kind::AvgPool, Kind::GlobalAvgPool]);
        }
        if (r == 2 || r == 3) && s[r - 1] <= MAX_FEATURES {
            k.extend([Kind::MatMulAdd, Kind::MatMulAdd]);
        }
        if r == 2 && s[1] <= MAX_FEATURES && s[0] <= MAX_FEATURES {
            k.push(Kind::Gemm);
        }
        k
    }

    fn step(&mut self) -> Result<()> {
        // Mostly extend the newest value (chains are what the passes fuse); sometimes branch
        // from an older one, which gives values with several readers.
        let x = if self.pick(4) == 3 {
            let i = self.pick(self.vals.len());
            self.vals[i]
        } else {
            *self.vals.last().unwrap()
        };
        let s = self.shape(x);
        let kinds = self.kinds(&s);
        let kind = self.one_of(&kinds);
        match kind {
            Kind::Act => self.act(x).map(drop),
            Kind::Identity => self.node("identity", Op::Identity, vec![Some(x)]).map(drop),
            Kind::Dropout => {
                let ratio = self.one_of(&[0.5, 0.1]);
                self.node("dropout", Op::Dropout { ratio }, vec![Some(x)]).map(drop)
            }
            Kind::ConstAffine => self.const_affine(x).map(drop),
            Kind::Residual => {
                let peers = self.same_shape(&s);
                let y = self.one_of(&peers);
                let ins = if self.flip() { vec![Some(y), Some(x)] } else { vec![Some(x), Some(y)] };
                self.node("residual", Op::Binary(Binary::Add), ins).map(drop)
            }
            Kind::Concat => {
                let peers = self.concat_peers(&s);
                let y = self.one_of(&peers);
                let mut ins = vec![Some(x), Some(y)];
                if self.flip() {
                    ins.reverse();
                }
                let axis = if self.flip() { 1 - r_i64(&s) } else { 1 };
                self.node("concat", Op::Concat { axis }, ins).map(drop)
            }
            Kind::Reshape => self.reshape(x, &s).map(drop),
            Kind::Transpose => {
                let perm = if self.pick(4) == 3 {
                    None
                } else {
                    let mut p: Vec<usize> = (0..s.len()).collect();
                    for i in (1..p.len()).rev() {
                        let j = self.pick(i + 1);
                        p.swap(i, j);
                    }
                    Some(p)
                };
                self.node("transpose", Op::Transpose { perm }, vec![Some(x)]).map(drop)
            }
            Kind::Softmax => {
                let r = r_i64(&s);
                let axis = self.pick(2 * s.len()) as i64 - r;
                let log = self.pick(4) == 3;
                self.node("softmax", Op::Softmax { axis, log, legacy: false }, vec![Some(x)]).map(drop)
            }
            Kind::Flatten => {
                let axis = if self.flip() { self.pick(s.len() + 1) as i64 } else { 1 };
                self.node("flatten", Op::Flatten { axis }, vec![Some(x)]).map(drop)
            }
            Kind::Conv => self.conv(x, &s).map(drop),
            Kind::ConvBlock => {
                let y = self.conv(x, &s)?;
                let y = match self.pick(4) {
                    0 => self.batchnorm(y)?,
                    1 => self.const_affine(y)?,
                    2 => {
                        let y = self.const_affine(y)?;
                        self.const_affine(y)?
                    }
                    _ => y,
                };
                if self.pick(3) != 0 { self.act(y).map(drop) } else { Ok(()) }
            }
            Kind::BatchNorm => self.batchnorm(x).map(drop),
            Kind::MaxPool | Kind::AvgPool => self.pool(x, &s, kind == Kind::MaxPool).map(drop),
            Kind::GlobalAvgPool => self.node("gap", Op::GlobalAveragePool, vec![Some(x)]).map(drop),
            Kind::MatMulAdd | Kind::Gemm => {
                let y = if kind == Kind::Gemm { self.gemm(x, &s)? } else { self.matmul_add(x, &s)? };
                if self.pick(3) == 2 { self.act(y).map(drop) } else { Ok(()) }
            }
        }
    }

    fn act(&mut self, x: ValueId) -> Result<ValueId> {
        match self.pick(8) {
            0 => self.node("relu", Op::Unary(Unary::Relu), vec![Some(x)]),
            1 => {
                let a = self.one_of(&[0.01, 0.2]);
                self.node("leaky", Op::Unary(Unary::LeakyRelu(a)), vec![Some(x)])
            }
            2 => self.node("sigmoid", Op::Unary(Unary::Sigmoid), vec![Some(x)]),
            3 => self.node("hardswish", Op::Unary(Unary::HardSwish), vec![Some(x)]),
            4 => {
                let op = Op::Unary(Unary::HardSigmoid { alpha: 0.2, beta: 0.5 });
                self.node("hardsigmoid", op, vec![Some(x)])
            }
            5 => {
                // Clip with only a maximum (the minimum input absent)
                let hi = self.scalar("clip_max", 1.5);
                self.node("clip", Op::Clip, vec![Some(x), None, Some(hi)])
            }
            _ => {
                let lo = self.scalar("relu6_min", 0.0);
                let hi = self.scalar("relu6_max", 6.0);
                self.node("relu6", Op::Clip, vec![Some(x), Some(lo), Some(hi)])
            }
        }
    }

    /// Add, Mul or Sub of a constant shaped per channel (`[C,1,1]`, `[1,C,1,1]`), scalar,
    /// per last axis, or broadcast on random axes; the constant on either side.
    fn const_affine(&mut self, x: ValueId) -> Result<ValueId> {
        let s = self.shape(x);
        let r = s.len();
        let shape: Vec<usize> = match self.pick(6) {
            0 if r >= 2 => std::iter::once(s[1]).chain(std::iter::repeat_n(1, r - 2)).collect(),
            1 if r >= 2 => [1, s[1]].into_iter().chain(std::iter::repeat_n(1, r - 2)).collect(),
            2 => vec![1],
            3 => vec![],
            4 if r >= 1 => vec![s[r - 1]],
            _ => {
                let mut t = Vec::with_capacity(r);
                for &d in &s {
                    t.push(if self.flip() { d } else { 1 });
                }
                t
            }
        };
        let (what, op, lo, hi) = match self.pick(5) {
            0 | 1 => ("add", Binary::Add, -1.0, 1.0),
            2 | 3 => ("mul", Binary::Mul, -1.5, 1.5),
            _ => ("sub", Binary::Sub, -1.0, 1.0),
        };
        let t = self.uniform(shape, lo, hi);
        let c = self.konst(&format!("{what}_k"), t);
        let ins = if self.flip() { vec![Some(c), Some(x)] } else { vec![Some(x), Some(c)] };
        self.node(what, Op::Binary(op), ins)
    }

    fn batchnorm(&mut self, x: ValueId) -> Result<ValueId> {
        let c = self.shape(x)[1];
        let scale = self.uniform(vec![c], -1.5, 1.5);
        let bias = self.uniform(vec![c], -0.5, 0.5);
        let mean = self.uniform(vec![c], -0.5, 0.5);
        let var = self.uniform(vec![c], 0.2, 2.0);
        let ins = [("bn_scale", scale), ("bn_bias", bias), ("bn_mean", mean), ("bn_var", var)]
            .into_iter()
            .map(|(n, t)| Some(self.konst(n, t)));
        let ins: Vec<Option<ValueId>> = std::iter::once(Some(x)).chain(ins.collect::<Vec<_>>()).collect();
        let epsilon = self.one_of(&[1e-5, 1e-3]);
        self.node("bn", Op::BatchNorm(BatchNorm { epsilon, momentum: 0.9, training: false }), ins)
    }

    fn conv(&mut self, x: ValueId, s: &[usize]) -> Result<ValueId> {
        let cin = s[1];
        let (cout, group) = if self.pick(4) == 3 && cin * 2 <= MAX_CHANNELS {
            // depthwise, channel multiplier 1 or 2
            (cin * (1 + self.pick(2)), cin)
        } else {
            let cout = 1 + self.pick(8);
            let divs: Vec<usize> =
                (1..=cin.min(cout)).filter(|&d| cin.is_multiple_of(d) && cout.is_multiple_of(d)).collect();
            (cout, self.one_of(&divs))
        };
        let auto_pad = match self.pick(8) {
            5 => AutoPad::SameUpper,
            6 => AutoPad::SameLower,
            7 => AutoPad::Valid,
            _ => AutoPad::NotSet,
        };
        let (mut kernel, mut strides, mut dilations, mut pads) = (vec![], vec![], vec![], vec![0; 4]);
        for (i, &n) in s[2..].iter().enumerate() {
            let mut k = self.one_of(&[1, 3]);
            let d = if self.pick(4) == 3 { 2 } else { 1 };
            let (mut pb, mut pe) = (self.pick(k), self.pick(k));
            if auto_pad == AutoPad::Valid {
                (pb, pe) = (0, 0);
            }
            let fits = |k: usize, pb: usize, pe: usize| n + pb + pe > (k - 1) * d;
            if !fits(k, pb, pe) && !matches!(auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
                k = 1;
                (pb, pe) = (0, 0);
            }
            kernel.push(k);
            strides.push(1 + self.pick(2));
            dilations.push(d);
            pads[i] = pb;
            pads[2 + i] = pe;
        }
        let wshape = vec![cout, cin / group, kernel[0], kernel[1]];
        let fan_in = (cin / group * kernel[0] * kernel[1]) as f32;
        let bound = (3.0 / fan_in).sqrt();
        let shared: Vec<ValueId> = self
            .weights
            .iter()
            .copied()
            .filter(|&w| self.g.fact(w).konst.as_ref().is_some_and(|t| t.shape() == wshape))
            .collect();
        let w = if !shared.is_empty() && self.pick(3) == 2 {
            self.one_of(&shared)
        } else {
            let w = self.uniform(wshape, -bound, bound);
            let w = self.konst("conv_w", w);
            self.weights.push(w);
            w
        };
        let mut ins = vec![Some(x), Some(w)];
        if self.flip() {
            let b = self.uniform(vec![cout], -0.5, 0.5);
            ins.push(Some(self.konst("conv_b", b)));
        }
        if auto_pad != AutoPad::NotSet {
            pads.clear();
        }
        if strides.iter().all(|&v| v == 1) && self.flip() {
            strides.clear();
        }
        if dilations.iter().all(|&v| v == 1) && self.flip() {
            dilations.clear();
        }
        if self.pick(4) == 3 {
            kernel.clear(); // taken from the weight
        }
        let op = Op::Conv(Conv { kernel, strides, dilations, pads, auto_pad, group, act: Act::None });
        self.node("conv", op, ins)
    }

    fn pool(&mut self, x: ValueId, s: &[usize], max: bool) -> Result<ValueId> {
        let sp = s.len() - 2;
        let (mut kernel, mut strides, mut pads) = (vec![], vec![], vec![0; 2 * sp]);
        for (i, &n) in s[2..].iter().enumerate() {
            let k = (1 + self.pick(3)).min(n + 2);
            let mut pb = self.pick(k);
            let mut pe = self.pick(k);
            if n + pb + pe < k {
                pb = k - 1;
                pe = k - 1;
            }
            if n + pb + pe < k {
                bail!("unreachable: a pool window of {k} must fit {n} with pads {k}-1");
            }
            kernel.push(k);
            strides.push(1 + self.pick(2));
            pads[i] = pb;
            pads[sp + i] = pe;
        }
        let p = Pool {
            kernel,
            strides,
            dilations: vec![],
            pads,
            auto_pad: AutoPad::NotSet,
            ceil_mode: self.pick(4) == 3,
            count_include_pad: !max && self.flip(),
            indices: false,
        };
        if max {
            self.node("maxpool", Op::MaxPool(p), vec![Some(x)])
        } else {
            self.node("avgpool", Op::AveragePool(p), vec![Some(x)])
        }
    }

    /// MatMul by a constant `[K, M]`, usually followed by an Add of a bias shaped `[M]`,
    /// `[1, M]`, `[1]` or `[rows, M]`, on either side.
    fn matmul_add(&mut self, x: ValueId, s: &[usize]) -> Result<ValueId> {
        let k = s[s.len() - 1];
        let m = 1 + self.pick(12);
        let bound = (3.0 / k as f32).sqrt();
        let w = self.uniform(vec![k, m], -bound, bound);
        let w = self.konst("mm_w", w);
        let y = self.node("matmul", Op::MatMul, vec![Some(x), Some(w)])?;
        let rows = s[s.len() - 2];
        let bshape = match self.pick(6) {
            0 | 1 => vec![m],
            2 => vec![1, m],
            3 => vec![1],
            4 => vec![rows, m],
            _ => return Ok(y),
        };
        let b = self.uniform(bshape, -0.5, 0.5);
        let b = self.konst("mm_b", b);
        let ins = if self.flip() { vec![Some(b), Some(y)] } else { vec![Some(y), Some(b)] };
        self.node("bias", Op::Binary(Binary::Add), ins)
    }

    fn gemm(&mut self, x: ValueId, s: &[usize]) -> Result<ValueId> {
        let trans_a = self.pick(4) == 3;
        let (rows, k) = if trans_a { (s[1], s[0]) } else { (s[0], s[1]) };
        let m = 1 + self.pick(12);
        let trans_b = self.flip();
        let bound = (3.0 / k as f32).sqrt();
        let w = self.uniform(if trans_b { vec![m, k] } else { vec![k, m] }, -bound, bound);
        let w = self.konst("gemm_w", w);
        let mut ins = vec![Some(x), Some(w)];
        let cshape = match self.pick(5) {
            0 | 1 => Some(vec![m]),
            2 => Some(vec![1, m]),
            3 => Some(vec![rows, m]),
            _ => None,
        };
        if let Some(cs) = cshape {
            let c = self.uniform(cs, -0.5, 0.5);
            ins.push(Some(self.konst("gemm_c", c)));
        }
        let alpha = self.one_of(&[1.0, 0.5]);
        let beta = self.one_of(&[1.0, 2.0]);
        self.node("gemm", Op::Gemm(Gemm { alpha, beta, trans_a, trans_b, act: Act::None }), ins)
    }

    /// Reshape to rank 2, 3 or 4 with a constant target that may use 0 (copy) and -1 (infer).
    fn reshape(&mut self, x: ValueId, s: &[usize]) -> Result<ValueId> {
        let n = s[0];
        let rest: usize = s[1..].iter().product();
        let target: Vec<i64> = match self.pick(5) {
            0 => vec![0, -1],
            1 => vec![n as i64, rest as i64],
            2 if s.len() >= 3 => vec![0, s[1] as i64, -1],
            3 if rest <= MAX_CHANNELS => vec![n as i64, rest as i64, 1, 1],
            4 => {
                // [N, a, b, 1] with a * b = rest, a a divisor of rest
                let divs: Vec<usize> =
                    (1..=rest).filter(|&d| rest.is_multiple_of(d) && d <= MAX_CHANNELS).collect();
                let a = self.one_of(&divs);
                vec![n as i64, a as i64, -1, 1]
            }
            _ => vec![-1, rest as i64],
        };
        let t = self.ints("shape", &target);
        self.node("reshape", Op::Reshape { allowzero: false }, vec![Some(x), Some(t)])
    }
}

fn r_i64(s: &[usize]) -> i64 {
    s.len() as i64
}

/// The graph a recipe describes, verified; also one random input per graph input.
fn build(choices: &[u32], steps: usize, weight_seed: u64, input_seed: u64) -> Result<(Graph, Vec<Tensor>)> {
    let mut b = Gen::new(choices, weight_seed);
    let n = 1 + b.pick(2);
    let shape = match b.pick(5) {
        0 => vec![n, 1 + b.pick(24)],
        1 => vec![n, 1 + b.pick(8), 1 + b.pick(8)],
        _ => vec![n, 1 + b.pick(8), 1 + b.pick(8), 1 + b.pick(8)],
    };
    let x = b.g.add_input("x", DType::F32, known_shape(&shape));
    b.vals.push(x);
    if b.pick(4) == 3 {
        // a second input of the same shape, read through a residual Add
        let y = b.g.add_input("y", DType::F32, known_shape(&shape));
        b.vals.push(y);
        b.node("sum_xy", Op::Binary(Binary::Add), vec![Some(x), Some(y)])?;
    }
    for _ in 0..steps {
        b.step().with_context(|| format!("graph so far:\n{}", describe(&b.g)))?;
    }
    let last = *b.vals.last().unwrap();
    let mut outputs = vec![last];
    if b.g.value(last).producer.is_none() {
        // no step ran: give the graph one node
        outputs = vec![b.node("relu", Op::Unary(Unary::Relu), vec![Some(last)])?];
    }
    // Sometimes intermediate values are outputs too (rules must keep them).
    for _ in 0..b.pick(3) {
        let i = b.pick(b.vals.len());
        let v = b.vals[i];
        if b.g.value(v).producer.is_some() && !outputs.contains(&v) {
            outputs.push(v);
        }
    }
    b.g.set_outputs(outputs);
    b.g.verify().with_context(|| format!("generated graph does not verify:\n{}", describe(&b.g)))?;
    let mut rng = StdRng::seed_from_u64(input_seed);
    let inputs =
        b.g.inputs()
            .iter()
            .map(|&v| {
                let s = b.g.fact(v).concrete_shape().unwrap();
                let n = s.iter().product();
                Tensor::from_vec(s, (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect())
            })
            .collect();
    Ok((b.g, inputs))
}

// ---------------------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------------------

/// Inputs, every node (op with attributes, inputs and outputs with shapes; nodes that no
/// output depends on marked "dead") in insertion order, and outputs.
fn describe(g: &Graph) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for &v in g.inputs() {
        let _ = writeln!(s, "  input {} {}", g.value(v).name, g.fact(v));
    }
    let live = g.topo_order().unwrap_or_default();
    for (n, node) in g.live_nodes() {
        let outs: Vec<String> =
            node.outputs.iter().map(|&o| format!("{} {}", g.value(o).name, g.fact(o))).collect();
        let dead = if live.contains(&n) { "" } else { "(dead) " };
        let _ = writeln!(s, "  {dead}{} -> {}\n      {:?}", g.describe_node(n), outs.join(", "), node.op);
    }
    for &v in g.outputs() {
        let _ = writeln!(s, "  output {} {}", g.value(v).name, g.fact(v));
    }
    s
}

fn run(g: Graph, optimize: bool, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    Runtime::new(g, RunOptions { threads: 1, optimize })?.run(inputs.to_vec())
}

/// Each output within `1e-4 * max|want| + 1e-5` of the reference, same shapes.
fn close(what: &str, want: &[Tensor], got: &[Tensor]) -> Result<()> {
    ensure!(want.len() == got.len(), "{what}: {} outputs, expected {}", got.len(), want.len());
    for (k, (a, b)) in want.iter().zip(got).enumerate() {
        ensure!(
            a.shape() == b.shape(),
            "{what}: output {k} has shape {:?}, expected {:?}",
            b.shape(),
            a.shape()
        );
        let (a, b) = (a.f32s()?, b.f32s()?);
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let tol = 1e-4 * scale + 1e-5;
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let d = (x - y).abs();
            let bad = if x.is_nan() { !y.is_nan() } else { d.is_nan() || d > tol };
            if bad {
                bail!(
                    "{what}: output {k} element {i} is {y}, expected {x} (tolerance {tol:e}, scale {scale})"
                );
            }
        }
    }
    Ok(())
}

fn names(g: &Graph, vs: &[ValueId]) -> Vec<String> {
    vs.iter().map(|&v| g.value(v).name.clone()).collect()
}

/// What a run of the property counts, to show that the checks were not vacuous.
#[derive(Default)]
struct Tally {
    cases: usize,
    optimize_shrank: usize,
    fired: BTreeMap<&'static str, usize>,
    nodes: usize,
}

/// `g` with every input's batch dim (dim 0) symbolic, shapes re-inferred.
fn symbolic_batch(g: &Graph) -> Result<Graph> {
    let shapes: Vec<(ValueId, pare::ir::Shape)> = g
        .inputs()
        .iter()
        .map(|&v| {
            let mut s = g.fact(v).shape.clone();
            s[0] = pare::ir::Dim::Sym("N".into());
            (v, s)
        })
        .collect();
    let s = g.with_input_shapes(&shapes)?;
    s.verify()?;
    Ok(s)
}

/// All checks on one graph; returns whether `optimize` removed nodes and which rules fired.
fn check(g: &Graph, x: &[Tensor]) -> Result<(bool, Vec<&'static str>)> {
    let want = naive_eval(g, x).context("reference evaluation")?;
    for (t, &o) in want.iter().zip(g.outputs()) {
        let f = g.fact(o);
        let fits = f.rank() == t.rank()
            && f.shape.iter().zip(t.shape()).all(|(d, &n)| d.known().is_none_or(|k| k == n));
        ensure!(fits, "output {} evaluates to {:?}, inferred {f}", g.value(o).name, t.shape());
    }
    close("runtime without optimisation vs node-by-node eval", &want, &run(g.clone(), false, x)?)?;

    let mut fired = Vec::new();
    for (name, rule) in RULES {
        let mut h = g.clone();
        let n = passes::run_rules(&mut h, &[(name, rule)]).with_context(|| format!("rule {name}"))?;
        h.verify().with_context(|| format!("graph invalid after rule {name}:\n{}", describe(&h)))?;
        if n > 0 {
            fired.push(name);
        }
        ensure!(names(&h, h.outputs()) == names(g, g.outputs()), "rule {name} renamed the outputs");
        let got = run(h.clone(), false, x).with_context(|| format!("running after rule {name}"))?;
        close(&format!("after rule {name} ({n} rewrites)"), &want, &got)
            .with_context(|| format!("graph after {name}:\n{}", describe(&h)))?;
    }

    close("Runtime with optimize: true", &want, &run(g.clone(), true, x)?)?;
    let mut o = g.clone();
    passes::optimize(&mut o).context("passes::optimize")?;
    o.verify().with_context(|| format!("graph invalid after optimize:\n{}", describe(&o)))?;
    ensure!(names(&o, o.inputs()) == names(g, g.inputs()), "optimize renamed the inputs");
    ensure!(names(&o, o.outputs()) == names(g, g.outputs()), "optimize renamed the outputs");
    close("after passes::optimize", &want, &run(o.clone(), false, x)?)
        .with_context(|| format!("optimised graph:\n{}", describe(&o)))?;
    let live = g.topo_order()?.len();
    ensure!(o.node_count() <= live, "optimize grew the graph from {live} to {} nodes", o.node_count());
    // On a graph without dead nodes, a second run finds nothing left to do. (With dead
    // nodes it may: see `optimize_sees_through_dead_readers`.)
    let mut l = g.clone();
    l.remove_dead()?;
    passes::optimize(&mut l)?;
    let mut l2 = l.clone();
    passes::optimize(&mut l2)?;
    ensure!(
        l2.node_count() == l.node_count(),
        "optimize is not idempotent: {} then {} nodes",
        l.node_count(),
        l2.node_count()
    );

    for (label, src) in [("original", g), ("optimised", &o)] {
        let bytes = onnx::to_bytes(src).with_context(|| format!("exporting the {label} graph"))?;
        let back =
            onnx::load_bytes(&bytes).with_context(|| format!("importing the exported {label} graph"))?;
        back.verify().with_context(|| format!("imported {label} graph"))?;
        ensure!(
            names(&back, back.inputs()) == names(src, src.inputs()),
            "export/import of the {label} graph renamed the inputs: {:?}",
            names(&back, back.inputs())
        );
        ensure!(
            names(&back, back.outputs()) == names(src, src.outputs()),
            "export/import of the {label} graph renamed the outputs: {:?}",
            names(&back, back.outputs())
        );
        ensure!(
            back.node_count() >= o.node_count(),
            "the imported {label} graph has {} nodes, fewer than the {} of the optimised graph",
            back.node_count(),
            o.node_count()
        );
        close(&format!("export/import of the {label} graph"), &want, &run(back.clone(), false, x)?)
            .with_context(|| format!("imported {label} graph:\n{}", describe(&back)))?;
    }
    Ok((o.node_count() < live, fired))
}

#[test]
fn passes_and_onnx_roundtrip_preserve_outputs_on_random_graphs() {
    let mut config =
        Config::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256));
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x9a7e_2024);
    }
    config.failure_persistence = None;
    config.max_shrink_iters = 4096;
    let mut runner = TestRunner::new(config);
    let tally = RefCell::new(Tally::default());
    let strategy = (proptest::collection::vec(any::<u32>(), 0..200), 1..14usize, any::<u64>(), any::<u64>());
    let result = runner.run(&strategy, |(choices, steps, wseed, iseed)| {
        let (g, x) =
            build(&choices, steps, wseed, iseed).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        let fail = |what: &str, g: &Graph, e: anyhow::Error| {
            TestCaseError::fail(format!("{what}: {e:#}\n\ngraph:\n{}", describe(g)))
        };
        let (shrank, fired) = check(&g, &x).map_err(|e| fail("with concrete shapes", &g, e))?;
        // the same graph with a symbolic batch, as exported models usually have
        let sym = symbolic_batch(&g).map_err(|e| fail("making the batch symbolic", &g, e))?;
        check(&sym, &x).map_err(|e| fail("with a symbolic batch", &sym, e))?;
        let mut t = tally.borrow_mut();
        t.cases += 1;
        t.nodes += g.node_count();
        t.optimize_shrank += shrank as usize;
        for f in fired {
            *t.fired.entry(f).or_default() += 1;
        }
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (choices, steps, wseed, iseed))) => panic!(
            "property failed; minimal case: steps {steps}, weight seed {wseed}, input seed {iseed}, \
             choices {choices:?}\n{why}"
        ),
        Err(TestError::Abort(why)) => panic!("property aborted: {why}"),
    }
    let t = tally.into_inner();
    eprintln!(
        "{} graphs ({} nodes in all); optimize removed nodes from {}; rules fired on: {:?}",
        t.cases, t.nodes, t.optimize_shrank, t.fired
    );
    assert!(t.optimize_shrank > 0, "optimize never removed a node: the property is vacuous");
    for (name, _) in RULES {
        assert!(t.fired.get(name).copied().unwrap_or(0) > 0, "rule {name} never fired on {} graphs", t.cases);
    }
}

/// Regression test for a bug the property above found (fixed: `run_rules` now removes dead
/// nodes first). `optimize` counted nodes that no output depends on as
/// readers, so a value also read by a dead node is not "solely consumed" and the fusions
/// that need a sole consumer do not fire; `compact` removes the dead node only afterwards,
/// and a second `optimize` then makes the rewrite. Here Conv → BatchNormalization with a
/// dead Relu also reading the Conv keeps both nodes (and Identity → output with a dead
/// reader of its input keeps the Identity).
#[test]
fn optimize_sees_through_dead_readers() {
    let mut b = pare::ir::Builder::seeded(1);
    let x = b.input("x", DType::F32, known_shape(&[1, 2, 4, 4]));
    let c = b.conv("conv", x, 3, 3, 1, 1, 1, true, pare::ir::Init::Lecun).unwrap();
    let y = b.bn("bn", c).unwrap();
    b.relu("dead_relu", c).unwrap();
    let r = b.relu("relu", x).unwrap();
    let i = b.node("identity", Op::Identity, &[r]).unwrap();
    b.relu("dead_relu2", r).unwrap();
    let mut g = b.finish(&[y, i]).unwrap();
    passes::optimize(&mut g).unwrap();
    let ops: Vec<&str> = g.topo_order().unwrap().iter().map(|&n| g.node(n).unwrap().op.onnx_name()).collect();
    // BN folded into the Conv, the Identity removed (the output keeps its name on the Relu)
    assert_eq!(ops, ["Conv", "Relu"], "{}", describe(&g));
}
