//! `imagenet_c:gaussian_blur`: scikit-image's `gaussian` (scipy's Gaussian, edges repeated,
//! truncated at 4 sigma) per channel.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::gaussian::{Border, gaussian_filter, gaussian_filter_rgb8};
use crate::imagenet_c::{Corruption, Draws, Scale, filter_planes};
use crate::registry::{ParamColumn, Params, severity_value};

/// The blur's sigma in pixels at severities 0 (identity) to 5.
const SIGMA: [f64; 6] = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0];

pub(crate) struct GaussianBlur;

impl Corruption for GaussianBlur {
    fn name(&self) -> &'static str {
        "imagenet_c:gaussian_blur"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C gaussian_blur at severity 5L: scipy's Gaussian of sigma = 0, 1, 2, 3, 4, 6 px \
         at severities 0-5, edges repeated"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "sigma",
            meaning: "the blur's sigma in pixels",
        }]
    }

    fn differences(&self) -> &'static str {
        "none"
    }

    fn parity(&self) -> &'static str {
        "exact"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &SIGMA))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        filter_planes(image, Scale::Unit, plane_filter(params, image.size()));
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        _draws: &mut dyn Draws,
    ) -> bool {
        let sigma = params.value(0);
        let size = image.size();
        gaussian_filter_rgb8(
            image.pixels_mut(),
            (size.width as usize, size.height as usize),
            (sigma, sigma),
            4.0,
            Border::Nearest,
        );
        true
    }
}

/// The blur of one plane of an image of `size`, for both paths.
fn plane_filter(params: &Params, size: ImageSize) -> impl FnMut(&mut [f64]) {
    let sigma = params.value(0);
    let shape = (size.width as usize, size.height as usize);
    move |plane: &mut [f64]| {
        gaussian_filter(plane, shape, (sigma, sigma), 4.0, Border::Nearest, false);
    }
}
