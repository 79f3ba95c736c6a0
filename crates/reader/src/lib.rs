//! Reader stage: find a dataset's images and turn one into pixels at the input size.
//!
//! [`Dataset::scan`] follows torchvision's `ImageFolder`: classes are the root's immediate
//! sub-folders sorted by name, a class's label is its index, images are found recursively and
//! listed folder by folder in sorted order. [`Decoder::decode`] reads one file into 8-bit RGB
//! (alpha dropped, grey replicated, palettes expanded, 16-bit scaled) and resizes it with
//! antialiased bilinear resampling, as PIL does. This crate does not know about threads: callers
//! decode in parallel by calling [`Decoder::decode`] from several threads.
//!
//! ```no_run
//! use drift_reader::{Dataset, Decoder};
//! let dataset = Dataset::scan("data/places".as_ref()).unwrap();
//! let decoder = Decoder::new(Default::default());
//! let image = decoder.decode(&dataset.images()[0].path).unwrap();
//! assert_eq!(image.size().width, 224);
//! ```

mod decode;
mod scan;

pub use decode::{Alpha, DecodeLimits, Decoder, Transparency};
pub use scan::{Dataset, IGNORED_EXAMPLES, ImageEntry, is_image_extension};

use std::path::PathBuf;

/// What went wrong reading a dataset or an image. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The dataset root does not exist.
    #[error("input folder {path} does not exist")]
    MissingRoot {
        /// The root given.
        path: PathBuf,
    },
    /// The dataset root is a file, not a folder.
    #[error("input {path} is not a folder (expected one sub-folder per class)")]
    RootNotADirectory {
        /// The root given.
        path: PathBuf,
    },
    /// The root has no class sub-folders.
    #[error("input folder {path} has no class sub-folders (expected one sub-folder per class)")]
    NoClasses {
        /// The root given.
        path: PathBuf,
    },
    /// Some class folders hold no recognised image.
    #[error(
        "class folder {path} has no images (recognised extensions: jpg, jpeg, png, ppm, pgm, bmp, tif, tiff, webp){more}",
        more = if *others > 0 { format!(", and {others} more class folders are empty too") } else { String::new() }
    )]
    EmptyClass {
        /// The first empty class folder.
        path: PathBuf,
        /// How many other class folders are empty.
        others: usize,
    },
    /// A class folder or image whose name is not valid UTF-8: names are recorded as text (the
    /// drift log, zip entries, manifests), and a lossy spelling would name no file.
    #[error(
        "{} is not valid UTF-8: names are recorded as text, so class folders and images must \
         have UTF-8 names (rename it)",
        path.display()
    )]
    NonUtf8Name {
        /// The path.
        path: PathBuf,
    },
    /// Reading a file or listing a folder failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a decodable image (corrupt, truncated, unknown format).
    #[error("cannot decode image {path}: {reason}")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's words.
        reason: String,
    },
    /// The image declares dimensions beyond the decoder limits (a decompression bomb, or a
    /// corrupt header).
    #[error(
        "image {path} declares {width}x{height} pixels, beyond the limit of {max_pixels} pixels (decompression-bomb guard)"
    )]
    TooLarge {
        /// The image file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit in force.
        max_pixels: u64,
    },
    /// Decoding the image needs more memory than the whole decode budget: it could never start.
    #[error(
        "image {path} needs about {} MiB to decode ({width}x{height}), more than the decode \
         budget of {} MiB shared by all decoding threads",
        needed >> 20,
        budget >> 20
    )]
    OverBudget {
        /// The image file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Bytes its decode needs.
        needed: u64,
        /// The budget.
        budget: u64,
    },
    /// Something that is not a regular file where an image was expected (a FIFO would block).
    #[error("{path} is not a regular file ({kind}): datasets hold image files only")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: String,
    },
    /// An image that is not as the dataset's manifest lists it.
    #[error("{path} changed since the dataset's manifest was made ({reason}); make it again")]
    Changed {
        /// The image file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
}
