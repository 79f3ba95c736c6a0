use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float64Array, Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::WriterError;

/// Rows buffered before a record batch goes to the Parquet writer, and rows per row group:
/// bounds memory on any dataset size while keeping row groups reasonably large.
const ROWS_PER_BATCH: usize = 16_384;

/// `input_mapping.parquet`: `sample_id` Int64, `timestamp` Float64, `file_name` Utf8.
pub fn input_mapping_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
        Field::new("file_name", DataType::Utf8, false),
    ]))
}

/// `target.parquet`: `sample_id` Int64, `timestamp` Float64, `label` Int64.
pub fn target_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
        Field::new("label", DataType::Int64, false),
    ]))
}

pub use drift_core::EMBEDDING_DIM;

/// Rows of `embeddings.parquet` buffered per batch and per row group: 4 MiB of f64 values.
const EMBEDDING_ROWS_PER_BATCH: usize = 1024;

/// `embeddings.parquet`: `sample_id` Int64, `timestamp` Float64, `embedding`
/// FixedSizeList(Float64, 512), which polars reads as `Array(Float64, 512)`. The item field is
/// nullable (arrow's and polars' default) though no value is ever null, so that the type equals
/// what other tools write for the same column.
pub fn embeddings_schema() -> SchemaRef {
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
/// Boolean, `drift_probability` Float64, then one nullable Float64 column per name in
/// `parameter_columns` (null where a transform was not applied).
pub fn drift_log_schema(parameter_columns: &[&str]) -> SchemaRef {
    let mut fields = vec![
        Field::new("sample_id", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("drifted", DataType::Boolean, false),
        Field::new("drift_probability", DataType::Float64, false),
    ];
    fields.extend(
        parameter_columns
            .iter()
            .map(|name| Field::new(*name, DataType::Float64, true)),
    );
    Arc::new(Schema::new(fields))
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
        /// One vector per parameter column.
        parameters: Vec<Vec<Option<f64>>>,
    },
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

impl TableWriter {
    pub(crate) fn input_mapping(file: File, path: &Path) -> Result<Self, WriterError> {
        Self::new(
            file,
            path,
            input_mapping_schema(),
            Payload::FileName(Vec::new()),
        )
    }

    pub(crate) fn target(file: File, path: &Path) -> Result<Self, WriterError> {
        Self::new(file, path, target_schema(), Payload::Label(Vec::new()))
    }

    pub(crate) fn embeddings(file: File, path: &Path) -> Result<Self, WriterError> {
        Self::new(
            file,
            path,
            embeddings_schema(),
            Payload::Embedding(Vec::with_capacity(EMBEDDING_ROWS_PER_BATCH * EMBEDDING_DIM)),
        )
    }

    pub(crate) fn drift_log(
        file: File,
        path: &Path,
        parameter_columns: &[&str],
    ) -> Result<Self, WriterError> {
        Self::new(
            file,
            path,
            drift_log_schema(parameter_columns),
            Payload::DriftLog {
                segments: Vec::new(),
                drifted: Vec::new(),
                probabilities: Vec::new(),
                parameters: vec![Vec::new(); parameter_columns.len()],
            },
        )
    }

    fn new(
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

    pub(crate) fn push_file_name(
        &mut self,
        sample_id: i64,
        timestamp: f64,
        file_name: &str,
    ) -> Result<(), WriterError> {
        let Payload::FileName(names) = &mut self.payload else {
            unreachable!("input_mapping is the only table with file names");
        };
        names.push(file_name.to_owned());
        self.push_key(sample_id, timestamp)
    }

    pub(crate) fn push_label(
        &mut self,
        sample_id: i64,
        timestamp: f64,
        label: i64,
    ) -> Result<(), WriterError> {
        let Payload::Label(labels) = &mut self.payload else {
            unreachable!("target is the only table with labels");
        };
        labels.push(label);
        self.push_key(sample_id, timestamp)
    }

    /// `embedding` must hold [`EMBEDDING_DIM`] values (the caller checks).
    pub(crate) fn push_embedding(
        &mut self,
        sample_id: i64,
        timestamp: f64,
        embedding: &[f32],
    ) -> Result<(), WriterError> {
        let Payload::Embedding(values) = &mut self.payload else {
            unreachable!("embeddings is the only table with embeddings");
        };
        values.extend(embedding.iter().map(|&v| f64::from(v)));
        self.push_key(sample_id, timestamp)
    }

    /// `values` holds one entry per parameter column (the caller checks).
    pub(crate) fn push_drift_log(
        &mut self,
        sample_id: i64,
        timestamp: f64,
        row: &crate::DriftLogRow<'_>,
    ) -> Result<(), WriterError> {
        let Payload::DriftLog {
            segments,
            drifted,
            probabilities,
            parameters,
        } = &mut self.payload
        else {
            unreachable!("drift_log is the only table with drift records");
        };
        segments.push(row.segment.to_owned());
        drifted.push(row.drifted);
        probabilities.push(row.drift_probability);
        for (column, value) in parameters.iter_mut().zip(row.values) {
            column.push(*value);
        }
        self.push_key(sample_id, timestamp)
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
                parameters,
            } => {
                columns.push(Arc::new(StringArray::from(std::mem::take(segments))));
                columns.push(Arc::new(BooleanArray::from(std::mem::take(drifted))));
                columns.push(Arc::new(Float64Array::from(std::mem::take(probabilities))));
                for column in parameters {
                    columns.push(Arc::new(Float64Array::from(std::mem::take(column))));
                }
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

fn parquet_error(path: &Path, source: parquet::errors::ParquetError) -> WriterError {
    WriterError::Parquet {
        path: path.to_owned(),
        source,
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
        let mut table = TableWriter::embeddings(File::create(&path).unwrap(), &path).unwrap();
        let rows = 2 * EMBEDDING_ROWS_PER_BATCH + 5;
        let embedding = vec![0.25f32; EMBEDDING_DIM];
        for id in 0..rows as i64 {
            table.push_embedding(id, id as f64, &embedding).unwrap();
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
