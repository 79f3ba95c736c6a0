//! The GPU forward pass: ResNet18 (see `resnet`) as burn tensors in NCHW and burn's `conv2d`,
//! on any burn device (wgpu; burn's ndarray CPU backend where selected). Compiled only with the
//! `wgpu` or `ndarray` feature: the default build has no burn.

use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{TensorData, s};
use drift_conv::ConvWeights;

use crate::resnet::{BasicBlock, Layers};
use crate::weights::StateDict;

/// A folded convolution as burn tensors, for `conv2d`.
#[derive(Debug, Clone)]
pub(crate) struct FoldedConv {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
}

impl FoldedConv {
    fn new(folded: ConvWeights, device: &Device) -> Self {
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
            // the stride-1 1x1 convolution (the same sums; one GEMM without im2col, about 4x
            // faster on burn's CPU backends).
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
