//! `imagenet_c:shot_noise`: Poisson (photon) noise, `clip(Poisson(x c) / c)` per pixel and
//! channel.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::{
    Corruption, Draws, FIELD_CHUNK, Unit, apply_field, rounded_unit_byte_lanes,
};
use crate::registry::{ParamColumn, Params, severity_value};

/// The photon count c at severities 1 to 5.
const PHOTONS: [f64; 5] = [60.0, 25.0, 12.0, 5.0, 3.0];

pub(crate) struct ShotNoise;

/// c at `level`: as CCC does it, 1/c is interpolated (from 0 at severity 0, where c is
/// infinite and the noise vanishes); at whole severities c is the package's own number.
fn photons(level: f64) -> f64 {
    let mut inverse = [0.0; 6];
    for (slot, c) in inverse[1..].iter_mut().zip(PHOTONS) {
        *slot = 1.0 / c;
    }
    let s = 5.0 * level;
    if (s - s.round()).abs() < 1e-9 && s.round() >= 1.0 {
        return PHOTONS[s.round() as usize - 1];
    }
    1.0 / severity_value(level, &inverse)
}

impl Corruption for ShotNoise {
    fn name(&self) -> &'static str {
        "imagenet_c:shot_noise"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C shot_noise at severity 5L: Poisson(x c) / c per pixel and channel, c = 60, \
         25, 12, 5, 3 photons at severities 1-5 (1/c linear between, 0 at severity 0), clipped"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "photons",
            meaning: "photon count c at full intensity",
        }]
    }

    fn differences(&self) -> &'static str {
        "between severities 1/c is interpolated, as CCC does (c is infinite at severity 0)"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(photons(level))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let c = params.value(0);
        let n = image.size().pixel_count();
        // The rates x c of each chunk, in numpy's order, from the image as it was.
        let source = image.data().to_vec();
        let unit = Unit::of(image);
        if unit.holds_bytes() {
            // One of 256 rates per value: drawn as the byte path draws them.
            let rates = byte_rates(c);
            let mut bytes = [0u8; 3 * FIELD_CHUNK];
            let draw = |counts: &mut [f64], pixels: std::ops::Range<usize>| {
                let bytes = &mut bytes[..counts.len()];
                for (p, pixel) in pixels.enumerate() {
                    for channel in 0..3 {
                        bytes[3 * p + channel] = Unit::byte_of(source[channel * n + pixel]);
                    }
                }
                draws.poisson_of_bytes(&rates, bytes, counts);
            };
            apply_field(image, draw, |_, k| k / c);
            return;
        }
        let mut rates = [0.0; 3 * FIELD_CHUNK];
        let draw = |counts: &mut [f64], pixels: std::ops::Range<usize>| {
            let rates = &mut rates[..counts.len()];
            for (p, pixel) in pixels.enumerate() {
                for channel in 0..3 {
                    rates[3 * p + channel] = unit.unit(source[channel * n + pixel]) * c;
                }
            }
            draws.poisson(rates, counts);
        };
        apply_field(image, draw, |_, k| k / c);
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        draws: &mut dyn Draws,
    ) -> bool {
        let c = params.value(0);
        let rates = byte_rates(c);
        // From c photons on, a count gives 255 (k / c clipped to 1); past any count the table
        // can hold (or at level 0, where c is infinite), no saturation is used.
        let saturate_at = if c < 1e6 {
            c.ceil() as usize
        } else {
            usize::MAX / 2
        };
        draws.poisson_of_bytes_mapped(&rates, image.pixels_mut(), saturate_at, &|n| {
            rounded_unit_byte_lanes(n / c)
        });
        true
    }
}

/// The rate `k / 255 c` of each byte k, as the planar path computes it.
fn byte_rates(c: f64) -> [f64; 256] {
    std::array::from_fn(|k| Unit::of_byte(k) * c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photons_are_the_packages_at_whole_severities_and_grow_towards_zero() {
        for (k, c) in PHOTONS.iter().enumerate() {
            assert_eq!(photons((k + 1) as f64 / 5.0), *c);
        }
        assert!((photons(0.1) - 120.0).abs() < 1e-9);
        assert!(photons(1e-6) > 1e6);
    }
}
