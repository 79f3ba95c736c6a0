//! `rotate`: torchvision's `rotate` with nearest-neighbour sampling and black fill.

use drift_core::ImageSize;
use rand::RngExt;

use drift_core::RgbImage8;

use crate::registry::{NoiseRng, ParamColumn, Params, Transform};
use crate::{PlanarImage, ops, rgb8};

pub(crate) struct Rotate;

impl Transform for Rotate {
    fn name(&self) -> &'static str {
        "rotate"
    }

    fn description(&self) -> &'static str {
        "angle ~ U[-90L, 90L] degrees, nearest neighbour, black fill"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "angle",
            meaning: "degrees, counter-clockwise",
        }]
    }

    fn draw(&self, level: f64, _size: ImageSize, rng: &mut dyn rand::Rng) -> Params {
        Params::one(rng.random_range(-90.0 * level..=90.0 * level))
    }

    fn apply(&self, params: &Params, image: &mut PlanarImage, _noise: &mut NoiseRng) {
        ops::rotate(image, params.value(0));
    }

    fn apply_rgb8(&self, params: &Params, image: &mut RgbImage8, _noise: &mut NoiseRng) -> bool {
        rgb8::rotate(image, params.value(0));
        true
    }

    fn exact_on_bytes(&self) -> bool {
        true
    }
}
