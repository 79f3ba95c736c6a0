//! Winograd F(4x4, 3x3) for the stride-1 3x3 convolutions of ResNet18 on CPUs (13 of its 20
//! convolutions, 83% of its multiplies).
//!
//! Each 4x4 block of output pixels ("tile") is computed from the 6x6 input window around it:
//! the window is transformed (`Bᵀ d B`), multiplied element by element with the transformed
//! filter (`G g Gᵀ`, made once at load), summed over input channels, and transformed back
//! (`Aᵀ m A`). The sum over channels is 36 matmuls, one per window position, of
//! `[tiles, in_channels] x [in_channels, out_channels]`: 36 multiplies per tile and channel
//! pair where a direct convolution needs 144 (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2015).
//!
//! Layout: channels-last throughout, so both transforms run across 16 channels at a time and
//! vectorise; `pulp` compiles them for the CPU found at run time (AVX-512, AVX2, or SSE2).
//! Transformed windows are stored tile-major (`[tile][position][channel]`), so that each tile
//! is one contiguous slice a thread owns, and the matmuls read them with a row stride.
//!
//! Determinism: an output's arithmetic depends only on its own tile (see `matmul`), so an
//! image's features do not depend on its batch or the thread count.

use rayon::prelude::*;

use crate::matmul::{JOB_ROWS, PackedRhs, matmul};
use crate::nhwc::{Activations, Epilogue, GATHER_FLOATS, balanced};
use crate::resnet::Folded;

/// Output pixels per tile side.
const TILE: usize = 4;
/// Input pixels per window side.
const WINDOW: usize = TILE + 2;
/// Window positions: one matmul each.
const POSITIONS: usize = WINDOW * WINDOW;
/// Channels transformed together: one AVX-512 register of f32.
const LANES: usize = 16;

type Lane = [f32; LANES];

/// `G`, the filter transform, applied in f64 when the weights are loaded.
const G: [[f64; 3]; WINDOW] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Whether a convolution is one this module computes.
pub(crate) fn applies(folded: &Folded) -> bool {
    let [out_channels, in_channels, kernel_h, kernel_w] = folded.shape;
    kernel_h == 3
        && kernel_w == 3
        && folded.stride == 1
        && folded.padding == 1
        && in_channels % LANES == 0
        && out_channels % LANES == 0
}

/// A folded stride-1 3x3 convolution with padding 1, as Winograd F(4x4, 3x3).
#[derive(Debug, Clone)]
pub(crate) struct WinogradConv {
    /// One `[in_channels, out_channels]` matrix per window position: the transformed filters.
    weight: Vec<PackedRhs>,
    bias: Vec<f32>,
    in_channels: usize,
    out_channels: usize,
}

impl WinogradConv {
    pub(crate) fn new(folded: Folded) -> Self {
        debug_assert!(applies(&folded));
        let [out_channels, in_channels, _, _] = folded.shape;
        let mut weight = vec![vec![0f32; in_channels * out_channels]; POSITIONS];
        for (out_channel, filters) in folded.weight.chunks_exact(9 * in_channels).enumerate() {
            for (in_channel, g) in filters.chunks_exact(9).enumerate() {
                // G g Gᵀ in f64, rounded once.
                let mut gg = [[0f64; 3]; WINDOW];
                for (row, g_row) in gg.iter_mut().zip(&G) {
                    for (x, value) in row.iter_mut().enumerate() {
                        *value = (0..3).map(|y| g_row[y] * f64::from(g[y * 3 + x])).sum();
                    }
                }
                for (i, gg_row) in gg.iter().enumerate() {
                    for (j, g_row) in G.iter().enumerate() {
                        let value: f64 = (0..3).map(|x| gg_row[x] * g_row[x]).sum();
                        weight[i * WINDOW + j][in_channel * out_channels + out_channel] =
                            value as f32;
                    }
                }
            }
        }
        Self {
            weight: weight
                .iter()
                .map(|matrix| PackedRhs::new(matrix, in_channels, out_channels))
                .collect(),
            bias: folded.bias,
            in_channels,
            out_channels,
        }
    }

