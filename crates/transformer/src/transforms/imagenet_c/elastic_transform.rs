//! `imagenet_c:elastic_transform` (the `imagecorruptions` version, not ImageNet-C's affine one):
//! each pixel sampled at a displacement, two uniform fields smoothed by a Gaussian of sigma 1%
//! of the image's sides and scaled by alpha; bilinear, mirrored at the edges.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::gaussian::{Border, gaussian_filter};
use crate::imagenet_c::{Corruption, Draws, keep_scratch, take_scratch};
use crate::registry::{ParamColumn, Params, severity_value};

/// The displacement's scale alpha at severities 0 (identity) to 5.
const ALPHA: [f64; 6] = [0.0, 12.5, 16.25, 21.25, 25.0, 30.0];

pub(crate) struct ElasticTransform;

impl Corruption for ElasticTransform {
    fn name(&self) -> &'static str {
        "imagenet_c:elastic_transform"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C elastic_transform (imagecorruptions' version) at severity 5L: displacements \
         U(-H/200, H/200) per pixel, smoothed (sigma 1% of each side), times alpha = 0, 12.5, \
         16.25, 21.25, 25, 30 at severities 0-5"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "alpha",
            meaning: "the displacements' scale",
        }]
    }

    fn differences(&self) -> &'static str {
        "none (this is the package's elastic transform, not ImageNet-C's affine one)"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &ALPHA))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let alpha = params.value(0);
        let size = image.size();
        let (w, h) = (size.width as usize, size.height as usize);
        let sigma = (h as f64 * 0.01, w as f64 * 0.01);
        // The package takes the height for both axes' largest displacement.
        let max_d = h as f64 * 0.005;
        // The fields in buffers kept per thread (see `take_scratch`).
        let field = |draws: &mut dyn Draws, slot| -> Vec<f64> {
            let mut values = take_scratch(slot, w * h);
            draws.uniform(-max_d, max_d, &mut values);
            gaussian_filter(&mut values, (w, h), sigma, 3.0, Border::Reflect, false);
            // `(gaussian(...) * alpha).astype(np.float32)`.
            for v in &mut values {
                *v = f64::from((*v * alpha) as f32);
            }
            values
        };
        let dx = field(draws, &DX);
        let dy = field(draws, &DY);
        // The package's image is `np.array(x, dtype=np.float32) / 255.`, which our planes hold;
        // copied pixel by pixel (a pixel's three values side by side: a bilinear sample reads
        // four pixels, not twelve scattered values, and the copy is half the size of f64
        // planes, which did not fit the L2 cache), in a buffer kept per thread.
        let mut source = take_scratch(&SOURCE, w * h);
        {
            let n = w * h;
            let data = image.data();
            let (red, rest) = data.split_at(n);
            let (green, blue) = rest.split_at(n);
            for (((s, &r), &g), &b) in source.iter_mut().zip(red).zip(green).zip(blue) {
                *s = [r, g, b];
            }
        }
        pulp::Arch::new().dispatch(Remap {
            source: &source,
            out: image.data_mut(),
            shape: (w, h),
            dx: &dx,
            dy: &dy,
        });
        keep_scratch(&SOURCE, source);
        keep_scratch(&DX, dx);
        keep_scratch(&DY, dy);
    }
}

/// `map_coordinates(plane, (y + dy, x + dx), order=1, mode='reflect')` of three planes, each
/// value `as f32` clipped to [0, 1], compiled for the widest SIMD the CPU has, a row at a time:
/// the coordinates' floors and fractions in one vector loop, the four neighbours' indices and
/// values (gathers) in a scalar one, the sums in scipy's order in another vector loop. The same
/// values as `resample::ReflectTap` per pixel (a test holds them to it).
struct Remap<'a> {
    source: &'a [[f32; 3]],
    out: &'a mut [f32],
    shape: (usize, usize),
    dx: &'a [f64],
    dy: &'a [f64],
}

