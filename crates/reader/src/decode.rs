//! Decoding: file bytes to 8-bit RGB at the run's size. Alpha is dropped or composited with
//! PIL's rounding ([`Alpha`]), the resize is antialiased bilinear (`fast_image_resize`), and
//! decompression-bomb limits are checked on the header before any pixel is decoded, under a
//! decode-memory budget that every clone of a [`Decoder`] shares.

use std::io::{Cursor, Read as _};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use drift_core::{ImageSize, RgbImage8};
use fast_image_resize::images::Image as ResizeImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{ImageDecoder, ImageReader};

use crate::ReaderError;

/// What happens to an image's alpha channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Alpha {
    /// Dropped, colours kept as stored under the transparency: PIL's `convert("RGB")`, which is
    /// what torchvision's ImageFolder does.
    #[default]
    Drop,
    /// Composited onto a solid background colour, as PIL's `paste(image, mask=alpha)` onto
    /// `Image.new("RGB", size, colour)` does (its rounding: (c a + b (255 - a) + 128) / 255).
    Composite([u8; 3]),
}

impl std::str::FromStr for Alpha {
    type Err = String;

    /// `drop`, `white`, `black` or `#RRGGBB`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("'{text}' is not an alpha mode: expected drop, white, black or #RRGGBB");
        match text.trim().to_ascii_lowercase().as_str() {
            "drop" => Ok(Alpha::Drop),
            "white" => Ok(Alpha::Composite([255; 3])),
            "black" => Ok(Alpha::Composite([0; 3])),
            hex if hex.len() == 7 && hex.starts_with('#') => {
                let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
                Ok(Alpha::Composite([channel(1)?, channel(3)?, channel(5)?]))
            }
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Alpha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Alpha::Drop => f.write_str("drop"),
            Alpha::Composite([r, g, b]) => write!(f, "#{r:02x}{g:02x}{b:02x}"),
        }
    }
}

/// `rgba` composited onto `background`, with PIL's integer rounding.
fn composite(rgba: &[u8], background: [u8; 3]) -> Vec<u8> {
    let blend = |colour: u8, back: u8, alpha: u8| {
        let t =
            u32::from(colour) * u32::from(alpha) + u32::from(back) * (255 - u32::from(alpha)) + 128;
        (((t >> 8) + t) >> 8) as u8
    };
    rgba.chunks_exact(4)
        .flat_map(|p| {
            [
                blend(p[0], background[0], p[3]),
                blend(p[1], background[1], p[3]),
                blend(p[2], background[2], p[3]),
            ]
        })
        .collect()
}

/// Decompression-bomb guards applied before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted `width * height` as declared by the file header.
    pub max_pixels: u64,
    /// Largest accepted width or height.
    pub max_side: u32,
    /// Memory all images being decoded at once may take together (by their headers); an image
    /// waits until its share is free, so memory stays bounded at any thread count.
    pub budget_bytes: u64,
}

impl Default for DecodeLimits {
    /// PIL's hard limit (twice `Image.MAX_IMAGE_PIXELS`, about 179 megapixels), 65,535 px a
    /// side, and a 2 GiB decode budget: room for one image at the pixel limit in the widest
    /// format (16-bit RGBA, 8 bytes a pixel, plus its 8-bit RGB copy).
    fn default() -> Self {
        Self {
            max_pixels: 2 * 89_478_485,
            max_side: 65_535,
            budget_bytes: 2 << 30,
        }
    }
}

/// Decode memory shared by every thread that decodes with one [`Decoder`] (and its clones).
#[derive(Debug)]
struct DecodeBudget {
    total: u64,
    /// Bytes reserved now, and the most ever reserved at once.
    in_use: Mutex<(u64, u64)>,
    released: Condvar,
}

/// A share of the budget, given back when dropped.
struct Reservation<'a> {
    budget: &'a DecodeBudget,
    bytes: u64,
}

impl DecodeBudget {
    fn new(total: u64) -> Self {
        Self {
            total,
            in_use: Mutex::new((0, 0)),
            released: Condvar::new(),
        }
    }

