//! `imagenet_c:pixelate`: ImageNet-C's pixelate (the `imagecorruptions` package): a BOX downscale by a
//! factor c, then a NEAREST upscale back to the image's size, both as PIL does them.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws};
use crate::registry::{ParamColumn, Params, severity_value};
use drift_core::ImageSize;

/// The scale factor c at severities 0 (identity) to 5.
const FACTOR: [f64; 6] = [1.0, 0.6, 0.5, 0.4, 0.3, 0.25];

pub(crate) struct Pixelate;

impl Corruption for Pixelate {
    fn name(&self) -> &'static str {
        "imagenet_c:pixelate"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C pixelate at severity 5L: BOX down by c = 1, 0.6, 0.5, 0.4, 0.3, 0.25 at \
         severities 0-5 (linear between), NEAREST back up"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "factor",
            meaning: "downscale factor c",
        }]
    }

    fn differences(&self) -> &'static str {
        "the two resizes run on floats, without PIL's rounding to 8 bits between them"
    }

    fn parity(&self) -> &'static str {
        "within one level"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &FACTOR))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        pixelate(image, params.value(0));
    }
}

/// Downscales each plane to `int(width c) x int(height c)` (at least 1x1) with PIL's BOX
/// filter and scales it back up with nearest neighbour, as `imagecorruptions.pixelate` does
/// with PIL on 8-bit images (here on floats, so without PIL's rounding between passes).
pub fn pixelate(image: &mut PlanarImage, factor: f64) {
    let size = image.size();
    let (width, height) = (size.width, size.height);
    // Python's int() truncates, as `as` does for these positive values.
    let small = ImageSize::new(
        ((f64::from(width) * factor) as u32).max(1),
        ((f64::from(height) * factor) as u32).max(1),
    )
    .expect("at least 1x1");
    if small == size {
        return;
    }
    let mut resizer = Resizer::new();
    let down = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    let columns = nearest_sources(small.width, width);
    let rows = nearest_sources(small.height, height);
    let small_width = small.width as usize;
    for plane in image.planes_mut() {
        let source = ImageRef::new(width, height, bytemuck::cast_slice(plane), PixelType::F32)
            .expect("a plane holds width x height values");
        let mut reduced = Image::new(small.width, small.height, PixelType::F32);
        resizer
            .resize(&source, &mut reduced, &down)
            .expect("F32 to F32 is supported");
        let reduced: Vec<f32> = reduced
            .buffer()
            .chunks_exact(4)
            .map(|bytes| f32::from_ne_bytes(bytes.try_into().expect("4 bytes")))
            .collect();
        for (out_row, &row) in plane.chunks_exact_mut(width as usize).zip(&rows) {
            let source_row = &reduced[row * small_width..(row + 1) * small_width];
            for (out, &column) in out_row.iter_mut().zip(&columns) {
                *out = source_row[column];
            }
        }
    }
}

/// For each of `to` output positions, the source position PIL's NEAREST resize reads from
/// `from` positions. PIL steps the source coordinate by adding from/to in f64 (starting at
/// half a step), not by multiplying, and the rounding of that sum decides which source pixel
/// a boundary output takes (16 -> 40 differs from (x + 0.5) x 0.4), so this steps the same way.
fn nearest_sources(from: u32, to: u32) -> Vec<usize> {
    let step = f64::from(from) / f64::from(to);
    let mut coordinate = step * 0.5;
    (0..to)
        .map(|_| {
            let source = (coordinate as usize).min(from as usize - 1);
            coordinate += step;
            source
        })
        .collect()
}
