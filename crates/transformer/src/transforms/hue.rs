//! `hue`: torchvision's `adjust_hue` at a drawn shift.

use drift_core::ImageSize;
use rand::RngExt;

use drift_core::RgbImage8;

use crate::registry::{NoiseRng, ParamColumn, Params, Transform};
use crate::{PlanarImage, ops, rgb8};

pub(crate) struct Hue;

impl Transform for Hue {
    fn name(&self) -> &'static str {
        "hue"
    }

    fn description(&self) -> &'static str {
        "shift ~ U[-0.5L, 0.5L] turns of the hue circle"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "shift",
            meaning: "turns of the hue circle",
        }]
    }

    fn draw(&self, level: f64, _size: ImageSize, rng: &mut dyn rand::Rng) -> Params {
        Params::one(rng.random_range(-0.5 * level..=0.5 * level))
    }

    fn apply(&self, params: &Params, image: &mut PlanarImage, _noise: &mut NoiseRng) {
        ops::hue(image, params.value(0) as f32);
    }

    fn apply_rgb8(&self, params: &Params, image: &mut RgbImage8, _noise: &mut NoiseRng) -> bool {
        rgb8::hue(image, params.value(0) as f32);
        true
    }
}
