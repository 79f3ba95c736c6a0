//! `scipy.ndimage.gaussian_filter` (what `skimage.filters.gaussian` calls) on one plane, in
//! scipy's arithmetic: the kernel `exp(-x^2 / 2 sigma^2)` over `x = -r..r` with
//! `r = int(truncate sigma + 0.5)`, normalised by numpy's sum; rows (axis 0) first, then columns;
//! each output `x[i] w[0] + sum over j = r..1 of (x[i - j] + x[i + j]) w[j]` in f64, the
//! symmetric order of scipy's `NI_Correlate1D`. A naive sum differs by ~1e-13, which flips
//! the 8-bit truncation `glass_blur` makes after it. On 8-bit images, `gaussian_filter_rgb8`
//! gives the same bytes from sums in f32, recomputing in that order only the values its error
//! bound leaves near a rounding edge.

use super::{
    keep_scratch, numpy_sum, rounded_level, rounded_unit_byte_lanes, set_places, take_scratch,
};

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

/// [`gaussian_filter`] of each channel of interleaved 8-bit RGB (`width x height` pixels), as
/// `filter_planes_rgb8` would filter the channels' values `k / 255`, and the bytes written as
/// it writes them (`rounded_unit_byte_lanes`): the same bytes, summed another way. Each value is
/// summed in levels (0-255) in f32, sixteen lanes, a row at a time through both passes (the
/// pass along axis 1 reads only its row of the first pass), then rounded to the nearest level;
/// only a value within `near_half` levels (a quarter over the two passes' error bounds
/// together, see [`f32_error_bound`]) of a rounding edge is computed again in f64 in scipy's
/// order.
pub(crate) fn gaussian_filter_rgb8(
    pixels: &mut [u8],
    (width, height): (usize, usize),
    (sigma_rows, sigma_columns): (f64, f64),
    truncate: f64,
    border: Border,
) {
    // An axis scipy skips is a single tap of 1: `x * 1` and nothing added, the same value.
    let rows = weights(sigma_rows, truncate).unwrap_or_else(|| vec![1.0]);
    let columns = weights(sigma_columns, truncate).unwrap_or_else(|| vec![1.0]);
    if rows.len() == 1 && columns.len() == 1 {
        return;
    }
    // A quarter over the bound: the bound is already one.
    let near_half = (1.25 * (f32_error_bound(&rows) + f32_error_bound(&columns))) as f32;
    pulp::Arch::new().dispatch(GaussianBytes {
        pixels,
        shape: (width, height),
        rows: &rows,
        columns: &columns,
        border,
        near_half,
    });
}

/// A bound, in levels, on how far one pass of [`GaussianBytes`] over values in [0, 255] (each
/// within `e` of its exact value) ends from the exact weighted sum (within `e` plus this): the
/// f32 weights (each within 2^-24 of itself relative, so 2^-24 x 255 in all), the pairs' sums
/// (2^-24 of up to 510, weighted by half the mass at most), and each fused multiply-add's
/// rounding, 2^-24 of its partial sum, which summed from the outermost taps in grows with the
/// mass taken in so far.
fn f32_error_bound(w: &[f64]) -> f64 {
    const UNIT_ROUNDOFF: f64 = 1.0 / 16_777_216.0;
    let mut mass = 0.0;
    let mut partials = 0.0;
    for &tap in w[1..].iter().rev() {
        mass += 2.0 * tap;
        partials += mass;
    }
    // The centre's step ends at the whole sum.
    partials += 1.0;
    UNIT_ROUNDOFF * 255.0 * (2.0 + partials) * 1.01
}

/// The passes of [`gaussian_filter_rgb8`], compiled for the widest SIMD the CPU has.
struct GaussianBytes<'a> {
    pixels: &'a mut [u8],
    shape: (usize, usize),
    rows: &'a [f64],
    columns: &'a [f64],
    border: Border,
    near_half: f32,
}

