//! The types that cross stage boundaries in drift-pipeline.
//!
//! Every stage crate (reader, sampler, transformer, embedder, writer) depends on this crate and on
//! no other stage. What one stage hands to the next is defined here: [`SampleMeta`] (who a sample
//! is), [`RgbImage8`] (its pixels), [`Sample`] (both), and [`ClassTable`] (label <-> class name).
//! [`sample_rng`] derives the generator for every random draw about a sample from
//! (seed, sample_id, purpose), so that stages on any thread draw the same values.
//!
//! ```
//! use drift_core::{ImageSize, RgbImage8};
//! let size: ImageSize = "224x224".parse().unwrap();
//! let image = RgbImage8::black(size);
//! assert_eq!(image.pixels().len(), 224 * 224 * 3);
//! ```

mod files;
mod rng;
mod shard;
mod transaction;

pub use files::{
    METADATA_LIMIT, describe_file_type, hex, is_plain_name, open_lock_file, open_regular,
    read_small_text, sha256_hex,
};
pub use rng::{Purpose, SampleRng, sample_rng};
pub use shard::Shard;
pub use transaction::{Recovery, host_name};

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// One row of `drift_log.parquet` as read back: what the timeline plot (`drift-measure`) and
/// `timeline` need of it (the writer reads it, the plot draws it).
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedSample {
    /// The sample.
    pub sample_id: u64,
    /// Its timestamp (seconds since the Unix epoch).
    pub timestamp: f64,
    /// Its segment.
    pub segment: String,
    /// Whether it was drifted.
    pub drifted: bool,
    /// The probability it had of being drifted.
    pub probability: f64,
    /// `(transform, level)` of each transform applied to it, in chain order.
    pub levels: Vec<(String, f64)>,
    /// Its class (absent in logs of versions before provenance).
    pub class_name: Option<String>,
    /// Its class's prior under label shift.
    pub class_prior: Option<f64>,
    /// The image it came from, relative to the dataset root (absent in logs of versions before
    /// provenance).
    pub source_path: Option<String>,
}

/// Who a sample is: its place in the stream and where its pixels came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleMeta {
    /// 0-based, increasing by one per sample across `sample` calls.
    pub sample_id: u64,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// The original label: the class's index in sorted class order.
    pub label: usize,
    /// The image file the sample was decoded from.
    pub source_path: PathBuf,
    /// The name of the PNG in the output zip (UUID-v4-shaped, plus `.png`).
    pub file_name: String,
}

/// An 8-bit RGB image, row-major, 3 bytes per pixel, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage8 {
    size: ImageSize,
    pixels: Vec<u8>,
}

impl RgbImage8 {
    /// Wraps `pixels`; `None` if the buffer length is not `width * height * 3`.
    pub fn from_pixels(size: ImageSize, pixels: Vec<u8>) -> Option<Self> {
        (pixels.len() == size.pixel_count() * 3).then_some(Self { size, pixels })
    }

    /// An all-black image.
    pub fn black(size: ImageSize) -> Self {
        Self {
            size,
            pixels: vec![0; size.pixel_count() * 3],
        }
    }

    /// Width and height.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// The interleaved RGB bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The interleaved RGB bytes, for in-place operations.
    pub fn pixels_mut(&mut self) -> &mut [u8] {
        &mut self.pixels
    }

    /// Gives up the buffer.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }
}

impl fmt::Debug for RgbImage8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RgbImage8({})", self.size)
    }
}

/// The length of one embedding: ResNet18's global-average-pooled features.
pub const EMBEDDING_DIM: usize = 512;

/// A sample on its way through the pipeline.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Identity and provenance.
    pub meta: SampleMeta,
    /// Pixels at the output size.
    pub image: RgbImage8,
}

/// Width x height in pixels, both at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageSize {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

impl ImageSize {
    /// The largest side accepted for an output size; larger is almost surely a typo.
    pub const MAX_SIDE: u32 = 8192;

    /// A size, checked against `1..=MAX_SIDE` on both sides.
    pub fn new(width: u32, height: u32) -> Result<Self, SizeError> {
        for side in [width, height] {
            if side == 0 || side > Self::MAX_SIDE {
                return Err(SizeError::OutOfRange {
                    side: side.to_string(),
                });
            }
        }
        Ok(Self { width, height })
    }

