//! The CPU network's matrix multiply: `out = lhs · rhs` with `rhs` (the weights) packed once at
//! load, in safe Rust, compiled by `pulp` for the CPU found at run time (AVX-512: 6x64 register
//! block; AVX2: 6x16; SSE2 and scalar fallbacks).
//!
//! Why not gemm (through burn's matmul): at ResNet18's shapes (k from 64 to 4608, n from 64 to
//! 512) it reached 35-100 GFLOP/s per core here, packing both operands on every call; the
//! Winograd matmuls (k = 64) were the slowest. Here the weights are packed once, and `lhs` is
//! read in place: each k step broadcasts one value of each of the block's rows (packing `lhs`
//! too cost a third of the time at k = 64). A row's k values may also lie in evenly spaced
//! runs (`matmul_runs`), so that the stem multiplies its receptive fields where they are.
//!
//! Determinism: every output is one chain of fused multiply-adds over k in order 0, 1, 2, ...,
//! whatever the row block, k block, thread or SIMD width: blocking only decides when the chain
//! is parked in `out`. So an image's features do not depend on its batch or the thread count,
//! and FMA being exact, they are the same on AVX-512 and AVX2 machines.

use pulp::{Arch, Simd, WithSimd};

/// Depth of one k block: the block's 12 lhs rows (12 KiB) stay in L1, the rhs block in L2.
const KC: usize = 256;

/// Rows per thread job: a multiple of every register block's row count.
pub(crate) const JOB_ROWS: usize = 96;

/// The f32 lanes of the widest SIMD registers this CPU has.
fn lanes() -> usize {
    struct Lanes;
    impl WithSimd for Lanes {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: Simd>(self, _simd: S) -> usize {
            S::F32_LANES
        }
    }
    Arch::new().dispatch(Lanes)
}

/// Columns of one rhs panel: the register block's width (four AVX-512 vectors, two of AVX2).
fn panel_width(lanes: usize) -> usize {
    if lanes == 16 { 4 * lanes } else { 2 * lanes }
}

/// A `[k, n]` right-hand side, packed for the register block of this CPU: for each block of
/// `KC` rows, panels of `panel` columns, each row of a panel contiguous.
#[derive(Debug, Clone)]
pub(crate) struct PackedRhs {
    values: Vec<f32>,
    k: usize,
    n: usize,
    panel: usize,
}

impl PackedRhs {
    /// `rhs` is row-major `[k, n]`; `n` must be a multiple of 64.
    pub(crate) fn new(rhs: &[f32], k: usize, n: usize) -> Self {
        Self::for_lanes(rhs, k, n, lanes())
    }

    /// Bytes of the packed values.
    pub(crate) fn bytes(&self) -> usize {
        self.values.len() * size_of::<f32>()
    }

    /// Packed for registers of `lanes` f32 lanes.
    fn for_lanes(rhs: &[f32], k: usize, n: usize, lanes: usize) -> Self {
        assert_eq!(rhs.len(), k * n, "rhs is [k, n]");
        let panel = panel_width(lanes);
        assert_eq!(
            n % panel,
            0,
            "n = {n} is not a multiple of the panel width {panel}"
        );
        let mut values = Vec::with_capacity(k * n);
        for first in (0..k).step_by(KC) {
            let depth = KC.min(k - first);
            for column in (0..n).step_by(panel) {
                for row in first..first + depth {
                    values.extend_from_slice(&rhs[row * n + column..row * n + column + panel]);
                }
            }
        }
        Self {
            values,
            k,
            n,
            panel,
        }
    }
}

/// `out[rows, n] = lhs[rows, k] · rhs`, on this thread. Row `r` of `lhs` is
/// `lhs[r * lhs_stride..][..k]`; `out` is row-major with `rows * n` values.
pub(crate) fn matmul(lhs: &[f32], lhs_stride: usize, rhs: &PackedRhs, out: &mut [f32]) {
    let runs = Runs {
        len: rhs.k,
        stride: 0,
    };
    matmul_runs(lhs, lhs_stride, runs, rhs, out);
}

/// Where a row's k values lie in `lhs`: runs of `len` values, `stride` apart, the last one
/// possibly shorter. A convolution reads its receptive fields in place this way, one run per
/// kernel row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Runs {
    pub(crate) len: usize,
    pub(crate) stride: usize,
}

