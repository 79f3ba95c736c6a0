//! torchvision's ResNet18 without its fc layer, for inference: its shape ([`Layers`], the stem
//! and eight [`BasicBlock`]s over any convolution type) and its weights, with every BatchNorm
//! folded into the convolution before it. Two networks are built on it from the same folded
//! weights: [`crate::nhwc::ResNet18Nhwc`] on the CPU (drift-conv's kernels) and, with a GPU
//! feature, `crate::gpu::ResNet18Features` (burn's `conv2d`).
//!
//! Folding: BN(conv(x)) = gamma * (w*x - mean) / sqrt(var + eps) + beta, which is one
//! convolution with weights w * s and bias beta - mean * s, where s = gamma / sqrt(var + eps).
//! The scale is computed in f64 and rounded once, so the folded network differs from
//! torchvision's only in float rounding (about 1e-6 relative), and it saves a full pass over
//! every activation.

use drift_conv::ConvWeights;

use crate::weights::StateDict;

/// PyTorch's BatchNorm2d default epsilon, which torchvision's ResNet uses.
const BN_EPS: f64 = 1e-5;

/// The convolution `conv` of `dict` with the BatchNorm `bn` folded in, in PyTorch's layout.
fn folded(dict: &StateDict, conv: &str, bn: &str, stride: usize, padding: usize) -> ConvWeights {
    let tensor = |name: String| {
        dict.get(&name)
            .unwrap_or_else(|| panic!("StateDict checked that {name} exists"))
    };
    let weight = tensor(format!("{conv}.weight"));
    let gamma = &tensor(format!("{bn}.weight")).values;
    let beta = &tensor(format!("{bn}.bias")).values;
    let mean = &tensor(format!("{bn}.running_mean")).values;
    let var = &tensor(format!("{bn}.running_var")).values;
    let out_channels = weight.shape[0];
    let per_output = weight.values.len() / out_channels;
    let mut folded = Vec::with_capacity(weight.values.len());
    let mut bias = Vec::with_capacity(out_channels);
    for channel in 0..out_channels {
        let scale = f64::from(gamma[channel]) / (f64::from(var[channel]) + BN_EPS).sqrt();
        let row = &weight.values[channel * per_output..(channel + 1) * per_output];
        folded.extend(row.iter().map(|&w| (f64::from(w) * scale) as f32));
        bias.push((f64::from(beta[channel]) - f64::from(mean[channel]) * scale) as f32);
    }
    let shape: [usize; 4] = weight
        .shape
        .clone()
        .try_into()
        .expect("StateDict checked conv weights are 4-d");
    ConvWeights {
        weight: folded,
        shape,
        bias,
        stride,
        padding,
    }
}

/// torchvision's BasicBlock: two 3x3 convolutions and a shortcut, over a convolution type.
#[derive(Debug, Clone)]
pub(crate) struct BasicBlock<C> {
    pub(crate) conv1: C,
    pub(crate) conv2: C,
    pub(crate) downsample: Option<C>,
}

/// ResNet18's convolutions up to the global average pool: the stem and eight blocks.
#[derive(Debug, Clone)]
pub(crate) struct Layers<C> {
    pub(crate) stem: C,
    pub(crate) blocks: Vec<BasicBlock<C>>,
}

impl<C> Layers<C> {
    /// Folds every convolution of `dict` and turns it into a `C` with `build`.
    pub(crate) fn new(dict: &StateDict, mut build: impl FnMut(ConvWeights) -> C) -> Self {
        let stem = build(folded(dict, "conv1", "bn1", 2, 3));
        let mut blocks = Vec::with_capacity(8);
        for stage in 1..=4 {
            for block in 0..2 {
                let stride = if stage > 1 && block == 0 { 2 } else { 1 };
                let prefix = format!("layer{stage}.{block}");
                let conv1 = build(folded(
                    dict,
                    &format!("{prefix}.conv1"),
                    &format!("{prefix}.bn1"),
                    stride,
                    1,
                ));
                let conv2 = build(folded(
                    dict,
                    &format!("{prefix}.conv2"),
                    &format!("{prefix}.bn2"),
                    1,
                    1,
                ));
                let downsample = dict.get(&format!("{prefix}.downsample.0.weight")).map(|_| {
                    build(folded(
                        dict,
                        &format!("{prefix}.downsample.0"),
                        &format!("{prefix}.downsample.1"),
                        stride,
                        0,
                    ))
                });
                blocks.push(BasicBlock {
                    conv1,
                    conv2,
                    downsample,
                });
            }
        }
        Self { stem, blocks }
    }
}
