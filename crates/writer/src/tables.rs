//! The output's Parquet tables, each declared once (`Table`: file name, schema, payload), and
//! the streaming writer every sample's `Row` goes to. Schemas and arrow types stay private to
//! the crate.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, MapBuilder, MapFieldNames, StringBuilder};
use arrow_array::{Array, RecordBatch};
use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float64Array, Int64Array, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::WriterError;

/// Rows buffered before a record batch goes to the Parquet writer, and rows per row group:
/// bounds memory on any dataset size while keeping row groups reasonably large.
const ROWS_PER_BATCH: usize = 16_384;

/// `input_mapping.parquet`: `sample_id` Int64, `timestamp` Float64, `file_name` Utf8.
fn input_mapping_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
        Field::new("file_name", DataType::Utf8, false),
    ]))
}

/// `target.parquet`: `sample_id` Int64, `timestamp` Float64, `label` Int64.
fn target_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
        Field::new("label", DataType::Int64, false),
    ]))
}

use drift_core::EMBEDDING_DIM;

/// Rows of `embeddings.parquet` buffered per batch and per row group: 4 MiB of f64 values.
const EMBEDDING_ROWS_PER_BATCH: usize = 1024;

/// `embeddings.parquet`: `sample_id` Int64, `timestamp` Float64, `embedding`
/// FixedSizeList(Float64, 512), which polars reads as `Array(Float64, 512)`. The item field is
/// nullable (arrow's and polars' default) though no value is ever null, so that the type equals
/// what other tools write for the same column.
fn embeddings_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(
                Arc::new(Field::new_list_field(DataType::Float64, true)),
                EMBEDDING_DIM as i32,
            ),
            false,
        ),
    ]))
}

/// `drift_log.parquet`: `sample_id` Int64, `timestamp` Float64, `segment` Utf8, `drifted`
/// Boolean, `drift_probability` Float64; the provenance `source_path` Utf8 (relative to the
/// input root), `class_name` Utf8, `original_label` Int64 (before any class mapping),
/// `zip_entry` Utf8 (the entry's exact name), `class_prior` Float64 (nullable: the prior of the
/// sample's class under label shift); then what the transforms did as two maps from Utf8 to
/// Float64, empty where nothing was applied: `levels` (transform name to its level) and
/// `parameters` (`transform.parameter` to the value drawn). Maps, not a column per transform:
/// the schema is the same whatever the registry holds.
pub(crate) fn drift_log_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("drifted", DataType::Boolean, false),
        Field::new("drift_probability", DataType::Float64, false),
        Field::new("source_path", DataType::Utf8, false),
        Field::new("class_name", DataType::Utf8, false),
        Field::new("original_label", DataType::Int64, false),
        Field::new("zip_entry", DataType::Utf8, false),
        Field::new("class_prior", DataType::Float64, true),
        Field::new("levels", map_builder().finish().data_type().clone(), false),
        Field::new(
            "parameters",
            map_builder().finish().data_type().clone(),
            false,
        ),
    ]))
}

/// A builder of a `Map<Utf8, Float64>` column, with Parquet's field names (`key_value`, `key`,
/// `value`) and neither keys nor values null.
fn map_builder() -> MapBuilder<StringBuilder, Float64Builder> {
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    MapBuilder::new(Some(names), StringBuilder::new(), Float64Builder::new())
        .with_values_field(Field::new("value", DataType::Float64, false))
}

/// The columns of a table after `sample_id` and `timestamp`.
enum Payload {
    FileName(Vec<String>),
    Label(Vec<i64>),
    /// `EMBEDDING_DIM` values per row, flat.
    Embedding(Vec<f64>),
    DriftLog {
        segments: Vec<String>,
        drifted: Vec<bool>,
        probabilities: Vec<f64>,
        provenance: Provenance,
        /// The `levels` map column (boxed: a builder is large, and one table has it).
        levels: Box<MapBuilder<StringBuilder, Float64Builder>>,
        /// The `parameters` map column.
        parameters: Box<MapBuilder<StringBuilder, Float64Builder>>,
    },
}

/// The drift log's provenance columns, one entry per row.
#[derive(Default)]
struct Provenance {
    source_paths: Vec<String>,
    class_names: Vec<String>,
    original_labels: Vec<i64>,
    zip_entries: Vec<String>,
    class_priors: Vec<Option<f64>>,
}

/// One Parquet table written in batches of [`ROWS_PER_BATCH`] rows.
pub(crate) struct TableWriter {
    path: PathBuf,
    schema: SchemaRef,
    writer: Option<ArrowWriter<File>>,
    rows_per_batch: usize,
    sample_ids: Vec<i64>,
    timestamps: Vec<f64>,
    payload: Payload,
}

