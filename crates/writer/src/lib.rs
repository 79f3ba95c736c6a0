//! Writer stage: the output folder of SPEC, complete or absent.
//!
//! [`encode_png`] turns one image into PNG bytes (a pure function, called from several threads by
//! the pipeline). An [`OutputWriter`] takes encoded samples in `sample_id` order and streams them
//! into `sampled_images.zip` (stored, not deflated again) and the Parquet tables
//! `input_mapping.parquet`, `target.parquet`, `drift_log.parquet` (what the drift did to each
//! sample) and, with embeddings on, `embeddings.parquet`, plus the caller's `drift.json` record.
//! An output folder is a transaction (see [`OutputFolder`]): the writer holds the folder's lock,
//! stages every file aside, and [`StagedOutput::commit`] puts them in place together, with
//! `drift.json` (which records every other file's size and SHA-256) last; dropping an
//! unfinished writer removes what it staged.
//! A [`ReportWriter`] stages the files of an `evaluate` report (`kl.parquet` from [`kl_table`],
//! `summary.csv`, plots) the same way. Arrow and Parquet types never leave this crate.
//!
//! ```
//! use drift_core::{ClassTable, ImageSize, RgbImage8, SampleMeta};
//! use drift_writer::{
//!     DriftLogRow, OUTPUT_FILES, OutputFolder, OutputWriter, PngCompression, WriterOptions,
//!     encode_png,
//! };
//! let dir = tempfile::tempdir().unwrap();
//! let classes = ClassTable::new(vec!["cats".into()]);
//! let folder = OutputFolder::lock(dir.path(), &OUTPUT_FILES).unwrap();
//! let mut writer = OutputWriter::create(folder, WriterOptions::default(), classes).unwrap();
//! let meta = SampleMeta {
//!     sample_id: 0,
//!     timestamp: 1717232400.0,
//!     label: 0,
//!     source_path: "cats/1.jpg".into(),
//!     file_name: "0b3b6a4e-3f0c-4b8e-9a53-2f1e7c1d9a10.png".into(),
//! };
//! let png = encode_png(&RgbImage8::black(ImageSize::new(4, 4).unwrap()), PngCompression::Fast).unwrap();
//! writer.write(&meta, 0, &png, None, &DriftLogRow::clean()).unwrap();
//! let staged = writer.finish(|files| format!("{} files", files.len())).unwrap();
//! assert!(!dir.path().join("target.parquet").exists(), "staged, not yet in place");
//! let (summary, _folder) = staged.commit().unwrap();
//! assert_eq!(summary.samples, 1);
//! assert!(dir.path().join("target.parquet").exists());
//! ```

mod detect;
mod manifest;
mod png_encode;
mod read;
mod report;
mod samples;
mod score;
mod tables;
mod transaction;
pub mod zip_directory;

pub use detect::{
    AlarmRow, EmbeddingBatch, EmbeddingBatches, OnlineRow, WindowRow, alarms_table, online_table,
    read_report_alarms, read_report_online, read_report_windows, windows_table,
};
pub use drift_core::LoggedSample;
pub use drift_core::{DriftLogRow, EMBEDDING_DIM};
pub use manifest::{ManifestEntry, read_manifest, write_manifest};
pub use png_encode::{PngCompression, encode_png};
pub use read::{DriftLogBatches, read_drift_log};
pub use report::{KlRow, ReportWriter, kl_table, read_kl_table};
pub use samples::{SampleReader, StoredSample};
pub use score::{
    EpisodeRow, ExternalAlarm, ExternalWindow, PowerRow, ScoredWindowRow, episodes_table,
    power_table, read_alarm_table, read_window_table, scored_windows_table,
};
pub use transaction::{
    ABORT_AT_ENV, FileRecord, LOCK_FILE, OutputFolder, Recovery, STAGING_DIR, Staging, commit_all,
    resolve_path, verify_output,
};

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use drift_core::{ClassTable, SampleMeta};
use zip::write::SimpleFileOptions;

use crate::tables::{Row, Table, TableWriter};

