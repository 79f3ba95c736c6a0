//! The dataset manifest's file (`drift-pipeline index`): one row per image, in the dataset's
//! listing order, and the listing's facts as Parquet key-value metadata.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{Array, BooleanArray, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::WriterError;

/// One image of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Relative to the dataset root, `/`-separated.
    pub path: String,
    /// Its class folder.
    pub class_name: String,
    /// Its label.
    pub label: i64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Whether it decodes (`None`: not checked).
    pub decodes: Option<bool>,
}

/// Writes `entries` and `metadata` to `path`, atomically: a temporary file beside it, synced,
/// then renamed over it, so `path` is always absent, the old manifest or the new one.
pub fn write_manifest(
    path: &Path,
    entries: &[ManifestEntry],
    metadata: &BTreeMap<String, String>,
) -> Result<(), WriterError> {
    let error = |e: parquet::errors::ParquetError| WriterError::Parquet {
        path: path.to_owned(),
        source: Box::new(e),
    };
    let io = |source| WriterError::Io {
        path: path.to_owned(),
        source,
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("class_name", DataType::Utf8, false),
        Field::new("label", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("decodes", DataType::Boolean, true),
    ]));
    let columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from_iter_values(
            entries.iter().map(|e| &e.path),
        )),
        Arc::new(StringArray::from_iter_values(
            entries.iter().map(|e| &e.class_name),
        )),
        Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|e| e.label),
        )),
        Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|e| e.bytes as i64),
        )),
        Arc::new(BooleanArray::from(
            entries.iter().map(|e| e.decodes).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| error(e.into()))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(
            metadata
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect(),
        ))
        .build();
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&temporary).map_err(io)?;
        let mut writer = ArrowWriter::try_new(file, schema, Some(properties)).map_err(error)?;
        writer.write(&batch).map_err(error)?;
        writer.into_inner().map_err(error)?.sync_all().map_err(io)?;
        std::fs::rename(&temporary, path).map_err(io)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Reads a manifest written by [`write_manifest`]: its entries and its metadata.
pub fn read_manifest(
    path: &Path,
) -> Result<(Vec<ManifestEntry>, BTreeMap<String, String>), WriterError> {
    let bad = |reason: String| WriterError::BadTable {
        path: path.to_owned(),
        reason,
    };
    let file = drift_core::open_regular(path).map_err(|e| bad(e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(e.to_string()))?;
    let metadata: BTreeMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter_map(|kv| kv.value.clone().map(|v| (kv.key.clone(), v)))
        .collect();
    let reader = builder.build().map_err(|e| bad(e.to_string()))?;
    let not_a_manifest = || bad("not a dataset manifest (drift-pipeline index writes one)".into());
    let mut entries = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(not_a_manifest)
        };
        let int = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .ok_or_else(not_a_manifest)
        };
        let (paths, classes, labels, bytes) = (
            text("path")?,
            text("class_name")?,
            int("label")?,
            int("bytes")?,
        );
        let decodes = batch
            .column_by_name("decodes")
            .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
            .ok_or_else(not_a_manifest)?;
        for row in 0..batch.num_rows() {
            entries.push(ManifestEntry {
                path: paths.value(row).to_owned(),
                class_name: classes.value(row).to_owned(),
                label: labels.value(row),
                bytes: u64::try_from(bytes.value(row)).map_err(|_| not_a_manifest())?,
                decodes: decodes.is_valid(row).then(|| decodes.value(row)),
            });
        }
    }
    Ok((entries, metadata))
}
