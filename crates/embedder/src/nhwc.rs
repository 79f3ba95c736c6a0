//! The CPU forward pass of ResNet18: activations stay channels-last (NHWC) from the input to the
//! global pool; the stride-1 3x3 convolutions go through Winograd (`winograd`), the others are
//! a gather of their receptive fields (im2col) followed by a matmul per group of images, but
//! for the 3-channel stem, which reads its receptive fields in place (`matmul_runs`).
//!
//! Why not burn's `conv2d` on the CPU: burn flex 0.22 converts each layer's input to NHWC on
//! one thread, gathers and multiplies in tiles of 512 pixels of one image, scatters the result
//! back to NCHW and adds the bias in a further pass. At batch 32 its 3x3 convolutions took
//! 1.3-1.6x the time of burn's own matmul over the same gathered data (the `conv_profile`
//! example). In NHWC a receptive field is a few runs of whole pixels, so the gather is plain
//! copies; the matmul's output is already the next layer's input; and bias, shortcut and ReLU
//! are applied to each block of rows as it is made. Every matmul is the crate's own (`matmul`).
//!
//! Determinism: every output is one chain of fused multiply-adds in a fixed order (see
//! `matmul`), and the gather and transforms are per pixel. So an image's features do not depend
//! on the batch it came in or on the thread count, which the embedder's tests check.

use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use rayon::prelude::*;

use crate::LayerTime;
use crate::matmul::{JOB_ROWS, PackedRhs, Runs, matmul, matmul_runs};
use crate::resnet::{BasicBlock, Folded, Layers};
use crate::weights::StateDict;
use crate::winograd::{self, WinogradConv};

/// The most im2col floats gathered for one matmul (8 MiB): each group's scratch buffer stays
/// small at any batch size.
pub(crate) const GATHER_FLOATS: usize = 2 << 20;

/// Images per call when `batch` images go in calls of at most `most`: as even as can be, since
/// a small last call keeps a thread idle (4 images after 28 ran at half the speed).
pub(crate) fn balanced(batch: usize, most: usize) -> usize {
    batch.div_ceil(batch.div_ceil(most).max(1)).max(1)
}

/// Images the network runs on at a time, whatever the embedding batch: activations, the
/// largest of them layer1's (at 224x224, 6.4 MB for 8 images), and scratch stay this group's
/// size, and the matmuls still get enough rows to keep every thread busy.
pub(crate) const GROUP_IMAGES: usize = 8;

/// Buffers kept between layers and between batches. A fresh buffer costs a page fault per
/// 4 KiB the first time each page is written: for a 25 MB activation that was 40% of a layer1
/// convolution's time here.
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    /// Gathered receptive fields, or Winograd's transformed windows and products.
    scratch_values: Vec<f32>,
    spare: Vec<Vec<f32>>,
}

impl Workspace {
    /// The scratch buffer with `len` values (its contents are a previous layer's, or zeros),
    /// grown to exactly `len`: doubling it would keep up to twice the largest need resident.
    pub(crate) fn scratch(&mut self, len: usize) -> &mut [f32] {
        let scratch = &mut self.scratch_values;
        if len > scratch.len() {
            scratch.reserve_exact(len - scratch.len());
            scratch.resize(len, 0.0);
        }
        &mut scratch[..len]
    }

    /// A buffer of `len` values, for a caller that overwrites every one of them (its contents
    /// are a previous layer's, or zeros).
    pub(crate) fn buffer(&mut self, len: usize) -> Vec<f32> {
        let smallest_fit = (0..self.spare.len())
            .filter(|&i| self.spare[i].capacity() >= len)
            .min_by_key(|&i| self.spare[i].capacity());
        let mut buffer = smallest_fit.map_or_else(Vec::new, |i| self.spare.swap_remove(i));
        if buffer.len() >= len {
            buffer.truncate(len);
        } else {
            buffer.reserve_exact(len - buffer.len());
            buffer.resize(len, 0.0);
        }
        buffer
    }

    /// Keeps `activations`' buffer for a later [`Workspace::buffer`].
    pub(crate) fn recycle(&mut self, activations: Activations) {
        self.spare.push(activations.values);
    }
}

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
pub(crate) enum Epilogue<'a> {
    /// Nothing more: a shortcut.
    Linear,
    /// max(0, x).
    Relu,
    /// max(0, x + shortcut): the end of a BasicBlock.
    AddRelu(&'a Activations),
}