/// Name of the image archive in an output folder.
pub const SAMPLED_IMAGES: &str = "sampled_images.zip";
/// Name of the sample -> file table.
pub const INPUT_MAPPING: &str = "input_mapping.parquet";
/// Name of the sample -> label table.
pub const TARGET: &str = "target.parquet";
/// Name of the sample -> embedding table (written only with embeddings on).
pub const EMBEDDINGS: &str = "embeddings.parquet";
/// Name of the record of what drift was applied (transforms, levels, seed, ranges).
pub const DRIFT_JSON: &str = "drift.json";
/// The per-sample ground truth of what the drift did.
pub const DRIFT_LOG: &str = "drift_log.parquet";
/// Every file an output folder may hold; an existing one means the folder holds an output.
pub const OUTPUT_FILES: [&str; 6] = [
    SAMPLED_IMAGES,
    INPUT_MAPPING,
    TARGET,
    EMBEDDINGS,
    DRIFT_JSON,
    DRIFT_LOG,
];

/// The first file of an output present in `folder`, if any: whether it holds an output.
pub fn existing_output(folder: &Path) -> Option<PathBuf> {
    OUTPUT_FILES
        .iter()
        .map(|name| folder.join(name))
        .find(|path| path.exists())
}

/// What went wrong writing an output. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The output folder already holds an output and overwriting was not asked for.
    #[error("output {path} already exists, and replacing it was not asked for")]
    OutputExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The output path exists and is not a folder.
    #[error("output {path} is not a folder")]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// Another writer holds the folder.
    #[error("output {path} is being written by another run ({holder}); wait for it to finish")]
    Locked {
        /// The folder.
        path: PathBuf,
        /// Who holds the lock (pid and host), as far as known.
        holder: String,
    },
    /// A decided commit failed half-way; the next run into the folder finishes it.
    #[error(
        "the commit into {path} was interrupted ({source}); the next run into this folder \
         completes it"
    )]
    CommitInterrupted {
        /// The folder.
        path: PathBuf,
        /// What failed.
        source: Box<WriterError>,
    },
    /// A folder that does not hold one complete, intact output.
    #[error("{path} does not verify: {reason}")]
    Unverified {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A table read back that is not what this tool writes.
    #[error("{path}: {reason}")]
    BadTable {
        /// The table.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file this tool reads (a record, a commit plan) names a file outside its folder.
    #[error(
        "{path} names '{name}', which is not a plain file name inside its folder: refused, and \
         nothing it lists was applied (this tool never writes such a name: remove {path} if it \
         was planted or edited)"
    )]
    UnsafeName {
        /// The file that names it.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A class name that cannot be a folder of the zip on every platform's extractors.
    #[error(
        "class '{class}' cannot be a folder of the zip ({reason}): an extractor on some \
         platform would put its images elsewhere; rename the class folder, or write the zip \
         without class folders"
    )]
    UnsafeZipFolder {
        /// The class name.
        class: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An output folder inside another output's staging folder, which that output's next run
    /// deletes.
    #[error(
        "output {path} is inside another output's staging folder ({staging}), which that \
         output's next run deletes: choose another folder"
    )]
    InsideStaging {
        /// The folder asked for.
        path: PathBuf,
        /// The staging folder it is inside.
        staging: PathBuf,
    },
    /// Reading a file failed (missing, not a regular file, too large).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file-system operation failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The zip library failed (its error type stays private to this crate).
    #[error("cannot write {path}: {source}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// The zip library's error.
        source: LibraryError,
    },
    /// The Parquet library failed (its error type stays private to this crate).
    #[error("cannot write {path}: {source}")]
    Parquet {
        /// The table.
        path: PathBuf,
        /// The arrow or parquet library's error.
        source: LibraryError,
    },
    /// PNG encoding failed.
    #[error("cannot encode PNG: {reason}")]
    Png {
        /// The encoder's words.
        reason: String,
    },
    /// Samples must arrive in increasing sample_id order.
    #[error("sample {got} arrived after sample {previous}: the writer needs sample_id order")]
    OutOfOrder {
        /// The last sample written.
        previous: u64,
        /// The sample that came next.
        got: u64,
    },
    /// An embedding is missing, unexpected or of the wrong length.
    #[error("sample {sample_id}: embedding {reason}")]
    Embedding {
        /// The sample.
        sample_id: u64,
        /// What is wrong.
        reason: String,
    },
    /// A drift log row that does not fit the writer's columns.
    #[error("sample {sample_id}: drift log {reason}")]
    DriftLog {
        /// The sample.
        sample_id: u64,
        /// What is wrong.
        reason: String,
    },
    /// A label outside the class table (with `organize_by_class`).
    #[error("sample {sample_id} has label {label}, which is not a class")]
    UnknownLabel {
        /// The sample.
        sample_id: u64,
        /// Its original label.
        label: usize,
    },
}

