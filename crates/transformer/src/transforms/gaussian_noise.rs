//! `gaussian_noise`: additive Gaussian noise per pixel and channel, clamped.

use drift_core::ImageSize;
use drift_core::RgbImage8;

use crate::registry::{NoiseRng, ParamColumn, Params, Transform};
use crate::{PlanarImage, ops, rgb8};

/// The noise's mean, as in the Python tool.
pub(crate) const MEAN: f32 = 0.1;

pub(crate) struct GaussianNoise;

impl Transform for GaussianNoise {
    fn name(&self) -> &'static str {
        "gaussian_noise"
    }

    fn description(&self) -> &'static str {
        "+ N(0.1, (0.5L)^2) per pixel and channel, clamped"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "sigma",
            meaning: "standard deviation of the noise",
        }]
    }

    fn draw(&self, level: f64, _size: ImageSize, _rng: &mut dyn rand::Rng) -> Params {
        Params::one(0.5 * level)
    }

    fn apply(&self, params: &Params, image: &mut PlanarImage, noise: &mut NoiseRng) {
        ops::gaussian_noise(image, MEAN, params.value(0) as f32, noise);
    }

    fn apply_rgb8(&self, params: &Params, image: &mut RgbImage8, noise: &mut NoiseRng) -> bool {
        rgb8::gaussian_noise(image, MEAN, params.value(0) as f32, noise);
        true
    }
}