impl pulp::WithSimd for GaussianBytes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (width, height) = self.shape;
        let (border, near_half) = (self.border, self.near_half);
        let line = 3 * width;
        thread_local! {
            static LEVELS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
            static SOURCE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // The image as it was, which the f64 sums recompute from (rows are written as they
        // are done), and in levels, which the first pass reads.
        let mut source = take_scratch(&SOURCE, self.pixels.len());
        source.copy_from_slice(self.pixels);
        let mut levels = take_scratch(&LEVELS, self.pixels.len());
        for (level, &byte) in levels.iter_mut().zip(&source) {
            *level = f32::from(byte);
        }
        let row_taps: Vec<f32> = self.rows.iter().map(|&w| w as f32).collect();
        let column_taps: Vec<f32> = self.columns.iter().map(|&w| w as f32).collect();
        let (row_radius, column_radius) = (row_taps.len() - 1, column_taps.len() - 1);
        // Two rows of the first pass, each with `column_radius` pixels either side read past
        // its ends.
        let pad = 3 * column_radius;
        let mut padded = [vec![0.0f32; line + 2 * pad], vec![0.0f32; line + 2 * pad]];
        let mut second = SecondPass {
            sums: vec![0.0f32; line],
            near: vec![0u8; line],
            pairs: (1..=column_radius)
                .rev()
                .map(|j| (pad - 3 * j, pad + 3 * j, column_taps[j]))
                .collect(),
            centre: column_taps[0],
            width,
            border,
            near_half,
        };
        let row = |i: isize| border.index(i, height) * line;
        // Where rows y - j and y + 1 + j start, j = 0..=radius.
        let (mut above, mut below) = (Vec::new(), Vec::new());
        let mut y = 0;
        for rows_out in self.pixels.chunks_mut(2 * line) {
            let yi = y as isize;
            let [first, next] = &mut padded;
            let (first, next) = (&mut first[pad..pad + line], &mut next[pad..pad + line]);
            above.clear();
            above.extend((0..=row_radius).map(|j| row(yi - j as isize)));
            below.clear();
            below.extend((0..=row_radius).map(|j| row(yi + 1 + j as isize)));
            if rows_out.len() == 2 * line {
                two_row_sums_f32([first, next], &levels, (&above, &below), &row_taps);
            } else {
                // The last row of an odd height: its pairs are row(y - j) and row(y + j).
                let pairs: Vec<(usize, usize, f32)> = (1..=row_radius)
                    .rev()
                    .map(|j| (above[j], below[j - 1], row_taps[j]))
                    .collect();
                symmetric_sums_f32(first, &levels, above[0], row_taps[0], &pairs);
            }
            for (k, out) in rows_out.chunks_exact_mut(line).enumerate() {
                let flagged = second.row(&mut padded[k], out);
                for at in flagged {
                    let value = exact_value(
                        &source,
                        self.shape,
                        (y + k, at / 3, at % 3),
                        (self.rows, self.columns),
                        border,
                    );
                    out[at] = rounded_unit_byte_lanes(value);
                }
            }
            y += 2;
        }
        keep_scratch(&LEVELS, levels);
        keep_scratch(&SOURCE, source);
    }
}

/// The pass along axis 1 of [`GaussianBytes`] and the rounding, a row at a time.
struct SecondPass {
    sums: Vec<f32>,
    /// Which values of the row are near a rounding edge (1) or not (0).
    near: Vec<u8>,
    /// The pairs' offsets in a padded row and their taps, outermost first.
    pairs: Vec<(usize, usize, f32)>,
    centre: f32,
    width: usize,
    border: Border,
    near_half: f32,
}

impl SecondPass {
    /// Pads `padded` (a row of the first pass between `3 radius` values either side), sums it,
    /// rounds each value into `out`, and returns the places of those to compute again.
    #[inline(always)]
    fn row(&mut self, padded: &mut [f32], out: &mut [u8]) -> Vec<usize> {
        let (width, border, near_half) = (self.width, self.border, self.near_half);
        let radius = self.pairs.len();
        let pad = 3 * radius;
        for p in 0..radius {
            for (side, at) in [
                (p, p as isize - radius as isize),
                (radius + width + p, (width + p) as isize),
            ] {
                let from = pad + 3 * border.index(at, width);
                padded.copy_within(from..from + 3, 3 * side);
            }
        }
        symmetric_sums_f32(&mut self.sums, padded, pad, self.centre, &self.pairs);
        let mut count = 0u32;
        for ((byte, n), &sum) in out.iter_mut().zip(self.near.iter_mut()).zip(&self.sums) {
            let (rounded, is_near) = rounded_level(sum, 0.5 - near_half);
            *byte = rounded;
            *n = u8::from(is_near);
            count += u32::from(*n);
        }
        if count == 0 {
            return Vec::new();
        }
        set_places(&self.near).collect()
    }
}

