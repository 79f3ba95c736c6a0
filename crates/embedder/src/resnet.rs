//! torchvision's ResNet18 without its fc layer, for inference, with every BatchNorm folded into
//! the convolution before it, in two layouts over the same folded weights:
//!
//! - [`ResNet18Features`] (here): burn tensors in NCHW and burn's `conv2d`, for any device; the
//!   GPU path.
//! - [`crate::nhwc::ResNet18Nhwc`]: channels-last activations, Winograd or a gather plus the
//!   crate's own matmul for each convolution; the CPU path (see that module for why).
//!
//! Folding: BN(conv(x)) = gamma * (w*x - mean) / sqrt(var + eps) + beta, which is one
//! convolution with weights w * s and bias beta - mean * s, where s = gamma / sqrt(var + eps).
//! The scale is computed in f64 and rounded once, so the folded network differs from
//! torchvision's only in float rounding (about 1e-6 relative), and it saves a full pass over
//! every activation.

use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{TensorData, s};

use crate::weights::StateDict;

/// PyTorch's BatchNorm2d default epsilon, which torchvision's ResNet uses.
const BN_EPS: f64 = 1e-5;

/// A convolution's weights with its BatchNorm folded in, in PyTorch's layout.
#[derive(Debug, Clone)]
pub(crate) struct Folded {
    /// `[out_channels, in_channels, kernel, kernel]`, row-major.
    pub(crate) weight: Vec<f32>,
    pub(crate) shape: [usize; 4],
    /// One per output channel.
    pub(crate) bias: Vec<f32>,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
}

impl Folded {
    fn new(dict: &StateDict, conv: &str, bn: &str, stride: usize, padding: usize) -> Self {
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
        Self {
            weight: folded,
            shape,
            bias,
            stride,
            padding,
        }
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
    pub(crate) fn new(dict: &StateDict, mut build: impl FnMut(Folded) -> C) -> Self {
        let stem = build(Folded::new(dict, "conv1", "bn1", 2, 3));
        let mut blocks = Vec::with_capacity(8);
        for stage in 1..=4 {
            for block in 0..2 {
                let stride = if stage > 1 && block == 0 { 2 } else { 1 };
                let prefix = format!("layer{stage}.{block}");
                let conv1 = build(Folded::new(
                    dict,
                    &format!("{prefix}.conv1"),
                    &format!("{prefix}.bn1"),
                    stride,
                    1,
                ));
                let conv2 = build(Folded::new(
                    dict,
                    &format!("{prefix}.conv2"),
                    &format!("{prefix}.bn2"),
                    1,
                    1,
                ));
                let downsample = dict.get(&format!("{prefix}.downsample.0.weight")).map(|_| {
                    build(Folded::new(
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

/// A folded convolution as burn tensors, for `conv2d`.
#[derive(Debug, Clone)]
pub(crate) struct FoldedConv {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
}

impl FoldedConv {
    fn new(folded: Folded, device: &Device) -> Self {
        let out_channels = folded.shape[0];
        Self {
            weight: Tensor::from_data(TensorData::new(folded.weight, folded.shape), device),
            bias: Tensor::from_data(TensorData::new(folded.bias, [out_channels]), device),
            stride: folded.stride,
            padding: folded.padding,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, kernel_h, kernel_w] = self.weight.dims();
        if kernel_h == 1 && kernel_w == 1 && self.stride > 1 && self.padding == 0 {
            // A strided 1x1 convolution reads every stride-th pixel: take those first, then run
            // the stride-1 1x1 convolution (the same sums; on burn flex, where the NCHW-vs-NHWC
            // unit test runs this path, one GEMM without im2col and about 4x faster).
            let step = self.stride as isize;
            let x = x.slice(s![.., .., 0..;step, 0..;step]);
            return conv2d(
                x,
                self.weight.clone(),
                Some(self.bias.clone()),
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            );
        }
        conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            ConvOptions::new(
                [self.stride, self.stride],
                [self.padding, self.padding],
                [1, 1],
                1,
            ),
        )
    }
}

impl BasicBlock<FoldedConv> {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(downsample) => downsample.forward(x.clone()),
            None => x.clone(),
        };
        let out = relu(self.conv1.forward(x));
        relu(self.conv2.forward(out) + identity)
    }
}

/// ResNet18 up to and including the global average pool, on burn tensors in NCHW.
#[derive(Debug, Clone)]
pub(crate) struct ResNet18Features {
    layers: Layers<FoldedConv>,
}

impl ResNet18Features {
    pub(crate) fn new(dict: &StateDict, device: &Device) -> Self {
        Self {
            layers: Layers::new(dict, |folded| FoldedConv::new(folded, device)),
        }
    }

    /// `[batch, 3, height, width]` -> `[batch, 512]`.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.layers.stem.forward(x));
        let mut x = max_pool2d(
            x,
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        for block in &self.layers.blocks {
            x = block.forward(x);
        }
        let [batch, channels, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([batch, channels])
    }
}
