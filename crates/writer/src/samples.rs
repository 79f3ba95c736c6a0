//! Reading an output's samples back, whole (`drift-pipeline merge`): each sample's PNG as its
//! zip entry stored it and its row of every table, in sample_id order, one batch at a time.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow_array::{
    Array, BooleanArray, FixedSizeListArray, Float64Array, Int64Array, MapArray, StringArray,
};
use arrow_array::{RecordBatch, RecordBatchReader};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::WriterError;
use crate::tables::Row;

/// One sample as an output holds it: every table's values and the PNG bytes of its zip entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSample {
    pub(crate) sample_id: i64,
    pub(crate) timestamp: f64,
    pub(crate) file_name: String,
    pub(crate) label: i64,
    pub(crate) embedding: Option<Vec<f32>>,
    pub(crate) segment: String,
    pub(crate) source_path: String,
    pub(crate) class_name: String,
    pub(crate) original_label: i64,
    pub(crate) zip_entry: String,
    pub(crate) class_prior: Option<f64>,
    pub(crate) drifted: bool,
    pub(crate) drift_probability: f64,
    pub(crate) levels: Vec<(String, f64)>,
    pub(crate) parameters: Vec<(String, f64)>,
    pub(crate) png: Vec<u8>,
}

impl StoredSample {
    /// Its id.
    pub fn sample_id(&self) -> u64 {
        u64::try_from(self.sample_id).unwrap_or(0)
    }

    /// Bytes of its PNG.
    pub fn png_bytes(&self) -> usize {
        self.png.len()
    }

    pub(crate) fn row(&self) -> Row<'_> {
        Row {
            sample_id: self.sample_id,
            timestamp: self.timestamp,
            file_name: &self.file_name,
            label: self.label,
            embedding: self.embedding.as_deref(),
            segment: &self.segment,
            source_path: &self.source_path,
            class_name: &self.class_name,
            original_label: self.original_label,
            zip_entry: &self.zip_entry,
            class_prior: self.class_prior,
            drifted: self.drifted,
            drift_probability: self.drift_probability,
            levels: &self.levels,
            parameters: &self.parameters,
        }
    }
}

/// A table read a record batch at a time, row by row.
struct TableCursor {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    batch: Option<RecordBatch>,
    row: usize,
}

impl TableCursor {
    fn open(folder: &Path, name: &str) -> Result<Self, WriterError> {
        let path = folder.join(name);
        let file = drift_core::open_regular(&path).map_err(|e| bad(&path, e.to_string()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|builder| builder.build())
            .map_err(|e| bad(&path, e.to_string()))?;
        Ok(Self {
            path,
            reader,
            batch: None,
            row: 0,
        })
    }

    /// The batch holding the next row and its index, or `None` at the end.
    fn next(&mut self) -> Result<Option<(RecordBatch, usize)>, WriterError> {
        while self.batch.as_ref().is_none_or(|b| self.row >= b.num_rows()) {
            match self.reader.next() {
                None => return Ok(None),
                Some(batch) => {
                    self.batch = Some(batch.map_err(|e| bad(&self.path, e.to_string()))?);
                    self.row = 0;
                }
            }
        }
        self.row += 1;
        // A record batch's columns are shared, so the clone is cheap.
        let batch = self.batch.clone().expect("set above");
        Ok(Some((batch, self.row - 1)))
    }
}

fn bad(path: &Path, reason: String) -> WriterError {
    WriterError::BadTable {
        path: path.to_owned(),
        reason,
    }
}

/// Column `name` of `batch` as array type `T`: tables are read by column name, never by
/// position.
fn column<'a, T: 'static>(
    path: &Path,
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a T, WriterError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| bad(path, format!("column {name} is missing or of another type")))
}

/// The zip entries a reader checks the tables against: the zip itself, or (when the zip is
/// elsewhere) its entries' names.
enum Entries {
    Zip(zip::ZipArchive<File>),
    Names(Vec<String>),
}

impl Entries {
    fn len(&self) -> usize {
        match self {
            Entries::Zip(zip) => zip.len(),
            Entries::Names(names) => names.len(),
        }
    }
}