/// The first pass of two neighbouring rows y and y + 1 at once, from the rows `above[j]` =
/// y - j and `below[j]` = y + 1 + j (where they start in `data`): row y's pair j is
/// `(above[j], below[j - 1])` and row y + 1's is `(above[j - 1], below[j])`, so each row read
/// serves both (half the loads of a row at a time, which the loads bound). Each value is summed
/// as [`symmetric_sums_f32`] sums it.
#[inline(always)]
fn two_row_sums_f32(
    [first, next]: [&mut [f32]; 2],
    data: &[f32],
    (above, below): (&[usize], &[usize]),
    taps: &[f32],
) {
    let mut x = 0;
    x = two_row_blocks::<64>([first, next], data, x, (above, below), taps);
    x = two_row_blocks::<16>([first, next], data, x, (above, below), taps);
    two_row_blocks::<1>([first, next], data, x, (above, below), taps);
}

/// [`two_row_sums_f32`] of the whole blocks of `BLOCK` values from `start` on; returns where
/// they end. The rows y - j + 1 and y + j read for pair j are kept (in registers) for pair
/// j - 1, where they are the outer rows.
#[inline(always)]
fn two_row_blocks<const BLOCK: usize>(
    [first, next]: [&mut [f32]; 2],
    data: &[f32],
    start: usize,
    (above, below): (&[usize], &[usize]),
    taps: &[f32],
) -> usize {
    let radius = taps.len() - 1;
    let end = start + (first.len() - start) / BLOCK * BLOCK;
    let block = |row: usize, x: usize| -> [f32; BLOCK] {
        data[row + x..][..BLOCK].try_into().expect("a block")
    };
    for x in (start..end).step_by(BLOCK) {
        let (mut a, mut b) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
        let (mut top, mut bottom) = (block(above[radius], x), block(below[radius], x));
        for j in (1..=radius).rev() {
            let tap = taps[j];
            let (inner_top, inner_bottom) = (block(above[j - 1], x), block(below[j - 1], x));
            for i in 0..BLOCK {
                a[i] = (top[i] + inner_bottom[i]).mul_add(tap, a[i]);
                b[i] = (inner_top[i] + bottom[i]).mul_add(tap, b[i]);
            }
            (top, bottom) = (inner_top, inner_bottom);
        }
        // Now rows y and y + 1, the centres.
        for i in 0..BLOCK {
            a[i] = top[i].mul_add(taps[0], a[i]);
            b[i] = bottom[i].mul_add(taps[0], b[i]);
        }
        first[x..x + BLOCK].copy_from_slice(&a);
        next[x..x + BLOCK].copy_from_slice(&b);
    }
    end
}

/// [`symmetric_sums`] in f32 with fused multiply-adds, the pairs (outermost first) before the
/// centre, in blocks of outputs kept in registers through all the taps.
#[inline(always)]
fn symmetric_sums_f32(
    out: &mut [f32],
    data: &[f32],
    centre: usize,
    w0: f32,
    pairs: &[(usize, usize, f32)],
) {
    let mut x = 0;
    x = symmetric_blocks_f32::<64>(out, data, x, centre, w0, pairs);
    x = symmetric_blocks_f32::<32>(out, data, x, centre, w0, pairs);
    x = symmetric_blocks_f32::<16>(out, data, x, centre, w0, pairs);
    symmetric_blocks_f32::<1>(out, data, x, centre, w0, pairs);
}

/// [`symmetric_sums_f32`] of the whole blocks of `BLOCK` outputs from `start` on; returns where
/// they end.
#[inline(always)]
fn symmetric_blocks_f32<const BLOCK: usize>(
    out: &mut [f32],
    data: &[f32],
    start: usize,
    centre: usize,
    w0: f32,
    pairs: &[(usize, usize, f32)],
) -> usize {
    let end = start + (out.len() - start) / BLOCK * BLOCK;
    for x in (start..end).step_by(BLOCK) {
        let mut sums = [0.0f32; BLOCK];
        for &(low, high, tap) in pairs {
            for ((sum, &a), &b) in sums
                .iter_mut()
                .zip(&data[low + x..][..BLOCK])
                .zip(&data[high + x..][..BLOCK])
            {
                *sum = (a + b).mul_add(tap, *sum);
            }
        }
        for (sum, &v) in sums.iter_mut().zip(&data[centre + x..][..BLOCK]) {
            *sum = v.mul_add(w0, *sum);
        }
        out[x..x + BLOCK].copy_from_slice(&sums);
    }
    end
}

