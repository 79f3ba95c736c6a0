//! The package's own motion blur (`_motion_blur`, numpy, not ImageMagick's): a one-sided
//! half-Gaussian of `width` taps along the angle, each tap the image shifted by
//! `(round(i cos a), round(i sin a))` (rounded half down) with the edge repeated, accumulated
//! in f64 in tap order. A shift that reaches a side ends the sum without renormalising, as the
//! package does (small images get darker: its issues 5 and 13).

use super::{keep_scratch, numpy_sum, rounded_unit_byte_lanes, take_scratch};

/// The normalised taps `exp(-i^2 / 2 sigma^2) / (sqrt(2 pi) sigma)` for `i = 0..width`
/// (`getMotionBlurKernel`).
pub(crate) fn kernel(width: usize, sigma: f64) -> Vec<f64> {
    if 2.0 * (sigma * sigma) == 0.0 {
        // The limit as sigma goes to 0: all weight on the pixel itself.
        return (0..width).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
    }
    let norm = (2.0 * std::f64::consts::PI).sqrt() * sigma;
    let taps: Vec<f64> = (0..width)
        .map(|i| {
            let square = (i * i) as f64;
            (-square / (2.0 * (sigma * sigma))).exp() / norm
        })
        .collect();
    let total = numpy_sum(&taps);
    taps.iter().map(|t| t / total).collect()
}

/// Per tap, the shift `(dx, dy)` the package applies, up to the first that reaches a side.
pub(crate) fn shifts(
    width: usize,
    angle_degrees: f64,
    (image_width, image_height): (usize, usize),
) -> Vec<(isize, isize)> {
    let radians = angle_degrees.to_radians();
    let point = (width as f64 * radians.sin(), width as f64 * radians.cos());
    let hypot = point.0.hypot(point.1);
    let mut out = Vec::with_capacity(width);
    for i in 0..width {
        let dy = -((i as f64 * point.0 / hypot - 0.5).ceil()) as isize;
        let dx = -((i as f64 * point.1 / hypot - 0.5).ceil()) as isize;
        if dy.unsigned_abs() >= image_height || dx.unsigned_abs() >= image_width {
            break;
        }
        out.push((dx, dy));
    }
    out
}

/// `_motion_blur` of one `width x height` plane (any scale): `sum_i k_i img(clamp(y - dy),
/// clamp(x - dx))`, tap by tap in order.
pub(crate) fn motion_blur(
    plane: &[f64],
    shape: (usize, usize),
    taps: &[f64],
    shifts: &[(isize, isize)],
) -> Vec<f64> {
    let mut out = vec![0.0; shape.0 * shape.1];
    pulp::Arch::new().dispatch(Shifts {
        plane,
        shape,
        taps,
        shifts,
        out: &mut out,
    });
    out
}

/// The end values a padded row repeats on each side: the largest horizontal shift.
fn padding(shifts: &[(isize, isize)]) -> usize {
    shifts
        .iter()
        .map(|&(dx, _)| dx.unsigned_abs())
        .max()
        .unwrap_or(0)
}

/// The shifted sums, compiled for the widest SIMD the CPU has: a shifted row is a contiguous
/// slice of the source row between the two edges, which repeat their end value.
struct Shifts<'a> {
    plane: &'a [f64],
    shape: (usize, usize),
    taps: &'a [f64],
    shifts: &'a [(isize, isize)],
    out: &'a mut [f64],
}

