//! Winograd F(4x4, 3x3) and F(2x2, 3x3) for stride-1 3x3 convolutions with padding 1 (in
//! ResNet18, 13 of its 20 convolutions, 83% of its multiplies).
//!
//! Each 4x4 block of output pixels ("tile") is computed from the 6x6 input window around it:
//! the window is transformed (`Bᵀ d B`), multiplied element by element with the transformed
//! filter (`G g Gᵀ`, made once at load), summed over input channels, and transformed back
//! (`Aᵀ m A`). The sum over channels is 36 matmuls, one per window position, of
//! `[tiles, in_channels] x [in_channels, out_channels]`: 36 multiplies per tile and channel
//! pair where a direct convolution needs 144 (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2015).
//!
//! F(2x2, 3x3) (4x4 windows, 16 matmuls, 2.25x fewer multiplies) serves convolutions of 512
//! or more input channels: their transformed filters are 16/9 of the filters' size instead of
//! 4x (F(4x4) made ResNet18's layer4 filters 113 MB, a third of the embedder's memory, against
//! 50 MB), for no clear gain in speed on its 7x7 maps (docs/MEASUREMENTS.md).
//!
//! Layout: channels-last throughout, so both transforms run across 16 channels at a time and
//! vectorise; `pulp` compiles them for the CPU found at run time (AVX-512, AVX2, or SSE2).
//! Transformed windows are stored tile-major (`[tile][position][channel]`), so that each tile
//! is one contiguous slice a thread owns, and the matmuls read them with a row stride.
//!
//! Determinism: an output's arithmetic depends only on its own tile (see `matmul`), so an
//! image's features do not depend on its batch or the thread count.

use std::marker::PhantomData;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::activations::{Activations, Epilogue, Workspace};
use crate::matmul::{JOB_ROWS, PackedRhs, matmul};
use crate::{ConvWeights, GATHER_FLOATS, balanced};

/// The largest window side (F(4x4, 3x3)'s), for fixed-size buffers.
const MAX_WINDOW: usize = 6;
/// Window positions of the largest window.
const MAX_POSITIONS: usize = MAX_WINDOW * MAX_WINDOW;
/// Tiles per input-transform job.
const WINDOW_JOB_TILES: usize = 16;
/// Channels transformed together: one AVX-512 register of f32.
const LANES: usize = 16;

type Lane = [f32; LANES];

/// One Winograd algorithm F(TILE x TILE, 3x3). The transforms act on one column (or row) of a
/// window, the first `WINDOW` (or `TILE`) entries of the arrays.
trait Variant: Send + Sync {
    /// Output pixels per tile side.
    const TILE: usize;
    /// Input pixels per window side.
    const WINDOW: usize = Self::TILE + 2;
    /// Window positions: one matmul each.
    const POSITIONS: usize = Self::WINDOW * Self::WINDOW;
    /// `G`, the filter transform, applied in f64 when the weights are loaded.
    const G: &'static [[f64; 3]];
    /// `Bᵀ d`.
    fn input(d: &[Lane; MAX_WINDOW]) -> [Lane; MAX_WINDOW];
    /// `Aᵀ m`.
    fn output(m: &[Lane; MAX_WINDOW]) -> [Lane; MAX_WINDOW];
}

/// F(4x4, 3x3): 36 multiplies per 16 outputs where a direct convolution needs 144.
struct F4;

