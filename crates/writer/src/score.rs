//! What `drift-pipeline score` reads and writes: alarms and window outcomes from any Parquet
//! file (a `detect` report's or a user's, whose column types vary by writer: polars writes
//! large or view strings), and the score's tables, `episodes.parquet`,
//! `windows_scored.parquet` and `power.parquet`.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, StringViewArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::WriterError;
use crate::report::parquet_bytes;

/// An alarm as a file gives it: a sample id or a timestamp (or both), and perhaps the detector.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalAlarm {
    /// The detector's name, when the file has a `detector` column.
    pub detector: Option<String>,
    /// The sample at which the alarm was raised.
    pub sample_id: Option<i64>,
    /// The time at which it was raised.
    pub timestamp: Option<f64>,
}

/// A tested window as a file gives it (`detect`'s `windows.parquet`, or a user's).
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalWindow {
    /// The detector's name, when the file has a `detector` column.
    pub detector: Option<String>,
    /// The window's first sample.
    pub first_sample_id: i64,
    /// The window's last sample.
    pub last_sample_id: i64,
    /// Whether it raised an alarm.
    pub alarm: bool,
    /// Its p-value, when the file has a `p_value` column.
    pub p_value: Option<f64>,
}

/// A column of any integer type arrow reads from Parquet, as i64 per row (None: null).
fn integers(column: &ArrayRef) -> Option<Vec<Option<i64>>> {
    let any = column.as_any();
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        return Some(a.iter().collect());
    }
    if let Some(a) = any.downcast_ref::<Int32Array>() {
        return Some(a.iter().map(|v| v.map(i64::from)).collect());
    }
    if let Some(a) = any.downcast_ref::<UInt32Array>() {
        return Some(a.iter().map(|v| v.map(i64::from)).collect());
    }
    if let Some(a) = any.downcast_ref::<UInt64Array>() {
        // Ids above i64::MAX cannot be a stream's: they read as -1, which no sample has.
        return Some(
            a.iter()
                .map(|v| v.map(|v| i64::try_from(v).unwrap_or(-1)))
                .collect(),
        );
    }
    None
}

fn floats(column: &ArrayRef) -> Option<Vec<Option<f64>>> {
    let any = column.as_any();
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        return Some(a.iter().collect());
    }
    if let Some(a) = any.downcast_ref::<Float32Array>() {
        return Some(a.iter().map(|v| v.map(f64::from)).collect());
    }
    integers(column).map(|v| v.into_iter().map(|v| v.map(|v| v as f64)).collect())
}

fn strings(column: &ArrayRef) -> Option<Vec<Option<String>>> {
    let any = column.as_any();
    let owned = |v: Option<&str>| v.map(str::to_owned);
    if let Some(a) = any.downcast_ref::<StringArray>() {
        return Some(a.iter().map(owned).collect());
    }
    if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        return Some(a.iter().map(owned).collect());
    }
    if let Some(a) = any.downcast_ref::<StringViewArray>() {
        return Some(a.iter().map(owned).collect());
    }
    None
}

fn booleans(column: &ArrayRef) -> Option<Vec<Option<bool>>> {
    column
        .as_any()
        .downcast_ref::<BooleanArray>()
        .map(|a| a.iter().collect())
}

/// The record batches of a Parquet file (a table of alarms or windows: small).
fn read_batches(path: &Path) -> Result<Vec<RecordBatch>, WriterError> {
    let bad = |reason: String| WriterError::BadTable {
        path: path.to_owned(),
        reason,
    };
    let file = drift_core::open_regular(path).map_err(|e| bad(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.build())
        .map_err(|e| bad(format!("not a Parquet file: {e}")))?;
    reader
        .map(|batch| batch.map_err(|e| bad(e.to_string())))
        .collect()
}

/// A named column converted by `convert`; `None` when absent, an error when of another type.
fn optional_column<T>(
    path: &Path,
    batch: &RecordBatch,
    name: &str,
    kind: &str,
    convert: fn(&ArrayRef) -> Option<Vec<Option<T>>>,
) -> Result<Option<Vec<Option<T>>>, WriterError> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(column) => convert(column)
            .map(Some)
            .ok_or_else(|| WriterError::BadTable {
                path: path.to_owned(),
                reason: format!(
                    "column {name} is {}, not {kind}",
                    column.data_type().to_string().to_lowercase()
                ),
            }),
    }
}