/// The Parquet tables of an output, each declared once here: its file and its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    InputMapping,
    Target,
    DriftLog,
    Embeddings,
}

impl Table {
    /// The tables an output holds, in the order they are written and listed.
    pub(crate) fn of_output(embeddings: bool) -> Vec<Table> {
        let mut tables = vec![Table::InputMapping, Table::Target, Table::DriftLog];
        if embeddings {
            tables.push(Table::Embeddings);
        }
        tables
    }

    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Table::InputMapping => crate::INPUT_MAPPING,
            Table::Target => crate::TARGET,
            Table::DriftLog => crate::DRIFT_LOG,
            Table::Embeddings => crate::EMBEDDINGS,
        }
    }

    fn schema(self) -> SchemaRef {
        match self {
            Table::InputMapping => input_mapping_schema(),
            Table::Target => target_schema(),
            Table::DriftLog => drift_log_schema(),
            Table::Embeddings => embeddings_schema(),
        }
    }

    fn empty_payload(self) -> Payload {
        match self {
            Table::InputMapping => Payload::FileName(Vec::new()),
            Table::Target => Payload::Label(Vec::new()),
            Table::DriftLog => Payload::DriftLog {
                segments: Vec::new(),
                drifted: Vec::new(),
                probabilities: Vec::new(),
                provenance: Provenance::default(),
                levels: Box::new(map_builder()),
                parameters: Box::new(map_builder()),
            },
            Table::Embeddings => {
                Payload::Embedding(Vec::with_capacity(EMBEDDING_ROWS_PER_BATCH * EMBEDDING_DIM))
            }
        }
    }
}

/// One sample's values, from which every table takes its columns.
pub(crate) struct Row<'a> {
    pub sample_id: i64,
    pub timestamp: f64,
    pub file_name: &'a str,
    /// The published label.
    pub label: i64,
    /// [`EMBEDDING_DIM`] values with embeddings on (the caller checks).
    pub embedding: Option<&'a [f32]>,
    /// The `segment` column.
    pub segment: &'a str,
    /// Relative to the input root.
    pub source_path: &'a str,
    pub class_name: &'a str,
    pub original_label: i64,
    pub zip_entry: &'a str,
    pub class_prior: Option<f64>,
    pub drifted: bool,
    pub drift_probability: f64,
    /// `(transform, level)` per applied transform.
    pub levels: &'a [(String, f64)],
    /// `(transform.parameter, value)` per drawn parameter.
    pub parameters: &'a [(String, f64)],
}

impl TableWriter {
    /// Table `table` written to `file` (at `path`, for errors).
    pub(crate) fn new(table: Table, file: File, path: &Path) -> Result<Self, WriterError> {
        Self::with_payload(file, path, table.schema(), table.empty_payload())
    }

