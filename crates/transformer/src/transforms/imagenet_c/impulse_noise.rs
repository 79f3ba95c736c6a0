//! `imagenet_c:impulse_noise`: salt and pepper per pixel and channel (scikit-image's
//! `random_noise(mode='s&p')`): a share p of the values flip, half of them to 1, half to 0.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws, FIELD_CHUNK, in_lanes, planar_index};
use crate::registry::{ParamColumn, Params, severity_value};

/// The share p of flipped values at severities 0 (identity) to 5.
const AMOUNT: [f64; 6] = [0.0, 0.03, 0.06, 0.09, 0.17, 0.27];

pub(crate) struct ImpulseNoise;

impl Corruption for ImpulseNoise {
    fn name(&self) -> &'static str {
        "imagenet_c:impulse_noise"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C impulse_noise at severity 5L: each value flips with probability p = 0, .03, \
         .06, .09, .17, .27 at severities 0-5, to 1 or 0 with equal odds"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "amount",
            meaning: "probability p that a value flips",
        }]
    }

    fn differences(&self) -> &'static str {
        "the package draws from scikit-image's unseeded `default_rng()`, so it cannot be reproduced; ours is seeded"
    }

    fn parity(&self) -> &'static str {
        "exact given the generator's draws"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &AMOUNT))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let amount = params.value(0);
        let n = image.size().pixel_count();
        // scikit-image draws the whole flip field, then the whole salt field: the first is
        // kept as one flag per value, drawn a chunk at a time.
        let mut chunk = [0.0; 3 * FIELD_CHUNK];
        let mut flipped = Vec::with_capacity(3 * n);
        for start in (0..3 * n).step_by(chunk.len()) {
            let part = &mut chunk[..(3 * n - start).min(3 * FIELD_CHUNK)];
            draws.unit(part);
            flipped.extend(part.iter().map(|&u| u <= amount));
        }
        let data = image.data_mut();
        for start in (0..3 * n).step_by(chunk.len()) {
            let part = &mut chunk[..(3 * n - start).min(3 * FIELD_CHUNK)];
            draws.unit(part);
            for (offset, &salt) in part.iter().enumerate() {
                let i = start + offset;
                if flipped[i] {
                    data[planar_index(i, n)] = if salt <= 0.5 { 1.0 } else { 0.0 };
                }
            }
        }
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        draws: &mut dyn Draws,
    ) -> bool {
        let amount = params.value(0);
        // The same two fields in the same order; the bytes are in numpy's order already, and
        // a flipped value is 1 or 0, which the chain stores as 255 or 0.
        let bytes = image.pixels_mut();
        let mut chunk = [0.0; 3 * FIELD_CHUNK];
        // One bit per value (19 KB for 224 px, which the allocator keeps, where a flag per
        // value is a fresh mapping to fault in for every image).
        let mut flipped = vec![0u64; bytes.len().div_ceil(64)];
        for (index, words) in flipped.chunks_mut(chunk.len() / 64).enumerate() {
            let start = index * chunk.len();
            let part = &mut chunk[..(bytes.len() - start).min(3 * FIELD_CHUNK)];
            draws.unit(part);
            in_lanes(
                #[inline(always)]
                || {
                    for (word, units) in words.iter_mut().zip(part.chunks(64)) {
                        *word = units
                            .iter()
                            .enumerate()
                            .fold(0, |w, (bit, &u)| w | u64::from(u <= amount) << bit);
                    }
                },
            );
        }
        for (bytes, words) in bytes
            .chunks_mut(chunk.len())
            .zip(flipped.chunks(chunk.len() / 64))
        {
            let part = &mut chunk[..bytes.len()];
            draws.unit(part);
            in_lanes(
                #[inline(always)]
                || {
                    for ((bytes, salts), &word) in
                        bytes.chunks_mut(64).zip(part.chunks(64)).zip(words)
                    {
                        for (bit, (byte, &salt)) in bytes.iter_mut().zip(salts).enumerate() {
                            let salted = if salt <= 0.5 { 255 } else { 0 };
                            *byte = if word >> bit & 1 == 1 { salted } else { *byte };
                        }
                    }
                },
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoiseRng, TransformKind};
    use drift_core::{ImageSize, RgbImage8};
    use rand::SeedableRng;

    #[test]
    fn a_share_p_of_values_flips_half_to_white() {
        let kind = TransformKind::named("impulse_noise").unwrap();
        let size = ImageSize::new(200, 100).unwrap();
        let grey = RgbImage8::from_pixels(size, vec![128; 60_000]).unwrap();
        let mut image = PlanarImage::from_rgb8(&grey);
        let params = kind.draw(0.6, size, &mut NoiseRng::seed_from_u64(0));
        assert_eq!(params.get(0), Some(0.09));
        kind.apply(&params, &mut image, &mut NoiseRng::seed_from_u64(5));
        let out = image.to_rgb8();
        let n = out.pixels().len() as f64;
        let white = out.pixels().iter().filter(|&&v| v == 255).count() as f64;
        let black = out.pixels().iter().filter(|&&v| v == 0).count() as f64;
        let p = 0.09;
        assert!(((white + black) / n - p).abs() < 5.0 * (p * (1.0 - p) / n).sqrt());
        let flips = white + black;
        assert!((white / flips - 0.5).abs() < 5.0 * 0.5 / flips.sqrt());
        // Each value flips on its own: red and green flip together about p^2 of the time.
        let both = out
            .pixels()
            .chunks_exact(3)
            .filter(|px| px[0] != 128 && px[1] != 128)
            .count() as f64;
        let pixels = n / 3.0;
        assert!(
            (both / pixels - p * p).abs() < 5.0 * (p * p / pixels).sqrt(),
            "{both}"
        );
    }
}
