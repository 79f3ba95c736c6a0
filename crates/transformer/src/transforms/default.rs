//! `default`: one knob from no drift to strong drift, whose level maps monotonically onto the
//! KL divergence of embeddings: blur up to L = 0.5, noise above.

use drift_core::ImageSize;
use drift_core::RgbImage8;

use crate::registry::{NoiseRng, ParamColumn, Params, Transform};
use crate::{PlanarImage, ops, rgb8};

pub(crate) struct Default;

impl Transform for Default {
    fn name(&self) -> &'static str {
        "default"
    }

    fn description(&self) -> &'static str {
        "blur at L for L <= 0.5, noise at L - 0.4 above"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "blur_sigma",
                meaning: "set when it blurred",
            },
            ParamColumn {
                name: "noise_sigma",
                meaning: "set when it added noise",
            },
        ]
    }

    fn draw(&self, level: f64, _size: ImageSize, _rng: &mut dyn rand::Rng) -> Params {
        if level <= 0.5 {
            Params::new(&[Some(3.0 * level), None])
        } else {
            Params::new(&[None, Some(0.5 * (level - 0.4))])
        }
    }

    fn apply(&self, params: &Params, image: &mut PlanarImage, noise: &mut NoiseRng) {
        match (params.get(0), params.get(1)) {
            (Some(sigma), _) => ops::gaussian_blur(image, sigma as f32),
            (None, Some(sigma)) => {
                ops::gaussian_noise(image, super::gaussian_noise::MEAN, sigma as f32, noise)
            }
            (None, None) => {}
        }
    }

    fn apply_rgb8(&self, params: &Params, image: &mut RgbImage8, noise: &mut NoiseRng) -> bool {
        match (params.get(0), params.get(1)) {
            (Some(sigma), _) => rgb8::gaussian_blur(image, sigma as f32),
            (None, Some(sigma)) => {
                rgb8::gaussian_noise(image, super::gaussian_noise::MEAN, sigma as f32, noise)
            }
            (None, None) => {}
        }
        true
    }
}
