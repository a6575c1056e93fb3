//! The one graph builder: named or auto-named nodes, constants, seeded weight
//! initialisation, and layer helpers. The zoo, the gradient rules, the tests and the
//! architecture search all build graphs with it.

use super::{
    Act, AutoPad, BatchNorm, Binary, Conv, Dim, Fact, Gemm, Graph, Op, Pool, Reduce, ReduceKind, Shape,
    Unary, ValueId,
};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, anyhow, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Normal, Uniform};

/// How a weight is initialised.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// Kaiming-normal, fan-in, ReLU gain: N(0, 2 / fan_in).
    KaimingRelu,
    /// LeCun-normal (Kaiming with gain 1): N(0, 1 / fan_in), for layers not followed by ReLU.
    Lecun,
    /// PyTorch's default for Linear/Conv weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    TorchDefault,
}

/// Adds nodes and constants to a graph. Auto-named items are called `{prefix}{k}` (nodes)
/// and `{prefix}_c{k}` (constants) with a running count `k`; weight initialisation draws
/// from a seeded generator, so a build is reproducible.
pub struct Builder {
    g: Graph,
    prefix: String,
    count: usize,
    rng: StdRng,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::seeded(0)
    }
}

impl Builder {
    /// A builder of a new graph, with seed 0 and prefix "n".
    pub fn new() -> Builder {
        Builder::seeded(0)
    }
    /// A builder of a new graph whose weight initialisation draws from `seed`.
    pub fn seeded(seed: u64) -> Builder {
        Builder::on(Graph::new(), seed)
    }
    /// A builder that goes on adding to `g`.
    pub fn on(g: Graph, seed: u64) -> Builder {
        Builder { g, prefix: "n".into(), count: 0, rng: StdRng::seed_from_u64(seed) }
    }
    /// Sets the prefix of auto-generated names.
    pub fn with_prefix(mut self, prefix: &str) -> Builder {
        self.prefix = prefix.to_string();
        self
    }
    /// The graph so far.
    pub fn graph(&self) -> &Graph {
        &self.g
    }
    /// The graph so far, mutably.
    pub fn graph_mut(&mut self) -> &mut Graph {
        &mut self.g
    }
    /// The graph, as built so far (outputs not set).
    pub fn into_graph(self) -> Graph {
        self.g
    }
    /// Fact of a value.
    pub fn fact(&self, v: ValueId) -> &Fact {
        self.g.fact(v)
    }
    /// Sets the graph's outputs, verifies it and returns it.
    pub fn finish(mut self, outputs: &[ValueId]) -> Result<Graph> {
        self.g.set_outputs(outputs.to_vec());
        self.g.verify()?;
        Ok(self.g)
    }

    fn next_name(&mut self, konst: bool) -> String {
        self.count += 1;
        if konst {
            format!("{}_c{}", self.prefix, self.count)
        } else {
            format!("{}{}", self.prefix, self.count)
        }
    }