    /// `width * height`.
    pub fn pixel_count(self) -> usize {
        self.width as usize * self.height as usize
    }
}

impl Default for ImageSize {
    fn default() -> Self {
        Self {
            width: 224,
            height: 224,
        }
    }
}

impl fmt::Display for ImageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Why a size string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Not `N` or `WxH` with positive integers.
    #[error(
        "'{text}' is not a size: expected WIDTHxHEIGHT (e.g. 224x224) or one number for a square"
    )]
    Syntax {
        /// What was given.
        text: String,
    },
    /// A side of 0 or beyond [`ImageSize::MAX_SIDE`].
    #[error(
        "side {side} is out of range: each side must be between 1 and {}",
        ImageSize::MAX_SIDE
    )]
    OutOfRange {
        /// The offending side, as given.
        side: String,
    },
}

impl FromStr for ImageSize {
    type Err = SizeError;

    /// Parses `224x224`, `224X224` or `256` (a square).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || SizeError::Syntax {
            text: text.to_owned(),
        };
        let parse_side = |s: &str| -> Result<u32, SizeError> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            s.parse::<u32>().map_err(|_| SizeError::OutOfRange {
                side: s.trim_start_matches('0').to_owned(),
            })
        };
        match text.split_once(['x', 'X']) {
            Some((w, h)) => Self::new(parse_side(w)?, parse_side(h)?),
            None => {
                let side = parse_side(text)?;
                Self::new(side, side)
            }
        }
    }
}

/// The classes of a dataset, in label order (sorted by folder name, code-point order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassTable {
    names: Vec<String>,
}

impl ClassTable {
    /// Builds the table; `names` must already be in label order.
    pub fn new(names: Vec<String>) -> Self {
        Self { names }
    }

    /// The class name of `label`, if it exists.
    pub fn name(&self, label: usize) -> Option<&str> {
        self.names.get(label).map(String::as_str)
    }

    /// The label of the class called `name`.
    pub fn label(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Class names in label order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(
            "224x224".parse::<ImageSize>().unwrap(),
            ImageSize::new(224, 224).unwrap()
        );
        assert_eq!(
            "256".parse::<ImageSize>().unwrap(),
            ImageSize::new(256, 256).unwrap()
        );
        assert_eq!(
            "320X200".parse::<ImageSize>().unwrap(),
            ImageSize::new(320, 200).unwrap()
        );
        for bad in [
            "", "x", "0x10", "10x0", "-3x4", "3.5x4", "abc", "224x", "99999x2", "1x2x3",
        ] {
            assert!(bad.parse::<ImageSize>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn image_buffer_checks_length() {
        let size = ImageSize::new(2, 3).unwrap();
        assert!(RgbImage8::from_pixels(size, vec![0; 18]).is_some());
        assert!(RgbImage8::from_pixels(size, vec![0; 17]).is_none());
    }

    #[test]
    fn class_table_round_trips() {
        let table = ClassTable::new(vec!["cats".into(), "dogs".into()]);
        assert_eq!(table.label("dogs"), Some(1));
        assert_eq!(table.name(0), Some("cats"));
        assert_eq!(table.name(2), None);
    }
}

/// What the drift did to one sample: its row of `drift_log.parquet`, less the keys and the
/// segment. The transformer makes it, the writer writes it. Transforms and their parameters
/// are keys of two map columns, not columns, so adding a transform never changes the schema.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DriftLogRow {
    /// Whether the sample got the drift's transforms.
    pub drifted: bool,
    /// The probability it had of getting them.
    pub probability: f64,
    /// `(transform, level)` of each transform applied, in chain order: the `levels` map.
    pub levels: Vec<(String, f64)>,
    /// `(transform.parameter, value)` of each parameter drawn, in chain order: the
    /// `parameters` map.
    pub parameters: Vec<(String, f64)>,
}

impl DriftLogRow {
    /// A clean sample with no drift in its segment.
    pub fn clean() -> Self {
        Self::default()
    }
}