impl pulp::WithSimd for Shifts<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        // Each output value sums its taps in their order, as before; a block of BLOCK outputs
        // keeps its sums in registers through all the taps and is stored once (a pass per
        // tap loaded and stored the row 31 times at severity 3). The rows are read from a copy
        // padded with their end values on both sides, so that no read needs a clamp.
        // 64 sums: eight vectors of independent additions, enough to cover an addition's
        // latency (with two, each block waited on 31 additions in a row).
        const BLOCK: usize = 64;
        let (width, height) = self.shape;
        if width == 0 {
            return;
        }
        let pad = padding(self.shifts);
        // Whole blocks: the last one runs past the row into more end values, and only the
        // row's own outputs are kept.
        let blocks_width = width.next_multiple_of(BLOCK);
        let padded_width = blocks_width + 2 * pad;
        // The padded copy lives in a buffer kept per thread (see `with_scratch`).
        thread_local! {
            static PADDED: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let mut padded = take_scratch(&PADDED, padded_width * height);
        for (padded, source) in padded
            .chunks_exact_mut(padded_width)
            .zip(self.plane.chunks_exact(width))
        {
            padded[..pad].fill(source[0]);
            padded[pad..pad + width].copy_from_slice(source);
            padded[pad + width..].fill(source[width - 1]);
        }
        let mut rows: Vec<(&[f64], f64)> = Vec::with_capacity(self.taps.len());
        let mut sums_row = vec![0.0; blocks_width];
        for y in 0..height {
            rows.clear();
            rows.extend(self.taps.iter().zip(self.shifts).map(|(&k, &(dx, dy))| {
                let source_row = (y as isize - dy).clamp(0, height as isize - 1) as usize;
                // Output x reads padded value x + pad - dx.
                let from = (pad as isize - dx) as usize;
                (
                    &padded[source_row * padded_width + from..][..blocks_width],
                    k,
                )
            }));
            for (index, block) in sums_row.chunks_exact_mut(BLOCK).enumerate() {
                let x = index * BLOCK;
                let mut sums = [0.0f64; BLOCK];
                for &(source, k) in &rows {
                    for (sum, &v) in sums.iter_mut().zip(&source[x..x + BLOCK]) {
                        *sum += k * v;
                    }
                }
                block.copy_from_slice(&sums);
            }
            self.out[y * width..][..width].copy_from_slice(&sums_row[..width]);
        }
        keep_scratch(&PADDED, padded);
    }
}

/// [`motion_blur`] of each channel of 8-bit pixels, written back as the bytes
/// [`rounded_unit_byte_lanes`] makes of its f64 sums (`v / 255`): the same bytes, at twice the
/// speed (see [`BlurToBytes`]).
pub(crate) fn motion_blur_rgb8(
    image: &mut drift_core::RgbImage8,
    taps: &[f64],
    shifts: &[(isize, isize)],
) {
    let size = image.size();
    pulp::Arch::new().dispatch(BlurToBytes {
        source: Source::Rgb8(image.pixels_mut()),
        shape: (size.width as usize, size.height as usize),
        taps,
        shifts,
    });
}

/// [`motion_blur`] of a plane of values in [0, 1], as the bytes `round_half_even(255 v)` of
/// its f64 sums `v` (snow's `np.round(L * 255)`): the same bytes, at twice the speed (see
/// [`BlurToBytes`]).
pub(crate) fn motion_blur_unit_to_bytes(
    plane: &[f64],
    shape: (usize, usize),
    taps: &[f64],
    shifts: &[(isize, isize)],
) -> Vec<u8> {
    let mut out = vec![0; shape.0 * shape.1];
    pulp::Arch::new().dispatch(BlurToBytes {
        source: Source::Unit(plane, &mut out),
        shape,
        taps,
        shifts,
    });
    out
}

/// What [`BlurToBytes`] blurs, and where its bytes go.
enum Source<'a> {
    /// Interleaved 8-bit pixels, blurred channel by channel in place.
    Rgb8(&'a mut [u8]),
    /// A plane of values in [0, 1], and its bytes.
    Unit(&'a [f64], &'a mut [u8]),
}

impl Source<'_> {
    /// The number of planes, the largest value, and the scale from a value to the byte units
    /// it is rounded in.
    fn units(&self) -> (usize, f32, f32) {
        match self {
            Source::Rgb8(_) => (3, 255.0, 1.0),
            Source::Unit(..) => (1, 1.0, 255.0),
        }
    }
}

