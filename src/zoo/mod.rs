//! A model zoo: reference architectures from the compression literature, built directly as
//! IR graphs with freshly initialised (seeded) weights.
//!
//! Every model takes `input`, f32 `[N, C, H, W]` with a symbolic batch `N` and pixel values in
//! `[0, 1]`, and starts with the dataset normalisation (`Sub` mean, `Div` std, per channel, as
//! constants) so that an exported ONNX file is self-contained. The output is `logits` `[N, classes]`.
//!
//! Weights and nodes are named after the PyTorch modules they correspond to (`conv1.weight`,
//! `layer1.0.bn1`, ...). Initialisation: Kaiming-normal (fan-in, ReLU gain) for conv and fc
//! weights that feed a ReLU, LeCun-normal (gain 1) for those that do not, PyTorch's default
//! uniform `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for the classifier's weight; biases 0;
//! BatchNorm scale 1, bias 0, running mean 0, running variance 1.

mod models;
#[cfg(test)]
mod tests;

use crate::ir::{Act, AutoPad, BatchNorm, Binary, Conv, Dim, Gemm, Graph, Op, Pool, Unary, ValueId};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, anyhow, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Normal, Uniform};

/// MNIST normalisation (mean, std) for the single channel.
pub const MNIST_NORM: ([f32; 1], [f32; 1]) = ([0.1307], [0.3081]);
/// CIFAR-10 normalisation (per-channel mean, std).
pub const CIFAR_NORM: ([f32; 3], [f32; 3]) = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]);

/// Names accepted by `build`, with one-line descriptions.
pub fn names() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "lenet-300-100",
            "MNIST MLP 784-300-100-10 with ReLU (LeCun et al. 1998; Han et al. 2015), 266,610 params",
        ),
        (
            "lenet-5",
            "Caffe LeNet-5 on MNIST: conv20-pool-conv50-pool-fc500-relu-fc (Han et al. 2015), 431,080 params",
        ),
        ("mlp-1200", "MNIST MLP 784-1200-1200-10 with ReLU (Hinton et al. 2015, distillation teacher)"),
        ("mlp-800", "MNIST MLP 784-800-800-10 with ReLU (Hinton et al. 2015, distillation student)"),
        ("vgg-small", "CIFAR VGG: [64,64,M,128,128,M,256,256,M] conv3x3+BN+ReLU, global avg pool, fc"),
        ("resnet-20", "CIFAR ResNet-20 (He et al. 2016), 16/32/64 channels, 1x1 projection shortcuts"),
        ("resnet-56", "CIFAR ResNet-56 (He et al. 2016), 16/32/64 channels, 1x1 projection shortcuts"),
        ("mobilenetv2-cifar", "MobileNetV2 width 1.0 adapted to 32x32 inputs (stride-1 stem and stage 2)"),
    ]
}

/// Builds a zoo model with freshly initialised weights from `seed`; see the module docs for
/// the input and output conventions.
pub fn build(name: &str, classes: usize, seed: u64) -> Result<Graph> {
    if classes == 0 {
        bail!("a model needs at least one class, got classes = 0");
    }
    let mut b = Builder::new(seed);
    let logits = match name {
        "lenet-300-100" => models::mlp(&mut b, &[300, 100], classes)?,
        "lenet-5" => models::lenet5(&mut b, classes)?,
        "mlp-1200" => models::mlp(&mut b, &[1200, 1200], classes)?,
        "mlp-800" => models::mlp(&mut b, &[800, 800], classes)?,
        "vgg-small" => models::vgg_small(&mut b, classes)?,
        "resnet-20" => models::cifar_resnet(&mut b, 3, classes)?,
        "resnet-56" => models::cifar_resnet(&mut b, 9, classes)?,
        "mobilenetv2-cifar" => models::mobilenet_v2_cifar(&mut b, classes)?,
        _ => {
            let known: Vec<&str> = names().iter().map(|(n, _)| *n).collect();
            bail!("unknown zoo model \"{name}\"; known models: {}", known.join(", "))
        }
    };
    b.finish(logits)
}

