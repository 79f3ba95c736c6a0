//! `imagenet_c:contrast`: each channel pulled towards its own mean, `(x - m) c + m` (per-channel
//! means; SPEC's `contrast` blends with the grey mean instead).

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws, numpy_sum, store_unit, unit_values};
use crate::registry::{ParamColumn, Params, severity_value};

/// The factor c at severities 0 (identity) to 5.
const FACTOR: [f64; 6] = [1.0, 0.4, 0.3, 0.2, 0.1, 0.05];

pub(crate) struct Contrast;

impl Corruption for Contrast {
    fn name(&self) -> &'static str {
        "imagenet_c:contrast"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C contrast at severity 5L: (x - m) c + m with m each channel's mean, c = 1, .4, \
         .3, .2, .1, .05 at severities 0-5, clipped"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "factor",
            meaning: "contrast factor c",
        }]
    }

    fn differences(&self) -> &'static str {
        "none"
    }

    fn parity(&self) -> &'static str {
        "exact"
    }

    fn params(&self, level: f64, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &FACTOR))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        let c = params.value(0);
        let n = image.size().pixel_count();
        let mut values = unit_values(image);
        for plane in values.chunks_exact_mut(n) {
            let mean = numpy_sum(plane) / n as f64;
            for x in plane {
                *x = (*x - mean) * c + mean;
            }
        }
        store_unit(image, &values);
    }
}