/// The alarms of a Parquet file: `sample_id` (an integer) or `timestamp` (a number), and
/// optionally `detector` (a string); other columns are ignored.
pub fn read_alarm_table(path: &Path) -> Result<Vec<ExternalAlarm>, WriterError> {
    let mut alarms = Vec::new();
    for batch in read_batches(path)? {
        let ids = optional_column(path, &batch, "sample_id", "an integer", integers)?;
        let times = optional_column(path, &batch, "timestamp", "a number", floats)?;
        let detectors = optional_column(path, &batch, "detector", "a string", strings)?;
        if ids.is_none() && times.is_none() {
            return Err(WriterError::BadTable {
                path: path.to_owned(),
                reason: "no column sample_id or timestamp: which sample raised each alarm?".into(),
            });
        }
        for row in 0..batch.num_rows() {
            let alarm = ExternalAlarm {
                detector: detectors.as_ref().and_then(|d| d[row].clone()),
                sample_id: ids.as_ref().and_then(|v| v[row]),
                timestamp: times.as_ref().and_then(|v| v[row]),
            };
            if alarm.sample_id.is_none() && alarm.timestamp.is_none() {
                return Err(WriterError::BadTable {
                    path: path.to_owned(),
                    reason: format!(
                        "alarm {} has neither a sample_id nor a timestamp",
                        alarms.len()
                    ),
                });
            }
            alarms.push(alarm);
        }
    }
    Ok(alarms)
}

/// The windows of a Parquet file: `first_sample_id`, `last_sample_id` (integers), `alarm` (a
/// boolean), optionally `p_value` (a number) and `detector` (a string).
pub fn read_window_table(path: &Path) -> Result<Vec<ExternalWindow>, WriterError> {
    let mut windows = Vec::new();
    let bad = |reason: String| WriterError::BadTable {
        path: path.to_owned(),
        reason,
    };
    for batch in read_batches(path)? {
        let required = |column: Option<Vec<Option<i64>>>, name: &str| {
            column.ok_or_else(|| bad(format!("no column {name}: not a table of windows")))
        };
        let firsts = required(
            optional_column(path, &batch, "first_sample_id", "an integer", integers)?,
            "first_sample_id",
        )?;
        let lasts = required(
            optional_column(path, &batch, "last_sample_id", "an integer", integers)?,
            "last_sample_id",
        )?;
        let alarms = optional_column(path, &batch, "alarm", "a boolean", booleans)?
            .ok_or_else(|| bad("no column alarm: not a table of windows".into()))?;
        let p_values = optional_column(path, &batch, "p_value", "a number", floats)?;
        let detectors = optional_column(path, &batch, "detector", "a string", strings)?;
        for row in 0..batch.num_rows() {
            let (Some(first), Some(last), Some(alarm)) = (firsts[row], lasts[row], alarms[row])
            else {
                return Err(bad(format!(
                    "window {} has a null first_sample_id, last_sample_id or alarm",
                    windows.len()
                )));
            };
            windows.push(ExternalWindow {
                detector: detectors.as_ref().and_then(|d| d[row].clone()),
                first_sample_id: first,
                last_sample_id: last,
                alarm,
                p_value: p_values.as_ref().and_then(|p| p[row]),
            });
        }
    }
    Ok(windows)
}

