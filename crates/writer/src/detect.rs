//! What `drift-pipeline detect` reads and writes: an output's embeddings by record batches (so a
//! long stream is never held whole), and the report's tables, `windows.parquet` (one row per
//! detector and window), `online.parquet` (one row per online detector and sample) and
//! `alarms.parquet` (one row per alarm, the exchange format `score`
//! takes from users too).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float64Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::report::parquet_bytes;
use crate::{EMBEDDING_DIM, WriterError};

/// Consecutive rows of `embeddings.parquet`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddingBatch {
    /// Sample ids, one per row.
    pub sample_ids: Vec<i64>,
    /// Timestamps, one per row.
    pub timestamps: Vec<f64>,
    /// [`EMBEDDING_DIM`] values per row, row after row.
    pub values: Vec<f64>,
}

/// `embeddings.parquet` of an output folder, read a record batch (1,024 rows) at a time.
pub struct EmbeddingBatches {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
}

impl EmbeddingBatches {
    /// Opens `folder/embeddings.parquet`.
    pub fn open(folder: &Path) -> Result<Self, WriterError> {
        let path = folder.join(crate::EMBEDDINGS);
        let bad = |reason: String| WriterError::BadTable {
            path: path.clone(),
            reason,
        };
        let file = drift_core::open_regular(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                bad("no embeddings here (generate with --embeddings)".into())
            }
            _ => bad(e.to_string()),
        })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|builder| builder.build())
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { path, reader })
    }

    fn convert(&self, batch: &RecordBatch) -> Result<EmbeddingBatch, WriterError> {
        let bad = |reason: &str| WriterError::BadTable {
            path: self.path.clone(),
            reason: reason.to_owned(),
        };
        let (Some(ids), Some(timestamps), Some(lists)) = (
            batch
                .column_by_name("sample_id")
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>()),
            batch
                .column_by_name("timestamp")
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>()),
            batch
                .column_by_name("embedding")
                .and_then(|c| c.as_any().downcast_ref::<FixedSizeListArray>()),
        ) else {
            return Err(bad("not an embeddings table of this tool"));
        };
        if lists.value_length() as usize != EMBEDDING_DIM || lists.null_count() != 0 {
            return Err(bad("embeddings are not 512 values each"));
        }
        let values = lists
            .values()
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| bad("embedding values are not Float64"))?;
        if values.null_count() != 0 {
            return Err(bad("an embedding holds a null value"));
        }
        let start = lists.offset() * EMBEDDING_DIM;
        let values = &values.values()[start..start + lists.len() * EMBEDDING_DIM];
        if values.iter().any(|v| !v.is_finite()) {
            return Err(bad("an embedding holds a value that is not finite"));
        }
        Ok(EmbeddingBatch {
            sample_ids: ids.values().to_vec(),
            timestamps: timestamps.values().to_vec(),
            values: values.to_vec(),
        })
    }
}

impl Iterator for EmbeddingBatches {
    type Item = Result<EmbeddingBatch, WriterError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.reader.next()?;
        Some(
            batch
                .map_err(|e| WriterError::BadTable {
                    path: self.path.clone(),
                    reason: e.to_string(),
                })
                .and_then(|batch| self.convert(&batch)),
        )
    }
}

/// One detector's outcome on one window: a row of `windows.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    /// The detector, as its spec names it (`mmd`, `ks:correction=fdr`).
    pub detector: String,
    /// The window's index (window w starts at stream position w x stride).
    pub window: i64,
    /// The window's first sample.
    pub first_sample_id: i64,
    /// The window's last sample.
    pub last_sample_id: i64,
    /// The first sample's timestamp.
    pub first_timestamp: f64,
    /// The last sample's timestamp.
    pub last_timestamp: f64,
    /// Reference samples compared with.
    pub n_reference: i64,
    /// Samples in the window.
    pub n_test: i64,
    /// The detector's statistic (MMD^2; KS and CvM: the largest per-feature statistic).
    pub statistic: f64,
    /// The window's p-value.
    pub p_value: Option<f64>,
    /// b: permuted statistics at least the observed one.
    pub perm_exceed: Option<i64>,
    /// B: permutations drawn.
    pub n_permutations: Option<i64>,
    /// The threshold the decision used (MMD: alibi's distance threshold; KS and CvM: the
    /// corrected per-feature level).
    pub threshold: f64,
    /// Whether the window raised an alarm.
    pub alarm: bool,
    /// KS and CvM: features whose p-value is below the threshold.
    pub features_drifted: Option<i64>,
    /// KS and CvM: the smallest per-feature p-value.
    pub min_feature_p: Option<f64>,
    /// LSDD: the regularisation chosen for the window.
    pub lambda: Option<f64>,
}