    /// Waits until `bytes` are free (the caller checked that they fit in the whole budget).
    fn reserve(&self, bytes: u64) -> Reservation<'_> {
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        while in_use.0 + bytes > self.total {
            in_use = self
                .released
                .wait(in_use)
                .unwrap_or_else(PoisonError::into_inner);
        }
        in_use.0 += bytes;
        in_use.1 = in_use.1.max(in_use.0);
        Reservation {
            budget: self,
            bytes,
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut in_use = self
            .budget
            .in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        in_use.0 -= self.bytes;
        self.budget.released.notify_all();
    }
}

/// Decodes image files to 8-bit RGB at one output size.
/// Clones share one decode budget.
#[derive(Debug, Clone)]
pub struct Decoder {
    size: ImageSize,
    limits: DecodeLimits,
    alpha: Alpha,
    budget: Arc<DecodeBudget>,
}

impl Decoder {
    /// A decoder producing images of `size` with the default [`DecodeLimits`].
    pub fn new(size: ImageSize) -> Self {
        let limits = DecodeLimits::default();
        Self {
            size,
            limits,
            alpha: Alpha::Drop,
            budget: Arc::new(DecodeBudget::new(limits.budget_bytes)),
        }
    }

    /// Sets what happens to alpha channels (default: dropped).
    pub fn with_alpha(mut self, alpha: Alpha) -> Self {
        self.alpha = alpha;
        self
    }