/// An error of a library the writer uses (zip, arrow, parquet), opaque so that their types stay
/// out of this crate's API.
pub type LibraryError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How an output folder is laid out and written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriterOptions {
    /// Zip entries as `<class_name>/<file_name>` instead of at the root.
    pub organize_by_class: bool,
    /// Replace an existing output instead of refusing.
    pub overwrite: bool,
    /// Write `embeddings.parquet`: every sample must then come with its embedding.
    pub embeddings: bool,
    /// The `segment` column of `drift_log.parquet` (a scenario segment's name, or `segment N`
    /// for the Nth call).
    pub segment: String,
    /// The dataset root: `drift_log.parquet`'s `source_path` is relative to it.
    pub source_root: PathBuf,
    /// Under label shift, each class's prior (by original label), logged per sample as
    /// `class_prior`; `None` when classes come as in the dataset.
    pub class_priors: Option<Vec<f64>>,
}

/// What a finished output holds.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSummary {
    /// The output folder.
    pub folder: PathBuf,
    /// Rows in each table, entries in the zip.
    pub samples: u64,
    /// Bytes of `sampled_images.zip`.
    pub zip_bytes: u64,
}

/// The zip's file, which goes quiet once its writer is abandoned: the zip library finishes an
/// unfinished archive when dropped and prints its own error to stderr when that fails (a full
/// disk), so an abandoned archive writes nowhere and fails nothing. It keeps its own position
/// and length so that an abandoned archive still seeks consistently.
struct ZipSink {
    file: BufWriter<File>,
    abandoned: Arc<AtomicBool>,
    position: u64,
    len: u64,
}

impl ZipSink {
    fn new(file: File, abandoned: Arc<AtomicBool>) -> Self {
        Self {
            file: BufWriter::with_capacity(1 << 20, file),
            abandoned,
            position: 0,
            len: 0,
        }
    }

    fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }
}

impl Write for ZipSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = if self.is_abandoned() {
            buf.len()
        } else {
            self.file.write(buf)?
        };
        self.position += written as u64;
        self.len = self.len.max(self.position);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.is_abandoned() {
            return Ok(());
        }
        self.file.flush()
    }
}

impl Seek for ZipSink {
    fn seek(&mut self, position: SeekFrom) -> std::io::Result<u64> {
        self.position = if self.is_abandoned() {
            let target = match position {
                SeekFrom::Start(offset) => Some(offset),
                SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
                SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            };
            target.ok_or_else(|| std::io::Error::other("seek before the start"))?
        } else {
            self.file.seek(position)?
        };
        Ok(self.position)
    }
}

/// Streams one output into a locked output folder's staging area. Feed it samples in
/// `sample_id` order, then call [`OutputWriter::finish`] and commit what it returns. Dropped
/// before, it removes what it staged: the folder keeps the output it had.
pub struct OutputWriter {
    staging: Staging,
    options: WriterOptions,
    classes: ClassTable,
    archive: Archive,
    /// Every Parquet table of the output, in [`Table::of_output`]'s order.
    tables: Vec<TableWriter>,
    /// A clean sample's parameter values: all null.
    last_sample_id: Option<u64>,
    samples: u64,
}

