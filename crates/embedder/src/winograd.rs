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

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::matmul::{JOB_ROWS, PackedRhs, matmul};
use crate::nhwc::{Activations, Epilogue, GATHER_FLOATS, Workspace, balanced};
use crate::resnet::Folded;

/// Output pixels per tile side.
const TILE: usize = 4;
/// Input pixels per window side.
const WINDOW: usize = TILE + 2;
/// Window positions: one matmul each.
const POSITIONS: usize = WINDOW * WINDOW;
/// Tiles per input-transform job.
const WINDOW_JOB_TILES: usize = 16;
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

    /// Like `GatherConv::forward`: the workspace's scratch holds the transformed windows and
    /// their products.
    pub(crate) fn forward(
        &self,
        x: &Activations,
        epilogue: Epilogue<'_>,
        workspace: &mut Workspace,
    ) -> Activations {
        debug_assert_eq!(x.channels, self.in_channels);
        let (tiles_y, tiles_x) = (x.height.div_ceil(TILE), x.width.div_ceil(TILE));
        let tiles_per_image = tiles_y * tiles_x;
        let (c, n) = (self.in_channels, self.out_channels);
        let most_images = (GATHER_FLOATS / (tiles_per_image * POSITIONS * (c + n))).max(1);
        let images_per_call = balanced(x.batch, most_images);
        let image_len = x.height * x.width * n;
        let mut out = workspace.buffer(x.batch * image_len);
        let arch = pulp::Arch::new();
        for first_image in (0..x.batch).step_by(images_per_call) {
            let images = images_per_call.min(x.batch - first_image);
            let tiles = images * tiles_per_image;
            // Resizing zeroes only new capacity: the transform and matmuls write every value.
            let scratch = &mut workspace.scratch;
            scratch.resize(tiles * POSITIONS * (c + n), 0.0);
            let (windows, products) = scratch.split_at_mut(tiles * POSITIONS * c);
            windows
                .par_chunks_mut(WINDOW_JOB_TILES * POSITIONS * c)
                .enumerate()
                .for_each(|(job, dst)| {
                    arch.dispatch(WindowJob {
                        x,
                        first_tile: first_image * tiles_per_image + job * WINDOW_JOB_TILES,
                        tiles_x,
                        tiles_y,
                        dst,
                    })
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
                arch.dispatch(TileRowJob {
                    products: &products,
                    first_tile: (image * tiles_y + ty) * tiles_x,
                    tiles: tiles_x,
                    width: x.width,
                    bias: &self.bias,
                    relu: !matches!(epilogue, Epilogue::Linear),
                    out: lines_out,
                    shortcut,
                });
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
fn input_transform(d: [Lane; WINDOW]) -> [Lane; WINDOW] {
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
fn output_transform(m: [Lane; WINDOW]) -> [Lane; TILE] {
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

/// Column `column` of a 6-wide grid of lanes stored row by row.
#[inline(always)]
fn column_of(grid: &[Lane], column: usize) -> [Lane; WINDOW] {
    std::array::from_fn(|y| grid[y * WINDOW + column])
}

/// The input transform of a run of tiles, compiled for the CPU's SIMD (see `pulp`).
struct WindowJob<'a> {
    x: &'a Activations,
    /// The first tile's index, counted over the whole batch.
    first_tile: usize,
    tiles_x: usize,
    tiles_y: usize,
    /// `[tile][position][channel]` for the run's tiles.
    dst: &'a mut [f32],
}

impl WithSimd for WindowJob<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let x = self.x;
        let channels = x.channels;
        let tiles_per_image = self.tiles_x * self.tiles_y;
        for (i, dst) in self.dst.chunks_exact_mut(POSITIONS * channels).enumerate() {
            let tile = self.first_tile + i;
            let image = tile / tiles_per_image;
            let (ty, tx) = (tile % tiles_per_image / self.tiles_x, tile % self.tiles_x);
            let (top, left) = ((ty * TILE) as isize - 1, (tx * TILE) as isize - 1);
            for first in (0..channels).step_by(LANES) {
                // The window, zeros where it overhangs the image.
                let mut grid = [[0f32; LANES]; POSITIONS];
                for (y, grid_row) in grid.chunks_exact_mut(WINDOW).enumerate() {
                    let source_y = top + y as isize;
                    if !(0..x.height as isize).contains(&source_y) {
                        continue;
                    }
                    for (column, lane) in grid_row.iter_mut().enumerate() {
                        let source_x = left + column as isize;
                        if (0..x.width as isize).contains(&source_x) {
                            let pixel = (image * x.height + source_y as usize) * x.width
                                + source_x as usize;
                            let at = pixel * channels + first;
                            lane.copy_from_slice(&x.values[at..at + LANES]);
                        }
                    }
                }
                // Bᵀ d, column by column, in place.
                for column in 0..WINDOW {
                    let transformed = input_transform(column_of(&grid, column));
                    for (y, lane) in transformed.into_iter().enumerate() {
                        grid[y * WINDOW + column] = lane;
                    }
                }
                // (Bᵀ d) B, row by row, into the matmuls' input.
                for (i, row) in grid.chunks_exact(WINDOW).enumerate() {
                    let row: [Lane; WINDOW] = row.try_into().expect("a row of WINDOW lanes");
                    for (j, lane) in input_transform(row).into_iter().enumerate() {
                        let at = (i * WINDOW + j) * channels + first;
                        dst[at..at + LANES].copy_from_slice(&lane);
                    }
                }
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
    #[inline(always)]
    fn lane(&self, position: usize, tile: usize, first: usize) -> Lane {
        let at = (position * self.tiles + tile) * self.channels + first;
        self.values[at..at + LANES]
            .try_into()
            .expect("a slice of LANES values")
    }
}

/// One row of tiles of one image transformed back into up to four output lines (`out`), plus
/// the bias and the epilogue; compiled for the CPU's SIMD.
struct TileRowJob<'a> {
    products: &'a Products<'a>,
    first_tile: usize,
    tiles: usize,
    width: usize,
    bias: &'a [f32],
    relu: bool,
    out: &'a mut [f32],
    /// The shortcut's values at the same places as `out`.
    shortcut: Option<&'a [f32]>,
}

impl WithSimd for TileRowJob<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let channels = self.products.channels;
        let lines = self.out.len() / (self.width * channels);
        for tx in 0..self.tiles {
            let tile = self.first_tile + tx;
            let live_columns = TILE.min(self.width - tx * TILE);
            for first in (0..channels).step_by(LANES) {
                let mut grid = [[0f32; LANES]; POSITIONS];
                for (position, lane) in grid.iter_mut().enumerate() {
                    *lane = self.products.lane(position, tile, first);
                }
                // Aᵀ m, column by column, in place (rows 0..TILE).
                for column in 0..WINDOW {
                    let transformed = output_transform(column_of(&grid, column));
                    for (y, lane) in transformed.into_iter().enumerate() {
                        grid[y * WINDOW + column] = lane;
                    }
                }
                let bias: Lane = self.bias[first..first + LANES]
                    .try_into()
                    .expect("a slice of LANES values");
                for (i, row) in grid.chunks_exact(WINDOW).take(lines).enumerate() {
                    let row: [Lane; WINDOW] = row.try_into().expect("a row of WINDOW lanes");
                    for (j, lane) in output_transform(row)
                        .into_iter()
                        .enumerate()
                        .take(live_columns)
                    {
                        let at = (i * self.width + tx * TILE + j) * channels + first;
                        let dst = &mut self.out[at..at + LANES];
                        match self.shortcut {
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