    /// Adds a run-time input.
    pub fn input(&mut self, name: &str, dtype: DType, shape: Shape) -> ValueId {
        self.g.add_input(name, dtype, shape)
    }
    /// Adds a named node with all inputs present; returns its first output.
    pub fn node(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        Ok(self.g.add_node(name, op, inputs.iter().map(|&v| Some(v)).collect())?[0])
    }
    /// Adds a named node with optional inputs; returns all its outputs.
    pub fn nodes(&mut self, name: &str, op: Op, inputs: Vec<Option<ValueId>>) -> Result<Vec<ValueId>> {
        self.g.add_node(name, op, inputs)
    }
    /// Adds an auto-named node with all inputs present; returns its first output.
    pub fn op(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        let name = self.next_name(false);
        self.node(&name, op, inputs)
    }
    /// Adds an auto-named node with optional inputs; returns all its outputs.
    pub fn op_opt(&mut self, op: Op, inputs: Vec<Option<ValueId>>) -> Result<Vec<ValueId>> {
        let name = self.next_name(false);
        self.g.add_node(&name, op, inputs)
    }
    /// Adds a named constant.
    pub fn konst(&mut self, name: &str, t: Tensor) -> ValueId {
        self.g.add_const(name, t)
    }
    /// Adds an auto-named constant.
    pub fn auto_konst(&mut self, t: Tensor) -> ValueId {
        let name = self.next_name(true);
        self.g.add_const(&name, t)
    }
    /// An auto-named int64 vector constant.
    pub fn ints(&mut self, v: &[i64]) -> ValueId {
        self.auto_konst(Tensor::from_vec(vec![v.len()], v.to_vec()))
    }
    /// An auto-named f32 scalar constant.
    pub fn scalar(&mut self, x: f32) -> ValueId {
        self.auto_konst(Tensor::scalar(x))
    }
    /// An auto-named f32 zero tensor.
    pub fn zeros(&mut self, shape: &[usize]) -> ValueId {
        self.auto_konst(Tensor::zeros(DType::F32, shape.to_vec()))
    }
    /// The concrete shape of `v`, or an error naming it.
    pub fn shape(&self, v: ValueId) -> Result<Vec<usize>> {
        let f = self.g.fact(v);
        f.concrete_shape()
            .ok_or_else(|| anyhow!("value \"{}\" has no concrete shape {f}", self.g.value(v).name))
    }
    /// Channel count (axis 1) of `x`.
    pub fn channels(&self, x: ValueId) -> Result<usize> {
        let f = self.g.fact(x);
        f.shape.get(1).and_then(|d| d.known()).ok_or_else(|| anyhow!("value has no known channel axis: {f}"))
    }

