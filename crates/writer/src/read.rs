//! Reading a drift log back (`drift-pipeline timeline`): each sample's segment, whether it was
//! drifted, its probability, every transform's level and its class.

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, MapArray, StringArray};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use drift_core::LoggedSample;

use crate::WriterError;

/// Reads `folder/drift_log.parquet`.
pub fn read_drift_log(folder: &Path) -> Result<Vec<LoggedSample>, WriterError> {
    let mut samples = Vec::new();
    for batch in DriftLogBatches::open(folder)? {
        samples.extend(batch?);
    }
    Ok(samples)
}

/// `folder/drift_log.parquet` a record batch (1,024 rows) at a time, so a long stream's log is
/// never held whole.
pub struct DriftLogBatches {
    path: std::path::PathBuf,
    reader: ParquetRecordBatchReader,
}

impl DriftLogBatches {
    /// Opens `folder/drift_log.parquet`.
    pub fn open(folder: &Path) -> Result<Self, WriterError> {
        let path = folder.join("drift_log.parquet");
        let bad = |reason: String| WriterError::BadTable {
            path: path.clone(),
            reason,
        };
        let file = drift_core::open_regular(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => bad("no drift log here (not an output folder?)".into()),
            _ => bad(e.to_string()),
        })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|builder| builder.build())
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { path, reader })
    }
}

impl Iterator for DriftLogBatches {
    type Item = Result<Vec<LoggedSample>, WriterError>;

    fn next(&mut self) -> Option<Self::Item> {
        let bad = |reason: String| WriterError::BadTable {
            path: self.path.clone(),
            reason,
        };
        let batch = match self.reader.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(bad(e.to_string()))),
        };
        let mut samples = Vec::with_capacity(batch.num_rows());
        Some(
            read_batch(&self.path, &batch, &mut samples)
                .map(|()| samples)
                .map_err(bad),
        )
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<Option<&'a T>, String> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(column) => column
            .as_any()
            .downcast_ref::<T>()
            .map(Some)
            .ok_or_else(|| format!("column {name} has an unexpected type")),
    }
}

fn read_batch(
    path: &Path,
    batch: &RecordBatch,
    samples: &mut Vec<LoggedSample>,
) -> Result<(), String> {
    let required = |name: &str| format!("no column {name}: not a drift log");
    let ids = column::<Int64Array>(batch, "sample_id")?.ok_or_else(|| required("sample_id"))?;
    let timestamps =
        column::<Float64Array>(batch, "timestamp")?.ok_or_else(|| required("timestamp"))?;
    let segments = column::<StringArray>(batch, "segment")?.ok_or_else(|| required("segment"))?;
    let drifted = column::<BooleanArray>(batch, "drifted")?.ok_or_else(|| required("drifted"))?;
    let probabilities = column::<Float64Array>(batch, "drift_probability")?
        .ok_or_else(|| required("drift_probability"))?;
    let classes = column::<StringArray>(batch, "class_name")?;
    let priors = column::<Float64Array>(batch, "class_prior")?;
    let sources = column::<StringArray>(batch, "source_path")?;
    let levels = column::<MapArray>(batch, "levels")?.ok_or_else(|| {
        "no column levels: a drift log of an earlier version (one column per transform)".to_owned()
    })?;
    for row in 0..batch.num_rows() {
        let sample_id = u64::try_from(ids.value(row))
            .map_err(|_| format!("negative sample_id {}", ids.value(row)))?;
        samples.push(LoggedSample {
            sample_id,
            timestamp: timestamps.value(row),
            segment: segments.value(row).to_owned(),
            drifted: drifted.value(row),
            probability: probabilities.value(row),
            levels: crate::samples::map_entries(path, levels, row).map_err(|e| e.to_string())?,
            class_name: classes
                .filter(|c| c.is_valid(row))
                .map(|c| c.value(row).to_owned()),
            class_prior: priors.filter(|c| c.is_valid(row)).map(|c| c.value(row)),
            source_path: sources
                .filter(|c| c.is_valid(row))
                .map(|c| c.value(row).to_owned()),
        });
    }
    Ok(())
}
