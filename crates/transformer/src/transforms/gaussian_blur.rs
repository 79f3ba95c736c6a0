//! `gaussian_blur`: torchvision's `gaussian_blur` with a 5x5 kernel.

use drift_core::ImageSize;
use drift_core::RgbImage8;

use crate::registry::{NoiseRng, ParamColumn, Params, Transform};
use crate::{PlanarImage, ops, rgb8};

pub(crate) struct GaussianBlur;

impl Transform for GaussianBlur {
    fn name(&self) -> &'static str {
        "gaussian_blur"
    }

    fn description(&self) -> &'static str {
        "5x5 kernel, sigma = 3L, reflect padding"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "sigma",
            meaning: "pixels",
        }]
    }

    fn draw(&self, level: f64, _size: ImageSize, _rng: &mut dyn rand::Rng) -> Params {
        Params::one(3.0 * level)
    }

    fn apply(&self, params: &Params, image: &mut PlanarImage, _noise: &mut NoiseRng) {
        ops::gaussian_blur(image, params.value(0) as f32);
    }

    fn apply_rgb8(&self, params: &Params, image: &mut RgbImage8, _noise: &mut NoiseRng) -> bool {
        rgb8::gaussian_blur(image, params.value(0) as f32);
        true
    }
}
