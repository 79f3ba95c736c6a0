use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::WriterError;

/// Rows buffered before a record batch goes to the Parquet writer: bounds memory on any
/// dataset size while keeping row groups reasonably large.
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

/// The third column of a table.
enum Payload {
    FileName(Vec<String>),
    Label(Vec<i64>),
}

/// One Parquet table written in batches of [`ROWS_PER_BATCH`] rows.
pub(crate) struct TableWriter {
    path: PathBuf,
    schema: SchemaRef,
    writer: Option<ArrowWriter<File>>,
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

    fn new(
        file: File,
        path: &Path,
        schema: SchemaRef,
        payload: Payload,
    ) -> Result<Self, WriterError> {
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
            .map_err(|source| parquet_error(path, source))?;
        Ok(Self {
            path: path.to_owned(),
            schema,
            writer: Some(writer),
            sample_ids: Vec::with_capacity(ROWS_PER_BATCH),
            timestamps: Vec::with_capacity(ROWS_PER_BATCH),
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

    fn push_key(&mut self, sample_id: i64, timestamp: f64) -> Result<(), WriterError> {
        self.sample_ids.push(sample_id);
        self.timestamps.push(timestamp);
        if self.sample_ids.len() >= ROWS_PER_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriterError> {
        if self.sample_ids.is_empty() {
            return Ok(());
        }
        let payload: ArrayRef = match &mut self.payload {
            Payload::FileName(names) => Arc::new(StringArray::from(std::mem::take(names))),
            Payload::Label(labels) => Arc::new(Int64Array::from(std::mem::take(labels))),
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(std::mem::take(&mut self.sample_ids))),
            Arc::new(Float64Array::from(std::mem::take(&mut self.timestamps))),
            payload,
        ];
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