/// `k / 255` for each level k, as `filter_planes_rgb8` divides.
static UNITS: [f64; 256] = {
    let mut units = [0.0; 256];
    let mut k = 0;
    while k < 256 {
        units[k] = k as f64 / 255.0;
        k += 1;
    }
    units
};

/// The value `gaussian_filter` gives channel `c` of pixel `(y, x)` of an 8-bit image (its
/// interleaved `pixels`, each byte k read as `k / 255`), with per-axis weights, in
/// scipy's order: the first pass's values of the pixels the second reads (summed side by side,
/// each in its own order), then their sum.
fn exact_value(
    pixels: &[u8],
    (width, height): (usize, usize),
    (y, x, c): (usize, usize, usize),
    (rows, columns): (&[f64], &[f64]),
    border: Border,
) -> f64 {
    let radius = columns.len() - 1;
    let read: Vec<usize> = (0..=2 * radius)
        .map(|i| 3 * border.index(x as isize + i as isize - radius as isize, width) + c)
        .collect();
    let unit = |row: usize, at: usize| UNITS[usize::from(pixels[row * 3 * width + at])];
    let mut first: Vec<f64> = read.iter().map(|&at| unit(y, at) * rows[0]).collect();
    for j in (1..rows.len()).rev() {
        let (above, below) = (
            border.index(y as isize - j as isize, height),
            border.index(y as isize + j as isize, height),
        );
        for (sum, &at) in first.iter_mut().zip(&read) {
            *sum += (unit(above, at) + unit(below, at)) * rows[j];
        }
    }
    let mut sum = first[radius] * columns[0];
    for j in (1..=radius).rev() {
        sum += (first[radius - j] + first[radius + j]) * columns[j];
    }
    sum
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
    fn the_f32_bytes_are_the_f64_filters() {
        // The byte path with its bound, and with every value recomputed (a bound of a whole
        // level), against the f64 filter of each channel and the byte path's rounding; in the
        // widest lanes and in scalar code; sides shorter than the radius, both borders, and
        // one axis skipped.
        let mut words = crate::imagenet_c::test_words(11);
        let mut next = || (words() >> 33) as u32;
        let cases = [
            ((1, 1), (1.0, 1.0), Border::Nearest),
            ((5, 3), (2.0, 0.7), Border::Reflect),
            ((37, 29), (3.0, 3.0), Border::Nearest),
            ((64, 48), (0.0, 2.5), Border::Nearest),
            ((224, 224), (3.0, 3.0), Border::Nearest),
            ((100, 70), (6.0, 6.0), Border::Reflect),
        ];
        for ((w, h), sigmas, border) in cases {
            // Flat stretches (sums on whole levels) and noise.
            let pixels: Vec<u8> = (0..3 * w * h)
                .map(|i| if i % 89 < 30 { 77 } else { next() as u8 })
                .collect();
            let mut want = pixels.clone();
            for c in 0..3 {
                let mut plane: Vec<f64> = pixels
                    .iter()
                    .skip(c)
                    .step_by(3)
                    .map(|&k| f64::from(k) / 255.0)
                    .collect();
                gaussian_filter(&mut plane, (w, h), sigmas, 4.0, border, false);
                for (byte, &v) in want.iter_mut().skip(c).step_by(3).zip(&plane) {
                    *byte = rounded_unit_byte_lanes(v);
                }
            }
            let mut got = pixels.clone();
            gaussian_filter_rgb8(&mut got, (w, h), sigmas, 4.0, border);
            assert!(got == want, "{w}x{h} {sigmas:?}");
            let rows = weights(sigmas.0, 4.0).unwrap_or_else(|| vec![1.0]);
            let columns = weights(sigmas.1, 4.0).unwrap_or_else(|| vec![1.0]);
            for scalar in [false, true] {
                let mut got = pixels.clone();
                let bytes = GaussianBytes {
                    pixels: &mut got,
                    shape: (w, h),
                    rows: &rows,
                    columns: &columns,
                    border,
                    near_half: 1.0,
                };
                if scalar {
                    pulp::WithSimd::with_simd(bytes, pulp::Scalar::new());
                } else {
                    pulp::Arch::new().dispatch(bytes);
                }
                assert!(
                    got == want,
                    "{w}x{h} {sigmas:?}, all recomputed, scalar {scalar}"
                );
            }
        }
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