/// Reads an output folder's samples in order: [`SampleReader::open`], then iterate.
pub struct SampleReader {
    folder: PathBuf,
    entries: Entries,
    entry: usize,
    input_mapping: TableCursor,
    target: TableCursor,
    drift_log: TableCursor,
    embeddings: Option<TableCursor>,
}

impl SampleReader {
    /// Opens the output in `folder` (embeddings are read when it has them), checking that its
    /// drift log has this version's schema.
    pub fn open(folder: &Path) -> Result<Self, WriterError> {
        let zip_path = folder.join(crate::SAMPLED_IMAGES);
        let file =
            drift_core::open_regular(&zip_path).map_err(|e| bad(&zip_path, e.to_string()))?;
        let zip = zip::ZipArchive::new(file).map_err(|e| bad(&zip_path, e.to_string()))?;
        Self::open_with(folder, Entries::Zip(zip))
    }

    /// Opens the tables of the output in `folder` whose zip is elsewhere, its entries named
    /// `entry_names` in order (its central directory's): samples come with their rows and no
    /// PNG, each checked to be the entry the zip has in its place.
    pub fn open_rows_only(folder: &Path, entry_names: Vec<String>) -> Result<Self, WriterError> {
        Self::open_with(folder, Entries::Names(entry_names))
    }

    fn open_with(folder: &Path, entries: Entries) -> Result<Self, WriterError> {
        let drift_log = TableCursor::open(folder, crate::DRIFT_LOG)?;
        let schema = drift_log.reader.schema();
        if schema.fields() != crate::tables::drift_log_schema().fields() {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(bad(
                &drift_log.path,
                format!(
                    "its columns are [{}], not this version's (a `levels` and a `parameters` \
                     map after the provenance): it was written by another version",
                    names.join(", ")
                ),
            ));
        }
        let embeddings = match folder.join(crate::EMBEDDINGS).exists() {
            true => Some(TableCursor::open(folder, crate::EMBEDDINGS)?),
            false => None,
        };
        Ok(Self {
            folder: folder.to_owned(),
            entries,
            entry: 0,
            input_mapping: TableCursor::open(folder, crate::INPUT_MAPPING)?,
            target: TableCursor::open(folder, crate::TARGET)?,
            drift_log,
            embeddings,
        })
    }

    /// Whether the output has embeddings.
    pub fn has_embeddings(&self) -> bool {
        self.embeddings.is_some()
    }

