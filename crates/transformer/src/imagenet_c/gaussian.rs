//! `scipy.ndimage.gaussian_filter` (what `skimage.filters.gaussian` calls) on one plane, in
//! scipy's arithmetic: the kernel `exp(-x^2 / 2 sigma^2)` over `x = -r..r` with
//! `r = int(truncate sigma + 0.5)`, normalised by numpy's sum; rows (axis 0) first, then columns;
//! each output `x[i] w[0] + sum over j = r..1 of (x[i - j] + x[i + j]) w[j]` in f64, the
//! symmetric order of scipy's `NI_Correlate1D`. A naive sum differs by ~1e-13, which flips
//! the 8-bit truncation `glass_blur` makes after it.

use super::{keep_scratch, numpy_sum, take_scratch};

/// How a filter reads past the edge (scipy's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Border {
    /// `nearest`: the edge value repeats (aaa|abcd|ddd).
    Nearest,
    /// `reflect`: mirrored about the edge, the edge repeated (cba|abcd|dcb).
    Reflect,
}

impl Border {
    /// The in-range index that index `i` of a line of `len` reads.
    #[inline]
    pub(crate) fn index(self, i: isize, len: usize) -> usize {
        let n = len as isize;
        match self {
            Border::Nearest => i.clamp(0, n - 1) as usize,
            // Most reads are inside: no division for them.
            Border::Reflect if (0..n).contains(&i) => i as usize,
            Border::Reflect => {
                let period = 2 * n;
                let m = i.rem_euclid(period);
                (if m >= n { period - 1 - m } else { m }) as usize
            }
        }
    }
}

/// scipy's 1-D Gaussian weights for `sigma` and `truncate`: `w[0..=r]`, centre first (the
/// kernel is symmetric). `None` when scipy skips the axis (sigma <= 1e-15).
pub(crate) fn weights(sigma: f64, truncate: f64) -> Option<Vec<f64>> {
    if sigma <= 1e-15 {
        return None;
    }
    let radius = (truncate * sigma + 0.5) as i64;
    let scale = -0.5 / (sigma * sigma);
    let phi: Vec<f64> = (-radius..=radius)
        .map(|x| (scale * (x * x) as f64).exp())
        .collect();
    let total = numpy_sum(&phi);
    Some(phi[radius as usize..].iter().map(|&p| p / total).collect())
}

/// Filters a `width x height` plane in place with per-axis sigmas (`sigma_rows` along axis 0,
/// `sigma_columns` along axis 1), as `gaussian_filter(plane, (sigma_rows, sigma_columns),
/// mode, truncate=truncate)`. With `store_f32` each pass's output is rounded to f32 before the
/// next (scipy on a float32 array).
pub(crate) fn gaussian_filter(
    plane: &mut [f64],
    shape: (usize, usize),
    sigmas: (f64, f64),
    truncate: f64,
    border: Border,
    store_f32: bool,
) {
    // The pass along axis 0 reads whole rows around the one it writes: from a copy, in a
    // buffer kept per thread (see `take_scratch`).
    thread_local! {
        static SOURCE: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut source = take_scratch(&SOURCE, plane.len());
    source.copy_from_slice(plane);
    gaussian_filter_into(&source, plane, shape, sigmas, truncate, border, store_f32);
    keep_scratch(&SOURCE, source);
}

/// [`gaussian_filter`] of `source` into `out` (of the same length), for a caller whose values
/// are already apart from where the result goes: no copy of the plane.
pub(crate) fn gaussian_filter_into(
    source: &[f64],
    out: &mut [f64],
    (width, height): (usize, usize),
    (sigma_rows, sigma_columns): (f64, f64),
    truncate: f64,
    border: Border,
    store_f32: bool,
) {
    pulp::Arch::new().dispatch(GaussianPasses {
        source,
        plane: out,
        shape: (width, height),
        rows: weights(sigma_rows, truncate),
        columns: weights(sigma_columns, truncate),
        border,
        store_f32,
    });
}

/// The two passes, compiled for the widest SIMD the CPU has. Each output value is summed in
/// scipy's order whatever the width: the loops run over the taps outside and the values inside,
/// so every lane does the same IEEE operations as the scalar code (no fused multiply-add).
struct GaussianPasses<'a> {
    source: &'a [f64],
    /// The output; the pass along axis 1 works in place in it.
    plane: &'a mut [f64],
    shape: (usize, usize),
    rows: Option<Vec<f64>>,
    columns: Option<Vec<f64>>,
    border: Border,
    store_f32: bool,
}

