//! `imagenet_c:fog`: a plasma fractal (diamond-square) of strength k added to every channel,
//! the image then scaled by `max / (max + k)`, `max` its brightest value over all channels.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::plasma::{keep_plasma, next_power_of_two, plasma_fractal};
use crate::imagenet_c::{Corruption, Draws, Scale, Unit, rounded_unit_byte_lanes, store_values};
use crate::registry::{ParamColumn, Params, severity_value};

/// The fog's strength k at severities 0 (identity, CCC's row) to 5.
const STRENGTH: [f64; 6] = [0.0, 1.5, 2.0, 2.5, 2.5, 3.0];
/// The plasma's roughness decay at severities 0 to 5 (lower is rougher).
const DECAY: [f64; 6] = [2.0, 2.0, 2.0, 1.7, 1.5, 1.4];

pub(crate) struct Fog;

impl Corruption for Fog {
    fn name(&self) -> &'static str {
        "imagenet_c:fog"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C fog at severity 5L: + k x a plasma fractal of roughness decay d, then x max / \
         (max + k); (k, d) = (0, 2), (1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4) at \
         severities 0-5"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "strength",
                meaning: "the fog's strength k",
            },
            ParamColumn {
                name: "decay",
                meaning: "the plasma's roughness decay d, lower is rougher",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "none (the map is the next power of two of the longest side, cut from its top left, as \
         in the package: its feature scale jumps at powers of two)"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::new(&[
            Some(severity_value(level, &STRENGTH)),
            Some(severity_value(level, &DECAY)),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let (strength, decay) = (params.value(0), params.value(1));
        let size = image.size();
        let (w, h) = (size.width as usize, size.height as usize);
        // `np.max(shape)` of an H x W x 3 array: a side below 3 gives a map of 4.
        let side = next_power_of_two(w.max(h).max(3));
        let plasma = plasma_fractal(side, decay, draws);
        let unit = Unit::of(image);
        // `x.max()`: `unit` rises with the stored value, so the largest value gives it.
        let brightest = image
            .data()
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let max = unit.unit(brightest);
        let [r, g, b] = image.planes_mut();
        pulp::Arch::new().dispatch(AddFog {
            planes: [r, g, b],
            plasma: &plasma,
            side,
            width: w,
            unit,
            strength,
            max,
        });
        keep_plasma(plasma);
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        draws: &mut dyn Draws,
    ) -> bool {
        let (strength, decay) = (params.value(0), params.value(1));
        let size = image.size();
        let w = size.width as usize;
        let side = next_power_of_two(w.max(size.height as usize).max(3));
        let plasma = plasma_fractal(side, decay, draws);
        let brightest = image.pixels().iter().copied().max().unwrap_or(0);
        pulp::Arch::new().dispatch(AddFogToBytes {
            pixels: image.pixels_mut(),
            plasma: &plasma,
            side,
            width: w,
            strength,
            max: Unit::of_byte(usize::from(brightest)),
        });
        keep_plasma(plasma);
        true
    }
}

/// [`AddFog`] on interleaved bytes: the same value of each, rounded as the stored value would
/// be by `to_rgb8`.
struct AddFogToBytes<'a> {
    pixels: &'a mut [u8],
    plasma: &'a [f64],
    side: usize,
    width: usize,
    strength: f64,
    max: f64,
}

impl pulp::WithSimd for AddFogToBytes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (strength, max) = (self.strength, self.max);
        let scale = max + strength;
        for (y, row) in self.pixels.chunks_exact_mut(3 * self.width).enumerate() {
            let fog = &self.plasma[y * self.side..][..self.width];
            for (pixel, &f) in row.chunks_exact_mut(3).zip(fog) {
                for byte in pixel {
                    // `k / 255` computed, as `Unit::unit_lanes` computes it: the same value.
                    let x = f64::from(*byte) / 255.0;
                    *byte = rounded_unit_byte_lanes((x + strength * f) * max / scale);
                }
            }
        }
    }
}

/// `clip((x + k plasma) max / (max + k), 0, 1)` of every value, compiled for the widest SIMD the
/// CPU has (the division stays a division: the package divides).
struct AddFog<'a> {
    planes: [&'a mut [f32]; 3],
    plasma: &'a [f64],
    side: usize,
    width: usize,
    unit: Unit,
    strength: f64,
    max: f64,
}

impl pulp::WithSimd for AddFog<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (w, unit, strength, max) = (self.width, self.unit, self.strength, self.max);
        let scale = max + strength;
        let mut row = vec![0.0; w];
        for plane in self.planes {
            for (y, values) in plane.chunks_exact_mut(w).enumerate() {
                let fog = &self.plasma[y * self.side..][..w];
                for ((out, &x), &f) in row.iter_mut().zip(values.iter()).zip(fog) {
                    *out = (unit.unit_lanes(x) + strength * f) * max / scale;
                }
                store_values(values, &row, Scale::Unit);
            }
        }
    }
}
