//! `imagenet_c:elastic_transform` (the `imagecorruptions` version, not ImageNet-C's affine one):
//! each pixel sampled at a displacement, two uniform fields smoothed by a Gaussian of sigma 1%
//! of the image's sides and scaled by alpha; bilinear, mirrored at the edges.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::gaussian::{Border, gaussian_filter};
use crate::imagenet_c::resample::ReflectTap;
use crate::imagenet_c::{Corruption, Draws, keep_scratch, take_scratch};
use crate::registry::{ParamColumn, Params, severity_value};

/// The displacement's scale alpha at severities 0 (identity) to 5.
const ALPHA: [f64; 6] = [0.0, 12.5, 16.25, 21.25, 25.0, 30.0];

pub(crate) struct ElasticTransform;

impl Corruption for ElasticTransform {
    fn name(&self) -> &'static str {
        "imagenet_c:elastic_transform"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C elastic_transform (imagecorruptions' version) at severity 5L: displacements \
         U(-H/200, H/200) per pixel, smoothed (sigma 1% of each side), times alpha = 0, 12.5, \
         16.25, 21.25, 25, 30 at severities 0-5"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "alpha",
            meaning: "the displacements' scale",
        }]
    }

    fn differences(&self) -> &'static str {
        "none (this is the package's elastic transform, not ImageNet-C's affine one)"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &ALPHA))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let alpha = params.value(0);
        let size = image.size();
        let (w, h) = (size.width as usize, size.height as usize);
        let sigma = (h as f64 * 0.01, w as f64 * 0.01);
        // The package takes the height for both axes' largest displacement.
        let max_d = h as f64 * 0.005;
        // The fields in buffers kept per thread (see `take_scratch`).
        let field = |draws: &mut dyn Draws, slot| -> Vec<f64> {
            let mut values = take_scratch(slot, w * h);
            draws.uniform(-max_d, max_d, &mut values);
            gaussian_filter(&mut values, (w, h), sigma, 3.0, Border::Reflect, false);
            // `(gaussian(...) * alpha).astype(np.float32)`.
            for v in &mut values {
                *v = f64::from((*v * alpha) as f32);
            }
            values
        };
        let dx = field(draws, &DX);
        let dy = field(draws, &DY);
        // The package's image is `np.array(x, dtype=np.float32) / 255.`, which our planes hold;
        // widened in a buffer kept per thread (see `take_scratch`).
        let mut source = take_scratch(&SOURCE, image.data().len());
        for (s, &v) in source.iter_mut().zip(image.data()) {
            *s = f64::from(v);
        }
        let n = w * h;
        let out = image.data_mut();
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let tap = ReflectTap::new((w, h), y as f64 + dy[i], x as f64 + dx[i]);
                for channel in 0..3 {
                    let value = tap.sample(&source[channel * n..][..n]) as f32;
                    out[channel * n + i] = value.clamp(0.0, 1.0);
                }
            }
        }
        keep_scratch(&SOURCE, source);
        keep_scratch(&DX, dx);
        keep_scratch(&DY, dy);
    }
}

thread_local! {
    /// The displacement fields.
    static DX: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    static DY: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The image's planes in f64.
    static SOURCE: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}
