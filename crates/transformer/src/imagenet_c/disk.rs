//! `defocus_blur`'s kernel and filter: the package's `disk` (an aliased disk of `radius` on a
//! square grid, normalised in f32, then `cv2.GaussianBlur` with a 3x3 or 5x5 kernel and
//! OpenCV's default `BORDER_REFLECT_101` applied to the kernel image itself) and
//! `cv2.filter2D` (a correlation over the non-zero taps, anchor at the centre,
//! `BORDER_REFLECT_101`) on an f64 plane.

use super::{keep_scratch, take_scratch};
use crate::ops::reflect as reflect_101;

/// `cv2.getGaussianKernel(ksize, sigma, CV_32F)`: weights computed in f64, scaled by the
/// inverse of their sum and rounded to f32.
fn gaussian_kernel_f32(ksize: usize, sigma: f64) -> Vec<f32> {
    if sigma * sigma == 0.0 {
        // The limit as sigma goes to 0 (OpenCV would derive a sigma from ksize instead).
        return (0..ksize)
            .map(|i| if i == ksize / 2 { 1.0 } else { 0.0 })
            .collect();
    }
    let scale = -0.5 / (sigma * sigma);
    let raw: Vec<f64> = (0..ksize)
        .map(|i| {
            let x = i as f64 - (ksize as f64 - 1.0) * 0.5;
            (scale * x * x).exp()
        })
        .collect();
    let inverse = 1.0 / raw.iter().sum::<f64>();
    raw.iter().map(|w| (w * inverse) as f32).collect()
}

/// The package's `disk(radius, alias_blur)` as a `side x side` kernel (row-major), widened to
/// f64 as `filter2D` widens it for an f64 image. The grid is `-8..=8` up to radius 8 (3x3 blur)
/// and `-ceil(r)..=ceil(r)` above (5x5 blur); for a fractional radius above 8 the package's
/// `arange(-r, r + 1)` would make a half-integer grid of even length whose centre is half a
/// pixel off, so the grid stays on whole pixels (at whole radii the two are the same).
pub(crate) fn disk(radius: f64, alias_blur: f64) -> (Vec<f64>, usize) {
    let (half, ksize) = if radius <= 8.0 {
        (8, 3)
    } else {
        (radius.ceil() as isize, 5)
    };
    let side = (2 * half + 1) as usize;
    let mut aliased: Vec<f32> = Vec::with_capacity(side * side);
    for y in -half..=half {
        for x in -half..=half {
            let inside = ((x * x + y * y) as f64) <= radius * radius;
            aliased.push(if inside { 1.0 } else { 0.0 });
        }
    }
    // `aliased /= np.sum(aliased)` in f32 (the count is exact).
    let count: f32 = aliased.iter().sum();
    for a in &mut aliased {
        *a /= count;
    }
    let g = gaussian_kernel_f32(ksize, alias_blur);
    let r = (ksize / 2) as isize;
    // Separable, in f32: rows, then columns (OpenCV's sepFilter2D), symmetric taps paired.
    let symmetric = |values: &dyn Fn(isize) -> f32| -> f32 {
        let mut acc = values(0) * g[r as usize];
        for j in 1..=r {
            acc += (values(-j) + values(j)) * g[(r - j) as usize];
        }
        acc
    };
    let mut rows = vec![0.0f32; side * side];
    for y in 0..side {
        for x in 0..side {
            rows[y * side + x] =
                symmetric(&|d| aliased[y * side + reflect_101(x as isize + d, side)]);
        }
    }
    let mut kernel = vec![0.0f64; side * side];
    for y in 0..side {
        for x in 0..side {
            let value = symmetric(&|d| rows[reflect_101(y as isize + d, side) * side + x]);
            kernel[y * side + x] = f64::from(value);
        }
    }
    (kernel, side)
}