impl pulp::WithSimd for Remap<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (w, h) = self.shape;
        let n = w * h;
        let (mut row_floor, mut row_t) = (vec![0.0; w], vec![0.0; w]);
        let (mut column_floor, mut column_t) = (vec![0.0; w], vec![0.0; w]);
        // Per channel, the four neighbours of each pixel of the row.
        let mut values = vec![[0.0f64; 4]; 3 * w];
        for y in 0..h {
            let (dy, dx) = (&self.dy[y * w..][..w], &self.dx[y * w..][..w]);
            for (x, ((((rf, rt), cf), ct), (&dy, &dx))) in row_floor
                .iter_mut()
                .zip(&mut row_t)
                .zip(&mut column_floor)
                .zip(&mut column_t)
                .zip(dy.iter().zip(dx))
                .enumerate()
            {
                let (row, column) = (y as f64 + dy, x as f64 + dx);
                // `+ 0.0` makes a floor of -0.0 the +0.0 that `floor_fast` gives.
                let (r0, c0) = (row.floor() + 0.0, column.floor() + 0.0);
                (*rf, *rt, *cf, *ct) = (r0, row - r0, c0, column - c0);
            }
            for ((&r0, &c0), pixel_values) in row_floor
                .iter()
                .zip(&column_floor)
                .zip(values.chunks_exact_mut(3))
            {
                let (y0, x0) = (r0 as isize, c0 as isize);
                let (ya, yb) = (
                    Border::Reflect.index(y0, h),
                    Border::Reflect.index(y0 + 1, h),
                );
                let (xa, xb) = (
                    Border::Reflect.index(x0, w),
                    Border::Reflect.index(x0 + 1, w),
                );
                let pixels =
                    [ya * w + xa, ya * w + xb, yb * w + xa, yb * w + xb].map(|i| self.source[i]);
                for (channel, out) in pixel_values.iter_mut().enumerate() {
                    *out = pixels.map(|pixel| f64::from(pixel[channel]));
                }
            }
            for channel in 0..3 {
                let out = &mut self.out[channel * n + y * w..][..w];
                for (((o, v), &ty), &tx) in out
                    .iter_mut()
                    .zip(values.iter().skip(channel).step_by(3))
                    .zip(&row_t)
                    .zip(&column_t)
                {
                    let (wy0, wy1, wx0, wx1) = (1.0 - ty, ty, 1.0 - tx, tx);
                    let [a, b, c, d] = *v;
                    let value =
                        (a * wy0 * wx0 + b * wy0 * wx1 + c * wy1 * wx0 + d * wy1 * wx1) as f32;
                    *o = value.clamp(0.0, 1.0);
                }
            }
        }
    }
}

thread_local! {
    /// The displacement fields.
    static DX: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    static DY: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The image's pixels, three values side by side.
    static SOURCE: std::cell::RefCell<Vec<[f32; 3]>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imagenet_c::resample::ReflectTap;
    use pulp::WithSimd;

    #[test]
    fn the_row_remap_gives_the_per_pixel_taps_values() {
        let mut seed = 99u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        // Displacements up to several sides, so that reads fold at both ends, and values
        // beyond [0, 1] where the clip matters.
        for (w, h, reach) in [(1, 1, 3.0), (7, 5, 20.0), (40, 31, 3.0), (64, 64, 1.5)] {
            let n = w * h;
            let planes: Vec<f32> = (0..3 * n).map(|_| (next() * 1.2 - 0.1) as f32).collect();
            let dx: Vec<f64> = (0..n).map(|_| (next() - 0.5) * 2.0 * reach).collect();
            let dy: Vec<f64> = (0..n).map(|_| (next() - 0.5) * 2.0 * reach).collect();
            let source: Vec<[f32; 3]> = (0..n)
                .map(|i| [planes[i], planes[n + i], planes[2 * n + i]])
                .collect();
            let wide: Vec<f64> = planes.iter().map(|&v| f64::from(v)).collect();
            let mut want = vec![0.0f32; 3 * n];
            for y in 0..h {
                for x in 0..w {
                    let i = y * w + x;
                    let tap = ReflectTap::new((w, h), y as f64 + dy[i], x as f64 + dx[i]);
                    for c in 0..3 {
                        want[c * n + i] = (tap.sample(&wide[c * n..][..n]) as f32).clamp(0.0, 1.0);
                    }
                }
            }
            for scalar in [false, true] {
                let mut got = vec![0.0f32; 3 * n];
                let remap = Remap {
                    source: &source,
                    out: &mut got,
                    shape: (w, h),
                    dx: &dx,
                    dy: &dy,
                };
                if scalar {
                    remap.with_simd(pulp::Scalar::new());
                } else {
                    pulp::Arch::new().dispatch(remap);
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{w}x{h}, scalar {scalar}");
            }
        }
    }
}
