//! `imagenet_c:defocus_blur`: a correlation with an anti-aliased disk (the package's `disk` and
//! `cv2.filter2D`, edges mirrored without repeating).

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::disk::{DefocusFilter, filter_2d};
use crate::imagenet_c::{
    Corruption, Draws, Scale, filter_planes, filter_planes_between, filter_planes_rgb8,
};
use crate::registry::{ParamColumn, Params, severity_value};

/// The disk's radius in pixels at severities 0 (identity) to 5.
const RADIUS: [f64; 6] = [0.0, 3.0, 4.0, 6.0, 8.0, 10.0];
/// The sigma of the Gaussian that anti-aliases the disk, at severities 0 to 5.
const ALIAS_BLUR: [f64; 6] = [0.0, 0.1, 0.5, 0.5, 0.5, 0.5];

pub(crate) struct DefocusBlur;

impl Corruption for DefocusBlur {
    fn name(&self) -> &'static str {
        "imagenet_c:defocus_blur"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C defocus_blur at severity 5L: a disk of radius 0, 3, 4, 6, 8, 10 px at \
         severities 0-5, anti-aliased by a Gaussian of sigma 0, .1, .5, .5, .5, .5"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "radius",
                meaning: "the disk's radius in pixels",
            },
            ParamColumn {
                name: "alias_blur",
                meaning: "sigma of the disk's anti-aliasing",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "a fractional radius above 8 keeps a grid of whole pixels (the package's `arange(-r, r + 1)` would shift the disk half a pixel)"
    }

    fn parity(&self) -> &'static str {
        "exact after rounding (cv2 sums large kernels by DFT: float differences far below a half level)"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::new(&[
            Some(severity_value(level, &RADIUS)),
            Some(severity_value(level, &ALIAS_BLUR)),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        let size = image.size();
        let shape = (size.width as usize, size.height as usize);
        match &*DefocusFilter::new(params.value(0), params.value(1)) {
            // 8-bit levels in (on an image of bytes, the disk's sums are whole numbers).
            DefocusFilter::Disk(blur) => {
                filter_planes_between(image, (Scale::Bytes, Scale::Unit), |plane| {
                    blur.filter_plane(plane, shape)
                });
            }
            DefocusFilter::Taps { kernel, side } => {
                filter_planes(image, Scale::Unit, |plane| {
                    filter_2d(plane, shape, kernel, *side)
                });
            }
        }
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        _draws: &mut dyn Draws,
    ) -> bool {
        let size = image.size();
        let shape = (size.width as usize, size.height as usize);
        match &*DefocusFilter::new(params.value(0), params.value(1)) {
            DefocusFilter::Disk(blur) => blur.filter_bytes(image.pixels_mut(), shape),
            DefocusFilter::Taps { kernel, side } => {
                filter_planes_rgb8(image, Scale::Unit, |plane| {
                    filter_2d(plane, shape, kernel, *side)
                });
            }
        }
        true
    }
}
