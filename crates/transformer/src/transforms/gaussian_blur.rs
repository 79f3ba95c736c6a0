//! `gaussian_blur`: torchvision's `gaussian_blur` with a 5x5 kernel.

use crate::registry::{NoiseRng, ParamColumn, Params, Transform};
use crate::{PlanarImage, ops};

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

    fn draw(&self, level: f64, _rng: &mut dyn rand::Rng) -> Params {
        Params::one(3.0 * level)
    }

    fn apply(&self, params: &Params, image: &mut PlanarImage, _noise: &mut NoiseRng) {
        ops::gaussian_blur(image, params.value(0) as f32);
    }
}
