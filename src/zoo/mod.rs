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

pub use crate::ir::Init;
use crate::ir::{Builder, Graph, Op};
use anyhow::{Result, bail};

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
    let mut b = Builder::seeded(seed);
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
    let mut g = b.into_graph();
    g.rename(logits, "logits");
    g.set_outputs(vec![logits]);
    g.verify()?;
    Ok(g)
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
