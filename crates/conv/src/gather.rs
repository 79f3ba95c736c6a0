//! A convolution as a matmul over its receptive fields: gathered (im2col) into a scratch
//! buffer a few images at a time, or, on few input channels (the 3-channel stem), read in
//! place from a zero-padded copy of the image (`matmul_runs`). In NHWC a receptive field is a
//! few runs of whole pixels, so the gather is plain copies, and the matmul's output is already
//! the next layer's input.

use std::ops::Range;

use rayon::prelude::*;

use crate::activations::{Activations, Epilogue, Workspace};
use crate::matmul::{JOB_ROWS, PackedRhs, Runs, matmul, matmul_runs};
use crate::{ConvWeights, GATHER_FLOATS, balanced};

/// Input channels up to which a convolution reads its receptive fields in place, one kernel row
/// at a time, instead of gathering them: the stem's 3, whose receptive field is 49 runs of 3
/// values (gathering them was slower: docs/MEASUREMENTS.md).
const IN_PLACE_CHANNELS: usize = 4;

/// A folded convolution as a matmul over its receptive fields, gathered (im2col) or, on few
/// input channels, read in place.
#[derive(Debug, Clone)]
pub struct GatherConv {
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
    /// The convolution of `weights`, its filters laid out and packed for the matmul.
    pub fn new(weights: ConvWeights) -> Self {
        let [out_channels, in_channels, kernel, kernel_w] = weights.shape;
        assert_eq!(kernel, kernel_w, "square kernels only");
        let row_len = kernel * kernel * in_channels;
        let mut weight = vec![0f32; row_len * out_channels];
        for (out_channel, filter) in weights.weight.chunks_exact(row_len).enumerate() {
            for (in_channel, taps) in filter.chunks_exact(kernel * kernel).enumerate() {
                for (tap, &value) in taps.iter().enumerate() {
                    weight[(tap * in_channels + in_channel) * out_channels + out_channel] = value;
                }
            }
        }
        Self {
            weight: PackedRhs::new(&weight, row_len, out_channels),
            bias: weights.bias,
            kernel,
            stride: weights.stride,
            padding: weights.padding,
            in_channels,
            out_channels,
        }
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The convolution in words, for layer profiles: "3x3/2 64->128, gathered".
    pub fn describe(&self) -> String {
        let how = if self.in_channels <= IN_PLACE_CHANNELS {
            "read in place"
        } else {
            "gathered"
        };
        format!(
            "{k}x{k}/{} {}->{}, {how}",
            self.stride,
            self.in_channels,
            self.out_channels,
            k = self.kernel
        )
    }

    /// The output's side for an input side.
    pub fn output_side(&self, input: usize) -> usize {
        (input + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// The convolution of every image of `x`; `workspace` holds the gathered receptive
    /// fields and the output's buffer.
    pub fn forward(
        &self,
        x: &Activations,
        epilogue: Epilogue<'_>,
        workspace: &mut Workspace,
    ) -> Activations {
        self.forward_images(x, 0..x.batch, epilogue, workspace)
    }

    /// The output for the images `batch` of `x` only (an `AddRelu` shortcut covers all of
    /// `x`).
    pub fn forward_images(
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
    pub(crate) fn forward_gathered(
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
    pub(crate) fn forward_in_place(
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
