//! `preview`: what a drift looks like, as a contact sheet. Each row is a transform (on one image
//! of the preview), each column a drift level, the original first; every cell is exactly what
//! `generate` would write for that image, transform and level (the image decoded and resized as
//! the reader does, the transform drawn from (seed, sample id = the image's index)).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use drift_core::{ImageSize, RgbImage8};
use drift_measure::{MeasureError, SheetLayout, contact_sheet};
use drift_reader::{Decoder, ReaderError};
use drift_transformer::{TransformChain, TransformError, TransformKind, TransformSpec};
use drift_writer::{PngCompression, WriterError, encode_png};

/// The levels of `preview --catalog` (and the default): 0.2 to 1.0 by 0.2.
pub const PREVIEW_LEVELS: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];

/// What a preview shows the transforms on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewSource {
    /// One image file.
    Image(PathBuf),
    /// `samples` images of a class-folder dataset (local or on object storage), spread evenly
    /// over its listing.
    Dataset {
        /// The dataset root.
        root: PathBuf,
        /// How many images.
        samples: usize,
    },
}

/// One preview's settings.
#[derive(Debug, Clone)]
pub struct PreviewOptions {
    /// The images.
    pub source: PreviewSource,
    /// The rows' transforms, in order.
    pub transforms: Vec<TransformKind>,
    /// The columns' drift levels, in order, after the original.
    pub levels: Vec<f64>,
    /// The size images are decoded to (as `generate --size`).
    pub size: ImageSize,
    /// The seed every draw comes from (as `generate --seed`).
    pub seed: u64,
}

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// No transform to show.
    #[error("invalid preview: no transform (name one, or ask for the catalog)")]
    NoTransform,
    /// No level to show.
    #[error("invalid preview: no drift level")]
    NoLevel,
    /// A level outside [0, 1], or a transform refused at it.
    #[error("invalid preview: {0}")]
    Level(#[from] TransformError),
    /// A sample count of zero.
    #[error("invalid preview: the sample count must be at least 1")]
    NoSample,
    /// The dataset holds no image.
    #[error("{0}: the dataset holds no image")]
    EmptyDataset(PathBuf),
    /// Listing or reading the dataset failed.
    #[error(transparent)]
    Pipeline(#[from] drift_pipeline::PipelineError),
    /// Decoding an image failed.
    #[error(transparent)]
    Reader(#[from] ReaderError),
    /// The sheet could not be drawn (too large for a PNG of ours, say).
    #[error("cannot draw the contact sheet: {0}")]
    Sheet(#[from] MeasureError),
    /// Encoding or writing the PNG failed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// Writing the sheet failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A drawn contact sheet and where its cells are.
#[derive(Debug, Clone)]
pub struct PreviewSheet {
    /// The sheet's pixels.
    pub image: RgbImage8,
    /// The sheet as SVG: each cell an embedded PNG, the labels text.
    pub svg: String,
    /// Where each cell is: row r, column c (column 0 the original, column k level k - 1).
    pub layout: SheetLayout,
    /// Each row's transform and the index of its image among the preview's images.
    pub rows: Vec<(TransformKind, usize)>,
}

/// Draws the contact sheet of `options`.
pub fn preview(options: &PreviewOptions) -> Result<PreviewSheet, PreviewError> {
    if options.transforms.is_empty() {
        return Err(PreviewError::NoTransform);
    }
    if options.levels.is_empty() {
        return Err(PreviewError::NoLevel);
    }
    let chains = |kind: TransformKind| -> Result<Vec<TransformChain>, PreviewError> {
        options
            .levels
            .iter()
            .map(|&level| Ok(TransformChain::new(vec![TransformSpec::new(kind, level)?])))
            .collect()
    };
    // Refuse a bad level before decoding anything.
    let per_transform = options
        .transforms
        .iter()
        .map(|&kind| Ok((kind, chains(kind)?)))
        .collect::<Result<Vec<_>, PreviewError>>()?;
    let images = images(options)?;
    let mut columns = vec!["original".to_owned()];
    columns.extend(options.levels.iter().map(|level| format!("{level:?}")));
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for (kind, chains) in &per_transform {
        for (index, (name, image)) in images.iter().enumerate() {
            let mut cells = vec![image.clone()];
            for chain in chains {
                cells.push(chain.apply(image.clone(), options.seed, index as u64).0);
            }
            let label = match images.len() {
                1 => kind.name().to_owned(),
                _ => format!("{} ({name})", kind.name()),
            };
            labels.push((label, cells));
            rows.push((*kind, index));
        }
    }
    let names: Vec<&str> = options.transforms.iter().map(|k| k.name()).collect();
    let title = format!(
        "{} at drift levels {} (seed {})",
        if names.len() > 3 {
            format!("{} transforms", names.len())
        } else {
            names.join(", ")
        },
        columns[1..].join(", "),
        options.seed
    );
    // Each cell's PNG (fast compression: the bitmap sheet is the compact copy) as a data URI.
    let href = |cell: &RgbImage8| match encode_png(cell, PngCompression::Fast) {
        Ok(png) => format!("data:image/png;base64,{}", BASE64_STANDARD.encode(png)),
        // Encoding pixels in memory does not fail; were it to, the SVG shows an empty cell.
        Err(_) => String::new(),
    };
    let (plot, layout) = contact_sheet(&title, &columns, &labels, &href)?;
    Ok(PreviewSheet {
        image: plot.rgb,
        svg: plot.svg,
        layout,
        rows,
    })
}

/// The preview's images, decoded and resized as the reader does, with a short name each.
fn images(options: &PreviewOptions) -> Result<Vec<(String, RgbImage8)>, PreviewError> {
    let decoder = Decoder::new(options.size);
    let short = |path: &Path| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    match &options.source {
        PreviewSource::Image(path) => Ok(vec![(short(path), decoder.decode(path)?)]),
        PreviewSource::Dataset { root, samples } => {
            if *samples == 0 {
                return Err(PreviewError::NoSample);
            }
            let (dataset, remote) = drift_pipeline::open_dataset(root)?;
            let count = dataset.images().len();
            if count == 0 {
                return Err(PreviewError::EmptyDataset(root.clone()));
            }
            let picked: Vec<usize> = (0..(*samples).min(count))
                .map(|i| i * count / (*samples).min(count))
                .collect();
            let mut read = match &remote {
                Some(remote) => remote.read_many(&picked).into_iter().map(Some).collect(),
                None => Vec::new(),
            };
            read.resize_with(picked.len(), || None);
            picked
                .iter()
                .zip(read)
                .map(|(&i, bytes)| {
                    let path = &dataset.images()[i].path;
                    let image = match bytes {
                        Some(bytes) => {
                            let bytes = bytes.map_err(drift_pipeline::PipelineError::from)?;
                            decoder.decode_bytes(&bytes, path)?
                        }
                        None => decoder.decode(path)?,
                    };
                    Ok((short(path), image))
                })
                .collect()
        }
    }
}

/// Writes `sheet` as `stem.png` and `stem.svg`, each to a temporary file beside it, then
/// renamed over it, so a failed write leaves the old file or none, never half of one.
pub fn write_preview(sheet: &PreviewSheet, stem: &Path) -> Result<(), PreviewError> {
    let png = encode_png(&sheet.image, PngCompression::High)?;
    write_whole(&stem.with_extension("png"), &png)?;
    write_whole(&stem.with_extension("svg"), sheet.svg.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file renamed over it.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), PreviewError> {
    let write_error = |source| PreviewError::Write {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| write_error(std::io::Error::other("not a file name")))?;
    let mut temporary = name.to_owned();
    temporary.push(format!(".{}.partial", std::process::id()));
    let temporary = path.with_file_name(temporary);
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            write_error(e)
        })
}
