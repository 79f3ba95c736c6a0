//! `imagenet_c:jpeg_compression`: ImageNet-C's JPEG corruption (the `imagecorruptions` package): the image
//! saved as a baseline JPEG at a quality (4:2:0 chroma, PIL's defaults) and decoded again.

use drift_core::ImageSize;
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::PlanarImage;
use crate::imagenet_c::{Corruption, Draws};
use crate::registry::{ParamColumn, Params, severity_value};

/// JPEG quality at severities 0 to 5; severity 0 is only approached (level 0 is the identity,
/// skipped), so just above 0 the quality is near 100.
const QUALITY: [f64; 6] = [100.0, 25.0, 18.0, 15.0, 10.0, 7.0];

pub(crate) struct JpegCompression;

impl Corruption for JpegCompression {
    fn name(&self) -> &'static str {
        "imagenet_c:jpeg_compression"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C JPEG at severity 5L: quality 100, 25, 18, 15, 10, 7 at severities 0-5 \
         (linear between, rounded), 4:2:0, then decoded"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "quality",
            meaning: "JPEG quality, 1-100",
        }]
    }

    fn differences(&self) -> &'static str {
        "another codec (jpeg-encoder and zune-jpeg, with libjpeg's tables, for PIL's libjpeg-turbo)"
    }

    fn parity(&self) -> &'static str {
        "mean difference under 2 levels, at most 12% of values beyond 8"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &QUALITY).round())
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        jpeg_compression(image, params.value(0) as u8);
    }
}

/// Rounds the image to 8 bits, encodes it as a baseline JPEG at `quality` (1-100) with 4:2:0
/// chroma subsampling, as PIL's `save(format='JPEG', quality=q)` does, and decodes it again.
pub fn jpeg_compression(image: &mut PlanarImage, quality: u8) {
    let size = image.size();
    let rgb = image.to_rgb8();
    let mut encoded = Vec::new();
    let mut encoder = Encoder::new(&mut encoded, quality.clamp(1, 100));
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    // Sides are at most ImageSize::MAX_SIDE, far under JPEG's 65535, and a Vec cannot fail.
    encoder
        .encode(
            rgb.pixels(),
            size.width as u16,
            size.height as u16,
            ColorType::Rgb,
        )
        .expect("an in-memory JPEG of at most 8192x8192 encodes");
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let pixels = JpegDecoder::new_with_options(ZCursor::new(&encoded[..]), options)
        .decode()
        .expect("our own baseline JPEG decodes");
    let decoded = drift_core::RgbImage8::from_pixels(size, pixels)
        .expect("the decoder returns 3 bytes per pixel at the encoded size");
    *image = PlanarImage::from_rgb8(&decoded);
}