/// As [`matmul`], with row `r`'s k values in `runs` from `lhs[r * lhs_stride..]`: value `i` is
/// `lhs[r * lhs_stride + (i / len) * stride + i % len]`. Rows may overlap.
pub(crate) fn matmul_runs(
    lhs: &[f32],
    lhs_stride: usize,
    runs: Runs,
    rhs: &PackedRhs,
    out: &mut [f32],
) {
    assert_eq!(out.len() % rhs.n, 0, "out holds whole rows");
    let rows = out.len() / rhs.n;
    if rows == 0 || rhs.k == 0 {
        return;
    }
    assert!(runs.len > 0, "runs hold values");
    let last = rhs.k - 1;
    assert!(
        lhs.len() > (rows - 1) * lhs_stride + (last / runs.len) * runs.stride + last % runs.len,
        "lhs holds {rows} rows of {}",
        rhs.k
    );
    Arch::new().dispatch(Job {
        lhs,
        lhs_stride,
        runs,
        rhs,
        out,
    });
}

struct Job<'a> {
    lhs: &'a [f32],
    lhs_stride: usize,
    runs: Runs,
    rhs: &'a PackedRhs,
    out: &'a mut [f32],
}

impl WithSimd for Job<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        assert_eq!(
            self.rhs.panel,
            panel_width(S::F32_LANES),
            "rhs was packed on this CPU"
        );
        match S::F32_LANES {
            16 => self.run::<S, 6, 4>(simd),
            8 => self.run::<S, 6, 2>(simd),
            _ => self.run::<S, 4, 2>(simd),
        }
    }
}