impl Epilogue<'_> {
    /// Adds `bias` to each row of `rows` (whole pixels, the first at value `at` of the output)
    /// and applies the rest.
    #[inline(always)]
    pub(crate) fn apply(self, rows: &mut [f32], bias: &[f32], at: usize) {
        match self {
            Epilogue::Linear => {
                for row in rows.chunks_exact_mut(bias.len()) {
                    for (d, &b) in row.iter_mut().zip(bias) {
                        *d += b;
                    }
                }
            }
            Epilogue::Relu => {
                for row in rows.chunks_exact_mut(bias.len()) {
                    for (d, &b) in row.iter_mut().zip(bias) {
                        *d = (*d + b).max(0.0);
                    }
                }
            }
            Epilogue::AddRelu(shortcut) => {
                let shortcut = &shortcut.values[at..at + rows.len()];
                for (row, shortcut) in rows
                    .chunks_exact_mut(bias.len())
                    .zip(shortcut.chunks_exact(bias.len()))
                {
                    for ((d, &b), &r) in row.iter_mut().zip(bias).zip(shortcut) {
                        *d = (*d + b + r).max(0.0);
                    }
                }
            }
        }
    }
}

/// Input channels up to which a convolution reads its receptive fields in place, one kernel row
/// at a time, instead of gathering them: the stem's 3. Its receptive field is 49 runs of 3
/// values; gathering them, 7.4 MB per 224x224 image, made the stem 2.1 ms per image on one
/// thread here against 1.65 ms read in place.
const IN_PLACE_CHANNELS: usize = 4;

/// A folded convolution as a matmul over its receptive fields, gathered (im2col) or, on few
/// input channels, read in place.
#[derive(Debug, Clone)]
pub(crate) struct GatherConv {
    /// `[kernel * kernel * in_channels, out_channels]`, rows ordered (dy, dx, channel) as the
    /// gather lays them out.
    weight: PackedRhs,
    bias: Vec<f32>,
    kernel: usize,
    stride: usize,
    padding: usize,
    in_channels: usize,
    out_channels: usize,
}

