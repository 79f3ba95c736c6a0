//! The CPU forward pass of ResNet18: activations stay channels-last (NHWC) from the input to the
//! global pool, and every convolution is a gather of its receptive fields (im2col) followed by
//! one burn matmul per group of images.
//!
//! Why not burn's `conv2d` on the CPU: burn flex 0.22 converts each layer's input to NHWC on
//! one thread, gathers and multiplies in tiles of 512 pixels of one image, scatters the result
//! back to NCHW and adds the bias in a further pass. At batch 32 its 3x3 convolutions took
//! 1.3-1.6x the time of burn's own matmul over the same gathered data (the `conv_profile`
//! example). In NHWC a receptive field is a few runs of whole pixels, so the gather is plain
//! copies; the matmul's output is already the next layer's input; and bias, shortcut and ReLU
//! are applied in the one pass that copies the product out.
//!
//! Determinism: the gemm behind burn's matmul sums each output over k in an order set by k and
//! the machine's cache sizes; rows and threads only partition the work (for more than 64 rows,
//! which every call here has: see [`MIN_ROWS`]). So an image's features do not depend on the
//! batch it came in or on the thread count, which the embedder's tests check.

use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::resnet::{BasicBlock, Folded, Layers};
use crate::weights::StateDict;

/// The most im2col floats gathered for one matmul (16 MiB): the gather buffer stays small and
/// is reused by the allocator at any batch size.
const GATHER_FLOATS: usize = 4 << 20;

/// gemm 0.19 switches to a small-matrix path (a different blocking of k) at 64 rows or fewer
/// when there are also 64 or fewer output channels, and to a matrix-vector path at one row:
/// calls are padded past both, so that their sums never depend on how many images they hold.
const MIN_ROWS: usize = 65;

/// A batch of feature maps, `[batch, height, width, channels]`, row-major.
#[derive(Debug, Clone)]
pub(crate) struct Activations {
    pub(crate) values: Vec<f32>,
    pub(crate) batch: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) channels: usize,
}

impl Activations {
    fn pixels_per_image(&self) -> usize {
        self.height * self.width
    }
}

/// What to do with a convolution's output besides adding its bias.
#[derive(Debug, Clone, Copy)]
enum Epilogue<'a> {
    /// Nothing more: a shortcut.
    Linear,
    /// max(0, x).
    Relu,
    /// max(0, x + shortcut): the end of a BasicBlock.
    AddRelu(&'a Activations),
}

/// A folded convolution as a matmul over gathered receptive fields.
#[derive(Debug, Clone)]
pub(crate) struct GatherConv {
    /// `[kernel * kernel * in_channels, out_channels]`, rows ordered (dy, dx, channel) as the
    /// gather lays them out.
    weight: Tensor<2>,
    bias: Vec<f32>,
    kernel: usize,
    stride: usize,
    padding: usize,
    in_channels: usize,
    out_channels: usize,
}

impl GatherConv {
    fn new(folded: Folded, device: &Device) -> Self {
        let [out_channels, in_channels, kernel, kernel_w] = folded.shape;
        debug_assert_eq!(kernel, kernel_w, "ResNet18's kernels are square");
        let row_len = kernel * kernel * in_channels;
        let mut weight = vec![0f32; row_len * out_channels];
        for (out_channel, filter) in folded.weight.chunks_exact(row_len).enumerate() {
            for (in_channel, taps) in filter.chunks_exact(kernel * kernel).enumerate() {
                for (tap, &value) in taps.iter().enumerate() {
                    weight[(tap * in_channels + in_channel) * out_channels + out_channel] = value;
                }
            }
        }
        Self {
            weight: Tensor::from_data(TensorData::new(weight, [row_len, out_channels]), device),
            bias: folded.bias,
            kernel,
            stride: folded.stride,
            padding: folded.padding,
            in_channels,
            out_channels,
        }
    }