impl Job<'_> {
    /// Register blocks of `ROWS` rows by `VECTORS` vectors.
    #[inline(always)]
    fn run<S: Simd, const ROWS: usize, const VECTORS: usize>(self, simd: S) {
        let Self {
            lhs,
            lhs_stride,
            runs,
            rhs,
            out,
        } = self;
        let (k, n, panel) = (rhs.k, rhs.n, rhs.panel);
        let rows = out.len() / n;
        // Rows past the end of `lhs` read zeros (their products are not stored).
        let zeros = [0f32; KC];
        for first in (0..k).step_by(KC) {
            let depth = KC.min(k - first);
            let (block, _) = S::as_simd_f32s(&rhs.values[first * n..(first + depth) * n]);
            for first_row in (0..rows).step_by(ROWS) {
                let live = ROWS.min(rows - first_row);
                for (p, rhs_panel) in block.chunks_exact(depth * VECTORS).enumerate() {
                    let mut acc = [[simd.splat_f32s(0.0); VECTORS]; ROWS];
                    let column = p * panel;
                    if first > 0 {
                        for (r, acc) in acc.iter_mut().enumerate().take(live) {
                            let at = (first_row + r) * n + column;
                            let (parked, _) = S::as_simd_f32s(&out[at..at + panel]);
                            acc.copy_from_slice(&parked[..VECTORS]);
                        }
                    }
                    // The block's k values, one piece per run they fall in.
                    let mut start = first;
                    while start < first + depth {
                        let run = start / runs.len;
                        let end = ((run + 1) * runs.len).min(first + depth);
                        let offset = run * runs.stride + start % runs.len;
                        let lhs_rows: [&[f32]; ROWS] = std::array::from_fn(|r| {
                            if r < live {
                                let at = (first_row + r) * lhs_stride + offset;
                                &lhs[at..at + (end - start)]
                            } else {
                                &zeros[..end - start]
                            }
                        });
                        let piece = &rhs_panel[(start - first) * VECTORS..(end - first) * VECTORS];
                        for (i, b) in piece.chunks_exact(VECTORS).enumerate() {
                            for (acc, row) in acc.iter_mut().zip(&lhs_rows) {
                                let a = simd.splat_f32s(row[i]);
                                for (acc, &b) in acc.iter_mut().zip(b) {
                                    *acc = simd.mul_add_f32s(a, b, *acc);
                                }
                            }
                        }
                        start = end;
                    }
                    for (r, acc) in acc.iter().enumerate().take(live) {
                        let at = (first_row + r) * n + column;
                        let (dst, _) = S::as_mut_simd_f32s(&mut out[at..at + panel]);
                        dst[..VECTORS].copy_from_slice(acc);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// The same chain of fused multiply-adds, one output at a time.
    fn reference(
        lhs: &[f32],
        stride: usize,
        rhs: &[f32],
        rows: usize,
        k: usize,
        n: usize,
    ) -> Vec<f32> {
        let mut out = vec![0f32; rows * n];
        for r in 0..rows {
            for c in 0..n {
                let mut sum = 0f32;
                for i in 0..k {
                    sum = lhs[r * stride + i].mul_add(rhs[i * n + c], sum);
                }
                out[r * n + c] = sum;
            }
        }
        out
    }

    /// Every SIMD path this CPU can run, the scalar one included, gives the same bits as the
    /// plain chain: embeddings do not depend on the machine's SIMD width.
    #[test]
    fn every_simd_width_computes_the_same_bits() {
        struct OnSimd<'a>(&'a [f32], &'a [f32], usize, usize, usize);
        impl WithSimd for OnSimd<'_> {
            type Output = Vec<f32>;
            fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
                let OnSimd(lhs, rhs, rows, k, n) = self;
                let rhs = PackedRhs::for_lanes(rhs, k, n, S::F32_LANES);
                let mut out = vec![0f32; rows * n];
                Job {
                    lhs,
                    lhs_stride: k,
                    runs: Runs { len: k, stride: 0 },
                    rhs: &rhs,
                    out: &mut out,
                }
                .with_simd(simd);
                out
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (rows, k, n) = (13, 700, 128);
        let lhs: Vec<f32> = (0..rows * k).map(|_| rng.random::<f32>() - 0.5).collect();
        let rhs: Vec<f32> = (0..k * n).map(|_| rng.random::<f32>() - 0.5).collect();
        let expected = reference(&lhs, k, &rhs, rows, k, n);
        let on = |simd_out: Vec<f32>, name: &str| assert_eq!(simd_out, expected, "{name}");
        on(
            OnSimd(&lhs, &rhs, rows, k, n).with_simd(pulp::Scalar::new()),
            "scalar",
        );
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(v3) = pulp::x86::V3::try_new() {
                on(
                    v3.vectorize(|| OnSimd(&lhs, &rhs, rows, k, n).with_simd(v3)),
                    "AVX2",
                );
            }
            if let Some(v4) = pulp::x86::V4::try_new() {
                on(
                    v4.vectorize(|| OnSimd(&lhs, &rhs, rows, k, n).with_simd(v4)),
                    "AVX-512",
                );
            }
        }
    }

    /// Rows read in runs, overlapping (as a convolution reads its receptive fields in place),
    /// give the bits of the same rows gathered, whether k spans one or several k blocks.
    #[test]
    fn rows_read_in_runs_give_the_gathered_rows_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // (rows, run length, runs, stride between rows, stride between runs): the stem's
        // shape, and one where k = 300 crosses a k block inside a run.
        for (rows, len, count, row_stride, run_stride) in [(29, 21, 7, 6, 700), (13, 60, 5, 7, 100)]
        {
            let (k, n) = (len * count, 64);
            let span = (rows - 1) * row_stride + (count - 1) * run_stride + len;
            let lhs: Vec<f32> = (0..span).map(|_| rng.random::<f32>() - 0.5).collect();
            let rhs: Vec<f32> = (0..k * n).map(|_| rng.random::<f32>() - 0.5).collect();
            let gathered: Vec<f32> = (0..rows)
                .flat_map(|r| {
                    (0..k).map(move |i| r * row_stride + (i / len) * run_stride + i % len)
                })
                .map(|at| lhs[at])
                .collect();
            let expected = reference(&gathered, k, &rhs, rows, k, n);
            let mut out = vec![0f32; rows * n];
            let runs = Runs {
                len,
                stride: run_stride,
            };
            matmul_runs(
                &lhs,
                row_stride,
                runs,
                &PackedRhs::new(&rhs, k, n),
                &mut out,
            );
            assert_eq!(out, expected, "{rows} rows of {count} runs of {len}");
        }
    }

    #[test]
    fn matches_one_fused_chain_per_output_at_any_row_split() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // k past one and two k blocks; rows not a multiple of any register block.
        for (rows, k, n, stride) in [(1, 3, 64, 3), (29, 300, 64, 310), (50, 600, 128, 600)] {
            let lhs: Vec<f32> = (0..rows * stride)
                .map(|_| rng.random::<f32>() - 0.5)
                .collect();
            let rhs: Vec<f32> = (0..k * n).map(|_| rng.random::<f32>() - 0.5).collect();
            let packed = PackedRhs::new(&rhs, k, n);
            let expected = reference(&lhs, stride, &rhs, rows, k, n);
            let mut out = vec![0f32; rows * n];
            matmul(&lhs, stride, &packed, &mut out);
            assert_eq!(out, expected, "{rows}x{k}x{n}");
            // Row by row gives the same bits.
            for r in 0..rows {
                let mut row = vec![0f32; n];
                matmul(&lhs[r * stride..], stride, &packed, &mut row);
                assert_eq!(
                    row,
                    expected[r * n..(r + 1) * n],
                    "row {r} of {rows}x{k}x{n}"
                );
            }
        }
    }
}
