//! `imagenet_c:saturate`: the HSV saturation scaled by a and raised by b (scikit-image's HSV).
//! Not monotone in the level: severities 1-2 desaturate, 3-5 oversaturate, and the offset
//! b tints grey pixels red (hue 0), as in the package.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws};
use crate::registry::{ParamColumn, Params, severity_value};

use crate::imagenet_c::hsv::map_hsv;

/// The saturation's scale a at severities 0 (identity) to 5.
const SCALE: [f64; 6] = [1.0, 0.3, 0.1, 2.0, 5.0, 20.0];
/// The saturation's offset b at severities 0 to 5.
const OFFSET: [f64; 6] = [0.0, 0.0, 0.0, 0.0, 0.1, 0.2];

pub(crate) struct Saturate;

impl Corruption for Saturate {
    fn name(&self) -> &'static str {
        "imagenet_c:saturate"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C saturate at severity 5L: HSV saturation x a + b, (a, b) = (1, 0), (.3, 0), \
         (.1, 0), (2, 0), (5, .1), (20, .2) at severities 0-5, clipped (not monotone)"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "scale",
                meaning: "saturation factor a",
            },
            ParamColumn {
                name: "offset",
                meaning: "saturation offset b",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "none (not monotone in the level: severities 1-2 desaturate, 3-5 oversaturate)"
    }

    fn parity(&self) -> &'static str {
        "exact"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::new(&[
            Some(severity_value(level, &SCALE)),
            Some(severity_value(level, &OFFSET)),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        let (scale, offset) = (params.value(0), params.value(1));
        map_hsv(image, |[h, s, v]| {
            [h, (s * scale + offset).clamp(0.0, 1.0), v]
        });
    }
}