    /// Replaces the decompression-bomb limits and the decode budget.
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self.budget = Arc::new(DecodeBudget::new(limits.budget_bytes));
        self
    }

    /// The most decode memory (by header estimates) that images held at once so far, across
    /// every clone of this decoder: never more than [`DecodeLimits::budget_bytes`].
    pub fn peak_decode_memory(&self) -> u64 {
        self.budget
            .in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }

    /// The output size.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// Reads, decodes and resizes one image file. Formats are recognised by content, not name.
    pub fn decode(&self, path: &Path) -> Result<RgbImage8, ReaderError> {
        let mut bytes = Vec::new();
        drift_core::open_regular(path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(|source| ReaderError::Io {
                path: path.to_owned(),
                source,
            })?;
        self.decode_bytes(&bytes, path)
    }

    /// Whether the image at `path` has an alpha channel, and if so whether every pixel is
    /// fully transparent (its colours would be invisible in any viewer). Reads the header
    /// only, unless there is an alpha channel to look at.
    pub fn transparency(&self, path: &Path) -> Result<Transparency, ReaderError> {
        let file = drift_core::open_regular(path).map_err(|source| ReaderError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.transparency_of(std::io::BufReader::new(file), path)
    }

    /// As [`Decoder::transparency`], of an image's bytes already in memory (an image on object
    /// storage); `path` is only used in errors.
    pub fn transparency_bytes(
        &self,
        bytes: &[u8],
        path: &Path,
    ) -> Result<Transparency, ReaderError> {
        self.transparency_of(Cursor::new(bytes), path)
    }

    fn transparency_of<R: std::io::BufRead + std::io::Seek>(
        &self,
        reader: R,
        path: &Path,
    ) -> Result<Transparency, ReaderError> {
        let decode_error = |reason: String| ReaderError::Decode {
            path: path.to_owned(),
            reason,
        };
        let decoder = ImageReader::new(reader)
            .with_guessed_format()
            .map_err(|e| decode_error(e.to_string()))?
            .into_decoder()
            .map_err(|e| decode_error(e.to_string()))?;
        if !decoder.color_type().has_alpha() {
            return Ok(Transparency::Opaque);
        }
        let (width, height) = decoder.dimensions();
        self.check_dimensions(path, width, height)?;
        let image =
            image::DynamicImage::from_decoder(decoder).map_err(|e| decode_error(e.to_string()))?;
        let invisible = image.into_rgba8().pixels().all(|pixel| pixel.0[3] == 0);
        Ok(if invisible {
            Transparency::FullyTransparent
        } else {
            Transparency::Alpha
        })
    }

    /// As [`Decoder::decode`], from bytes already in memory; `path` is only used in errors.
    pub fn decode_bytes(&self, bytes: &[u8], path: &Path) -> Result<RgbImage8, ReaderError> {
        let decode_error = |reason: String| ReaderError::Decode {
            path: path.to_owned(),
            reason,
        };
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| decode_error(e.to_string()))?;
        match reader.format() {
            None => return Err(decode_error("not a recognised image format".to_owned())),
            Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
                return Err(decode_error(
                    "JPEG is truncated: no end-of-image marker after the last scan".to_owned(),
                ));
            }
            Some(_) => {}
        }
        let mut decoder = reader
            .into_decoder()
            .map_err(|e| decode_error(e.to_string()))?;
        let (width, height) = decoder.dimensions();
        let pixels = self.check_dimensions(path, width, height)?;
        // The decoded buffer at the file's own depth, plus its 8-bit RGB copy.
        let needed = pixels * (u64::from(decoder.color_type().bytes_per_pixel()) + 3);
        if needed > self.budget.total {
            return Err(ReaderError::OverBudget {
                path: path.to_owned(),
                width,
                height,
                needed,
                budget: self.budget.total,
            });
        }
        let _reservation = self.budget.reserve(needed);
        let mut limits = image::Limits::default();
        // Room for this image at 16 bits x 4 channels twice over (decoders keep scratch buffers,
        // e.g. for interlaced PNG) plus a fixed margin: a guard, not an allocation.
        limits.max_alloc = Some(pixels.saturating_mul(16).saturating_add(16 << 20));
        decoder
            .set_limits(limits)
            .map_err(|e| decode_error(e.to_string()))?;
        let decoded =
            image::DynamicImage::from_decoder(decoder).map_err(|e| decode_error(e.to_string()))?;
        if decoded.width() == 0 || decoded.height() == 0 {
            return Err(decode_error("image has no pixels".to_owned()));
        }
        let (width, height) = (decoded.width(), decoded.height());
        let pixels = match self.alpha {
            Alpha::Composite(background) if decoded.color().has_alpha() => {
                composite(&decoded.into_rgba8().into_raw(), background)
            }
            // Drops alpha without compositing, replicates grey, scales 16-bit, as PIL's
            // convert("RGB").
            _ => decoded.into_rgb8().into_raw(),
        };
        self.resize(width, height, pixels).map_err(decode_error)
    }

    /// The decompression-bomb guard on a header's dimensions: the pixel count, or `TooLarge`.
    fn check_dimensions(&self, path: &Path, width: u32, height: u32) -> Result<u64, ReaderError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.limits.max_pixels
            || width > self.limits.max_side
            || height > self.limits.max_side
        {
            return Err(ReaderError::TooLarge {
                path: path.to_owned(),
                width,
                height,
                max_pixels: self.limits.max_pixels,
            });
        }
        Ok(pixels)
    }

    fn resize(&self, width: u32, height: u32, pixels: Vec<u8>) -> Result<RgbImage8, String> {
        let out = self.size;
        if (width, height) == (out.width, out.height) {
            return Ok(RgbImage8::from_pixels(out, pixels).expect("decoder returned a full buffer"));
        }
        let src = ResizeImage::from_vec_u8(width, height, pixels, PixelType::U8x3)
            .map_err(|e| e.to_string())?;
        let mut dst = ResizeImage::new(out.width, out.height, PixelType::U8x3);
        // Convolution with the bilinear (triangle) filter widened by the scale factor: PIL's
        // antialiased BILINEAR, which torchvision's Resize uses on PIL images.
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        Resizer::new()
            .resize(&src, &mut dst, &options)
            .map_err(|e| e.to_string())?;
        Ok(RgbImage8::from_pixels(out, dst.into_vec()).expect("resizer returned a full buffer"))
    }
}

/// What [`Decoder::transparency`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transparency {
    /// No alpha channel.
    Opaque,
    /// An alpha channel, with at least one pixel not fully transparent.
    Alpha,
    /// An alpha channel that is 0 everywhere.
    FullyTransparent,
}

/// The JPEG decoder fills a truncated scan with grey instead of failing; PIL refuses such files
/// ("image file is truncated"), and so do we. Inside entropy-coded data 0xFF is always stuffed
/// (followed by 0x00) or a restart marker, so an `FF D9` after the last start-of-scan `FF DA` is
/// the real end-of-image marker. Embedded EXIF thumbnails end before the main scan starts.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_marker = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last_marker(0xDA), last_marker(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}