    /// Like `GatherConv::forward`: `scratch` holds the transformed windows and their products.
    pub(crate) fn forward(
        &self,
        x: &Activations,
        epilogue: Epilogue<'_>,
        scratch: &mut Vec<f32>,
    ) -> Activations {
        debug_assert_eq!(x.channels, self.in_channels);
        let (tiles_y, tiles_x) = (x.height.div_ceil(TILE), x.width.div_ceil(TILE));
        let tiles_per_image = tiles_y * tiles_x;
        let (c, n) = (self.in_channels, self.out_channels);
        let most_images = (GATHER_FLOATS / (tiles_per_image * POSITIONS * (c + n))).max(1);
        let images_per_call = balanced(x.batch, most_images);
        let image_len = x.height * x.width * n;
        let mut out = vec![0f32; x.batch * image_len];
        let arch = pulp::Arch::new();
        for first_image in (0..x.batch).step_by(images_per_call) {
            let images = images_per_call.min(x.batch - first_image);
            let tiles = images * tiles_per_image;
            // Resizing zeroes only new capacity: the transform and matmuls write every value.
            scratch.resize(tiles * POSITIONS * (c + n), 0.0);
            let (windows, products) = scratch.split_at_mut(tiles * POSITIONS * c);
            windows
                .par_chunks_mut(POSITIONS * c)
                .enumerate()
                .for_each(|(tile, dst)| {
                    let image = first_image + tile / tiles_per_image;
                    let (ty, tx) = (tile % tiles_per_image / tiles_x, tile % tiles_x);
                    arch.dispatch(|| transform_window(x, image, ty, tx, dst));
                });
            // One job per position and run of JOB_ROWS tiles.
            let windows = &*windows;
            let mut jobs = Vec::new();
            for (position, product) in products.chunks_mut(tiles * n).enumerate() {
                for (run, dst) in product.chunks_mut(JOB_ROWS * n).enumerate() {
                    jobs.push((position, run * JOB_ROWS, dst));
                }
            }
            jobs.into_par_iter()
                .for_each(|(position, first_tile, dst)| {
                    let lhs = &windows[first_tile * POSITIONS * c + position * c..];
                    matmul(lhs, POSITIONS * c, &self.weight[position], dst);
                });
            let products = Products {
                values: products,
                tiles,
                channels: n,
            };
            // One job per tile row of one image: its output lines are one contiguous slice.
            let block = &mut out[first_image * image_len..(first_image + images) * image_len];
            let mut jobs = Vec::with_capacity(images * tiles_y);
            for (image, image_out) in block.chunks_mut(image_len).enumerate() {
                let mut rest = image_out;
                for ty in 0..tiles_y {
                    let lines = TILE.min(x.height - ty * TILE);
                    let (lines_out, tail) = rest.split_at_mut(lines * x.width * n);
                    jobs.push((image, ty, lines_out));
                    rest = tail;
                }
            }
            jobs.into_par_iter().for_each(|(image, ty, lines_out)| {
                let at = ((first_image + image) * x.height + ty * TILE) * x.width * n;
                let shortcut = match epilogue {
                    Epilogue::AddRelu(shortcut) => Some(&shortcut.values[at..at + lines_out.len()]),
                    _ => None,
                };
                let row = TileRow {
                    products: &products,
                    first_tile: (image * tiles_y + ty) * tiles_x,
                    tiles: tiles_x,
                    width: x.width,
                    bias: &self.bias,
                    relu: !matches!(epilogue, Epilogue::Linear),
                };
                arch.dispatch(|| row.write(lines_out, shortcut));
            });
        }
        Activations {
            values: out,
            batch: x.batch,
            height: x.height,
            width: x.width,
            channels: n,
        }
    }
}