impl GatherConv {
    fn new(folded: Folded) -> Self {
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
            weight: PackedRhs::new(&weight, row_len, out_channels),
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

    /// `workspace` holds the gathered receptive fields and the output's buffer.
    fn forward(
        &self,
        x: &Activations,
        epilogue: Epilogue<'_>,
        workspace: &mut Workspace,
    ) -> Activations {
        self.forward_images(x, 0..x.batch, epilogue, workspace)
    }

    /// The output for the images `batch` of `x` only (a shortcut covers all of `x`).
    fn forward_images(
        &self,
        x: &Activations,
        batch: Range<usize>,
        epilogue: Epilogue<'_>,
        workspace: &mut Workspace,
    ) -> Activations {
        debug_assert_eq!(x.channels, self.in_channels);
        let values = if self.in_channels <= IN_PLACE_CHANNELS {
            self.forward_in_place(x, batch.clone(), epilogue, workspace)
        } else {
            self.forward_gathered(x, batch.clone(), epilogue, workspace)
        };
        Activations {
            values,
            batch: batch.len(),
            height: self.output_side(x.height),
            width: self.output_side(x.width),
            channels: self.out_channels,
        }
    }

    /// [`GatherConv::forward_images`]'s values, by gathering the receptive fields of a few
    /// images at a time into the workspace's scratch buffer, then one matmul over them.
    fn forward_gathered(
        &self,
        x: &Activations,
        batch: Range<usize>,
        epilogue: Epilogue<'_>,
        workspace: &mut Workspace,
    ) -> Vec<f32> {
        let (out_h, out_w) = (self.output_side(x.height), self.output_side(x.width));
        let rows_per_image = out_h * out_w;
        let row_len = self.kernel * self.kernel * self.in_channels;
        let most_images = (GATHER_FLOATS / (rows_per_image * row_len)).max(1);
        let images_per_call = balanced(batch.len(), most_images);
        let n = self.out_channels;
        let mut out = workspace.buffer(batch.len() * rows_per_image * n);
        let arch = pulp::Arch::new();
        for first_image in batch.clone().step_by(images_per_call) {
            let images = images_per_call.min(batch.end - first_image);
            let rows = images * rows_per_image;
            // The gather writes every value of every row.
            let cols = workspace.scratch(rows * row_len);
            cols.par_chunks_mut(out_w * row_len)
                .enumerate()
                .for_each(|(line, dst)| {
                    let image = first_image + line / out_h;
                    self.gather_line(x, image, line % out_h, dst);
                });
            let cols = &*cols;
            let first_row = (first_image - batch.start) * rows_per_image;
            let shortcut_offset = batch.start * rows_per_image * n;
            out[first_row * n..(first_row + rows) * n]
                .par_chunks_mut(JOB_ROWS * n)
                .enumerate()
                .for_each(|(job, dst)| {
                    matmul(
                        &cols[job * JOB_ROWS * row_len..],
                        row_len,
                        &self.weight,
                        dst,
                    );
                    let at = shortcut_offset + (first_row + job * JOB_ROWS) * n;
                    arch.dispatch(|| epilogue.apply(dst, &self.bias, at));
                });
        }
        out
    }

    /// [`GatherConv::forward_images`]'s values, with each receptive field read in place from a
    /// zero-padded copy of the image: for kernel row dy, output pixel x's taps are one run of
    /// `kernel * in_channels` values, the runs of the next kernel row are a padded line
    /// further, and those of the next pixel `stride * in_channels` values further. So an
    /// output line is one matmul ([`matmul_runs`]). The values are taken in the gather's order
    /// (dy, dx, channel), and the padding's zeros add exactly nothing, so the bits are the
    /// gathered matmul's.
    fn forward_in_place(
        &self,
        x: &Activations,
        batch: Range<usize>,
        epilogue: Epilogue<'_>,
        workspace: &mut Workspace,
    ) -> Vec<f32> {
        let (out_h, out_w) = (self.output_side(x.height), self.output_side(x.width));
        let (channels, n) = (self.in_channels, self.out_channels);
        let (padded_h, padded_w) = (x.height + 2 * self.padding, x.width + 2 * self.padding);
        let padded_line = padded_w * channels;
        let line_len = out_w * n;
        let image_len = out_h * line_len;
        let mut out = workspace.buffer(batch.len() * image_len);
        let arch = pulp::Arch::new();
        for (at, image) in batch.clone().enumerate() {
            let padded = workspace.scratch(padded_h * padded_line);
            // The padding's rows and columns are zero; the rest is the image.
            padded.fill(0.0);
            let image_values = &x.values[image * x.pixels_per_image() * channels..]
                [..x.pixels_per_image() * channels];
            for (src, dst) in image_values
                .chunks_exact(x.width * channels)
                .zip(padded[self.padding * padded_line..].chunks_exact_mut(padded_line))
            {
                dst[self.padding * channels..][..src.len()].copy_from_slice(src);
            }
            let padded = &*padded;
            let shortcut_offset = (batch.start + at) * image_len;
            out[at * image_len..(at + 1) * image_len]
                .par_chunks_mut(line_len)
                .enumerate()
                .for_each(|(out_y, dst)| {
                    let lhs = &padded[out_y * self.stride * padded_line..];
                    let runs = Runs {
                        len: self.kernel * channels,
                        stride: padded_line,
                    };
                    matmul_runs(lhs, self.stride * channels, runs, &self.weight, dst);
                    let at = shortcut_offset + out_y * line_len;
                    arch.dispatch(|| epilogue.apply(dst, &self.bias, at));
                });
        }
        out
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

/// A convolution of the CPU network: Winograd where it applies, a gathered matmul elsewhere.
#[derive(Debug, Clone)]
pub(crate) enum CpuConv {
    Gather(GatherConv),
    Winograd(WinogradConv),
}

impl CpuConv {
    fn new(folded: Folded) -> Self {
        if winograd::applies(&folded) {
            Self::Winograd(WinogradConv::new(folded))
        } else {
            Self::Gather(GatherConv::new(folded))
        }
    }

    fn forward(
        &self,
        x: &Activations,
        epilogue: Epilogue<'_>,
        workspace: &mut Workspace,
    ) -> Activations {
        match self {
            Self::Gather(conv) => conv.forward(x, epilogue, workspace),
            Self::Winograd(conv) => conv.forward(x, epilogue, workspace),
        }
    }
}

impl CpuConv {
    /// The convolution in words, for layer profiles: "3x3/2 64->128, gathered".
    fn describe(&self) -> String {
        match self {
            Self::Gather(conv) => format!(
                "{k}x{k}/{} {}->{}, gathered",
                conv.stride,
                conv.in_channels,
                conv.out_channels,
                k = conv.kernel
            ),
            Self::Winograd(conv) => format!(
                "3x3/1 {}->{}, Winograd {}",
                conv.in_channels(),
                conv.out_channels(),
                conv.algorithm()
            ),
        }
    }
}

/// Records how long each layer of a forward pass took, when asked to.
pub(crate) struct LayerClock<'a>(pub(crate) Option<&'a mut Vec<LayerTime>>);

impl LayerClock<'_> {
    fn time<T>(&mut self, layer: impl FnOnce() -> String, run: impl FnOnce() -> T) -> T {
        let Some(times) = self.0.as_deref_mut() else {
            return run();
        };
        let started = Instant::now();
        let result = run();
        let seconds = started.elapsed().as_secs_f64();
        // A layer run in groups of images is one entry: the sum.
        let layer = layer();
        match times.iter_mut().find(|time| time.layer == layer) {
            Some(time) => time.seconds += seconds,
            None => times.push(LayerTime { layer, seconds }),
        }
        result
    }
}

impl BasicBlock<CpuConv> {
    fn forward(
        &self,
        name: &str,
        x: Activations,
        workspace: &mut Workspace,
        clock: &mut LayerClock<'_>,
    ) -> Activations {
        let describe = |part: &str, conv: &CpuConv, x: &Activations| {
            format!(
                "{name}.{part} ({}x{}, {})",
                x.height,
                x.width,
                conv.describe()
            )
        };
        let out = clock.time(
            || describe("conv1", &self.conv1, &x),
            || self.conv1.forward(&x, Epilogue::Relu, workspace),
        );
        let shortcut = match &self.downsample {
            Some(downsample) => {
                let shortcut = clock.time(
                    || describe("downsample", downsample, &x),
                    || downsample.forward(&x, Epilogue::Linear, workspace),
                );
                workspace.recycle(x);
                shortcut
            }
            None => x,
        };
        let result = clock.time(
            || describe("conv2", &self.conv2, &out),
            || {
                self.conv2
                    .forward(&out, Epilogue::AddRelu(&shortcut), workspace)
            },
        );
        workspace.recycle(out);
        workspace.recycle(shortcut);
        result
    }
}

/// ResNet18 up to and including the global average pool, channels-last, for CPU devices.
#[derive(Debug)]
pub(crate) struct ResNet18Nhwc {
    layers: Layers<CpuConv>,
    /// One workspace per group in flight: groups run concurrently (see `Embedder::embed`),
    /// each on its own buffers, which are kept for the next groups.
    workspaces: Mutex<Vec<Workspace>>,
}

impl ResNet18Nhwc {
    pub(crate) fn new(dict: &StateDict) -> Self {
        Self {
            layers: Layers::new(dict, CpuConv::new),
            workspaces: Mutex::default(),
        }
    }