/// An alarm: a row of `alarms.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRow {
    /// The detector.
    pub detector: String,
    /// The sample at which it was raised (a window's last).
    pub sample_id: i64,
    /// That sample's timestamp.
    pub timestamp: f64,
}

/// One step of an online detector: a row of `online.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRow {
    /// The detector.
    pub detector: String,
    /// The sample just added to the detector's window.
    pub sample_id: i64,
    /// That sample's timestamp.
    pub timestamp: f64,
    /// Steps since the detector started or was last reset, this one included (alibi's `t`).
    pub t: i64,
    /// The statistic on the detector's window.
    pub statistic: f64,
    /// The threshold of step t.
    pub threshold: f64,
    /// statistic > threshold.
    pub alarm: bool,
}

fn windows_schema() -> SchemaRef {
    let field =
        |name: &str, data_type: DataType, nullable: bool| Field::new(name, data_type, nullable);
    Arc::new(Schema::new(vec![
        field("detector", DataType::Utf8, false),
        field("window", DataType::Int64, false),
        field("first_sample_id", DataType::Int64, false),
        field("last_sample_id", DataType::Int64, false),
        field("first_timestamp", DataType::Float64, false),
        field("last_timestamp", DataType::Float64, false),
        field("n_reference", DataType::Int64, false),
        field("n_test", DataType::Int64, false),
        field("statistic", DataType::Float64, false),
        field("p_value", DataType::Float64, true),
        field("perm_exceed", DataType::Int64, true),
        field("n_permutations", DataType::Int64, true),
        field("threshold", DataType::Float64, false),
        field("alarm", DataType::Boolean, false),
        field("features_drifted", DataType::Int64, true),
        field("min_feature_p", DataType::Float64, true),
        field("lambda", DataType::Float64, true),
    ]))
}

fn alarms_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("detector", DataType::Utf8, false),
        Field::new("sample_id", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
    ]))
}

fn online_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("detector", DataType::Utf8, false),
        Field::new("sample_id", DataType::Int64, false),
        Field::new("timestamp", DataType::Float64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("statistic", DataType::Float64, false),
        Field::new("threshold", DataType::Float64, false),
        Field::new("alarm", DataType::Boolean, false),
    ]))
}

/// `online.parquet` of `rows`, in memory (a row per online detector and stream sample).
pub fn online_table(rows: &[OnlineRow], path_for_errors: &Path) -> Result<Vec<u8>, WriterError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.detector.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.sample_id),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.timestamp),
        )),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.t))),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.statistic),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.threshold),
        )),
        Arc::new(rows.iter().map(|r| Some(r.alarm)).collect::<BooleanArray>()),
    ];
    parquet_bytes(online_schema(), columns, path_for_errors)
}

/// `windows.parquet` of `rows`, in memory (a row per detector and window: a million-sample
/// stream in windows of 500 gives 2,000 per detector).
pub fn windows_table(rows: &[WindowRow], path_for_errors: &Path) -> Result<Vec<u8>, WriterError> {
    let int = |f: fn(&WindowRow) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
    };
    let float = |f: fn(&WindowRow) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    };
    let optional_int = |f: fn(&WindowRow) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int64Array>())
    };
    let optional_float = |f: fn(&WindowRow) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Float64Array>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.detector.as_str()),
        )),
        int(|r| r.window),
        int(|r| r.first_sample_id),
        int(|r| r.last_sample_id),
        float(|r| r.first_timestamp),
        float(|r| r.last_timestamp),
        int(|r| r.n_reference),
        int(|r| r.n_test),
        float(|r| r.statistic),
        optional_float(|r| r.p_value),
        optional_int(|r| r.perm_exceed),
        optional_int(|r| r.n_permutations),
        float(|r| r.threshold),
        Arc::new(rows.iter().map(|r| Some(r.alarm)).collect::<BooleanArray>()),
        optional_int(|r| r.features_drifted),
        optional_float(|r| r.min_feature_p),
        optional_float(|r| r.lambda),
    ];
    parquet_bytes(windows_schema(), columns, path_for_errors)
}

/// `alarms.parquet` of `rows`, in memory.
pub fn alarms_table(rows: &[AlarmRow], path_for_errors: &Path) -> Result<Vec<u8>, WriterError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.detector.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.sample_id),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.timestamp),
        )),
    ];
    parquet_bytes(alarms_schema(), columns, path_for_errors)
}

