//! `imagenet_c:impulse_noise`: salt and pepper per pixel and channel (scikit-image's
//! `random_noise(mode='s&p')`): a share p of the values flip, half of them to 1, half to 0.

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws, planar_index, store_unit, unit_values};
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

    fn params(&self, level: f64, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &AMOUNT))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let amount = params.value(0);
        let mut values = unit_values(image);
        // scikit-image draws the whole flip field, then the whole salt field.
        let mut flip = vec![0.0; values.len()];
        let mut salt = vec![0.0; values.len()];
        draws.unit(&mut flip);
        draws.unit(&mut salt);
        let n = image.size().pixel_count();
        for (i, (f, s)) in flip.iter().zip(&salt).enumerate() {
            if *f <= amount {
                values[planar_index(i, n)] = if *s <= 0.5 { 1.0 } else { 0.0 };
            }
        }
        store_unit(image, &values);
    }
}