impl OutputWriter {
    /// Starts a new output in `folder`. Refuses a folder that holds an output unless
    /// `options.overwrite`; even then the old output stays whole until the commit.
    pub fn create(
        folder: OutputFolder,
        options: WriterOptions,
        classes: ClassTable,
    ) -> Result<Self, WriterError> {
        if options.organize_by_class {
            for class in classes.names() {
                check_zip_folder(class)?;
            }
        }
        Self::begin(folder, options, classes, true)
    }

    /// Starts a new output in `folder` whose zip is made elsewhere: samples are appended
    /// ([`OutputWriter::append`]) for their rows only, and [`OutputWriter::finish_with_zip`]
    /// records the zip as it was made (a merge on object storage assembles it there).
    pub fn create_rows_only(
        folder: OutputFolder,
        options: WriterOptions,
    ) -> Result<Self, WriterError> {
        Self::begin(folder, options, ClassTable::default(), false)
    }

    fn begin(
        folder: OutputFolder,
        options: WriterOptions,
        classes: ClassTable,
        with_zip: bool,
    ) -> Result<Self, WriterError> {
        let mut staging = Staging::begin(folder, DRIFT_JSON, options.overwrite)?;
        let zip_abandoned = Arc::new(AtomicBool::new(false));
        let zip = match with_zip {
            true => Some(zip::ZipWriter::new(ZipSink::new(
                staging.create(SAMPLED_IMAGES)?,
                zip_abandoned.clone(),
            ))),
            false => None,
        };
        let tables = Table::of_output(options.embeddings)
            .into_iter()
            .map(|table| {
                let path = staging.folder().path().join(table.file_name());
                let file = staging.create(table.file_name())?;
                TableWriter::new(table, file, &path)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            staging,
            options,
            classes,
            archive: Archive {
                zip,
                abandoned: zip_abandoned,
            },
            tables,
            last_sample_id: None,
            samples: 0,
        })
    }

    fn zip_path(&self) -> PathBuf {
        self.staging.folder().path().join(SAMPLED_IMAGES)
    }

    /// Appends one sample: its PNG to the zip, its rows to the tables. `label` is the label to
    /// publish (after any class mapping); `meta.label` (the original) chooses the class folder.
    /// `embedding` ([`EMBEDDING_DIM`] values) is required when the writer was created with
    /// embeddings on, and refused otherwise. `log` is the sample's row of `drift_log.parquet`.
    pub fn write(
        &mut self,
        meta: &SampleMeta,
        label: i64,
        png: &[u8],
        embedding: Option<&[f32]>,
        log: &DriftLogRow,
    ) -> Result<(), WriterError> {
        if let Some(previous) = self.last_sample_id
            && meta.sample_id <= previous
        {
            return Err(WriterError::OutOfOrder {
                previous,
                got: meta.sample_id,
            });
        }
        check_drift_log(meta.sample_id, &log.levels, &log.parameters)?;
        match (self.options.embeddings, embedding) {
            (true, Some(values)) if values.len() == EMBEDDING_DIM => {}
            (true, Some(values)) => {
                return Err(WriterError::Embedding {
                    sample_id: meta.sample_id,
                    reason: format!("{} values, expected {EMBEDDING_DIM}", values.len()),
                });
            }
            (true, None) => {
                return Err(WriterError::Embedding {
                    sample_id: meta.sample_id,
                    reason: "missing, but the writer was created with embeddings on".into(),
                });
            }
            (false, Some(_)) => {
                return Err(WriterError::Embedding {
                    sample_id: meta.sample_id,
                    reason: "given, but the writer was created with embeddings off".into(),
                });
            }
            (false, None) => {}
        }
        let segment = self.options.segment.clone();
        let class_name =
            self.classes
                .name(meta.label)
                .map(str::to_owned)
                .ok_or(WriterError::UnknownLabel {
                    sample_id: meta.sample_id,
                    label: meta.label,
                })?;
        let entry_name = if self.options.organize_by_class {
            format!("{class_name}/{}", meta.file_name)
        } else {
            meta.file_name.clone()
        };
        let source_path = meta
            .source_path
            .strip_prefix(&self.options.source_root)
            .unwrap_or(&meta.source_path)
            .to_string_lossy();
        let row = Row {
            sample_id: i64::try_from(meta.sample_id).expect("sample ids stay below 2^63"),
            timestamp: meta.timestamp,
            file_name: &meta.file_name,
            label,
            embedding,
            segment: &segment,
            source_path: &source_path,
            class_name: &class_name,
            original_label: meta.label as i64,
            zip_entry: &entry_name,
            class_prior: self
                .options
                .class_priors
                .as_ref()
                .and_then(|priors| priors.get(meta.label).copied()),
            drifted: log.drifted,
            drift_probability: log.probability,
            levels: &log.levels,
            parameters: &log.parameters,
        };
        self.push(&row, png)?;
        self.last_sample_id = Some(meta.sample_id);
        Ok(())
    }

