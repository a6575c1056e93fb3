//! The zoo's architectures, each a function adding layers to a `Builder` and returning the
//! logits value.

use super::{CIFAR_NORM, MNIST_NORM};
use crate::ir::{Builder, Init, ValueId};
use anyhow::Result;

/// MNIST MLP `784 - hidden... - classes`: `Flatten`, then `Gemm` + `Relu` per hidden layer.
/// Layers are named `fc1`, `fc2`, ... (`lenet-300-100`, `mlp-1200`, `mlp-800`).
pub(super) fn mlp(b: &mut Builder, hidden: &[usize], classes: usize) -> Result<ValueId> {
    let x = b.image_input(1, 28, 28, &MNIST_NORM.0, &MNIST_NORM.1)?;
    let mut x = b.flatten("flatten", x)?;
    for (i, &h) in hidden.iter().enumerate() {
        x = b.fc(&format!("fc{}", i + 1), x, h, Init::KaimingRelu)?;
        x = b.relu(&format!("relu{}", i + 1), x)?;
    }
    b.fc(&format!("fc{}", hidden.len() + 1), x, classes, Init::TorchDefault)
}

/// Caffe's LeNet-5 as pruned by Han et al.: `conv1` 20x5x5 -> max pool 2/2 -> `conv2` 50x5x5 ->
/// max pool 2/2 -> flatten (800) -> `fc1` 500 -> ReLU -> `fc2`. The convolutions have no
/// activation (as in Caffe's prototxt), so they get LeCun-normal init.
pub(super) fn lenet5(b: &mut Builder, classes: usize) -> Result<ValueId> {
    let x = b.image_input(1, 28, 28, &MNIST_NORM.0, &MNIST_NORM.1)?;
    let x = b.conv("conv1", x, 20, 5, 1, 0, 1, true, Init::Lecun)?;
    let x = b.maxpool("pool1", x, 2, 2)?;
    let x = b.conv("conv2", x, 50, 5, 1, 0, 1, true, Init::Lecun)?;
    let x = b.maxpool("pool2", x, 2, 2)?;
    let x = b.flatten("flatten", x)?;
    let x = b.fc("fc1", x, 500, Init::KaimingRelu)?;
    let x = b.relu("relu1", x)?;
    b.fc("fc2", x, classes, Init::TorchDefault)
}

/// Conv (no bias) + BatchNorm + ReLU named `{name}.conv`, `{name}.bn`, `{name}.relu`.
fn conv_bn_relu(b: &mut Builder, name: &str, x: ValueId, cout: usize) -> Result<ValueId> {
    let x = b.conv(&format!("{name}.conv"), x, cout, 3, 1, 1, 1, false, Init::KaimingRelu)?;
    let x = b.bn(&format!("{name}.bn"), x)?;
    b.relu(&format!("{name}.relu"), x)
}

/// CIFAR VGG with layout `[64, 64, M, 128, 128, M, 256, 256, M]`: each number is a 3x3 conv
/// (pad 1, no bias) + BatchNorm + ReLU, named `features.{i}.{conv,bn,relu}`; `M` is a 2x2
/// max pool (`pool{j}`). Then global average pool over the remaining 4x4, flatten, and one
/// `fc` 256 -> classes. About 1.15M parameters.
pub(super) fn vgg_small(b: &mut Builder, classes: usize) -> Result<ValueId> {
    let mut x = b.image_input(3, 32, 32, &CIFAR_NORM.0, &CIFAR_NORM.1)?;
    let (mut conv, mut pool) = (0, 0);
    for stage in [64, 128, 256] {
        for _ in 0..2 {
            x = conv_bn_relu(b, &format!("features.{conv}"), x, stage)?;
            conv += 1;
        }
        pool += 1;
        x = b.maxpool(&format!("pool{pool}"), x, 2, 2)?;
    }
    let x = b.global_pool(x)?;
    b.fc("fc", x, classes, Init::TorchDefault)
}