    /// `batch` images of `height` x `width` -> `batch` rows of 512 features. `fill_input`
    /// writes the input, `[batch, height, width, 3]`, into a buffer of the workspace; `clock`
    /// records each layer's time when it holds a list. Callers pass at most [`GROUP_IMAGES`]
    /// images: every activation and scratch buffer is sized by the group, not by the
    /// embedding batch.
    pub(crate) fn forward(
        &self,
        (batch, height, width): (usize, usize, usize),
        fill_input: impl FnOnce(&mut [f32]),
        clock: &mut LayerClock<'_>,
    ) -> Vec<f32> {
        let mut workspace = self
            .workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        let mut values = workspace.buffer(batch * height * width * 3);
        fill_input(&mut values);
        let x = Activations {
            values,
            batch,
            height,
            width,
            channels: 3,
        };
        let mut y = clock.time(
            || format!("conv1 + maxpool ({height}x{width}, 7x7/2 3->64, read in place)"),
            || self.stem_and_pool(&x, 0..batch, &mut workspace),
        );
        workspace.recycle(x);
        for (i, block) in self.layers.blocks.iter().enumerate() {
            let name = format!("layer{}.{}", i / 2 + 1, i % 2);
            y = block.forward(&name, y, &mut workspace, clock);
        }
        let features = clock.time(|| "avgpool".to_owned(), || global_average(&y));
        workspace.recycle(y);
        self.workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(workspace);
        features
    }