    /// Appends a sample read back from another output (`drift-pipeline merge`): its rows and
    /// zip entry exactly as they were written there, so that samples written once and copied
    /// give the same bytes. Checked as [`OutputWriter::write`] checks its arguments.
    pub fn append(&mut self, sample: &StoredSample) -> Result<(), WriterError> {
        let sample_id = u64::try_from(sample.sample_id).unwrap_or(0);
        if let Some(previous) = self.last_sample_id
            && sample_id <= previous
        {
            return Err(WriterError::OutOfOrder {
                previous,
                got: sample_id,
            });
        }
        check_drift_log(sample_id, &sample.levels, &sample.parameters)?;
        if sample.embedding.is_some() != self.options.embeddings {
            return Err(WriterError::Embedding {
                sample_id,
                reason: "present in one output and not in the other".into(),
            });
        }
        self.push(&sample.row(), &sample.png)?;
        self.last_sample_id = Some(sample_id);
        Ok(())
    }

    /// Writes `png` as the zip entry `row.zip_entry` and `row` to every table.
    fn push(&mut self, row: &Row<'_>, png: &[u8]) -> Result<(), WriterError> {
        let zip_path = self.zip_path();
        let zip_path = &zip_path;
        // PNG data is already deflated: store it. A fixed entry time keeps the archive
        // byte-identical between runs.
        if let Some(zip) = self.archive.zip.as_mut() {
            let entry_options = SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .last_modified_time(zip::DateTime::default())
                .unix_permissions(0o644);
            zip.start_file(row.zip_entry, entry_options)
                .map_err(|source| zip_error(zip_path, source))?;
            zip.write_all(png)
                .map_err(|source| io_error(zip_path, source))?;
        }
        for table in &mut self.tables {
            table.push(row)?;
        }
        self.samples += 1;
        Ok(())
    }

    /// Closes and syncs every file, then stages `drift.json`, made by `record` from the size
    /// and SHA-256 of every other file. Nothing is in place until the result is committed.
    pub fn finish(
        self,
        record: impl FnOnce(&[FileRecord]) -> String,
    ) -> Result<StagedOutput, WriterError> {
        self.finish_with(None, record)
    }

    /// Finishes an output made by [`OutputWriter::create_rows_only`]: `zip` is the record of
    /// its zip, made elsewhere, listed first as a writer of the zip lists it.
    pub fn finish_with_zip(
        self,
        zip: FileRecord,
        record: impl FnOnce(&[FileRecord]) -> String,
    ) -> Result<StagedOutput, WriterError> {
        self.finish_with(Some(zip), record)
    }

    fn finish_with(
        mut self,
        external_zip: Option<FileRecord>,
        record: impl FnOnce(&[FileRecord]) -> String,
    ) -> Result<StagedOutput, WriterError> {
        let zip_path = self.zip_path();
        let zip_bytes = match (self.archive.zip.take(), &external_zip) {
            (Some(zip), None) => finish_zip(zip, &zip_path)?,
            (None, Some(external)) => external.bytes,
            _ => panic!("finish_with_zip is for an output created rows only, and only for it"),
        };
        for table in &mut self.tables {
            table.finish()?;
        }
        let mut records = self.staging.records()?;
        if let Some(external) = external_zip {
            records.insert(0, external);
        }
        self.staging
            .write(DRIFT_JSON, record(&records).as_bytes())?;
        Ok(StagedOutput {
            summary: OutputSummary {
                folder: self.staging.folder().path().to_owned(),
                samples: self.samples,
                zip_bytes,
            },
            staging: self.staging,
        })
    }
}