/// `cv2.filter2D(plane, -1, kernel)` of an f64 `width x height` plane with a `side x side`
/// kernel: out(y, x) = sum over the non-zero taps of k(i, j) plane(y + i - c, x + j - c),
/// reflect-101 at the edges. A disk's kernel rows are mostly one value repeated (the blur only
/// touches the rim), so each such run is summed from a row's prefix sums: a subtraction and a
/// multiplication instead of one per tap. The sums' order differs from OpenCV's, which itself
/// sums a kernel this large by DFT: both are float rounding, far below a half level.
pub(crate) fn filter_2d(
    plane: &mut [f64],
    (width, height): (usize, usize),
    kernel: &[f64],
    side: usize,
) {
    let centre = (side / 2) as isize;
    let runs = runs(kernel, side);
    // Padded copy and its rows' prefix sums, so the inner loops read without folding; both
    // in buffers kept per thread (see `with_scratch`: end to end, defocus_blur ran 28% faster
    // without the page faults of fresh ones), and the output goes straight into `plane`,
    // which the copy has freed.
    thread_local! {
        static PADDED: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
        static PREFIX: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let pad = centre as usize;
    let (pw, ph) = (width + 2 * pad, height + 2 * pad);
    let mut padded = take_scratch(&PADDED, pw * ph);
    for y in 0..ph {
        let sy = reflect_101(y as isize - centre, height);
        for x in 0..pw {
            padded[y * pw + x] = plane[sy * width + reflect_101(x as isize - centre, width)];
        }
    }
    let mut prefix = take_scratch(&PREFIX, (pw + 1) * ph);
    for (row, sums) in padded.chunks_exact(pw).zip(prefix.chunks_exact_mut(pw + 1)) {
        let mut total = 0.0;
        sums[0] = 0.0;
        for (sum, &v) in sums[1..].iter_mut().zip(row) {
            total += v;
            *sum = total;
        }
    }
    pulp::Arch::new().dispatch(Correlate {
        padded: &padded,
        prefix: &prefix,
        padded_width: pw,
        runs: &runs,
        out: plane,
        shape: (width, height),
    });
    keep_scratch(&PADDED, padded);
    keep_scratch(&PREFIX, prefix);
}

/// A run of one kernel row: `len` taps of value `k` from column `column` of row `row` (both
/// counted from the kernel's top left); a single tap may be paired with its mirror image
/// across the kernel's centre column (`mirror`), which has the same value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    row: usize,
    column: usize,
    len: usize,
    k: f64,
    mirror: Option<usize>,
}

/// The kernel's non-zero taps as runs of equal values along its rows, single taps paired with
/// their mirror images (a disk's kernel is symmetric, bit for bit).
fn runs(kernel: &[f64], side: usize) -> Vec<Run> {
    let mut out = Vec::new();
    for run in row_runs(kernel, side) {
        let mirror = side - 1 - run.column;
        if run.len == 1 && mirror < run.column {
            let partner = out.iter_mut().find(|r: &&mut Run| {
                r.row == run.row && r.column == mirror && r.len == 1 && r.k == run.k
            });
            if let Some(partner) = partner.filter(|p| p.mirror.is_none()) {
                partner.mirror = Some(run.column);
                continue;
            }
        }
        out.push(run);
    }
    out
}

fn row_runs(kernel: &[f64], side: usize) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for (row, values) in kernel.chunks_exact(side).enumerate() {
        for (column, &k) in values.iter().enumerate() {
            match out.last_mut() {
                Some(run) if run.row == row && run.column + run.len == column && run.k == k => {
                    run.len += 1;
                }
                _ if k != 0.0 => out.push(Run {
                    row,
                    column,
                    len: 1,
                    k,
                    mirror: None,
                }),
                _ => {}
            }
        }
    }
    out
}

/// The runs' sums, compiled for the widest SIMD the CPU has, run by run along whole rows.
struct Correlate<'a> {
    padded: &'a [f64],
    prefix: &'a [f64],
    padded_width: usize,
    runs: &'a [Run],
    out: &'a mut [f64],
    shape: (usize, usize),
}