/// A drift episode of the stream as one detector met it: a row of `episodes.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRow {
    /// The detector (or baseline).
    pub detector: String,
    /// The episode's index in stream order.
    pub episode: i64,
    /// The segment it starts in.
    pub segment: String,
    /// What changed (`abrupt`, `gradual`, `incremental`, `recurring`, `label_shift`,
    /// `concept`; joined by `+` when several start together).
    pub kind: String,
    /// The transforms, joined by `+` (empty for label shift or a concept change alone).
    pub transforms: String,
    /// The largest of the segment's transform levels (null without transforms).
    pub level: Option<f64>,
    /// The onset s: the first sample of the change.
    pub start_sample_id: i64,
    /// The end e: the first sample at full strength.
    pub end_sample_id: i64,
    /// The onset's timestamp.
    pub start_timestamp: f64,
    /// The first sample whose alarm counts for the episode.
    pub window_first_sample_id: i64,
    /// The last sample whose alarm counts for it.
    pub window_last_sample_id: i64,
    /// Whether an alarm fell in the window.
    pub detected: bool,
    /// The first such alarm's sample.
    pub first_alarm_sample_id: Option<i64>,
    /// Its delay in samples (first alarm - s; negative with `--max-early`).
    pub delay: Option<i64>,
    /// Its delay in seconds (timestamps).
    pub delay_seconds: Option<f64>,
    /// Alarms in the window.
    pub alarms_in_window: i64,
}

/// A tested window with its ground truth: a row of `windows_scored.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredWindowRow {
    /// The detector.
    pub detector: String,
    /// The window's first sample.
    pub first_sample_id: i64,
    /// The window's last sample.
    pub last_sample_id: i64,
    /// Its p-value, if the detector gave one.
    pub p_value: Option<f64>,
    /// Whether it raised an alarm.
    pub alarm: bool,
    /// The share of its samples that were drifted.
    pub drifted_fraction: f64,
    /// Whether some of its samples were drawn under label shift.
    pub label_shift: bool,
    /// `h0` (no drift), `h1` (drifted enough) or `mixed` (left out of power and size).
    pub truth: String,
    /// The transforms of its drifted samples, joined by `+` (`label_shift` for a window
    /// drifted by label shift alone; empty for a clean window).
    pub transforms: String,
    /// The mean level of its drifted samples (null for a clean or label-shift window).
    pub level: Option<f64>,
}

/// A detector's power at one level of one transform list: a row of `power.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerRow {
    /// The detector.
    pub detector: String,
    /// The transform list (`none` for the clean windows, whose share of alarms is the size).
    pub transforms: String,
    /// The level bin (0 for clean windows; null for label shift).
    pub level: Option<f64>,
    /// Windows in the bin.
    pub n_windows: i64,
    /// Of those, windows that raised an alarm.
    pub n_alarms: i64,
    /// n_alarms / n_windows.
    pub power: f64,
    /// The Clopper-Pearson interval's lower end.
    pub ci_low: f64,
    /// Its upper end.
    pub ci_high: f64,
}

fn field(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, data_type, nullable)
}

fn episodes_schema() -> SchemaRef {
    use DataType::{Boolean, Float64, Int64, Utf8};
    Arc::new(Schema::new(vec![
        field("detector", Utf8, false),
        field("episode", Int64, false),
        field("segment", Utf8, false),
        field("kind", Utf8, false),
        field("transforms", Utf8, false),
        field("level", Float64, true),
        field("start_sample_id", Int64, false),
        field("end_sample_id", Int64, false),
        field("start_timestamp", Float64, false),
        field("window_first_sample_id", Int64, false),
        field("window_last_sample_id", Int64, false),
        field("detected", Boolean, false),
        field("first_alarm_sample_id", Int64, true),
        field("delay", Int64, true),
        field("delay_seconds", Float64, true),
        field("alarms_in_window", Int64, false),
    ]))
}

fn scored_windows_schema() -> SchemaRef {
    use DataType::{Boolean, Float64, Int64, Utf8};
    Arc::new(Schema::new(vec![
        field("detector", Utf8, false),
        field("first_sample_id", Int64, false),
        field("last_sample_id", Int64, false),
        field("p_value", Float64, true),
        field("alarm", Boolean, false),
        field("drifted_fraction", Float64, false),
        field("label_shift", Boolean, false),
        field("truth", Utf8, false),
        field("transforms", Utf8, false),
        field("level", Float64, true),
    ]))
}

