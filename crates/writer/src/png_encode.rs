//! PNG encoding of a sample ([`encode_png`], pure) at a [`PngCompression`] level: the zip
//! stores PNGs as they are, so this alone sets the output's size.

use std::str::FromStr;

use drift_core::RgbImage8;

use crate::WriterError;

/// How hard the PNG encoder works. The zip stores PNGs as they are, so this alone sets the
/// output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PngCompression {
    /// fdeflate's PNG-tuned fast mode: several times faster than zlib level 6, slightly larger.
    #[default]
    Fast,
    /// zlib-like balanced compression (what PIL's default level 6 is comparable to).
    Balanced,
    /// Smallest files, slowest.
    High,
}

impl PngCompression {
    /// Every setting, for help texts and benchmarks.
    pub const ALL: [PngCompression; 3] = [Self::Fast, Self::Balanced, Self::High];

    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Balanced => "balanced",
            Self::High => "high",
        }
    }
}

impl FromStr for PngCompression {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| format!("'{text}' is not a PNG compression: use fast, balanced or high"))
    }
}

/// Encodes an 8-bit RGB PNG.
pub fn encode_png(image: &RgbImage8, compression: PngCompression) -> Result<Vec<u8>, WriterError> {
    let size = image.size();
    let png_error = |e: png::EncodingError| WriterError::Png {
        reason: e.to_string(),
    };
    // An uncompressed PNG is about the raw size; reserve it to avoid regrowing.
    let mut out = Vec::with_capacity(image.pixels().len() / 2 + 1024);
    let mut encoder = png::Encoder::new(&mut out, size.width, size.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(match compression {
        PngCompression::Fast => png::Compression::Fast,
        PngCompression::Balanced => png::Compression::Balanced,
        PngCompression::High => png::Compression::High,
    });
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(image.pixels()).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drift_core::ImageSize;

    #[test]
    fn every_setting_round_trips_through_an_independent_decoder() {
        let size = ImageSize::new(31, 17).unwrap();
        let pixels: Vec<u8> = (0..size.pixel_count() * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let image = RgbImage8::from_pixels(size, pixels.clone()).unwrap();
        for compression in PngCompression::ALL {
            let png = encode_png(&image, compression).unwrap();
            let decoded = image::load_from_memory(&png).unwrap();
            assert_eq!(decoded.color(), image::ColorType::Rgb8);
            assert_eq!(decoded.into_rgb8().into_raw(), pixels, "{compression:?}");
        }
        assert_eq!("high".parse::<PngCompression>(), Ok(PngCompression::High));
        assert!("max".parse::<PngCompression>().is_err());
    }
}