    fn with_payload(
        file: File,
        path: &Path,
        schema: SchemaRef,
        payload: Payload,
    ) -> Result<Self, WriterError> {
        let rows_per_batch = match payload {
            Payload::Embedding(_) => EMBEDDING_ROWS_PER_BATCH,
            _ => ROWS_PER_BATCH,
        };
        // The Parquet writer keeps a whole row group in memory (a million rows by default: 4 GiB
        // of embeddings), so each batch is closed as its own row group.
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(rows_per_batch))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
            .map_err(|source| parquet_error(path, source))?;
        Ok(Self {
            path: path.to_owned(),
            schema,
            writer: Some(writer),
            rows_per_batch,
            sample_ids: Vec::with_capacity(rows_per_batch),
            timestamps: Vec::with_capacity(rows_per_batch),
            payload,
        })
    }

    /// Adds `row`'s columns of this table.
    pub(crate) fn push(&mut self, row: &Row<'_>) -> Result<(), WriterError> {
        match &mut self.payload {
            Payload::FileName(names) => names.push(row.file_name.to_owned()),
            Payload::Label(labels) => labels.push(row.label),
            Payload::Embedding(values) => {
                let embedding = row
                    .embedding
                    .expect("the writer checks that every sample has its embedding");
                values.extend(embedding.iter().map(|&v| f64::from(v)));
            }
            Payload::DriftLog {
                segments,
                drifted,
                probabilities,
                provenance,
                levels,
                parameters,
            } => {
                segments.push(row.segment.to_owned());
                drifted.push(row.drifted);
                probabilities.push(row.drift_probability);
                provenance.source_paths.push(row.source_path.to_owned());
                provenance.class_names.push(row.class_name.to_owned());
                provenance.original_labels.push(row.original_label);
                provenance.zip_entries.push(row.zip_entry.to_owned());
                provenance.class_priors.push(row.class_prior);
                append_map(levels, row.levels).map_err(|e| parquet_error(&self.path, e.into()))?;
                append_map(parameters, row.parameters)
                    .map_err(|e| parquet_error(&self.path, e.into()))?;
            }
        }
        self.push_key(row.sample_id, row.timestamp)
    }

    fn push_key(&mut self, sample_id: i64, timestamp: f64) -> Result<(), WriterError> {
        self.sample_ids.push(sample_id);
        self.timestamps.push(timestamp);
        if self.sample_ids.len() >= self.rows_per_batch {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriterError> {
        if self.sample_ids.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(std::mem::take(&mut self.sample_ids))),
            Arc::new(Float64Array::from(std::mem::take(&mut self.timestamps))),
        ];
        match &mut self.payload {
            Payload::FileName(names) => {
                columns.push(Arc::new(StringArray::from(std::mem::take(names))));
            }
            Payload::Label(labels) => {
                columns.push(Arc::new(Int64Array::from(std::mem::take(labels))));
            }
            Payload::Embedding(values) => {
                let values = Float64Array::from(std::mem::take(values));
                columns.push(Arc::new(
                    FixedSizeListArray::try_new(
                        Arc::new(Field::new_list_field(DataType::Float64, true)),
                        EMBEDDING_DIM as i32,
                        Arc::new(values),
                        None,
                    )
                    .map_err(|e| parquet_error(&self.path, e.into()))?,
                ));
            }
            Payload::DriftLog {
                segments,
                drifted,
                probabilities,
                provenance,
                levels,
                parameters,
            } => {
                columns.push(Arc::new(StringArray::from(std::mem::take(segments))));
                columns.push(Arc::new(BooleanArray::from(std::mem::take(drifted))));
                columns.push(Arc::new(Float64Array::from(std::mem::take(probabilities))));
                let p = std::mem::take(provenance);
                columns.push(Arc::new(StringArray::from(p.source_paths)));
                columns.push(Arc::new(StringArray::from(p.class_names)));
                columns.push(Arc::new(Int64Array::from(p.original_labels)));
                columns.push(Arc::new(StringArray::from(p.zip_entries)));
                columns.push(Arc::new(Float64Array::from(p.class_priors)));
                columns.push(Arc::new(levels.finish()));
                columns.push(Arc::new(parameters.finish()));
            }
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| parquet_error(&self.path, e.into()))?;
        self.writer
            .as_mut()
            .expect("writer is open until finish")
            .write(&batch)
            .map_err(|source| parquet_error(&self.path, source))
    }

    pub(crate) fn finish(&mut self) -> Result<(), WriterError> {
        self.flush()?;
        let writer = self.writer.take().expect("finish is called once");
        let file = writer
            .into_inner()
            .map_err(|source| parquet_error(&self.path, source))?;
        file.sync_all().map_err(|source| WriterError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Appends one row's map of `entries`.
fn append_map(
    builder: &mut MapBuilder<StringBuilder, Float64Builder>,
    entries: &[(String, f64)],
) -> Result<(), arrow_schema::ArrowError> {
    for (key, value) in entries {
        builder.keys().append_value(key);
        builder.values().append_value(*value);
    }
    builder.append(true)
}

fn parquet_error(path: &Path, source: parquet::errors::ParquetError) -> WriterError {
    WriterError::Parquet {
        path: path.to_owned(),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn row_groups_are_closed_batch_by_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("embeddings.parquet");
        let mut table =
            TableWriter::new(Table::Embeddings, File::create(&path).unwrap(), &path).unwrap();
        let rows = 2 * EMBEDDING_ROWS_PER_BATCH + 5;
        let embedding = vec![0.25f32; EMBEDDING_DIM];
        for id in 0..rows as i64 {
            let row = Row {
                sample_id: id,
                timestamp: id as f64,
                file_name: "f.png",
                label: 0,
                embedding: Some(&embedding),
                segment: "s",
                source_path: "c/f.jpg",
                class_name: "c",
                original_label: 0,
                zip_entry: "f.png",
                class_prior: None,
                drifted: false,
                drift_probability: 0.0,
                levels: &[],
                parameters: &[],
            };
            table.push(&row).unwrap();
        }
        table.finish().unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|group| group.num_rows())
            .collect();
        let batch = EMBEDDING_ROWS_PER_BATCH as i64;
        assert_eq!(groups, [batch, batch, 5]);
    }
}
