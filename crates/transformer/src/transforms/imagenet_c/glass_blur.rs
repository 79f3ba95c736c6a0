//! `imagenet_c:glass_blur`: a Gaussian blur, truncated to 8 bits; then, for a number of
//! iterations, each pixel (bottom to top, right to left) takes the value of a random neighbour
//! within `max_delta` (the package's "swap" is a copy on a numpy image, and later pixels see
//! earlier copies); then the blur again.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::gaussian::{Border, gaussian_filter};
use crate::imagenet_c::{Corruption, Draws, round_half_even, store_unit, unit_values};
use crate::registry::{ParamColumn, Params, severity_value};

/// The blur's sigma at severities 0 (identity) to 5.
const SIGMA: [f64; 6] = [0.0, 0.7, 0.9, 1.0, 1.1, 1.5];
/// The largest offset at severities 0 to 5 (interpolated, then at least 1, then rounded).
const MAX_DELTA: [f64; 6] = [0.0, 1.0, 2.0, 2.0, 3.0, 4.0];
/// The copy passes at severities 0 to 5 (interpolated, then rounded half to even as CCC does:
/// the lowest levels only blur).
const ITERATIONS: [f64; 6] = [0.0, 2.0, 1.0, 3.0, 2.0, 2.0];

pub(crate) struct GlassBlur;

impl Corruption for GlassBlur {
    fn name(&self) -> &'static str {
        "imagenet_c:glass_blur"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C glass_blur at severity 5L: blur (sigma 0, .7, .9, 1, 1.1, 1.5), 8 bits, then \
         iterations (0, 2, 1, 3, 2, 2; rounded) of copies from offsets in [-d, d) (d = 1, 1, 2, \
         2, 3, 4; rounded) at severities 0-5, blur again"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "sigma",
                meaning: "the blurs' sigma in pixels",
            },
            ParamColumn {
                name: "max_delta",
                meaning: "the largest offset d",
            },
            ParamColumn {
                name: "iterations",
                meaning: "copy passes",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "between severities the offset range and the passes are rounded half to even (CCC's rule; the lowest levels only blur)"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws, the 8-bit truncation inside included"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::new(&[
            Some(severity_value(level, &SIGMA)),
            Some(round_half_even(severity_value(level, &MAX_DELTA).max(1.0))),
            Some(round_half_even(severity_value(level, &ITERATIONS))),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let sigma = params.value(0);
        let d = params.value(1) as usize;
        let iterations = params.value(2) as usize;
        let size = image.size();
        let (w, h) = (size.width as usize, size.height as usize);
        let mut values = unit_values(image);
        for plane in values.chunks_exact_mut(w * h) {
            gaussian_filter(plane, (w, h), (sigma, sigma), 4.0, Border::Nearest, false);
            // `np.uint8(x * 255)`: truncation (the blur stays in [0, 1]).
            for v in plane.iter_mut() {
                *v = (*v * 255.0) as u8 as f64;
            }
        }
        if w > 2 * d && h > 2 * d {
            let n = w * h;
            let mut offsets = vec![0i64; 2 * (w - 2 * d)];
            for _ in 0..iterations {
                for y in (d + 1..=h - d).rev() {
                    draws.integers(-(d as i64), d as i64, &mut offsets);
                    let columns = (d + 1..=w - d).rev();
                    for (x, pair) in columns.zip(offsets.chunks_exact(2)) {
                        let (dx, dy) = (pair[0] as isize, pair[1] as isize);
                        let from = (y as isize + dy) as usize * w + (x as isize + dx) as usize;
                        let to = y * w + x;
                        for channel in 0..3 {
                            values[channel * n + to] = values[channel * n + from];
                        }
                    }
                }
            }
        }
        for plane in values.chunks_exact_mut(w * h) {
            for v in plane.iter_mut() {
                *v /= 255.0;
            }
            gaussian_filter(plane, (w, h), (sigma, sigma), 4.0, Border::Nearest, false);
        }
        store_unit(image, &values);
    }
}