/// An upper bound of how far an f32 sum of `taps` steps over values in [0, max] can be from
/// the f64 sum of the same taps in the same order. A step rounds its product and its sum (or,
/// fused, only the sum), each by at most half an f32 ulp of `max` (all partial sums are at most
/// `max`); the f32 taps and values are each within half an ulp (relative) of theirs, at most
/// half an ulp of `max` in the sum; the f64 sum's own error is some 2^29 times smaller, covered
/// by one more ulp.
fn f32_sum_bound(taps: usize, max: f32) -> f32 {
    (taps + 2) as f32 * ulp_of(max)
}

/// The f32 ulp of the values of `x`'s binade (`x` positive and normal).
fn ulp_of(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0x7f80_0000) * f32::EPSILON
}

/// The motion blur of 8-bit values or values in [0, 1] into bytes, compiled for the widest
/// SIMD the CPU has: as [`Shifts`], in f32 with (where the CPU has them) fused steps. A byte is
/// taken from an f32 sum only where the sum (in byte units) is farther than the bound of
/// [`f32_sum_bound`] from a rounding edge (a half), and recomputed in f64, tap by tap in the
/// package's order, where it is not (about one value in a thousand): the bytes the f64 sums
/// give, at twice the speed.
struct BlurToBytes<'a> {
    source: Source<'a>,
    shape: (usize, usize),
    taps: &'a [f64],
    shifts: &'a [(isize, isize)],
}

impl pulp::WithSimd for BlurToBytes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let (width, height) = self.shape;
        if width == 0 || height == 0 {
            return;
        }
        let (plane_count, max, scale) = self.source.units();
        let (mut pixels, unit) = match self.source {
            Source::Rgb8(pixels) => (Some(pixels), None),
            Source::Unit(plane, out) => (None, Some((plane, out))),
        };
        let pad = padding(self.shifts);
        // Whole blocks of two vectors (of at most 16 lanes).
        let blocks_width = width.next_multiple_of(32);
        let padded_width = blocks_width + 2 * pad;
        let plane_len = padded_width * height;
        thread_local! {
            static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
            static BYTES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let mut padded = take_scratch(&PADDED, plane_count * plane_len);
        // The values in the middle of each padded row (the channels read in one pass).
        match (&pixels, &unit) {
            (Some(pixels), _) => {
                let (red, rest) = padded.split_at_mut(plane_len);
                let (green, blue) = rest.split_at_mut(plane_len);
                for (((red, green), blue), source) in red
                    .chunks_exact_mut(padded_width)
                    .zip(green.chunks_exact_mut(padded_width))
                    .zip(blue.chunks_exact_mut(padded_width))
                    .zip(pixels.chunks_exact(3 * width))
                {
                    for (((r, g), b), pixel) in red[pad..pad + width]
                        .iter_mut()
                        .zip(&mut green[pad..pad + width])
                        .zip(&mut blue[pad..pad + width])
                        .zip(source.chunks_exact(3))
                    {
                        *r = f32::from(pixel[0]);
                        *g = f32::from(pixel[1]);
                        *b = f32::from(pixel[2]);
                    }
                }
            }
            (_, Some((plane, _))) => {
                for (padded, source) in padded
                    .chunks_exact_mut(padded_width)
                    .zip(plane.chunks_exact(width))
                {
                    for (to, &v) in padded[pad..pad + width].iter_mut().zip(source) {
                        *to = v as f32;
                    }
                }
            }
            (None, None) => unreachable!("a source"),
        }
        // The ends repeated.
        for row in padded.chunks_exact_mut(padded_width) {
            let (first, last) = (row[pad], row[pad + width - 1]);
            row[..pad].fill(first);
            row[pad + width..].fill(last);
        }
        let mut planes = Vec::new();
        let (plane, out): (Option<&[f64]>, &mut [u8]) = match unit {
            Some((plane, out)) => (Some(plane), out),
            None => {
                planes = take_scratch(&BYTES, 3 * width * height);
                (None, &mut planes)
            }
        };
        let taps32: Vec<f32> = self.taps.iter().map(|&k| k as f32).collect();
        let block = Block {
            taps: self.taps,
            plane,
            scale,
            bound: f32_sum_bound(self.taps.len(), max) * scale + ulp_of(max * scale),
            geometry: (padded_width, pad, width),
        };
        let mut rows: Vec<(usize, f32)> = Vec::with_capacity(self.taps.len());
        for (padded, plane) in padded
            .chunks_exact(plane_len)
            .zip(out.chunks_exact_mut(width * height))
        {
            for (y, out_row) in plane.chunks_exact_mut(width).enumerate() {
                // Where each tap's row starts: output x reads padded value x + pad - dx.
                rows.clear();
                rows.extend(taps32.iter().zip(self.shifts).map(|(&k, &(dx, dy))| {
                    let source_row = (y as isize - dy).clamp(0, height as isize - 1) as usize;
                    (source_row * padded_width + (pad as isize - dx) as usize, k)
                }));
                // Blocks of eight vectors of outputs, then of four, the last of two where that
                // covers the row.
                let lanes = S::F32_LANES;
                let mut x = 0;
                while x < width {
                    if width - x >= 8 * lanes {
                        block.blur::<S, 8>(simd, padded, &rows, x, out_row);
                        x += 8 * lanes;
                    } else if width - x <= 2 * lanes {
                        block.blur::<S, 2>(simd, padded, &rows, x, out_row);
                        x += 2 * lanes;
                    } else {
                        block.blur::<S, 4>(simd, padded, &rows, x, out_row);
                        x += 4 * lanes;
                    }
                }
            }
        }
        if let Some(pixels) = &mut pixels {
            let (red, rest) = out.split_at(width * height);
            let (green, blue) = rest.split_at(width * height);
            for (((pixel, &r), &g), &b) in pixels.chunks_exact_mut(3).zip(red).zip(green).zip(blue)
            {
                pixel.copy_from_slice(&[r, g, b]);
            }
        }
        keep_scratch(&PADDED, padded);
        if pixels.is_some() {
            keep_scratch(&BYTES, planes);
        }
    }
}

