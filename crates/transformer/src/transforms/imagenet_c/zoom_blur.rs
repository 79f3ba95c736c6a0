//! `imagenet_c:zoom_blur`: the mean of the image and its zooms by 1, 1 + step, ... below
//! `max_zoom` (each a centred crop scaled up by scipy's corner-aligned bilinear `zoom`, then
//! cut to the image's size from the top left, as the package cuts it), in f32.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::resample::{Window, zoom_window_rgb};
use crate::imagenet_c::{
    Corruption, Draws, Unit, keep_scratch, numpy_arange, take_scratch, unit_values,
};
use crate::planar::to_byte;
use crate::registry::{ParamColumn, Params, severity_value};

/// `np.arange(1, stop, step)`'s stop at severities 0 (identity: no zoom) to 5.
const STOP: [f64; 6] = [1.0, 1.11, 1.16, 1.21, 1.26, 1.31];
/// Its step at severities 0 to 5.
const STEP: [f64; 6] = [0.01, 0.01, 0.01, 0.02, 0.02, 0.03];

pub(crate) struct ZoomBlur;

impl Corruption for ZoomBlur {
    fn name(&self) -> &'static str {
        "imagenet_c:zoom_blur"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C zoom_blur at severity 5L: the mean of the image and its zooms \
         np.arange(1, stop, step), stop = 1, 1.11, 1.16, 1.21, 1.26, 1.31 and step = .01, .01, \
         .01, .02, .02, .03 at severities 0-5"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "stop",
                meaning: "the zooms' exclusive end",
            },
            ParamColumn {
                name: "step",
                meaning: "the step between zooms",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "none"
    }

    fn parity(&self) -> &'static str {
        "exact (f32 sums, as the package's)"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::new(&[
            Some(severity_value(level, &STOP)),
            Some(severity_value(level, &STEP)),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        let size = image.size();
        // `(np.array(x) / 255.).astype(np.float32)`.
        let x: Vec<f32> = unit_values(image).iter().map(|&v| v as f32).collect();
        let blurred = zoom_blurred(params, size, &x);
        image.data_mut().copy_from_slice(&blurred);
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        _draws: &mut dyn Draws,
    ) -> bool {
        let size = image.size();
        let n = size.pixel_count();
        // The planes as `unit_values` reads those of `PlanarImage::from_rgb8(image)`.
        let mut x = vec![0.0f32; 3 * n];
        for (i, pixel) in image.pixels().chunks_exact(3).enumerate() {
            for (channel, &k) in pixel.iter().enumerate() {
                x[channel * n + i] = Unit::of_byte(usize::from(k)) as f32;
            }
        }
        let blurred = zoom_blurred(params, size, &x);
        for (i, pixel) in image.pixels_mut().chunks_exact_mut(3).enumerate() {
            for (channel, byte) in pixel.iter_mut().enumerate() {
                *byte = to_byte(blurred[channel * n + i]);
            }
        }
        true
    }
}

/// The zoom blur of the planes `x` (the package's f32 image): the mean of x and its zooms,
/// clipped, in f32, as the planes hold it.
fn zoom_blurred(params: &Params, size: ImageSize, x: &[f32]) -> Vec<f32> {
    let factors = numpy_arange(1.0, params.value(0), params.value(1));
    let (w, h) = (size.width as usize, size.height as usize);
    // Both in buffers kept per thread (see `take_scratch`).
    thread_local! {
        static WIDE: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut wide = take_scratch(&WIDE, x.len());
    for (wide, &v) in wide.iter_mut().zip(x) {
        *wide = f64::from(v);
    }
    let mut out = vec![0.0f32; x.len()];
    for &factor in &factors {
        if factor == 1.0 {
            // Zooming by 1 gives each value back exactly (taps 1 and 0 on finite values,
            // which these are): the first of every list, 1 of 11 zooms at severity 3.
            for (s, &v) in out.iter_mut().zip(&wide) {
                *s += v as f32;
            }
            continue;
        }
        // The centred crop, zoomed, cut from the top left, the three planes together.
        let window = Window::clipped_zoom((w, h), factor);
        let planes = [&wide[..w * h], &wide[w * h..2 * w * h], &wide[2 * w * h..]];
        zoom_window_rgb(planes, w, window, factor, (w, h), |y, row| {
            for (plane, sum) in out.chunks_exact_mut(w * h).enumerate() {
                for (s, v) in sum[y * w..][..w].iter_mut().zip(row) {
                    *s += v[plane] as f32;
                }
            }
        });
    }
    keep_scratch(&WIDE, wide);
    let count = (factors.len() + 1) as f32;
    for (sum, x) in out.iter_mut().zip(x) {
        *sum = ((x + *sum) / count).clamp(0.0, 1.0);
    }
    out
}