    fn output_side(&self, input: usize) -> usize {
        (input + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// `scratch` holds the gathered receptive fields; it is handed to burn for each matmul and
    /// taken back after, so one allocation serves every layer of a forward pass.
    fn forward(
        &self,
        x: &Activations,
        epilogue: Epilogue<'_>,
        scratch: &mut Vec<f32>,
        device: &Device,
    ) -> Activations {
        debug_assert_eq!(x.channels, self.in_channels);
        let (out_h, out_w) = (self.output_side(x.height), self.output_side(x.width));
        let rows_per_image = out_h * out_w;
        let row_len = self.kernel * self.kernel * self.in_channels;
        let images_per_call = (GATHER_FLOATS / (rows_per_image * row_len)).max(1);
        let n = self.out_channels;
        let mut out = vec![0f32; x.batch * rows_per_image * n];
        for first_image in (0..x.batch).step_by(images_per_call) {
            let images = images_per_call.min(x.batch - first_image);
            let rows = images * rows_per_image;
            let call_rows = rows.max(MIN_ROWS);
            let mut cols = std::mem::take(scratch);
            // Resizing zeroes only new capacity: the gather below writes every value of the
            // first `rows` rows, and the padding rows after them are zeroed here.
            cols.resize(call_rows * row_len, 0.0);
            cols[rows * row_len..].fill(0.0);
            cols[..rows * row_len]
                .par_chunks_mut(out_w * row_len)
                .enumerate()
                .for_each(|(line, dst)| {
                    let image = first_image + line / out_h;
                    self.gather_line(x, image, line % out_h, dst);
                });
            let lhs = Tensor::<2>::from_data(TensorData::new(cols, [call_rows, row_len]), device);
            let product = lhs.clone().matmul(self.weight.clone()).into_data();
            // The matmul has dropped its handle, so this takes the buffer back without a copy.
            *scratch = lhs
                .into_data()
                .try_into_vec::<f32>()
                .expect("the network computes in f32");
            let product = product
                .as_slice::<f32>()
                .expect("the network computes in f32");
            let first_row = first_image * rows_per_image;
            let out_block = &mut out[first_row * n..(first_row + rows) * n];
            let bias = &self.bias;
            out_block
                .par_chunks_mut(n)
                .zip(product.par_chunks(n))
                .enumerate()
                .with_min_len(64)
                .for_each(|(row, (dst, src))| match epilogue {
                    Epilogue::Linear => {
                        for ((d, &s), &b) in dst.iter_mut().zip(src).zip(bias) {
                            *d = s + b;
                        }
                    }
                    Epilogue::Relu => {
                        for ((d, &s), &b) in dst.iter_mut().zip(src).zip(bias) {
                            *d = (s + b).max(0.0);
                        }
                    }
                    Epilogue::AddRelu(shortcut) => {
                        let at = (first_row + row) * n;
                        let shortcut = &shortcut.values[at..at + n];
                        for (((d, &s), &b), &r) in dst.iter_mut().zip(src).zip(bias).zip(shortcut) {
                            *d = (s + b + r).max(0.0);
                        }
                    }
                });
        }
        Activations {
            values: out,
            batch: x.batch,
            height: out_h,
            width: out_w,
            channels: n,
        }
    }

    /// The receptive fields of one output line (`out_y`) of one image, one row per output
    /// pixel, zeros where the kernel overhangs the padding.
    fn gather_line(&self, x: &Activations, image: usize, out_y: usize, dst: &mut [f32]) {
        let channels = self.in_channels;
        let kernel = self.kernel;
        let row_len = kernel * kernel * channels;
        let image_base = image * x.pixels_per_image();
        for (out_x, row) in dst.chunks_exact_mut(row_len).enumerate() {
            // The kernel columns that land inside the image: one contiguous run of pixels.
            let left = (out_x * self.stride) as isize - self.padding as isize;
            let first_dx = (-left).max(0) as usize;
            let end_dx = (x.width as isize - left).clamp(0, kernel as isize) as usize;
            for (dy, taps) in row.chunks_exact_mut(kernel * channels).enumerate() {
                let y = (out_y * self.stride + dy) as isize - self.padding as isize;
                if y < 0 || y >= x.height as isize || first_dx >= end_dx {
                    taps.fill(0.0);
                    continue;
                }
                let first_x = (left + first_dx as isize) as usize;
                let start = (image_base + y as usize * x.width + first_x) * channels;
                let len = (end_dx - first_dx) * channels;
                taps[..first_dx * channels].fill(0.0);
                taps[first_dx * channels..first_dx * channels + len]
                    .copy_from_slice(&x.values[start..start + len]);
                taps[first_dx * channels + len..].fill(0.0);
            }
        }
    }
}

impl BasicBlock<GatherConv> {
    fn forward(&self, x: Activations, scratch: &mut Vec<f32>, device: &Device) -> Activations {
        let out = self.conv1.forward(&x, Epilogue::Relu, scratch, device);
        let shortcut = match &self.downsample {
            Some(downsample) => downsample.forward(&x, Epilogue::Linear, scratch, device),
            None => x,
        };
        self.conv2
            .forward(&out, Epilogue::AddRelu(&shortcut), scratch, device)
    }
}

/// ResNet18 up to and including the global average pool, channels-last, for CPU devices.
#[derive(Debug, Clone)]
pub(crate) struct ResNet18Nhwc {
    layers: Layers<GatherConv>,
    device: Device,
}

impl ResNet18Nhwc {
    pub(crate) fn new(dict: &StateDict, device: &Device) -> Self {
        Self {
            layers: Layers::new(dict, |folded| GatherConv::new(folded, device)),
            device: device.clone(),
        }
    }

    /// `[batch, height, width, 3]` -> `batch` rows of 512 features.
    pub(crate) fn forward(&self, x: Activations) -> Vec<f32> {
        let mut scratch = Vec::new();
        let x = self
            .layers
            .stem
            .forward(&x, Epilogue::Relu, &mut scratch, &self.device);
        let mut x = max_pool_3x3_s2(&x);
        for block in &self.layers.blocks {
            x = block.forward(x, &mut scratch, &self.device);
        }
        global_average(&x)
    }
}

/// 3x3 max pool, stride 2, padding 1 (padding never wins, as in PyTorch).
fn max_pool_3x3_s2(x: &Activations) -> Activations {
    let side = |input: usize| (input + 2 - 3) / 2 + 1;
    let (out_h, out_w) = (side(x.height), side(x.width));
    let channels = x.channels;
    let mut out = vec![0f32; x.batch * out_h * out_w * channels];
    out.par_chunks_mut(out_w * channels)
        .enumerate()
        .for_each(|(line, dst)| {
            let (image, out_y) = (line / out_h, line % out_h);
            let rows = (out_y * 2).saturating_sub(1)..(out_y * 2 + 2).min(x.height);
            for (out_x, pixel) in dst.chunks_exact_mut(channels).enumerate() {
                let columns = (out_x * 2).saturating_sub(1)..(out_x * 2 + 2).min(x.width);
                pixel.fill(f32::NEG_INFINITY);
                for y in rows.clone() {
                    for column in columns.clone() {
                        let at = ((image * x.height + y) * x.width + column) * channels;
                        for (m, &v) in pixel.iter_mut().zip(&x.values[at..at + channels]) {
                            *m = m.max(v);
                        }
                    }
                }
            }
        });
    Activations {
        values: out,
        batch: x.batch,
        height: out_h,
        width: out_w,
        channels,
    }
}

/// The mean of each channel over each image.
fn global_average(x: &Activations) -> Vec<f32> {
    let channels = x.channels;
    let pixels = x.pixels_per_image();
    let mut out = vec![0f32; x.batch * channels];
    out.par_chunks_mut(channels)
        .zip(x.values.par_chunks(pixels * channels))
        .for_each(|(means, image)| {
            for pixel in image.chunks_exact(channels) {
                for (sum, &v) in means.iter_mut().zip(pixel) {
                    *sum += v;
                }
            }
            for mean in means.iter_mut() {
                *mean /= pixels as f32;
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::resnet::ResNet18Features;
    use crate::synthetic_state_dict;

    fn random_images(batch: usize, height: usize, width: usize, seed: u64) -> Activations {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Activations {
            values: (0..batch * height * width * 3)
                .map(|_| rng.random::<f32>())
                .collect(),
            batch,
            height,
            width,
            channels: 3,
        }
    }

    /// NHWC -> NCHW, for burn's conv2d network.
    fn channels_first(x: &Activations) -> Tensor<4> {
        let mut values = vec![0f32; x.values.len()];
        for (i, &v) in x.values.iter().enumerate() {
            let channel = i % x.channels;
            let pixel = i / x.channels % x.pixels_per_image();
            let image = i / (x.channels * x.pixels_per_image());
            values[(image * x.channels + channel) * x.pixels_per_image() + pixel] = v;
        }
        let shape = [x.batch, x.channels, x.height, x.width];
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    #[test]
    fn gathered_matmuls_compute_what_burns_conv2d_computes() {
        let dict = synthetic_state_dict(7);
        let device = Device::flex();
        // Odd, non-square sizes put the kernels over every kind of edge.
        for (height, width) in [(70, 45), (33, 64)] {
            let input = random_images(2, height, width, 3);
            let reference = ResNet18Features::new(&dict, &device)
                .forward(channels_first(&input))
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let features = ResNet18Nhwc::new(&dict, &device).forward(input);
            assert_eq!(features.len(), reference.len());
            let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.1, "features should not vanish: {scale}");
            for (i, (a, b)) in features.iter().zip(&reference).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * scale.max(1.0),
                    "{height}x{width} feature {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn tiny_images_embed_the_same_alone_and_in_a_batch() {
        // 20x20 leaves one pixel per image in the last stage: calls there are padded to
        // MIN_ROWS rows, alone as in a batch.
        let network = ResNet18Nhwc::new(&synthetic_state_dict(7), &Device::flex());
        let batch = random_images(3, 20, 20, 5);
        let together = network.forward(batch.clone());
        let per_image = 20 * 20 * 3;
        for (i, expected) in together.chunks_exact(512).enumerate() {
            let alone = Activations {
                values: batch.values[i * per_image..(i + 1) * per_image].to_vec(),
                batch: 1,
                ..batch
            };
            assert_eq!(network.forward(alone), expected, "image {i}");
        }
    }
}
