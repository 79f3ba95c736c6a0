//! `contrast`: torchvision's `adjust_contrast` at a drawn factor.

use drift_core::ImageSize;
use drift_core::RgbImage8;

use crate::registry::{NoiseRng, ParamColumn, Params, Transform};
use crate::{PlanarImage, ops, rgb8};

pub(crate) struct Contrast;

impl Transform for Contrast {
    fn name(&self) -> &'static str {
        "contrast"
    }

    fn description(&self) -> &'static str {
        "factor ~ U[max(0, 1-3L), 1+3L], blended with the image's mean grey"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "factor",
            meaning: "blend with the mean grey",
        }]
    }

    fn draw(&self, level: f64, _size: ImageSize, rng: &mut dyn rand::Rng) -> Params {
        Params::one(super::factor(3.0, level, rng))
    }

    fn apply(&self, params: &Params, image: &mut PlanarImage, _noise: &mut NoiseRng) {
        ops::contrast(image, params.value(0) as f32);
    }

    fn apply_rgb8(&self, params: &Params, image: &mut RgbImage8, _noise: &mut NoiseRng) -> bool {
        rgb8::contrast(image, params.value(0) as f32);
        true
    }
}