/// A detect report's `windows.parquet` read back (its own schema only), for `merge`.
pub fn read_report_windows(path: &Path) -> Result<Vec<WindowRow>, WriterError> {
    let mut rows = Vec::new();
    for batch in read_report_table(path, &windows_schema())? {
        let column = |i: usize| batch.column(i);
        let string = |i: usize| column(i).as_any().downcast_ref::<StringArray>();
        let int = |i: usize| column(i).as_any().downcast_ref::<Int64Array>();
        let float = |i: usize| column(i).as_any().downcast_ref::<Float64Array>();
        let boolean = |i: usize| column(i).as_any().downcast_ref::<BooleanArray>();
        let (Some(detector), Some(alarm)) = (string(0), boolean(13)) else {
            unreachable!("the schema was checked");
        };
        let int = |i: usize| int(i).expect("the schema was checked");
        let float = |i: usize| float(i).expect("the schema was checked");
        let optional_int = |i: usize, row: usize| int(i).is_valid(row).then(|| int(i).value(row));
        let optional_float =
            |i: usize, row: usize| float(i).is_valid(row).then(|| float(i).value(row));
        for row in 0..batch.num_rows() {
            rows.push(WindowRow {
                detector: detector.value(row).to_owned(),
                window: int(1).value(row),
                first_sample_id: int(2).value(row),
                last_sample_id: int(3).value(row),
                first_timestamp: float(4).value(row),
                last_timestamp: float(5).value(row),
                n_reference: int(6).value(row),
                n_test: int(7).value(row),
                statistic: float(8).value(row),
                p_value: optional_float(9, row),
                perm_exceed: optional_int(10, row),
                n_permutations: optional_int(11, row),
                threshold: float(12).value(row),
                alarm: alarm.value(row),
                features_drifted: optional_int(14, row),
                min_feature_p: optional_float(15, row),
                lambda: optional_float(16, row),
            });
        }
    }
    Ok(rows)
}

/// A detect report's `alarms.parquet` read back (its own schema only), for `merge`.
pub fn read_report_alarms(path: &Path) -> Result<Vec<AlarmRow>, WriterError> {
    let mut rows = Vec::new();
    for batch in read_report_table(path, &alarms_schema())? {
        let detector = batch.column(0).as_any().downcast_ref::<StringArray>();
        let ids = batch.column(1).as_any().downcast_ref::<Int64Array>();
        let times = batch.column(2).as_any().downcast_ref::<Float64Array>();
        let (Some(detector), Some(ids), Some(times)) = (detector, ids, times) else {
            unreachable!("the schema was checked");
        };
        for row in 0..batch.num_rows() {
            rows.push(AlarmRow {
                detector: detector.value(row).to_owned(),
                sample_id: ids.value(row),
                timestamp: times.value(row),
            });
        }
    }
    Ok(rows)
}

/// A detect report's `online.parquet` read back (its own schema only).
pub fn read_report_online(path: &Path) -> Result<Vec<OnlineRow>, WriterError> {
    let mut rows = Vec::new();
    for batch in read_report_table(path, &online_schema())? {
        let column = |i: usize| batch.column(i);
        let (
            Some(detector),
            Some(ids),
            Some(times),
            Some(t),
            Some(statistic),
            Some(threshold),
            Some(alarm),
        ) = (
            column(0).as_any().downcast_ref::<StringArray>(),
            column(1).as_any().downcast_ref::<Int64Array>(),
            column(2).as_any().downcast_ref::<Float64Array>(),
            column(3).as_any().downcast_ref::<Int64Array>(),
            column(4).as_any().downcast_ref::<Float64Array>(),
            column(5).as_any().downcast_ref::<Float64Array>(),
            column(6).as_any().downcast_ref::<BooleanArray>(),
        )
        else {
            unreachable!("the schema was checked");
        };
        for row in 0..batch.num_rows() {
            rows.push(OnlineRow {
                detector: detector.value(row).to_owned(),
                sample_id: ids.value(row),
                timestamp: times.value(row),
                t: t.value(row),
                statistic: statistic.value(row),
                threshold: threshold.value(row),
                alarm: alarm.value(row),
            });
        }
    }
    Ok(rows)
}

/// A table's record batches, refused unless its schema is `expected` exactly.
fn read_report_table(path: &Path, expected: &SchemaRef) -> Result<Vec<RecordBatch>, WriterError> {
    let bad = |reason: String| WriterError::BadTable {
        path: path.to_owned(),
        reason,
    };
    let file = drift_core::open_regular(path).map_err(|e| bad(e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(e.to_string()))?;
    let found = builder.schema();
    let same = found.fields().len() == expected.fields().len()
        && found
            .fields()
            .iter()
            .zip(expected.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        return Err(bad("not a table of a detect report (another schema)".into()));
    }
    let reader = builder.build().map_err(|e| bad(e.to_string()))?;
    reader
        .map(|batch| batch.map_err(|e| bad(e.to_string())))
        .collect()
}