impl pulp::WithSimd for GaussianPasses<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (width, height) = self.shape;
        let (plane, border) = (self.plane, self.border);
        let source = self.source;
        if let Some(w) = &self.rows {
            // Along axis 0: each output row from whole rows of the source.
            // Where row i starts in the source.
            let row = |i: isize| border.index(i, height) * width;
            let mut pairs = Vec::with_capacity(w.len());
            for y in 0..height {
                let out = &mut plane[y * width..][..width];
                let yi = y as isize;
                pairs.clear();
                pairs.extend(
                    (1..w.len())
                        .rev()
                        .map(|j| (row(yi - j as isize), row(yi + j as isize), w[j])),
                );
                symmetric_sums(out, source, row(yi), w[0], &pairs);
                round_row(out, self.store_f32);
            }
        } else {
            plane.copy_from_slice(source);
        }
        if let Some(w) = &self.columns {
            // Along axis 1: each row padded once, then shifted slices of it.
            let radius = w.len() - 1;
            let mut padded = vec![0.0; width + 2 * radius];
            // The shifted slices of the padded row: where they start, and their tap.
            let pairs: Vec<(usize, usize, f64)> = (1..=radius)
                .rev()
                .map(|j| (radius - j, radius + j, w[j]))
                .collect();
            for out in plane.chunks_exact_mut(width) {
                // The row as it is, then the folded reads either side.
                padded[radius..radius + width].copy_from_slice(out);
                for i in (0..radius).chain(radius + width..width + 2 * radius) {
                    padded[i] = out[border.index(i as isize - radius as isize, width)];
                }
                symmetric_sums(out, &padded, radius, w[0], &pairs);
                round_row(out, self.store_f32);
            }
        }
    }
}

/// `out[x] = data[centre + x] w0`, then `out[x] += (data[low + x] + data[high + x]) w` for each
/// pair `(low, high, w)` in order (scipy's order: the outermost taps first): blocks of outputs
/// kept in registers through all the taps and stored once (a pass per tap loaded and stored
/// the row once per tap), of 64 values, then of 32, 16 and 8 for the rest of the row (a pass per
/// tap over the last 32 of a 224-value row took half the time of the 192 before them).
#[inline(always)]
fn symmetric_sums(
    out: &mut [f64],
    data: &[f64],
    centre: usize,
    w0: f64,
    pairs: &[(usize, usize, f64)],
) {
    let mut x = 0;
    x = symmetric_blocks::<64>(out, data, x, centre, w0, pairs);
    x = symmetric_blocks::<32>(out, data, x, centre, w0, pairs);
    x = symmetric_blocks::<16>(out, data, x, centre, w0, pairs);
    x = symmetric_blocks::<8>(out, data, x, centre, w0, pairs);
    symmetric_blocks::<1>(out, data, x, centre, w0, pairs);
}

/// [`symmetric_sums`] of the whole blocks of `BLOCK` outputs from `start` on; returns where they
/// end.
#[inline(always)]
fn symmetric_blocks<const BLOCK: usize>(
    out: &mut [f64],
    data: &[f64],
    start: usize,
    centre: usize,
    w0: f64,
    pairs: &[(usize, usize, f64)],
) -> usize {
    let end = start + (out.len() - start) / BLOCK * BLOCK;
    for x in (start..end).step_by(BLOCK) {
        let mut sums = [0.0f64; BLOCK];
        for (sum, &v) in sums.iter_mut().zip(&data[centre + x..][..BLOCK]) {
            *sum = v * w0;
        }
        for &(low, high, tap) in pairs {
            for ((sum, &a), &b) in sums
                .iter_mut()
                .zip(&data[low + x..][..BLOCK])
                .zip(&data[high + x..][..BLOCK])
            {
                *sum += (a + b) * tap;
            }
        }
        out[x..x + BLOCK].copy_from_slice(&sums);
    }
    end
}

#[inline(always)]
fn round_row(row: &mut [f64], store_f32: bool) {
    if store_f32 {
        for v in row {
            *v = f64::from(*v as f32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_fold_as_scipy_names_them() {
        let reflect: Vec<usize> = (-4..8).map(|i| Border::Reflect.index(i, 4)).collect();
        assert_eq!(reflect, [3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0]);
        let nearest: Vec<usize> = (-2..6).map(|i| Border::Nearest.index(i, 4)).collect();
        assert_eq!(nearest, [0, 0, 0, 1, 2, 3, 3, 3]);
    }

    #[test]
    fn weights_follow_the_radius_rule_and_sum_to_one() {
        for (sigma, radius) in [(1.0, 4), (1.5, 6), (6.0, 24), (0.7, 3)] {
            let w = weights(sigma, 4.0).unwrap();
            assert_eq!(w.len(), radius + 1, "{sigma}");
            let total = w[0] + 2.0 * w[1..].iter().sum::<f64>();
            assert!((total - 1.0).abs() < 1e-12);
        }
        assert!(weights(0.0, 4.0).is_none());
    }

    #[test]
    fn a_constant_plane_stays_constant_and_mass_is_kept() {
        let (w, h) = (7, 5);
        let mut plane = vec![0.25; w * h];
        gaussian_filter(&mut plane, (w, h), (2.0, 1.0), 4.0, Border::Nearest, false);
        assert!(plane.iter().all(|v| (v - 0.25).abs() < 1e-15));
        let mut impulse = vec![0.0; 21 * 21];
        impulse[10 * 21 + 10] = 1.0;
        gaussian_filter(
            &mut impulse,
            (21, 21),
            (1.0, 1.0),
            4.0,
            Border::Reflect,
            false,
        );
        assert!((impulse.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(impulse[10 * 21 + 10] > impulse[10 * 21 + 11]);
    }
}