/// What a block of outputs needs besides its rows.
struct Block<'a> {
    taps: &'a [f64],
    /// The f64 values where they are in [0, 1] (and the rule is snow's); bytes otherwise.
    plane: Option<&'a [f64]>,
    /// From a sum to byte units.
    scale: f32,
    /// How close to a half (in byte units) an f32 sum may round the other way.
    bound: f32,
    /// The padded row's length, the padding on each side and the row's own length.
    geometry: (usize, usize, usize),
}

impl Block<'_> {
    /// The bytes of outputs `x..x + V lanes` of a row (those inside `out_row`), from the taps'
    /// rows starting at `rows`' offsets in `padded`: V vectors of sums through all the taps.
    #[inline(always)]
    fn blur<S: pulp::Simd, const V: usize>(
        &self,
        simd: S,
        padded: &[f32],
        rows: &[(usize, f32)],
        x: usize,
        out_row: &mut [u8],
    ) {
        const TWO_23: f32 = 8_388_608.0;
        let n = V * S::F32_LANES;
        let mut sums = [simd.splat_f32s(0.0); V];
        for &(start, k) in rows {
            let k = simd.splat_f32s(k);
            let (values, _) = S::as_simd_f32s(&padded[start + x..][..n]);
            for (sum, &v) in sums.iter_mut().zip(values) {
                *sum = simd.mul_add_e_f32s(k, v, *sum);
            }
        }
        let mut flat = [0.0f32; 8 * 16];
        let (vectors, _) = S::as_mut_simd_f32s(&mut flat[..n]);
        for (to, sum) in vectors.iter_mut().zip(sums) {
            *to = sum;
        }
        let sums = &flat[..n];
        // The nearest integer of each sum in byte units (0 <= t < 2^23), and how many lie
        // within `bound` of a half.
        let mut bytes = [0u8; 8 * 16];
        let mut near = 0u32;
        let edge = 0.5 - self.bound;
        for (byte, &sum) in bytes[..n].iter_mut().zip(sums) {
            let t = sum * self.scale;
            let big = t + TWO_23;
            *byte = big.to_bits() as u8;
            near += u32::from((t - (big - TWO_23)).abs() > edge);
        }
        let count = n.min(out_row.len() - x);
        if count == n {
            out_row[x..x + n].copy_from_slice(&bytes[..n]);
        } else {
            out_row[x..x + count].copy_from_slice(&bytes[..count]);
        }
        if near > 0 {
            for (i, byte) in out_row[x..x + count].iter_mut().enumerate() {
                let t = sums[i] * self.scale;
                if (t - ((t + TWO_23) - TWO_23)).abs() > edge {
                    *byte = match self.plane {
                        // The padded values are the bytes themselves.
                        None => {
                            let sum = exact_sum(self.taps, rows, x + i, |at| f64::from(padded[at]));
                            rounded_unit_byte_lanes(sum / 255.0)
                        }
                        Some(plane) => {
                            let (padded_width, pad, width) = self.geometry;
                            let sum = exact_sum(self.taps, rows, x + i, |at| {
                                let column = (at % padded_width).saturating_sub(pad).min(width - 1);
                                plane[at / padded_width * width + column]
                            });
                            (sum * 255.0).round_ties_even().clamp(0.0, 255.0) as u8
                        }
                    };
                }
            }
        }
    }
}

