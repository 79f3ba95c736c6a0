//! The package's own motion blur (`_motion_blur`, numpy, not ImageMagick's): a one-sided
//! half-Gaussian of `width` taps along the angle, each tap the image shifted by
//! `(round(i cos a), round(i sin a))` (rounded half down) with the edge repeated, accumulated
//! in f64 in tap order. A shift that reaches a side ends the sum without renormalising, as the
//! package does (small images get darker: its issues 5 and 13).

use super::{keep_scratch, numpy_sum, take_scratch};

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
        let pad = self
            .shifts
            .iter()
            .map(|&(dx, _)| dx.unsigned_abs())
            .max()
            .unwrap_or(0);
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

#[cfg(test)]
mod tests {
    use super::*;

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
