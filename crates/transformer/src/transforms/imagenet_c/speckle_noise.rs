//! `imagenet_c:speckle_noise`: multiplicative noise, `clip(x + x N(0, c^2))` per pixel and
//! channel (dark pixels get little).

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws, apply_field, apply_field_rgb8, apply_normals_rgb8};
use crate::registry::{ParamColumn, Params, severity_value};

/// The noise's standard deviation c at severities 0 (identity) to 5.
const SIGMA: [f64; 6] = [0.0, 0.15, 0.2, 0.35, 0.45, 0.6];

pub(crate) struct SpeckleNoise;

impl Corruption for SpeckleNoise {
    fn name(&self) -> &'static str {
        "imagenet_c:speckle_noise"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C speckle_noise at severity 5L: x + x N(0, c^2) per pixel and channel, c = 0, \
         .15, .2, .35, .45, .6 at severities 0-5, clipped"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "sigma",
            meaning: "standard deviation c of the relative noise",
        }]
    }

    fn differences(&self) -> &'static str {
        "none"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &SIGMA))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let sigma = params.value(0);
        apply_field(image, |z, _| draws.normal(0.0, sigma, z), |x, z| x + x * z);
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        draws: &mut dyn Draws,
    ) -> bool {
        let sigma = params.value(0);
        apply_normals_rgb8(image, draws, sigma, |k, sz| k + k * sz, |x, z| x + x * z) || {
            apply_field_rgb8(image, |z, _| draws.normal(0.0, sigma, z), |x, z| x + x * z);
            true
        }
    }
}