impl Variant for F4 {
    const TILE: usize = 4;
    const G: &'static [[f64; 3]] = &[
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input(d: &[Lane; MAX_WINDOW]) -> [Lane; MAX_WINDOW] {
        let mut r = [[0f32; LANES]; MAX_WINDOW];
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

    #[inline(always)]
    fn output(m: &[Lane; MAX_WINDOW]) -> [Lane; MAX_WINDOW] {
        let mut r = [[0f32; LANES]; MAX_WINDOW];
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
}

/// F(2x2, 3x3): 16 multiplies per 4 outputs where a direct convolution needs 36.
struct F2;

impl Variant for F2 {
    const TILE: usize = 2;
    const G: &'static [[f64; 3]] = &[
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input(d: &[Lane; MAX_WINDOW]) -> [Lane; MAX_WINDOW] {
        let mut r = [[0f32; LANES]; MAX_WINDOW];
        for l in 0..LANES {
            let [d0, d1, d2, d3] = [d[0][l], d[1][l], d[2][l], d[3][l]];
            r[0][l] = d0 - d2;
            r[1][l] = d1 + d2;
            r[2][l] = d2 - d1;
            r[3][l] = d1 - d3;
        }
        r
    }

    #[inline(always)]
    fn output(m: &[Lane; MAX_WINDOW]) -> [Lane; MAX_WINDOW] {
        let mut r = [[0f32; LANES]; MAX_WINDOW];
        for l in 0..LANES {
            let [m0, m1, m2, m3] = [m[0][l], m[1][l], m[2][l], m[3][l]];
            r[0][l] = m0 + m1 + m2;
            r[1][l] = m1 - m2 - m3;
        }
        r
    }
}

/// Which Winograd algorithm a [`WinogradConv`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WinogradTile {
    /// F(2x2, 3x3): 4x4 windows, 16 matmuls; transformed filters 16/9 of the filters' size.
    F2x2,
    /// F(4x4, 3x3): 6x6 windows, 36 matmuls, 4x fewer multiplies than a direct convolution;
    /// transformed filters 4x the filters' size.
    F4x4,
}

/// A stride-1 3x3 convolution with padding 1, as Winograd F(4x4, 3x3) or F(2x2, 3x3).
#[derive(Debug, Clone)]
pub struct WinogradConv {
    /// Output pixels per tile side: 4 or 2.
    tile: usize,
    /// One `[in_channels, out_channels]` matrix per window position: the transformed filters.
    weight: Vec<PackedRhs>,
    bias: Vec<f32>,
    in_channels: usize,
    out_channels: usize,
}

impl WinogradConv {
    /// Whether this module computes the convolution of `weights`: 3x3, stride 1, padding 1,
    /// channels in multiples of 16 (the transforms' lanes).
    pub fn applies(weights: &ConvWeights) -> bool {
        let [out_channels, in_channels, kernel_h, kernel_w] = weights.shape;
        kernel_h == 3
            && kernel_w == 3
            && weights.stride == 1
            && weights.padding == 1
            && in_channels % LANES == 0
            && out_channels % LANES == 0
    }

    /// The convolution of `weights` with the algorithm that suits it: F(2x2, 3x3) from 512
    /// input channels on, F(4x4, 3x3) below.
    pub fn new(weights: ConvWeights) -> Self {
        let tile = if weights.shape[1] >= 512 {
            WinogradTile::F2x2
        } else {
            WinogradTile::F4x4
        };
        Self::with_tile(weights, tile)
    }

    /// The convolution of `weights` with the algorithm `tile`. Panics where
    /// [`WinogradConv::applies`] does not hold.
    pub fn with_tile(weights: ConvWeights, tile: WinogradTile) -> Self {
        assert!(
            Self::applies(&weights),
            "Winograd takes 3x3 convolutions of stride 1, padding 1, channels in multiples of \
             {LANES}: {:?} stride {} padding {}",
            weights.shape,
            weights.stride,
            weights.padding
        );
        let [out_channels, in_channels, _, _] = weights.shape;
        let (tile, weight) = match tile {
            WinogradTile::F2x2 => (F2::TILE, transformed_filters::<F2>(&weights)),
            WinogradTile::F4x4 => (F4::TILE, transformed_filters::<F4>(&weights)),
        };
        Self {
            tile,
            weight,
            bias: weights.bias,
            in_channels,
            out_channels,
        }
    }

