//! The package's own motion blur (`_motion_blur`, numpy, not ImageMagick's): a one-sided
//! half-Gaussian of `width` taps along the angle, each tap the image shifted by
//! `(round(i cos a), round(i sin a))` (rounded half down) with the edge repeated, accumulated
//! in f64 in tap order. A shift that reaches a side ends the sum without renormalising, as the
//! package does (small images get darker: its issues 5 and 13).

use super::numpy_sum;

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
        let (width, height) = self.shape;
        // Row by row, each output row summing every tap while it sits in the L1 cache.
        for y in 0..height {
            let row = &mut self.out[y * width..][..width];
            for (&k, &(dx, dy)) in self.taps.iter().zip(self.shifts) {
                // Output columns [start, end) read source column x - dx; those before read
                // column 0 and those after column width - 1 (|dx| < width: longer shifts end
                // the sum).
                let start = dx.max(0) as usize;
                let end = (width as isize + dx.min(0)) as usize;
                let source_row = (y as isize - dy).clamp(0, height as isize - 1) as usize;
                let source = &self.plane[source_row * width..][..width];
                for o in &mut row[..start] {
                    *o += k * source[0];
                }
                let inner = &source[(start as isize - dx) as usize..][..end - start];
                for (o, s) in row[start..end].iter_mut().zip(inner) {
                    *o += k * s;
                }
                for o in &mut row[end..] {
                    *o += k * source[width - 1];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
