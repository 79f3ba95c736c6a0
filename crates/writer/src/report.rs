//! A report folder (what `evaluate` writes): named files staged in the folder's staging area and
//! renamed together by [`ReportWriter::finish`], and the `kl.parquet` table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::{OutputFolder, Recovery, Staging, WriterError};

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
fn kl_schema() -> SchemaRef {
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
    parquet_bytes(kl_schema(), columns, path_for_errors)
}

/// One record batch of `columns` as a Snappy-compressed Parquet file in memory: how a report's
/// small tables (`kl.parquet`, `detect`'s `windows.parquet` and `alarms.parquet`) are written.
pub(crate) fn parquet_bytes(
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
    path_for_errors: &Path,
) -> Result<Vec<u8>, WriterError> {
    let parquet_error = |source: parquet::errors::ParquetError| WriterError::Parquet {
        path: path_for_errors.to_owned(),
        source: Box::new(source),
    };
    let batch =
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| parquet_error(e.into()))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), schema, Some(properties)).map_err(parquet_error)?;
    writer.write(&batch).map_err(parquet_error)?;
    writer.into_inner().map_err(parquet_error)
}

/// Reads a `kl.parquet` written by [`kl_table`] back, row by row.
pub fn read_kl_table(path: &Path) -> Result<Vec<KlRow>, WriterError> {
    use arrow_array::Array;
    let bad = |reason: String| WriterError::BadTable {
        path: path.to_owned(),
        reason,
    };
    let file = drift_core::open_regular(path).map_err(|e| bad(e.to_string()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.build())
        .map_err(|e| bad(e.to_string()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        if batch.num_columns() != 5 {
            return Err(bad("not a kl.parquet of this version".into()));
        }
        let column = |i: usize| batch.column(i).as_any();
        let (Some(transforms), Some(levels), Some(batches), Some(images), Some(kls)) = (
            column(0).downcast_ref::<StringArray>(),
            column(1).downcast_ref::<Float64Array>(),
            column(2).downcast_ref::<Int64Array>(),
            column(3).downcast_ref::<Int64Array>(),
            column(4).downcast_ref::<Float64Array>(),
        ) else {
            return Err(bad("not a kl.parquet of this version".into()));
        };
        for row in 0..batch.num_rows() {
            rows.push(KlRow {
                transforms: transforms.value(row).to_owned(),
                drift_level: levels.value(row),
                batch: batches.value(row),
                images: images.value(row),
                kl: kls.value(row),
            });
        }
    }
    Ok(rows)
}

/// Writes a fixed set of named files into one folder as one transaction: the folder is locked,
/// every file staged, and [`ReportWriter::finish`] commits them together with `marker` last.
/// Dropped before `finish`, it removes what it staged and the folder keeps its old report.
#[derive(Debug)]
pub struct ReportWriter {
    staging: Staging,
    names: &'static [&'static str],
}

impl ReportWriter {
    /// Locks `folder` (created if missing) for the files `names`, of which `marker` is committed
    /// last. Refuses if any of them exists, unless `overwrite`; the old report then stays whole
    /// until the commit.
    pub fn create(
        folder: &Path,
        names: &'static [&'static str],
        marker: &'static str,
        overwrite: bool,
    ) -> Result<Self, WriterError> {
        let folder = OutputFolder::lock(folder, names)?;
        Ok(Self {
            staging: Staging::begin(folder, marker, overwrite)?,
            names,
        })
    }

    /// What the lock found left by a dead run in the folder, if anything.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.staging.folder().recovery()
    }

    /// The final path of file `name`.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.names
            .contains(&name)
            .then(|| self.staging.folder().path().join(name))
    }

    /// Stages file `name` (one of those given to `create`).
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), WriterError> {
        if !self.names.contains(&name) {
            return Err(WriterError::Io {
                path: PathBuf::from(name),
                source: std::io::Error::other("not one of the report's files"),
            });
        }
        self.staging.write(name, bytes)
    }

    /// Commits every file; all must have been added.
    pub fn finish(self) -> Result<(), WriterError> {
        let folder = self.staging.folder().path();
        if let Some(name) = self
            .names
            .iter()
            .find(|name| !self.staging.staged_path(name).exists())
        {
            return Err(WriterError::Io {
                path: folder.join(name),
                source: std::io::Error::other("the report never wrote this file"),
            });
        }
        self.staging.commit().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_files_appear_together_or_not_at_all() {
        const FILES: &[&str] = &["a.txt", "b.txt"];
        let dir = tempfile::tempdir().unwrap();
        let visible = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.'))
                .collect();
            names.sort();
            names
        };
        let mut report = ReportWriter::create(dir.path(), FILES, "b.txt", false).unwrap();
        report.add("a.txt", b"first").unwrap();
        assert!(!dir.path().join("a.txt").exists(), "hidden until finish");
        assert!(report.add("c.txt", b"?").is_err());
        drop(report);
        assert!(visible().is_empty());

        let mut report = ReportWriter::create(dir.path(), FILES, "b.txt", false).unwrap();
        report.add("a.txt", b"first").unwrap();
        report.add("b.txt", b"second").unwrap();
        report.finish().unwrap();
        assert_eq!(std::fs::read(dir.path().join("b.txt")).unwrap(), b"second");
        assert_eq!(visible(), ["a.txt", "b.txt"]);

        let err = ReportWriter::create(dir.path(), FILES, "b.txt", false).unwrap_err();
        assert!(err.to_string().contains("a.txt") && err.to_string().contains("already exists"));
        let mut report = ReportWriter::create(dir.path(), FILES, "b.txt", true).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("b.txt")).unwrap(),
            b"second",
            "overwrite keeps the old report until the commit"
        );
        report.add("a.txt", b"third").unwrap();
        assert!(report.finish().is_err(), "b.txt was never written");
        assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"first");
    }
}
