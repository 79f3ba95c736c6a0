//! `saturation`: torchvision's `adjust_saturation` at a drawn factor.

use drift_core::ImageSize;
use drift_core::RgbImage8;

use crate::registry::{NoiseRng, ParamColumn, Params, Transform};
use crate::{PlanarImage, ops, rgb8};

pub(crate) struct Saturation;

impl Transform for Saturation {
    fn name(&self) -> &'static str {
        "saturation"
    }

    fn description(&self) -> &'static str {
        "factor ~ U[max(0, 1-15L), 1+15L]"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "factor",
            meaning: "blend with each pixel's grey",
        }]
    }

    fn draw(&self, level: f64, _size: ImageSize, rng: &mut dyn rand::Rng) -> Params {
        Params::one(super::factor(15.0, level, rng))
    }

    fn apply(&self, params: &Params, image: &mut PlanarImage, _noise: &mut NoiseRng) {
        ops::saturation(image, params.value(0) as f32);
    }

    fn apply_rgb8(&self, params: &Params, image: &mut RgbImage8, _noise: &mut NoiseRng) -> bool {
        rgb8::saturation(image, params.value(0) as f32);
        true
    }
}