    /// Samples in the output (entries of its zip).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read_next(&mut self) -> Result<Option<StoredSample>, WriterError> {
        let Some((batch, row)) = self.drift_log.next()? else {
            return self.check_end().map(|()| None);
        };
        let path = self.drift_log.path.clone();
        let sample = drift_log_row(&path, &batch, row)?;
        let mut sample = sample;
        self.fill_from_tables(&mut sample)?;
        sample.png = self.read_entry(&sample.zip_entry)?;
        Ok(Some(sample))
    }

    /// The label, file name and embedding of `sample` from their tables, checked to be the
    /// same sample's.
    fn fill_from_tables(&mut self, sample: &mut StoredSample) -> Result<(), WriterError> {
        let id = sample.sample_id;
        let key = |path: &Path, batch: &RecordBatch, row: usize| -> Result<(), WriterError> {
            let ids = column::<Int64Array>(path, batch, "sample_id")?;
            if ids.value(row) != id {
                return Err(bad(
                    path,
                    format!(
                        "row of sample {} where the drift log has {id}",
                        ids.value(row)
                    ),
                ));
            }
            Ok(())
        };
        let ended = |path: &Path| bad(path, format!("ends before sample {id}"));
        let (batch, row) = self
            .target
            .next()?
            .ok_or_else(|| ended(&self.target.path))?;
        key(&self.target.path, &batch, row)?;
        sample.label = column::<Int64Array>(&self.target.path, &batch, "label")?.value(row);
        let (batch, row) = self
            .input_mapping
            .next()?
            .ok_or_else(|| ended(&self.input_mapping.path))?;
        key(&self.input_mapping.path, &batch, row)?;
        sample.file_name = column::<StringArray>(&self.input_mapping.path, &batch, "file_name")?
            .value(row)
            .to_owned();
        if let Some(embeddings) = &mut self.embeddings {
            let (batch, row) = embeddings.next()?.ok_or_else(|| ended(&embeddings.path))?;
            key(&embeddings.path, &batch, row)?;
            let list =
                column::<FixedSizeListArray>(&embeddings.path, &batch, "embedding")?.value(row);
            let values = list
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| bad(&embeddings.path, "embedding values are not Float64".into()))?;
            // Written from f32, so the narrowing is exact.
            sample.embedding = Some(values.values().iter().map(|&v| v as f32).collect());
        }
        Ok(())
    }

    /// The bytes of the next zip entry, which must be named `name`.
    fn read_entry(&mut self, name: &str) -> Result<Vec<u8>, WriterError> {
        let zip_path = self.folder.join(crate::SAMPLED_IMAGES);
        if self.entry >= self.entries.len() {
            return Err(bad(&zip_path, format!("has no entry {name}")));
        }
        let zip = match &mut self.entries {
            Entries::Zip(zip) => zip,
            Entries::Names(names) => {
                if names[self.entry] != name {
                    return Err(bad(
                        &zip_path,
                        format!(
                            "entry {} is {}, where the drift log has {name}",
                            self.entry, names[self.entry]
                        ),
                    ));
                }
                self.entry += 1;
                return Ok(Vec::new());
            }
        };
        let mut file = zip
            .by_index(self.entry)
            .map_err(|e| bad(&zip_path, e.to_string()))?;
        let entry_name = file
            .name()
            .map_err(|e| bad(&zip_path, e.to_string()))?
            .into_owned();
        if entry_name != name {
            return Err(bad(
                &zip_path,
                format!(
                    "entry {} is {entry_name}, where the drift log has {name}",
                    self.entry
                ),
            ));
        }
        let mut png = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
        // Reading checks the entry's CRC.
        file.read_to_end(&mut png)
            .map_err(|e| bad(&zip_path, format!("{name}: {e}")))?;
        self.entry += 1;
        Ok(png)
    }

    fn check_end(&mut self) -> Result<(), WriterError> {
        if self.entry != self.entries.len() {
            return Err(bad(
                &self.folder.join(crate::SAMPLED_IMAGES),
                format!(
                    "has {} entries, the drift log {} rows",
                    self.entries.len(),
                    self.entry
                ),
            ));
        }
        Ok(())
    }
}

impl Iterator for SampleReader {
    type Item = Result<StoredSample, WriterError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_next().transpose()
    }
}

/// The drift log's values of one row; the other tables' fields are filled in after.
fn drift_log_row(
    path: &Path,
    batch: &RecordBatch,
    row: usize,
) -> Result<StoredSample, WriterError> {
    let text = |name| column::<StringArray>(path, batch, name).map(|c| c.value(row).to_owned());
    let int = |name| column::<Int64Array>(path, batch, name).map(|c| c.value(row));
    let float = |name| column::<Float64Array>(path, batch, name);
    let optional = |c: &Float64Array| c.is_valid(row).then(|| c.value(row));
    Ok(StoredSample {
        sample_id: int("sample_id")?,
        timestamp: float("timestamp")?.value(row),
        segment: text("segment")?,
        drifted: column::<BooleanArray>(path, batch, "drifted")?.value(row),
        drift_probability: float("drift_probability")?.value(row),
        source_path: text("source_path")?,
        class_name: text("class_name")?,
        original_label: int("original_label")?,
        zip_entry: text("zip_entry")?,
        class_prior: optional(float("class_prior")?),
        levels: map_entries(path, column::<MapArray>(path, batch, "levels")?, row)?,
        parameters: map_entries(path, column::<MapArray>(path, batch, "parameters")?, row)?,
        file_name: String::new(),
        label: 0,
        embedding: None,
        png: Vec::new(),
    })
}

/// The `(key, value)` entries of row `row` of a `Map<Utf8, Float64>` column.
pub(crate) fn map_entries(
    path: &Path,
    map: &MapArray,
    row: usize,
) -> Result<Vec<(String, f64)>, WriterError> {
    let entries = map.value(row);
    let keys = entries
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| bad(path, "a map's keys are not text".into()))?;
    let values = entries
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| bad(path, "a map's values are not Float64".into()))?;
    Ok((0..entries.len())
        .map(|i| (keys.value(i).to_owned(), values.value(i)))
        .collect())
}