/// Finishes and syncs the zip; returns its size.
fn finish_zip(zip: zip::ZipWriter<ZipSink>, zip_path: &Path) -> Result<u64, WriterError> {
    let sink = zip.finish().map_err(|source| zip_error(zip_path, source))?;
    let file = sink
        .file
        .into_inner()
        .map_err(|e| io_error(zip_path, e.into_error()))?;
    file.sync_all()
        .map_err(|source| io_error(zip_path, source))?;
    Ok(file
        .metadata()
        .map_err(|source| io_error(zip_path, source))?
        .len())
}

/// The archive being written; dropped unfinished, it abandons its sink first (see ZipSink).
struct Archive {
    zip: Option<zip::ZipWriter<ZipSink>>,
    abandoned: Arc<AtomicBool>,
}

impl Drop for Archive {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }
}

/// A finished output, staged in its folder, waiting to be committed.
#[derive(Debug)]
pub struct StagedOutput {
    staging: Staging,
    summary: OutputSummary,
}

impl StagedOutput {
    /// What the output holds.
    pub fn summary(&self) -> &OutputSummary {
        &self.summary
    }

    /// Puts the output in place (`drift.json` last); the folder is returned, still locked.
    pub fn commit(self) -> Result<(OutputSummary, OutputFolder), WriterError> {
        let folder = self.staging.commit()?;
        Ok((self.summary, folder))
    }
}

/// Checks that `folder` holds one complete `generate` output whose files are those its
/// `drift.json` records (see [`verify_output`]).
pub fn verify(folder: &Path) -> Result<Vec<FileRecord>, WriterError> {
    verify_output(folder, DRIFT_JSON, &OUTPUT_FILES)
}

/// Commits several staged outputs together (a scenario's segments): all are decided before any
/// is put in place, so a failure before that leaves every folder as it was.
pub fn commit_outputs(outputs: Vec<StagedOutput>) -> Result<Vec<OutputSummary>, WriterError> {
    let (stagings, summaries): (Vec<_>, Vec<_>) = outputs
        .into_iter()
        .map(|output| (output.staging, output.summary))
        .unzip();
    commit_all(stagings)?;
    Ok(summaries)
}

/// Refuses a class name as a zip folder where some extractor would not read it as one folder
/// inside the extraction folder: Windows' separators and drive letters, `.` and `..`, control
/// characters.
fn check_zip_folder(class: &str) -> Result<(), WriterError> {
    let reason = if class.contains('\\') {
        Some("a backslash is a separator on Windows")
    } else if class.contains(':') {
        Some("a colon makes a drive letter or a stream on Windows")
    } else if class == "." || class == ".." {
        Some("it names a folder above the extraction folder")
    } else if class.chars().any(char::is_control) {
        Some("it holds a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(WriterError::UnsafeZipFolder {
            class: class.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> WriterError {
    WriterError::Io {
        path: path.to_owned(),
        source,
    }
}

fn zip_error(path: &Path, source: zip::result::ZipError) -> WriterError {
    WriterError::Zip {
        path: path.to_owned(),
        source: Box::new(source),
    }
}

/// A drift log row's maps hold each key once (a map with a repeated key is not one).
fn check_drift_log(
    sample_id: u64,
    levels: &[(String, f64)],
    parameters: &[(String, f64)],
) -> Result<(), WriterError> {
    for (map, entries) in [("levels", levels), ("parameters", parameters)] {
        for (i, (key, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(k, _)| k == key) {
                return Err(WriterError::DriftLog {
                    sample_id,
                    reason: format!("{key} appears twice in {map}"),
                });
            }
        }
    }
    Ok(())
}