    /// The stem convolution and the max pool of images `batch`, one at a time: the stem's
    /// output (3.2 MB per image at 224x224) lives only until it is pooled.
    fn stem_and_pool(
        &self,
        x: &Activations,
        batch: Range<usize>,
        workspace: &mut Workspace,
    ) -> Activations {
        const IMAGES: usize = 1;
        let CpuConv::Gather(stem) = &self.layers.stem else {
            unreachable!("Winograd takes only 3x3 convolutions, the stem is 7x7")
        };
        let (stem_h, stem_w) = (stem.output_side(x.height), stem.output_side(x.width));
        let (height, width) = (pooled_side(stem_h), pooled_side(stem_w));
        let channels = stem.out_channels;
        let image_len = height * width * channels;
        let mut pooled = workspace.buffer(batch.len() * image_len);
        for first in batch.clone().step_by(IMAGES) {
            let images = first..(first + IMAGES).min(batch.end);
            let at = first - batch.start;
            let dst = &mut pooled[at * image_len..(at + images.len()) * image_len];
            let group = stem.forward_images(x, images, Epilogue::Relu, workspace);
            max_pool_3x3_s2(&group, dst);
            workspace.recycle(group);
        }
        Activations {
            values: pooled,
            batch: batch.len(),
            height,
            width,
            channels,
        }
    }
}

/// The output side of the 3x3, stride-2 max pool with padding 1.
fn pooled_side(input: usize) -> usize {
    (input + 2 - 3) / 2 + 1
}

/// 3x3 max pool, stride 2, padding 1 (padding never wins, as in PyTorch), into `out`.
fn max_pool_3x3_s2(x: &Activations, out: &mut [f32]) {
    let (out_h, out_w) = (pooled_side(x.height), pooled_side(x.width));
    let channels = x.channels;
    debug_assert_eq!(out.len(), x.batch * out_h * out_w * channels);
    let arch = pulp::Arch::new();
    out.par_chunks_mut(out_w * channels)
        .enumerate()
        .for_each(|(line, dst)| {
            arch.dispatch(|| {
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
            })
        });
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

    use burn::prelude::*;
    use burn::tensor::TensorData;

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

    fn run(network: &ResNet18Nhwc, x: &Activations) -> Vec<f32> {
        network.forward(
            (x.batch, x.height, x.width),
            |input| input.copy_from_slice(&x.values),
            &mut LayerClock(None),
        )
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
            let features = run(&ResNet18Nhwc::new(&dict), &input);
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

    /// Reading receptive fields in place (the stem) gives the gathered matmul's bits, at the
    /// stem's shape and at a stride-1 one, on sizes that put the kernel over every edge.
    #[test]
    fn receptive_fields_read_in_place_give_the_gathered_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for (kernel, stride, padding, height, width) in [(7, 2, 3, 37, 30), (3, 1, 1, 9, 14)] {
            let (in_channels, out_channels) = (3, 64);
            let conv = GatherConv::new(Folded {
                weight: (0..out_channels * in_channels * kernel * kernel)
                    .map(|_| rng.random::<f32>() - 0.5)
                    .collect(),
                bias: (0..out_channels).map(|_| rng.random::<f32>()).collect(),
                shape: [out_channels, in_channels, kernel, kernel],
                stride,
                padding,
            });
            let x = random_images(3, height, width, 11);
            let mut workspace = Workspace::default();
            let gathered = conv.forward_gathered(&x, 1..3, Epilogue::Relu, &mut workspace);
            let in_place = conv.forward_in_place(&x, 1..3, Epilogue::Relu, &mut workspace);
            let side = |input| (input + 2 * padding - kernel) / stride + 1;
            assert_eq!(
                gathered.len(),
                2 * side(height) * side(width) * out_channels
            );
            assert!(gathered.iter().any(|&v| v > 0.0));
            assert_eq!(in_place, gathered, "{kernel}x{kernel}/{stride}");
        }
    }

    #[test]
    fn tiny_images_embed_the_same_alone_and_in_a_batch() {
        // 20x20 leaves one pixel per image in the last stage, and 5x5 before it: a matmul of
        // a few rows, and Winograd tiles that overhang the image, alone as in a batch.
        let network = ResNet18Nhwc::new(&synthetic_state_dict(7));
        let batch = random_images(3, 20, 20, 5);
        let together = run(&network, &batch);
        let per_image = 20 * 20 * 3;
        for (i, expected) in together.chunks_exact(512).enumerate() {
            let alone = Activations {
                values: batch.values[i * per_image..(i + 1) * per_image].to_vec(),
                batch: 1,
                ..batch
            };
            assert_eq!(run(&network, &alone), expected, "image {i}");
        }
    }
}
