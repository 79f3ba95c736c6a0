//! The CPU convolution engine: 2-d convolutions on channels-last (NHWC) `f32` activations,
//! built for inference with folded weights (bias included), as the embedder's ResNet18 runs
//! them.
//!
//! - [`Conv2d`]: one convolution, [`WinogradConv`] (F(4x4, 3x3) or F(2x2, 3x3)) where it
//!   applies (3x3, stride 1, padding 1, channels in multiples of 16), else [`GatherConv`] (a
//!   matmul over gathered or in-place receptive fields). Its output goes through an
//!   [`Epilogue`] (bias, then nothing, ReLU, or shortcut + ReLU) as each block of rows is made.
//! - [`max_pool_3x3_s2`] and [`global_average`]: ResNet's pools.
//! - [`Activations`] and [`Workspace`]: feature maps, and the buffers reused between layers.
//!
//! One matrix multiply (`matmul`, private) serves every convolution: safe Rust, `pulp` choosing
//! AVX-512, AVX2 or a fallback at run time (never by target flags), weights packed once.
//!
//! Determinism: every output value is one chain of fused multiply-adds in a fixed order, and
//! transforms, gathers, epilogues and pools work per pixel. So an image's outputs do not depend
//! on the batch it came in, the thread count (the caller's rayon pool) or the CPU's SIMD width;
//! `tests/against_direct.rs` checks this against a naive direct convolution.
//!
//! Limits: output channels must be a multiple of 64 (the matmul's widest register panel); the
//! kernels are square.

mod activations;
mod gather;
mod matmul;
mod pool;
mod winograd;

pub use activations::{Activations, Epilogue, Workspace};
pub use gather::GatherConv;
pub use pool::{global_average, max_pool_3x3_s2, pooled_side};
pub use winograd::{WinogradConv, WinogradTile};

/// The most im2col floats gathered for one matmul (8 MiB): each caller's scratch buffer stays
/// small at any batch size.
pub const GATHER_FLOATS: usize = 2 << 20;

/// Images per call when `batch` images go in calls of at most `most`: as even as can be, since
/// a small last call keeps a thread idle (measured: docs/MEASUREMENTS.md).
pub fn balanced(batch: usize, most: usize) -> usize {
    batch.div_ceil(batch.div_ceil(most).max(1)).max(1)
}

/// A convolution's weights in PyTorch's layout, with its bias (a folded BatchNorm's, say).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    /// `[out_channels, in_channels, kernel, kernel]`, row-major.
    pub weight: Vec<f32>,
    /// `[out_channels, in_channels, kernel, kernel]`.
    pub shape: [usize; 4],
    /// One per output channel.
    pub bias: Vec<f32>,
    /// Stride, both axes.
    pub stride: usize,
    /// Zero padding, every side.
    pub padding: usize,
}

/// One convolution: Winograd where it applies, a gathered (or in-place) matmul elsewhere.
#[derive(Debug, Clone)]
pub enum Conv2d {
    /// A matmul over receptive fields.
    Gather(GatherConv),
    /// Winograd F(4x4, 3x3) or F(2x2, 3x3).
    Winograd(WinogradConv),
}

impl Conv2d {
    /// The fastest kernel for `weights` (see [`WinogradConv::applies`]).
    pub fn new(weights: ConvWeights) -> Self {
        if WinogradConv::applies(&weights) {
            Self::Winograd(WinogradConv::new(weights))
        } else {
            Self::Gather(GatherConv::new(weights))
        }
    }

    /// The convolution of every image of `x`, its bias added and `epilogue` applied; the
    /// output's buffer comes from `workspace`. Its kernels run on the current rayon pool.
    pub fn forward(
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

    /// The convolution in words, for layer profiles: "3x3/2 64->128, gathered".
    pub fn describe(&self) -> String {
        match self {
            Self::Gather(conv) => conv.describe(),
            Self::Winograd(conv) => conv.describe(),
        }
    }
}