impl pulp::WithSimd for Correlate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (width, height) = self.shape;
        let pw = self.padded_width;
        // Row by row, each output row summing every run while it sits in the L1 cache.
        for y in 0..height {
            let out = &mut self.out[y * width..][..width];
            // The plane's own values were copied out; each sum starts from 0, as before.
            out.fill(0.0);
            for run in self.runs {
                let row = y + run.row;
                // The tap in a local: read through `run` in the loops, it can keep them scalar.
                let k = run.k;
                if let Some(mirror) = run.mirror {
                    let source = &self.padded[row * pw + run.column..][..width];
                    let other = &self.padded[row * pw + mirror..][..width];
                    for ((o, s), t) in out.iter_mut().zip(source).zip(other) {
                        *o += k * (s + t);
                    }
                } else if run.len == 1 {
                    let source = &self.padded[row * pw + run.column..][..width];
                    for (o, s) in out.iter_mut().zip(source) {
                        *o += k * s;
                    }
                } else {
                    let sums = &self.prefix[row * (pw + 1)..][..pw + 1];
                    let after = &sums[run.column + run.len..][..width];
                    let before = &sums[run.column..][..width];
                    for ((o, a), b) in out.iter_mut().zip(after).zip(before) {
                        *o += k * (a - b);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_sums_to_one_and_is_round() {
        // Where the disk touches the grid's edge (radius 8 and up), the mirrored border of the
        // anti-aliasing blur adds a little mass, as in the package.
        for (radius, blur, tolerance) in [(3.0, 0.1, 1e-6), (6.0, 0.5, 1e-6), (8.0, 0.5, 0.1)] {
            let (kernel, side) = disk(radius, blur);
            assert_eq!(side * side, kernel.len());
            let total = kernel.iter().sum::<f64>();
            assert!((total - 1.0).abs() < tolerance, "{radius}: {total}");
            let c = side / 2;
            assert_eq!(kernel[c * side], kernel[c]); // symmetric under transposition
            assert!(kernel[c * side + c] > 0.0);
        }
        assert_eq!(disk(10.0, 0.5).1, 21);
        assert_eq!(disk(3.0, 0.1).1, 17);
    }

    #[test]
    fn reflect_101_does_not_repeat_the_edge() {
        let folded: Vec<usize> = (-3..7).map(|i| reflect_101(i, 4)).collect();
        assert_eq!(folded, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn runs_sum_what_the_taps_sum() {
        let (w, h) = (23, 19);
        let plane: Vec<f64> = (0..w * h)
            .map(|v| f64::from((v * 37 % 101) as u32) / 101.0)
            .collect();
        let (kernel, side) = disk(6.0, 0.5);
        let mut fast = plane.clone();
        filter_2d(&mut fast, (w, h), &kernel, side);
        let c = (side / 2) as isize;
        for y in 0..h {
            for x in 0..w {
                let mut direct = 0.0;
                for (i, k) in kernel.iter().enumerate() {
                    let sy = reflect_101(y as isize + (i / side) as isize - c, h);
                    let sx = reflect_101(x as isize + (i % side) as isize - c, w);
                    direct += k * plane[sy * w + sx];
                }
                assert!((fast[y * w + x] - direct).abs() < 1e-12, "({x}, {y})");
            }
        }
        let taps = kernel.iter().filter(|k| **k != 0.0).count();
        assert!(runs(&kernel, side).len() < taps / 2, "{taps} taps");
    }

    #[test]
    fn filtering_with_a_delta_is_the_identity() {
        let plane: Vec<f64> = (0..30).map(|v| f64::from(v) / 7.0).collect();
        let mut kernel = vec![0.0; 9];
        kernel[4] = 1.0;
        let mut filtered = plane.clone();
        filter_2d(&mut filtered, (6, 5), &kernel, 3);
        assert_eq!(filtered, plane);
        // Again on the same thread: the kept buffers hold the last call's values, which must
        // not leak into this one's (the prefix sums' first column included).
        let other: Vec<f64> = (0..30).map(|v| f64::from(30 - v) / 3.0).collect();
        let mut filtered = other.clone();
        filter_2d(&mut filtered, (6, 5), &kernel, 3);
        assert_eq!(filtered, other);
    }
}