fn power_schema() -> SchemaRef {
    use DataType::{Float64, Int64, Utf8};
    Arc::new(Schema::new(vec![
        field("detector", Utf8, false),
        field("transforms", Utf8, false),
        field("level", Float64, true),
        field("n_windows", Int64, false),
        field("n_alarms", Int64, false),
        field("power", Float64, false),
        field("ci_low", Float64, false),
        field("ci_high", Float64, false),
    ]))
}

/// Columns of a table of rows `R`, one closure per column.
struct Columns<'a, R> {
    rows: &'a [R],
    columns: Vec<ArrayRef>,
}

impl<'a, R> Columns<'a, R> {
    fn new(rows: &'a [R]) -> Self {
        Self {
            rows,
            columns: Vec::new(),
        }
    }
    fn text(mut self, f: impl Fn(&R) -> &str) -> Self {
        let array = StringArray::from_iter_values(self.rows.iter().map(f));
        self.columns.push(Arc::new(array));
        self
    }
    fn int(mut self, f: impl Fn(&R) -> Option<i64>) -> Self {
        let array: Int64Array = self.rows.iter().map(f).collect();
        self.columns.push(Arc::new(array));
        self
    }
    fn float(mut self, f: impl Fn(&R) -> Option<f64>) -> Self {
        let array: Float64Array = self.rows.iter().map(f).collect();
        self.columns.push(Arc::new(array));
        self
    }
    fn flag(mut self, f: impl Fn(&R) -> bool) -> Self {
        let array: BooleanArray = self.rows.iter().map(|r| Some(f(r))).collect();
        self.columns.push(Arc::new(array));
        self
    }
}

/// `episodes.parquet` of `rows`, in memory.
pub fn episodes_table(rows: &[EpisodeRow], path_for_errors: &Path) -> Result<Vec<u8>, WriterError> {
    let columns = Columns::new(rows)
        .text(|r| &r.detector)
        .int(|r| Some(r.episode))
        .text(|r| &r.segment)
        .text(|r| &r.kind)
        .text(|r| &r.transforms)
        .float(|r| r.level)
        .int(|r| Some(r.start_sample_id))
        .int(|r| Some(r.end_sample_id))
        .float(|r| Some(r.start_timestamp))
        .int(|r| Some(r.window_first_sample_id))
        .int(|r| Some(r.window_last_sample_id))
        .flag(|r| r.detected)
        .int(|r| r.first_alarm_sample_id)
        .int(|r| r.delay)
        .float(|r| r.delay_seconds)
        .int(|r| Some(r.alarms_in_window))
        .columns;
    parquet_bytes(episodes_schema(), columns, path_for_errors)
}

/// `windows_scored.parquet` of `rows`, in memory.
pub fn scored_windows_table(
    rows: &[ScoredWindowRow],
    path_for_errors: &Path,
) -> Result<Vec<u8>, WriterError> {
    let columns = Columns::new(rows)
        .text(|r| &r.detector)
        .int(|r| Some(r.first_sample_id))
        .int(|r| Some(r.last_sample_id))
        .float(|r| r.p_value)
        .flag(|r| r.alarm)
        .float(|r| Some(r.drifted_fraction))
        .flag(|r| r.label_shift)
        .text(|r| &r.truth)
        .text(|r| &r.transforms)
        .float(|r| r.level)
        .columns;
    parquet_bytes(scored_windows_schema(), columns, path_for_errors)
}

/// `power.parquet` of `rows`, in memory.
pub fn power_table(rows: &[PowerRow], path_for_errors: &Path) -> Result<Vec<u8>, WriterError> {
    let columns = Columns::new(rows)
        .text(|r| &r.detector)
        .text(|r| &r.transforms)
        .float(|r| r.level)
        .int(|r| Some(r.n_windows))
        .int(|r| Some(r.n_alarms))
        .float(|r| Some(r.power))
        .float(|r| Some(r.ci_low))
        .float(|r| Some(r.ci_high))
        .columns;
    parquet_bytes(power_schema(), columns, path_for_errors)
}
