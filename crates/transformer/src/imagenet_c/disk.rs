//! `defocus_blur`'s kernel and filter: the package's `disk` (an aliased disk of `radius` on a
//! square grid, normalised in f32, then `cv2.GaussianBlur` with a 3x3 or 5x5 kernel and
//! OpenCV's default `BORDER_REFLECT_101` applied to the kernel image itself) and
//! `cv2.filter2D` (a correlation over the non-zero taps, anchor at the centre,
//! `BORDER_REFLECT_101`) on an f64 plane.

/// OpenCV's `BORDER_REFLECT_101` (scipy's `mirror`): dcb|abcd|cba.
#[inline]
pub(crate) fn reflect_101(i: isize, len: usize) -> usize {
    let n = len as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m >= n { period - m } else { m }) as usize
}

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
/// reflect-101 at the edges.
pub(crate) fn filter_2d(
    plane: &[f64],
    (width, height): (usize, usize),
    kernel: &[f64],
    side: usize,
) -> Vec<f64> {
    let centre = (side / 2) as isize;
    let taps: Vec<(isize, isize, f64)> = kernel
        .iter()
        .enumerate()
        .filter(|(_, k)| **k != 0.0)
        .map(|(i, &k)| {
            (
                (i / side) as isize - centre,
                (i % side) as isize - centre,
                k,
            )
        })
        .collect();
    // Padded copy, so the inner loop reads without folding.
    let pad = centre as usize;
    let (pw, ph) = (width + 2 * pad, height + 2 * pad);
    let mut padded = vec![0.0; pw * ph];
    for y in 0..ph {
        let sy = reflect_101(y as isize - centre, height);
        for x in 0..pw {
            padded[y * pw + x] = plane[sy * width + reflect_101(x as isize - centre, width)];
        }
    }
    let mut out = vec![0.0; width * height];
    pulp::Arch::new().dispatch(Correlate {
        padded: &padded,
        padded_width: pw,
        taps: &taps,
        centre,
        out: &mut out,
        shape: (width, height),
    });
    out
}

/// The taps' sums, compiled for the widest SIMD the CPU has: tap by tap over whole rows, so
/// each output value sums its taps in the same order in every width.
struct Correlate<'a> {
    padded: &'a [f64],
    padded_width: usize,
    taps: &'a [(isize, isize, f64)],
    centre: isize,
    out: &'a mut [f64],
    shape: (usize, usize),
}

impl pulp::WithSimd for Correlate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (width, height) = self.shape;
        for &(dy, dx, k) in self.taps {
            for y in 0..height {
                let row = (y as isize + dy + self.centre) as usize * self.padded_width;
                let source = &self.padded[row + (dx + self.centre) as usize..][..width];
                for (o, s) in self.out[y * width..][..width].iter_mut().zip(source) {
                    *o += k * s;
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
    fn filtering_with_a_delta_is_the_identity() {
        let plane: Vec<f64> = (0..30).map(|v| f64::from(v) / 7.0).collect();
        let mut kernel = vec![0.0; 9];
        kernel[4] = 1.0;
        assert_eq!(filter_2d(&plane, (6, 5), &kernel, 3), plane);
    }
}