/// `Bᵀ d` for one column of six values.
#[inline(always)]
fn input_transform(d: &[Lane; WINDOW]) -> [Lane; WINDOW] {
    let mut r = [[0f32; LANES]; WINDOW];
    for l in 0..LANES {
        let [d0, d1, d2, d3, d4, d5] = [d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]];
        r[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        r[1][l] = -4.0 * (d1 + d2) + (d3 + d4);
        r[2][l] = 4.0 * (d1 - d2) + (d4 - d3);
        r[3][l] = 2.0 * (d3 - d1) + (d4 - d2);
        r[4][l] = 2.0 * (d1 - d3) + (d4 - d2);
        r[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
    r
}

/// `Aᵀ m` for one column of six values.
#[inline(always)]
fn output_transform(m: &[Lane; WINDOW]) -> [Lane; TILE] {
    let mut r = [[0f32; LANES]; TILE];
    for l in 0..LANES {
        let [m0, m1, m2, m3, m4, m5] = [m[0][l], m[1][l], m[2][l], m[3][l], m[4][l], m[5][l]];
        let (sum12, diff12) = (m1 + m2, m1 - m2);
        let (sum34, diff34) = (m3 + m4, m3 - m4);
        r[0][l] = m0 + sum12 + sum34;
        r[1][l] = diff12 + 2.0 * diff34;
        r[2][l] = sum12 + 4.0 * sum34;
        r[3][l] = diff12 + 8.0 * diff34 + m5;
    }
    r
}

/// Columns of lanes to rows of lanes.
#[inline(always)]
fn transpose<const ROWS: usize, const COLUMNS: usize>(
    columns: [[Lane; ROWS]; COLUMNS],
) -> [[Lane; COLUMNS]; ROWS] {
    std::array::from_fn(|i| std::array::from_fn(|column| columns[column][i]))
}

/// Transforms the 6x6 window of tile (`ty`, `tx`) of `image` into `dst`,
/// `[position][channel]`, with zeros where the window overhangs the image.
#[inline(always)]
fn transform_window(x: &Activations, image: usize, ty: usize, tx: usize, dst: &mut [f32]) {
    let channels = x.channels;
    let pixel = |y: isize, column: isize| -> Option<usize> {
        let inside = (0..x.height as isize).contains(&y) && (0..x.width as isize).contains(&column);
        inside.then(|| ((image * x.height + y as usize) * x.width + column as usize) * channels)
    };
    let (top, left) = ((ty * TILE) as isize - 1, (tx * TILE) as isize - 1);
    for first in (0..channels).step_by(LANES) {
        // Bᵀ d: columns of the window, one at a time.
        let columns: [[Lane; WINDOW]; WINDOW] = std::array::from_fn(|column| {
            let mut d = [[0f32; LANES]; WINDOW];
            for (y, lane) in d.iter_mut().enumerate() {
                if let Some(at) = pixel(top + y as isize, left + column as isize) {
                    lane.copy_from_slice(&x.values[at + first..at + first + LANES]);
                }
            }
            input_transform(&d)
        });
        // (Bᵀ d) B: rows of the result.
        for (i, row) in transpose(columns).iter().enumerate() {
            for (j, lane) in input_transform(row).into_iter().enumerate() {
                let at = (i * WINDOW + j) * channels + first;
                dst[at..at + LANES].copy_from_slice(&lane);
            }
        }
    }
}

/// The matmuls' output, `[position][tile][channel]`.
struct Products<'a> {
    values: &'a [f32],
    tiles: usize,
    channels: usize,
}

impl Products<'_> {
    fn lane(&self, position: usize, tile: usize, first: usize) -> &Lane {
        let at = (position * self.tiles + tile) * self.channels + first;
        self.values[at..at + LANES]
            .try_into()
            .expect("a slice of LANES values")
    }
}

/// One row of tiles of one image, transformed back into output lines.
struct TileRow<'a> {
    products: &'a Products<'a>,
    first_tile: usize,
    tiles: usize,
    width: usize,
    bias: &'a [f32],
    relu: bool,
}

impl TileRow<'_> {
    /// Writes `Aᵀ m A + bias` (then the epilogue) to the up to four output lines `out`.
    #[inline(always)]
    fn write(&self, out: &mut [f32], shortcut: Option<&[f32]>) {
        let channels = self.products.channels;
        let lines = out.len() / (self.width * channels);
        for tx in 0..self.tiles {
            let tile = self.first_tile + tx;
            let live_columns = TILE.min(self.width - tx * TILE);
            for first in (0..channels).step_by(LANES) {
                // Aᵀ m: columns of the 6x6 products, one at a time.
                let columns: [[Lane; TILE]; WINDOW] = std::array::from_fn(|column| {
                    output_transform(&std::array::from_fn(|y| {
                        *self.products.lane(y * WINDOW + column, tile, first)
                    }))
                });
                let rows = transpose(columns);
                let bias = &self.bias[first..first + LANES];
                for (i, row) in rows.iter().enumerate().take(lines) {
                    for (j, lane) in output_transform(row)
                        .into_iter()
                        .enumerate()
                        .take(live_columns)
                    {
                        let at = (i * self.width + tx * TILE + j) * channels + first;
                        let dst = &mut out[at..at + LANES];
                        match shortcut {
                            Some(shortcut) => {
                                let shortcut = &shortcut[at..at + LANES];
                                for (((d, v), b), s) in
                                    dst.iter_mut().zip(lane).zip(bias).zip(shortcut)
                                {
                                    *d = (v + b + s).max(0.0);
                                }
                            }
                            None if self.relu => {
                                for ((d, v), b) in dst.iter_mut().zip(lane).zip(bias) {
                                    *d = (v + b).max(0.0);
                                }
                            }
                            None => {
                                for ((d, v), b) in dst.iter_mut().zip(lane).zip(bias) {
                                    *d = v + b;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