    /// A tensor drawn uniformly from `[-scale, scale)`.
    pub fn uniform(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| scale * self.rng.random_range(-1.0f32..1.0)).collect();
        Tensor::from_vec(shape.to_vec(), v)
    }
    /// A weight constant initialised by `init` with fan-in `fan_in`.
    pub fn weight(&mut self, name: &str, shape: Vec<usize>, fan_in: usize, init: Init) -> Result<ValueId> {
        let n: usize = shape.iter().product();
        let fan = fan_in.max(1) as f32;
        let data: Vec<f32> = match init {
            Init::KaimingRelu | Init::Lecun => {
                let gain2 = if matches!(init, Init::KaimingRelu) { 2.0 } else { 1.0 };
                let d = Normal::new(0.0, (gain2 / fan).sqrt())?;
                (0..n).map(|_| self.rng.sample(d)).collect()
            }
            Init::TorchDefault => {
                let bound = 1.0 / fan.sqrt();
                let d = Uniform::new_inclusive(-bound, bound)?;
                (0..n).map(|_| self.rng.sample(d)).collect()
            }
        };
        Ok(self.g.add_const(name, Tensor::from_vec(shape, data)))
    }
    /// A 1-D constant of `n` copies of `v`.
    pub fn filled(&mut self, name: &str, n: usize, v: f32) -> ValueId {
        self.g.add_const(name, Tensor::from_vec(vec![n], vec![v; n]))
    }

    /// Element-wise binary op.
    pub fn bin(&mut self, b: Binary, x: ValueId, y: ValueId) -> Result<ValueId> {
        self.op(Op::Binary(b), &[x, y])
    }
    /// Reshape to a concrete shape (no node when the shape is already right).
    pub fn reshape(&mut self, x: ValueId, shape: &[usize]) -> Result<ValueId> {
        if self.shape(x)? == shape {
            return Ok(x);
        }
        let s = self.ints(&shape.iter().map(|&d| d as i64).collect::<Vec<_>>());
        self.op(Op::Reshape { allowzero: false }, &[x, s])
    }
    /// ReduceSum over `axes`.
    pub fn reduce_sum(&mut self, x: ValueId, axes: &[usize], keepdims: bool) -> Result<ValueId> {
        let a = self.ints(&axes.iter().map(|&d| d as i64).collect::<Vec<_>>());
        let r = Reduce { kind: ReduceKind::Sum, keepdims, noop_with_empty_axes: false };
        self.op(Op::Reduce(r), &[x, a])
    }
    /// Sums a broadcast tensor back to `target`'s shape (the adjoint of broadcasting).
    pub fn unbroadcast(&mut self, dy: ValueId, target: &[usize]) -> Result<ValueId> {
        let ys = self.shape(dy)?;
        if ys == target {
            return Ok(dy);
        }
        let lead = ys.len().saturating_sub(target.len());
        let axes: Vec<usize> =
            (0..ys.len()).filter(|&i| i < lead || (target[i - lead] == 1 && ys[i] != 1)).collect();
        let r = if axes.is_empty() { dy } else { self.reduce_sum(dy, &axes, true)? };
        self.reshape(r, target)
    }
    /// Broadcast to a concrete shape.
    pub fn expand(&mut self, x: ValueId, shape: &[usize]) -> Result<ValueId> {
        let s = self.ints(&shape.iter().map(|&d| d as i64).collect::<Vec<_>>());
        self.op(Op::Expand, &[x, s])
    }
    /// Swaps the last two axes.
    pub fn transpose_last2(&mut self, x: ValueId) -> Result<ValueId> {
        let r = self.shape(x)?.len();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.op(Op::Transpose { perm: Some(perm) }, &[x])
    }
    /// `alpha * A' * B'` as a Gemm without bias.
    pub fn gemm(
        &mut self,
        a: ValueId,
        b: ValueId,
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
    ) -> Result<ValueId> {
        let op = Op::Gemm(Gemm { alpha, beta: 1.0, trans_a, trans_b, act: Act::None });
        self.op(op, &[a, b])
    }

    /// Adds the input `input` f32 `[N, C, H, W]` (symbolic batch `N`) followed by the
    /// per-channel normalisation `(x - mean) / std`.
    pub fn image_input(
        &mut self,
        c: usize,
        h: usize,
        w: usize,
        mean: &[f32],
        std: &[f32],
    ) -> Result<ValueId> {
        let shape = vec![Dim::Sym("N".into()), Dim::Known(c), Dim::Known(h), Dim::Known(w)];
        let x = self.g.add_input("input", DType::F32, shape);
        let m = self.g.add_const("normalize.mean", Tensor::from_vec(vec![1, c, 1, 1], mean.to_vec()));
        let s = self.g.add_const("normalize.std", Tensor::from_vec(vec![1, c, 1, 1], std.to_vec()));
        let x = self.node("normalize.sub", Op::Binary(Binary::Sub), &[x, m])?;
        self.node("normalize.div", Op::Binary(Binary::Div), &[x, s])
    }
    /// Square convolution `k x k` with stride, symmetric padding and groups; bias optional.
    /// The weight is `{name}.weight`, the bias `{name}.bias` (zeros).
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        name: &str,
        x: ValueId,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        groups: usize,
        bias: bool,
        init: Init,
    ) -> Result<ValueId> {
        let cin = self.channels(x)?;
        if groups == 0 || !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
            bail!("conv \"{name}\": {cin} -> {cout} channels not divisible into {groups} groups");
        }
        let w = self.weight(
            &format!("{name}.weight"),
            vec![cout, cin / groups, k, k],
            cin / groups * k * k,
            init,
        )?;
        let mut ins = vec![x, w];
        if bias {
            ins.push(self.filled(&format!("{name}.bias"), cout, 0.0));
        }
        let op = Op::Conv(Conv {
            kernel: vec![k, k],
            strides: vec![stride, stride],
            dilations: vec![],
            pads: vec![pad; 4],
            auto_pad: AutoPad::NotSet,
            group: groups,
            act: Act::None,
        });
        self.node(name, op, &ins)
    }
    /// Inference-mode BatchNorm (scale 1, bias 0, mean 0, var 1, eps 1e-5).
    pub fn bn(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        let c = self.channels(x)?;
        let s = self.filled(&format!("{name}.weight"), c, 1.0);
        let b = self.filled(&format!("{name}.bias"), c, 0.0);
        let m = self.filled(&format!("{name}.running_mean"), c, 0.0);
        let v = self.filled(&format!("{name}.running_var"), c, 1.0);
        let op = Op::BatchNorm(BatchNorm { epsilon: 1e-5, momentum: 0.9, training: false });
        self.node(name, op, &[x, s, b, m, v])
    }
    /// Fully connected layer: Gemm with `W [out, in]` (transB = 1) and bias `[out]`.
    pub fn fc(&mut self, name: &str, x: ValueId, out: usize, init: Init) -> Result<ValueId> {
        let f = self.g.fact(x);
        let cin = match f.shape.as_slice() {
            [_, Dim::Known(c)] => *c,
            _ => bail!("fc \"{name}\" needs a [N, features] input with known features, got {f}"),
        };
        let w = self.weight(&format!("{name}.weight"), vec![out, cin], cin, init)?;
        let b = self.filled(&format!("{name}.bias"), out, 0.0);
        let op = Op::Gemm(Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true, act: Act::None });
        self.node(name, op, &[x, w, b])
    }
    /// ReLU.
    pub fn relu(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        self.node(name, Op::Unary(Unary::Relu), &[x])
    }
    /// ReLU6 as `Clip(x, 0, 6)`.
    pub fn relu6(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        let lo = self.g.add_const(&format!("{name}.min"), Tensor::scalar(0f32));
        let hi = self.g.add_const(&format!("{name}.max"), Tensor::scalar(6f32));
        self.node(name, Op::Clip, &[x, lo, hi])
    }
    /// Element-wise sum.
    pub fn add(&mut self, name: &str, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.node(name, Op::Binary(Binary::Add), &[a, b])
    }
    /// Max pooling with a square window and stride, no padding.
    pub fn maxpool(&mut self, name: &str, x: ValueId, k: usize, stride: usize) -> Result<ValueId> {
        let op = Op::MaxPool(Pool {
            kernel: vec![k, k],
            strides: vec![stride, stride],
            dilations: vec![],
            pads: vec![],
            auto_pad: AutoPad::NotSet,
            ceil_mode: false,
            count_include_pad: false,
            indices: false,
        });
        self.node(name, op, &[x])
    }
    /// Flatten to `[N, rest]`.
    pub fn flatten(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        self.node(name, Op::Flatten { axis: 1 }, &[x])
    }
    /// Global average pool (`avgpool`) followed by a flatten (`flatten`) to `[N, C]`.
    pub fn global_pool(&mut self, x: ValueId) -> Result<ValueId> {
        let p = self.node("avgpool", Op::GlobalAveragePool, &[x])?;
        self.flatten("flatten", p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::known_shape;

    #[test]
    fn auto_names_layers_and_reproducible_weights() {
        let build = |seed| {
            let mut b = Builder::seeded(seed).with_prefix("t");
            let x = b.input("x", DType::F32, known_shape(&[2, 3, 8, 8]));
            let y = b.conv("c", x, 4, 3, 1, 1, 1, true, Init::KaimingRelu).unwrap();
            let y = b.relu("r", y).unwrap();
            let s = b.reduce_sum(y, &[2, 3], false).unwrap();
            b.finish(&[s]).unwrap()
        };
        let (g1, g2, g3) = (build(1), build(1), build(2));
        let w = |g: &Graph| g.fact(g.find("c.weight").unwrap()).konst.clone().unwrap();
        assert_eq!(w(&g1), w(&g2));
        assert_ne!(w(&g1), w(&g3));
        assert_eq!(g1.fact(g1.outputs()[0]).shape, known_shape(&[2, 4]));
        // the ReduceSum node and its axes constant got auto names
        assert!(
            g1.find("t2").is_some() && g1.find("t_c1").is_some(),
            "{:?}",
            g1.values().map(|v| &v.1.name).collect::<Vec<_>>()
        );
        // bad grouping is a clear error
        let mut b = Builder::new();
        let x = b.input("x", DType::F32, known_shape(&[1, 3, 4, 4]));
        let e = b.conv("c", x, 4, 3, 1, 1, 2, false, Init::Lecun).unwrap_err();
        assert!(e.to_string().contains("not divisible"), "{e}");
    }
}
