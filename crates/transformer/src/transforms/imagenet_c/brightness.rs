//! `imagenet_c:brightness`: the HSV value raised by c (scikit-image's HSV), hue and saturation
//! kept; unlike SPEC's `brightness`, black becomes grey.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::hsv::map_hsv;
use crate::imagenet_c::{Corruption, Draws};
use crate::registry::{ParamColumn, Params, severity_value};

/// The rise c of the HSV value at severities 0 (identity) to 5.
const DELTA: [f64; 6] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5];

pub(crate) struct Brightness;

impl Corruption for Brightness {
    fn name(&self) -> &'static str {
        "imagenet_c:brightness"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C brightness at severity 5L: HSV value + c, c = 0, .1, .2, .3, .4, .5 at \
         severities 0-5, clipped"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "delta",
            meaning: "added to the HSV value",
        }]
    }

    fn differences(&self) -> &'static str {
        "none"
    }

    fn parity(&self) -> &'static str {
        "exact"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &DELTA))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        let delta = params.value(0);
        map_hsv(image, |[h, s, v]| [h, s, (v + delta).clamp(0.0, 1.0)]);
    }
}