/// Number of trainable parameters, counted as PyTorch's `parameters()` would: the constant
/// weight and bias inputs of Conv and Gemm and the scale and bias of BatchNorm (running
/// statistics and the normalisation constants are not parameters).
pub fn param_count(g: &Graph) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    for (_, node) in g.live_nodes() {
        let slots: &[usize] = match node.op {
            Op::Conv(_) | Op::Gemm(_) | Op::BatchNorm(_) => &[1, 2],
            _ => &[],
        };
        for &s in slots {
            if let Some(Some(v)) = node.inputs.get(s)
                && let Some(k) = &g.fact(*v).konst
                && seen.insert(*v)
            {
                n += k.len();
            }
        }
    }
    n
}

/// How a weight is initialised.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init {
    /// Kaiming-normal, fan-in, ReLU gain: N(0, 2 / fan_in).
    KaimingRelu,
    /// LeCun-normal (Kaiming with gain 1): N(0, 1 / fan_in), for layers not followed by ReLU.
    Lecun,
    /// PyTorch's default for Linear/Conv weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    TorchDefault,
}

/// Incremental graph construction with seeded weight initialisation.
pub(crate) struct Builder {
    g: Graph,
    rng: StdRng,
}

impl Builder {
    fn new(seed: u64) -> Builder {
        Builder { g: Graph::new(), rng: StdRng::seed_from_u64(seed) }
    }

    /// Channel count (axis 1) of `x`.
    pub(crate) fn channels(&self, x: ValueId) -> Result<usize> {
        let f = self.g.fact(x);
        f.shape.get(1).and_then(|d| d.known()).ok_or_else(|| anyhow!("value has no known channel axis: {f}"))
    }

    /// Adds the input `[N, C, H, W]` followed by the per-channel normalisation.
    pub(crate) fn input(
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

    fn node(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        Ok(self.g.add_node(name, op, inputs.iter().map(|&v| Some(v)).collect())?[0])
    }

    fn weight(&mut self, name: &str, shape: Vec<usize>, fan_in: usize, init: Init) -> Result<ValueId> {
        let n: usize = shape.iter().product();
        let fan = fan_in as f32;
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

    fn filled(&mut self, name: &str, n: usize, v: f32) -> ValueId {
        self.g.add_const(name, Tensor::from_vec(vec![n], vec![v; n]))
    }

    /// Square convolution `k x k` with stride, symmetric padding and groups; bias optional.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv(
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
        if !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
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
    pub(crate) fn bn(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        let c = self.channels(x)?;
        let s = self.filled(&format!("{name}.weight"), c, 1.0);
        let b = self.filled(&format!("{name}.bias"), c, 0.0);
        let m = self.filled(&format!("{name}.running_mean"), c, 0.0);
        let v = self.filled(&format!("{name}.running_var"), c, 1.0);
        let op = Op::BatchNorm(BatchNorm { epsilon: 1e-5, momentum: 0.9, training: false });
        self.node(name, op, &[x, s, b, m, v])
    }

    /// Fully connected layer: Gemm with `W [out, in]` (transB = 1) and bias `[out]`.
    pub(crate) fn fc(&mut self, name: &str, x: ValueId, out: usize, init: Init) -> Result<ValueId> {
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
    pub(crate) fn relu(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        self.node(name, Op::Unary(Unary::Relu), &[x])
    }

    /// ReLU6 as `Clip(x, 0, 6)`.
    pub(crate) fn relu6(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        let lo = self.g.add_const(&format!("{name}.min"), Tensor::scalar(0f32));
        let hi = self.g.add_const(&format!("{name}.max"), Tensor::scalar(6f32));
        self.node(name, Op::Clip, &[x, lo, hi])
    }

    /// Element-wise sum.
    pub(crate) fn add(&mut self, name: &str, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.node(name, Op::Binary(Binary::Add), &[a, b])
    }

    /// Max pooling with a square window and stride, no padding.
    pub(crate) fn maxpool(&mut self, name: &str, x: ValueId, k: usize, stride: usize) -> Result<ValueId> {
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
    pub(crate) fn flatten(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        self.node(name, Op::Flatten { axis: 1 }, &[x])
    }

    /// Global average pool followed by a flatten to `[N, C]`.
    pub(crate) fn global_pool(&mut self, x: ValueId) -> Result<ValueId> {
        let p = self.node("avgpool", Op::GlobalAveragePool, &[x])?;
        self.flatten("flatten", p)
    }

    fn finish(mut self, logits: ValueId) -> Result<Graph> {
        self.g.rename(logits, "logits");
        self.g.outputs = vec![logits];
        self.g.verify()?;
        Ok(self.g)
    }
}
