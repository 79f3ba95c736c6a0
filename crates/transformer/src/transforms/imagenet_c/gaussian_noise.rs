//! `imagenet_c:gaussian_noise`: `clip(x + N(0, c^2))` per pixel and channel.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws, apply_field, apply_field_rgb8, apply_normals_rgb8};
use crate::registry::{ParamColumn, Params, severity_value};

/// The noise's standard deviation c at severities 0 (identity) to 5.
const SIGMA: [f64; 6] = [0.0, 0.08, 0.12, 0.18, 0.26, 0.38];

pub(crate) struct GaussianNoise;

impl Corruption for GaussianNoise {
    fn name(&self) -> &'static str {
        "imagenet_c:gaussian_noise"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C gaussian_noise at severity 5L: + N(0, c^2) per pixel and channel, c = 0, \
         .08, .12, .18, .26, .38 at severities 0-5, clipped"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "sigma",
            meaning: "standard deviation c of the noise",
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
        apply_field(image, |z, _| draws.normal(0.0, sigma, z), |x, z| x + z);
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        draws: &mut dyn Draws,
    ) -> bool {
        let sigma = params.value(0);
        apply_normals_rgb8(image, draws, sigma, |k, sz| k + 255.0 * sz, |x, z| x + z) || {
            apply_field_rgb8(image, |z, _| draws.normal(0.0, sigma, z), |x, z| x + z);
            true
        }
    }
}