    /// The convolution in words, for layer profiles: "3x3/1 64->64, Winograd F(4x4, 3x3)".
    pub fn describe(&self) -> String {
        format!(
            "3x3/1 {}->{}, Winograd F({t}x{t}, 3x3)",
            self.in_channels,
            self.out_channels,
            t = self.tile
        )
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// Bytes of the transformed filters (4x the filters' for F(4x4), 16/9 for F(2x2)).
    pub fn filter_bytes(&self) -> usize {
        self.weight.iter().map(PackedRhs::bytes).sum()
    }

    /// The convolution of every image of `x`, as `GatherConv::forward`: the workspace's
    /// scratch holds the transformed windows and their products.
    pub fn forward(
        &self,
        x: &Activations,
        epilogue: Epilogue<'_>,
        workspace: &mut Workspace,
    ) -> Activations {
        if self.tile == F2::TILE {
            self.forward_with::<F2>(x, epilogue, workspace)
        } else {
            self.forward_with::<F4>(x, epilogue, workspace)
        }
    }

    fn forward_with<V: Variant>(
        &self,
        x: &Activations,
        epilogue: Epilogue<'_>,
        workspace: &mut Workspace,
    ) -> Activations {
        debug_assert_eq!(x.channels, self.in_channels);
        let (tile_side, positions) = (V::TILE, V::POSITIONS);
        let (tiles_y, tiles_x) = (x.height.div_ceil(tile_side), x.width.div_ceil(tile_side));
        let tiles_per_image = tiles_y * tiles_x;
        let (c, n) = (self.in_channels, self.out_channels);
        let most_images = (GATHER_FLOATS / (tiles_per_image * positions * (c + n))).max(1);
        let images_per_call = balanced(x.batch, most_images);
        let image_len = x.height * x.width * n;
        let mut out = workspace.buffer(x.batch * image_len);
        let arch = pulp::Arch::new();
        for first_image in (0..x.batch).step_by(images_per_call) {
            let images = images_per_call.min(x.batch - first_image);
            let tiles = images * tiles_per_image;
            // The transform and matmuls write every value.
            let scratch = workspace.scratch(tiles * positions * (c + n));
            let (windows, products) = scratch.split_at_mut(tiles * positions * c);
            windows
                .par_chunks_mut(WINDOW_JOB_TILES * positions * c)
                .enumerate()
                .for_each(|(job, dst)| {
                    arch.dispatch(WindowJob::<V> {
                        variant: PhantomData,
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
                    let lhs = &windows[first_tile * positions * c + position * c..];
                    matmul(lhs, positions * c, &self.weight[position], dst);
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
                    let lines = tile_side.min(x.height - ty * tile_side);
                    let (lines_out, tail) = rest.split_at_mut(lines * x.width * n);
                    jobs.push((image, ty, lines_out));
                    rest = tail;
                }
            }
            jobs.into_par_iter().for_each(|(image, ty, lines_out)| {
                let at = ((first_image + image) * x.height + ty * tile_side) * x.width * n;
                arch.dispatch(TileRowJob::<V> {
                    variant: PhantomData,
                    products: &products,
                    first_tile: (image * tiles_y + ty) * tiles_x,
                    tiles: tiles_x,
                    width: x.width,
                    bias: &self.bias,
                    epilogue,
                    at,
                    out: lines_out,
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

/// The filters transformed (`G g Gᵀ`, in f64, rounded once): one `[in, out]` matrix per
/// window position, packed for the matmul.
fn transformed_filters<V: Variant>(weights: &ConvWeights) -> Vec<PackedRhs> {
    let [out_channels, in_channels, _, _] = weights.shape;
    // Per output channel, `[position][in_channel]`, in parallel (layer4's take 1.5 s on one
    // core), then laid out as the matmuls want them, a position per job: on one core the
    // layout was about a tenth of a second at the start of every run with embeddings.
    let per_output: Vec<Vec<f32>> = weights
        .weight
        .par_chunks_exact(9 * in_channels)
        .map(|filters| transformed_filter::<V>(filters, in_channels))
        .collect();
    (0..V::POSITIONS)
        .into_par_iter()
        .map(|position| {
            let mut matrix = vec![0f32; in_channels * out_channels];
            for (out_channel, transformed) in per_output.iter().enumerate() {
                let values = &transformed[position * in_channels..][..in_channels];
                for (in_channel, &value) in values.iter().enumerate() {
                    matrix[in_channel * out_channels + out_channel] = value;
                }
            }
            PackedRhs::new(&matrix, in_channels, out_channels)
        })
        .collect()
}

/// One output channel's filters transformed: `[position][in_channel]`.
fn transformed_filter<V: Variant>(filters: &[f32], in_channels: usize) -> Vec<f32> {
    let mut transformed = vec![0f32; V::POSITIONS * in_channels];
    for (in_channel, g) in filters.chunks_exact(9).enumerate() {
        let mut gg = [[0f64; 3]; MAX_WINDOW];
        for (row, g_row) in gg.iter_mut().zip(V::G) {
            for (x, value) in row.iter_mut().enumerate() {
                *value = (0..3).map(|y| g_row[y] * f64::from(g[y * 3 + x])).sum();
            }
        }
        for (i, gg_row) in gg.iter().take(V::WINDOW).enumerate() {
            for (j, g_row) in V::G.iter().enumerate() {
                let value: f64 = (0..3).map(|x| gg_row[x] * g_row[x]).sum();
                transformed[(i * V::WINDOW + j) * in_channels + in_channel] = value as f32;
            }
        }
    }
    transformed
}

/// `window` lanes of a grid stored row by row, from lane `first` on, `step` apart (1: a row;
/// the window's width: a column), padded with zeros to `MAX_WINDOW`.
#[inline(always)]
fn line_of(grid: &[Lane], window: usize, first: usize, step: usize) -> [Lane; MAX_WINDOW] {
    std::array::from_fn(|i| {
        if i < window {
            grid[first + i * step]
        } else {
            [0.0; LANES]
        }
    })
}

/// The input transform of a run of tiles, compiled for the CPU's SIMD (see `pulp`).
struct WindowJob<'a, V> {
    variant: PhantomData<V>,
    x: &'a Activations,
    /// The first tile's index, counted over the whole batch.
    first_tile: usize,
    tiles_x: usize,
    tiles_y: usize,
    /// `[tile][position][channel]` for the run's tiles.
    dst: &'a mut [f32],
}

impl<V: Variant> WithSimd for WindowJob<'_, V> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let x = self.x;
        let channels = x.channels;
        let (tile_side, window, positions) = (V::TILE, V::WINDOW, V::POSITIONS);
        let tiles_per_image = self.tiles_x * self.tiles_y;
        for (i, dst) in self.dst.chunks_exact_mut(positions * channels).enumerate() {
            let tile = self.first_tile + i;
            let image = tile / tiles_per_image;
            let (ty, tx) = (tile % tiles_per_image / self.tiles_x, tile % self.tiles_x);
            let (top, left) = ((ty * tile_side) as isize - 1, (tx * tile_side) as isize - 1);
            for first in (0..channels).step_by(LANES) {
                // The window, zeros where it overhangs the image.
                let mut grid = [[0f32; LANES]; MAX_POSITIONS];
                let grid = &mut grid[..positions];
                for (y, grid_row) in grid.chunks_exact_mut(window).enumerate() {
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
                for column in 0..window {
                    let transformed = V::input(&line_of(grid, window, column, window));
                    for (y, lane) in transformed.into_iter().take(window).enumerate() {
                        grid[y * window + column] = lane;
                    }
                }
                // (Bᵀ d) B, row by row, into the matmuls' input.
                for i in 0..window {
                    let transformed = V::input(&line_of(grid, window, i * window, 1));
                    for (j, lane) in transformed.into_iter().take(window).enumerate() {
                        let at = (i * window + j) * channels + first;
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
struct TileRowJob<'a, V> {
    variant: PhantomData<V>,
    products: &'a Products<'a>,
    first_tile: usize,
    tiles: usize,
    width: usize,
    bias: &'a [f32],
    epilogue: Epilogue<'a>,
    /// Where `out` starts in the whole output (for the epilogue's shortcut).
    at: usize,
    out: &'a mut [f32],
}

impl<V: Variant> WithSimd for TileRowJob<'_, V> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let channels = self.products.channels;
        let (tile_side, window, positions) = (V::TILE, V::WINDOW, V::POSITIONS);
        let lines = self.out.len() / (self.width * channels);
        for tx in 0..self.tiles {
            let tile = self.first_tile + tx;
            let live_columns = tile_side.min(self.width - tx * tile_side);
            for first in (0..channels).step_by(LANES) {
                let mut grid = [[0f32; LANES]; MAX_POSITIONS];
                let grid = &mut grid[..positions];
                for (position, lane) in grid.iter_mut().enumerate() {
                    *lane = self.products.lane(position, tile, first);
                }
                // Aᵀ m, column by column, in place (the first `tile_side` rows).
                for column in 0..window {
                    let transformed = V::output(&line_of(grid, window, column, window));
                    for (y, lane) in transformed.into_iter().take(tile_side).enumerate() {
                        grid[y * window + column] = lane;
                    }
                }
                let bias = &self.bias[first..first + LANES];
                for i in 0..lines {
                    let transformed = V::output(&line_of(grid, window, i * window, 1));
                    for (j, lane) in transformed.into_iter().take(live_columns).enumerate() {
                        let at = (i * self.width + tx * tile_side + j) * channels + first;
                        let dst = &mut self.out[at..at + LANES];
                        dst.copy_from_slice(&lane);
                        self.epilogue.apply(dst, bias, self.at + at);
                    }
                }
            }
        }
    }
}
