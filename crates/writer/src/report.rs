//! A report folder (what `evaluate` writes): named files staged under temporary names and
//! renamed together by [`ReportWriter::finish`], and the `kl.parquet` table.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::{PendingFile, WriterError, io_error};

/// One batch's KL at one drift level: a row of `kl.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct KlRow {
    /// The transform list, as given (e.g. `default`, or `rotate+hue` for a combined list).
    pub transforms: String,
    /// The drift level of every transform in the list.
    pub drift_level: f64,
    /// The batch index (batch b holds images b*B .. b*B+B-1 of the seeded order).
    pub batch: i64,
    /// Images in the batch (B, or fewer for the last one).
    pub images: i64,
    /// KL(softmax(drifted) || softmax(clean)), averaged over the batch.
    pub kl: f64,
}

/// `kl.parquet`: `transforms` Utf8, `drift_level` Float64, `batch` Int64, `images` Int64,
/// `kl` Float64.
pub fn kl_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("transforms", DataType::Utf8, false),
        Field::new("drift_level", DataType::Float64, false),
        Field::new("batch", DataType::Int64, false),
        Field::new("images", DataType::Int64, false),
        Field::new("kl", DataType::Float64, false),
    ]))
}

/// `rows` as a Parquet file in memory (a sweep has a few thousand rows at most).
pub fn kl_table(rows: &[KlRow], path_for_errors: &Path) -> Result<Vec<u8>, WriterError> {
    let parquet_error = |source| WriterError::Parquet {
        path: path_for_errors.to_owned(),
        source,
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.transforms.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.drift_level),
        )),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.batch))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.images))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.kl))),
    ];
    let batch = RecordBatch::try_new(kl_schema(), columns).map_err(|e| parquet_error(e.into()))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), kl_schema(), Some(properties)).map_err(parquet_error)?;
    writer.write(&batch).map_err(parquet_error)?;
    writer.into_inner().map_err(parquet_error)
}

/// Writes a fixed set of named files into one folder, all or nothing: each goes to a hidden
/// temporary name first, and only [`ReportWriter::finish`] gives them their names. Dropped
/// before `finish`, it removes what it wrote.
#[derive(Debug)]
pub struct ReportWriter {
    files: Vec<(String, PendingFile, bool)>,
    finished: bool,
}

impl ReportWriter {
    /// Prepares `folder` (created if missing) for the files `names`. Refuses if any of them
    /// exists, unless `overwrite`, in which case they are removed now, so that a failure later
    /// cannot leave an old report that looks like the new one.
    pub fn create(folder: &Path, names: &[&str], overwrite: bool) -> Result<Self, WriterError> {
        std::fs::create_dir_all(folder).map_err(|source| io_error(folder, source))?;
        for name in names {
            let path = folder.join(name);
            if path.exists() {
                if !overwrite {
                    return Err(WriterError::OutputExists { path });
                }
                std::fs::remove_file(&path).map_err(|source| io_error(&path, source))?;
            }
        }
        Ok(Self {
            files: names
                .iter()
                .map(|name| ((*name).to_owned(), PendingFile::new(folder, name), false))
                .collect(),
            finished: false,
        })
    }

    /// The final path of file `name`.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.files
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, file, _)| file.target.clone())
    }

    /// Writes file `name` (one of those given to `create`) under its temporary name.
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), WriterError> {
        let Some((_, file, written)) = self.files.iter_mut().find(|(n, _, _)| n == name) else {
            return Err(WriterError::Io {
                path: PathBuf::from(name),
                source: std::io::Error::other("not one of the report's files"),
            });
        };
        let mut handle = file.create()?;
        handle
            .write_all(bytes)
            .and_then(|()| handle.sync_all())
            .map_err(|source| io_error(&file.temporary, source))?;
        *written = true;
        Ok(())
    }

    /// Renames every file to its final name; all must have been added.
    pub fn finish(mut self) -> Result<(), WriterError> {
        if let Some((_, file, _)) = self.files.iter().find(|(_, _, written)| !written) {
            return Err(WriterError::Io {
                path: file.target.clone(),
                source: std::io::Error::other("the report never wrote this file"),
            });
        }
        for (_, file, _) in &self.files {
            std::fs::rename(&file.temporary, &file.target)
                .map_err(|source| io_error(&file.target, source))?;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for ReportWriter {
    fn drop(&mut self) {
        if !self.finished {
            for (_, file, _) in &self.files {
                let _ = std::fs::remove_file(&file.temporary);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_files_appear_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = ReportWriter::create(dir.path(), &["a.txt", "b.txt"], false).unwrap();
        report.add("a.txt", b"first").unwrap();
        assert!(!dir.path().join("a.txt").exists(), "hidden until finish");
        assert!(report.add("c.txt", b"?").is_err());
        drop(report);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut report = ReportWriter::create(dir.path(), &["a.txt", "b.txt"], false).unwrap();
        report.add("a.txt", b"first").unwrap();
        report.add("b.txt", b"second").unwrap();
        report.finish().unwrap();
        assert_eq!(std::fs::read(dir.path().join("b.txt")).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

        let err = ReportWriter::create(dir.path(), &["b.txt"], false).unwrap_err();
        assert!(err.to_string().contains("b.txt") && err.to_string().contains("--overwrite"));
        let report = ReportWriter::create(dir.path(), &["b.txt"], true).unwrap();
        assert!(
            !dir.path().join("b.txt").exists(),
            "overwrite removes the old file first"
        );
        assert!(report.finish().is_err(), "b.txt was never written");
    }
}
