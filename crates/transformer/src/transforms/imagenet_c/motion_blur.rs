//! `imagenet_c:motion_blur`: the package's own motion blur (numpy, not ImageMagick) along an
//! angle drawn per image, U(-45, 45) degrees.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::motion::{kernel, motion_blur, motion_blur_rgb8, shifts};
use crate::imagenet_c::{Corruption, Draws, Scale, filter_planes, uniform_one};
use crate::registry::{ParamColumn, Params, severity_value};

/// The blur's radius in pixels at severities 0 (identity) to 5.
const RADIUS: [f64; 6] = [0.0, 10.0, 15.0, 15.0, 15.0, 20.0];
/// The half-Gaussian's sigma at severities 0 to 5.
const SIGMA: [f64; 6] = [0.0, 3.0, 5.0, 8.0, 12.0, 15.0];

pub(crate) struct MotionBlur;

impl Corruption for MotionBlur {
    fn name(&self) -> &'static str {
        "imagenet_c:motion_blur"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C motion_blur at severity 5L: a one-sided half-Gaussian of 2 ceil(r) + 1 taps, \
         r = 0, 10, 15, 15, 15, 20 px and sigma 0, 3, 5, 8, 12, 15 at severities 0-5, along an \
         angle ~ U(-45, 45) degrees"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "radius",
                meaning: "the blur's radius r in pixels",
            },
            ParamColumn {
                name: "sigma",
                meaning: "sigma of the half-Gaussian",
            },
            ParamColumn {
                name: "angle",
                meaning: "the direction in degrees",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "a fractional radius r takes 2 ceil(r) + 1 taps (ImageMagick's rule, as CCC); the package's own shifts and its darkening of small images (taps past a side are dropped) are kept"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's angle"
    }

    fn params(&self, level: f64, _size: ImageSize, draws: &mut dyn Draws) -> Params {
        Params::new(&[
            Some(severity_value(level, &RADIUS)),
            Some(severity_value(level, &SIGMA)),
            Some(uniform_one(draws, -45.0, 45.0)),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        filter_planes(image, Scale::Bytes, plane_filter(params, image.size()));
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        _draws: &mut dyn Draws,
    ) -> bool {
        let (taps, shifts) = taps_and_shifts(params, image.size());
        motion_blur_rgb8(image, &taps, &shifts);
        true
    }
}

/// The blur of one plane (in bytes' units) of an image of `size`, for both paths.
fn plane_filter(params: &Params, size: ImageSize) -> impl FnMut(&mut [f64]) {
    let (taps, shifts) = taps_and_shifts(params, size);
    let shape = (size.width as usize, size.height as usize);
    move |plane: &mut [f64]| {
        let blurred = motion_blur(plane, shape, &taps, &shifts);
        plane.copy_from_slice(&blurred);
    }
}

/// The kernel's taps and their shifts on an image of `size`.
fn taps_and_shifts(params: &Params, size: ImageSize) -> (Vec<f64>, Vec<(isize, isize)>) {
    // ImageMagick's width for a fractional radius (CCC's rule), 2r + 1 at whole radii.
    let width = 2 * params.value(0).ceil() as usize + 1;
    let taps = kernel(width, params.value(1));
    let shifts = shifts(
        width,
        params.value(2),
        (size.width as usize, size.height as usize),
    );
    (taps, shifts)
}

#[cfg(test)]
mod tests {
    use crate::TransformKind;
    use drift_core::{Purpose, sample_rng};

    #[test]
    fn angles_are_uniform_over_plus_minus_45_degrees() {
        let kind = TransformKind::named("motion_blur").unwrap();
        let mut angles: Vec<f64> = (0..4000)
            .map(|id| {
                let mut rng = sample_rng(9, id, Purpose::TransformParams(0));
                kind.draw(0.6, drift_core::ImageSize::new(224, 224).unwrap(), &mut rng)
                    .get(2)
                    .unwrap()
            })
            .collect();
        assert!(angles.iter().all(|a| (-45.0..45.0).contains(a)));
        angles.sort_by(f64::total_cmp);
        let n = angles.len() as f64;
        let d = angles
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let c = (a + 45.0) / 90.0;
                (c - i as f64 / n).abs().max(((i + 1) as f64 / n - c).abs())
            })
            .fold(0.0, f64::max);
        assert!(d < 1.95 / n.sqrt(), "KS {d}");
    }
}
