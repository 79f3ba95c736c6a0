//! `imagenet_c:contrast`: each channel pulled towards its own mean, `(x - m) c + m` (per-channel
//! means; SPEC's `contrast` blends with the grey mean instead).

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws, Unit, numpy_sum, store_unit, stored, unit_values};
use crate::registry::{ParamColumn, Params, severity_value};

/// The factor c at severities 0 (identity) to 5.
const FACTOR: [f64; 6] = [1.0, 0.4, 0.3, 0.2, 0.1, 0.05];

pub(crate) struct Contrast;

impl Corruption for Contrast {
    fn name(&self) -> &'static str {
        "imagenet_c:contrast"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C contrast at severity 5L: (x - m) c + m with m each channel's mean, c = 1, .4, \
         .3, .2, .1, .05 at severities 0-5, clipped"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "factor",
            meaning: "contrast factor c",
        }]
    }

    fn differences(&self) -> &'static str {
        "none"
    }

    fn parity(&self) -> &'static str {
        "exact after rounding"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &FACTOR))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        let c = params.value(0);
        let n = image.size().pixel_count();
        if Unit::of(image).holds_bytes() {
            // Each value is a function of its byte once the channel's mean is known: the mean
            // from the channel's histogram (the package sums pairwise; the two differ by float
            // rounding, ~1e-16), the values from a table of 256.
            pulp::Arch::new().dispatch(ContrastOnBytes {
                planes: image.data_mut(),
                n,
                c,
            });
            return;
        }
        let mut values = unit_values(image);
        for plane in values.chunks_exact_mut(n) {
            let mean = numpy_sum(plane) / n as f64;
            for x in plane {
                *x = (*x - mean) * c + mean;
            }
        }
        store_unit(image, &values);
    }
}

/// Contrast of an image holding bytes, compiled for the widest SIMD the CPU has.
struct ContrastOnBytes<'a> {
    planes: &'a mut [f32],
    n: usize,
    c: f64,
}

impl pulp::WithSimd for ContrastOnBytes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (n, c) = (self.n, self.c);
        for plane in self.planes.chunks_exact_mut(n) {
            // Four histograms, so that equal neighbours do not wait on each other's count.
            let mut counts = [[0u32; 256]; 4];
            let mut quads = plane.chunks_exact(4);
            for quad in &mut quads {
                for (histogram, &x) in counts.iter_mut().zip(quad) {
                    histogram[Unit::byte_and_unit(x).0] += 1;
                }
            }
            for &x in quads.remainder() {
                counts[0][Unit::byte_and_unit(x).0] += 1;
            }
            let total: f64 = (0..256)
                .map(|k| {
                    let count: u32 = counts.iter().map(|histogram| histogram[k]).sum();
                    f64::from(count) * Unit::of_byte(k)
                })
                .sum();
            let mean = total / n as f64;
            let table: [f32; 256] =
                std::array::from_fn(|k| stored((Unit::of_byte(k) - mean) * c + mean));
            for x in plane.iter_mut() {
                *x = table[Unit::byte_and_unit(*x).0];
            }
        }
    }
}