/// He et al.'s CIFAR ResNet-(6n+2): a 3x3 stem of 16 channels, three stages of `n` basic
/// blocks with 16, 32 and 64 channels (the second and third start with stride 2), global
/// average pool and `fc`. Block `layer{s}.{i}`: `conv1` 3x3 -> `bn1` -> `relu1` -> `conv2`
/// 3x3 -> `bn2` -> `add` shortcut -> `relu2`.
///
/// The paper's option A shortcut (strided identity with zero-padded channels) needs
/// Slice/Pad/Concat in ONNX; here the two downsampling blocks use option B instead, a 1x1
/// stride-2 conv + BatchNorm projection (`layer{s}.0.shortcut.{conv,bn}`), which adds
/// 2,752 parameters (ResNet-20 with 10 classes: 272,474 instead of 269,722).
pub(super) fn cifar_resnet(b: &mut Builder, n: usize, classes: usize) -> Result<ValueId> {
    let x = b.image_input(3, 32, 32, &CIFAR_NORM.0, &CIFAR_NORM.1)?;
    let x = b.conv("conv1", x, 16, 3, 1, 1, 1, false, Init::KaimingRelu)?;
    let x = b.bn("bn1", x)?;
    let mut x = b.relu("relu", x)?;
    for (s, planes) in [16, 32, 64].into_iter().enumerate() {
        for i in 0..n {
            let stride = if s > 0 && i == 0 { 2 } else { 1 };
            let p = format!("layer{}.{i}", s + 1);
            let y = b.conv(&format!("{p}.conv1"), x, planes, 3, stride, 1, 1, false, Init::KaimingRelu)?;
            let y = b.bn(&format!("{p}.bn1"), y)?;
            let y = b.relu(&format!("{p}.relu1"), y)?;
            let y = b.conv(&format!("{p}.conv2"), y, planes, 3, 1, 1, 1, false, Init::KaimingRelu)?;
            let y = b.bn(&format!("{p}.bn2"), y)?;
            let short = if stride != 1 || b.channels(x)? != planes {
                let sc = b.conv(
                    &format!("{p}.shortcut.conv"),
                    x,
                    planes,
                    1,
                    stride,
                    0,
                    1,
                    false,
                    Init::KaimingRelu,
                )?;
                b.bn(&format!("{p}.shortcut.bn"), sc)?
            } else {
                x
            };
            let y = b.add(&format!("{p}.add"), y, short)?;
            x = b.relu(&format!("{p}.relu2"), y)?;
        }
    }
    let x = b.global_pool(x)?;
    b.fc("fc", x, classes, Init::TorchDefault)
}

/// MobileNetV2 (Sandler et al. 2018), width 1.0, adapted to 32x32 inputs as in the common
/// CIFAR ports (kuangliu/pytorch-cifar): the 3x3 stem (32 channels) has stride 1 instead of 2
/// and the 24-channel stage has stride 1 instead of 2, so the spatial sizes go
/// 32 -> 32 -> 32 -> 16 -> 8 -> 8 -> 4 -> 4. Otherwise as in the paper: inverted residual blocks
/// `layers.{i}` (expand 1x1 `conv1`/`bn1`/`relu1`, omitted when the expansion is 1;
/// depthwise 3x3 `conv2`/`bn2`/`relu2`; linear projection 1x1 `conv3`/`bn3`), ReLU6 as
/// `Clip(0, 6)`, an identity residual `add` only when stride is 1 and channels match (no
/// projection shortcuts), a 1x1 head `conv2`/`bn2`/`relu2` to 1280 channels, global average
/// pool and `fc`. About 2.24M parameters with 10 classes.
pub(super) fn mobilenet_v2_cifar(b: &mut Builder, classes: usize) -> Result<ValueId> {
    // (expansion, out channels, blocks, stride of the first block)
    const CFG: [(usize, usize, usize, usize); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 1),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let x = b.image_input(3, 32, 32, &CIFAR_NORM.0, &CIFAR_NORM.1)?;
    let x = b.conv("conv1", x, 32, 3, 1, 1, 1, false, Init::KaimingRelu)?;
    let x = b.bn("bn1", x)?;
    let mut x = b.relu6("relu1", x)?;
    let mut i = 0;
    for (t, out, n, s) in CFG {
        for j in 0..n {
            let stride = if j == 0 { s } else { 1 };
            let p = format!("layers.{i}");
            let cin = b.channels(x)?;
            let hidden = cin * t;
            let mut y = x;
            if t != 1 {
                y = b.conv(&format!("{p}.conv1"), y, hidden, 1, 1, 0, 1, false, Init::KaimingRelu)?;
                y = b.bn(&format!("{p}.bn1"), y)?;
                y = b.relu6(&format!("{p}.relu1"), y)?;
            }
            y = b.conv(&format!("{p}.conv2"), y, hidden, 3, stride, 1, hidden, false, Init::KaimingRelu)?;
            y = b.bn(&format!("{p}.bn2"), y)?;
            y = b.relu6(&format!("{p}.relu2"), y)?;
            y = b.conv(&format!("{p}.conv3"), y, out, 1, 1, 0, 1, false, Init::Lecun)?;
            y = b.bn(&format!("{p}.bn3"), y)?;
            x = if stride == 1 && cin == out { b.add(&format!("{p}.add"), y, x)? } else { y };
            i += 1;
        }
    }
    let x = b.conv("conv2", x, 1280, 1, 1, 0, 1, false, Init::KaimingRelu)?;
    let x = b.bn("bn2", x)?;
    let x = b.relu6("relu2", x)?;
    let x = b.global_pool(x)?;
    b.fc("fc", x, classes, Init::TorchDefault)
}