/// The f64 sum of output `x` of a row, tap by tap in order, as [`Shifts`] sums, with
/// `value(i)` the f64 value at padded index `i`.
#[inline(never)]
fn exact_sum(taps: &[f64], rows: &[(usize, f32)], x: usize, value: impl Fn(usize) -> f64) -> f64 {
    #[cfg(test)]
    EXACT_SUMS.with(|count| count.set(count.get() + 1));
    let mut sum = 0.0f64;
    for (&k, &(start, _)) in taps.iter().zip(rows) {
        sum += k * value(start + x);
    }
    sum
}

#[cfg(test)]
thread_local! {
    /// How many sums [`exact_sum`] recomputed on this thread.
    static EXACT_SUMS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_path_gives_the_bytes_of_the_f64_sums() {
        let mut words = crate::imagenet_c::test_words(12345);
        let before = EXACT_SUMS.with(std::cell::Cell::get);
        for (width, height) in [(1, 1), (5, 3), (70, 9), (131, 40), (224, 224)] {
            let pixels: Vec<u8> = (0..width * height * 3)
                .map(|_| (words() >> 56) as u8)
                .collect();
            for (taps, sigma, angle) in [(21, 3.0, -40.0), (31, 8.0, 12.5), (41, 15.0, 44.0)] {
                let k = kernel(taps, sigma);
                let s = shifts(taps, angle, (width, height));
                let mut image = drift_core::RgbImage8::from_pixels(
                    drift_core::ImageSize::new(width as u32, height as u32).unwrap(),
                    pixels.clone(),
                )
                .unwrap();
                motion_blur_rgb8(&mut image, &k, &s);
                for channel in 0..3 {
                    let plane: Vec<f64> = pixels
                        .iter()
                        .skip(channel)
                        .step_by(3)
                        .map(|&b| f64::from(b))
                        .collect();
                    let want = motion_blur(&plane, (width, height), &k[..s.len()], &s);
                    for (i, &v) in want.iter().enumerate() {
                        assert_eq!(
                            image.pixels()[3 * i + channel],
                            rounded_unit_byte_lanes(v / 255.0),
                            "{width}x{height}, {taps} taps at {angle}: value {i} of channel {channel}"
                        );
                    }
                }
            }
        }
        // Sums that close to a half took the f64 path.
        assert!(EXACT_SUMS.with(std::cell::Cell::get) > before);
    }

    #[test]
    fn the_unit_path_gives_the_rounded_bytes_of_the_f64_sums() {
        let mut units = crate::imagenet_c::test_units(777);
        let before = EXACT_SUMS.with(std::cell::Cell::get);
        for (width, height) in [(1, 1), (6, 2), (75, 11), (229, 230)] {
            // Snow's layer: zeros where the field is below the threshold, values up to 1.
            let plane: Vec<f64> = (0..width * height)
                .map(|_| (units() * 1.4 - 0.3).clamp(0.0, 1.0))
                .collect();
            for (taps, sigma, angle) in [(21, 4.0, -60.0), (25, 8.0, -100.0), (25, 12.0, -135.0)] {
                let k = kernel(taps, sigma);
                let s = shifts(taps, angle, (width, height));
                let got = motion_blur_unit_to_bytes(&plane, (width, height), &k, &s);
                let want = motion_blur(&plane, (width, height), &k[..s.len()], &s);
                for (i, (&got, &v)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        f64::from(got),
                        (v * 255.0).round_ties_even(),
                        "{width}x{height}, {taps} taps at {angle}: value {i}"
                    );
                }
            }
        }
        assert!(EXACT_SUMS.with(std::cell::Cell::get) > before);
    }

    /// The blur as it was first written, a tap at a time over each row (each read clamped at
    /// the row's ends): the reference for the blocked form.
    fn motion_blur_reference(
        plane: &[f64],
        (width, height): (usize, usize),
        taps: &[f64],
        shifts: &[(isize, isize)],
    ) -> Vec<f64> {
        let mut out = vec![0.0; width * height];
        for y in 0..height {
            for (&k, &(dx, dy)) in taps.iter().zip(shifts) {
                let source_row = (y as isize - dy).clamp(0, height as isize - 1) as usize;
                for x in 0..width {
                    let from = (x as isize - dx).clamp(0, width as isize - 1) as usize;
                    out[y * width + x] += k * plane[source_row * width + from];
                }
            }
        }
        out
    }

    #[test]
    fn the_blocked_blur_gives_the_tap_at_a_time_bits() {
        for (width, height) in [(1, 1), (5, 3), (70, 9), (131, 40)] {
            let plane: Vec<f64> = (0..width * height)
                .map(|i| ((i * 7919) % 1013) as f64 / 1013.0)
                .collect();
            for angle in [-170.0, -135.0, -90.0, -30.0, 0.0, 20.0, 45.0, 100.0] {
                let k = kernel(25, 6.0);
                let s = shifts(25, angle, (width, height));
                let got = motion_blur(&plane, (width, height), &k[..s.len()], &s);
                let want = motion_blur_reference(&plane, (width, height), &k[..s.len()], &s);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{width}x{height} at {angle}");
            }
        }
    }

    #[test]
    fn the_kernel_is_one_sided_and_normalised() {
        let k = kernel(21, 3.0);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(k.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn shifts_follow_the_angle_and_stop_at_a_side() {
        let flat = shifts(5, 0.0, (100, 100));
        assert_eq!(flat, [(0, 0), (-1, 0), (-2, 0), (-3, 0), (-4, 0)]);
        let steep = shifts(5, 90.0, (100, 100));
        assert_eq!(steep[4], (0, -4));
        assert_eq!(shifts(41, 0.0, (32, 32)).len(), 32);
    }

    #[test]
    fn a_flat_plane_darkens_only_where_taps_are_dropped() {
        let plane = vec![200.0; 40 * 40];
        let k = kernel(41, 15.0);
        let s = shifts(41, 0.0, (40, 40));
        let out = motion_blur(&plane, (40, 40), &k, &s);
        let dropped: f64 = k[s.len()..].iter().sum();
        assert!((out[0] - 200.0 * (1.0 - dropped)).abs() < 1e-9);
    }
}
