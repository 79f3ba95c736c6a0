//! Scoring detectors against a stream's ground truth (`drift-pipeline score`): alarms from a
//! `detect` report or a user's file matched to the drift episodes (`matching`), the windows of
//! batch detectors judged by what their samples were (`power`), and the report: tables, a
//! summary per detector beside the `always` and `periodic` baselines, and the power plot.

pub mod matching;
pub mod power;
pub mod truth;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use drift_writer::{
    EpisodeRow, ExternalAlarm, ExternalWindow, PowerRow, ReportWriter, ScoredWindowRow,
    episodes_table, power_table, scored_windows_table,
};
use serde::Serialize;

use crate::run::{DetectError, InputRecord};
use matching::{Change, StreamExtent, StreamMetrics, Tolerance, run_lengths, stream_metrics};
use power::{Calibration, DetectableLevel, LevelBins, WindowTruth, classify};
use truth::StreamTruth;

/// The files of a score report; `score.json`, the marker, is committed last.
pub const SCORE_FILES: &[&str] = &[
    "episodes.parquet",
    "windows_scored.parquet",
    "power.parquet",
    "summary.csv",
    "power_by_level.png",
    "power_by_level.svg",
    "pvalue_calibration.png",
    "pvalue_calibration.svg",
    "delay_by_level.png",
    "delay_by_level.svg",
    "delay_vs_far.png",
    "delay_vs_far.svg",
    "score.json",
];

/// A baseline detector, scored beside every real one so a metric can be read against chance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// An alarm at the end of every window a detector would test.
    Always,
    /// An alarm every `P` samples.
    Periodic(u64),
}

impl Baseline {
    /// Its name in the report.
    pub fn name(self) -> String {
        match self {
            Baseline::Always => "always".into(),
            Baseline::Periodic(period) => format!("periodic:{period}"),
        }
    }
}

impl FromStr for Baseline {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        match spec.split_once(':') {
            None if spec == "always" => Ok(Baseline::Always),
            Some(("periodic", period)) => period
                .parse()
                .ok()
                .filter(|&p: &u64| p >= 1)
                .map(Baseline::Periodic)
                .ok_or_else(|| {
                    format!("baseline {spec:?}: the period is not a whole number of at least 1")
                }),
            _ => Err(format!("baseline {spec:?}: neither always nor periodic:P")),
        }
    }
}

/// How a score runs.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Samples after a change's end within which an alarm still detects it.
    pub max_delay: u64,
    /// Samples before its onset from which an alarm counts (0: none before).
    pub max_early: u64,
    /// `far` counts false alarms per this many samples.
    pub rate_unit: u64,
    /// A window counts as drifted (for power) when at least this share of its samples is.
    pub drifted_min: f64,
    /// The power the minimum detectable level must reach.
    pub power_target: f64,
    /// The confidence of the Clopper-Pearson intervals.
    pub confidence: f64,
    /// How levels are binned (None: each distinct level).
    pub level_bins: Option<usize>,
    /// Baselines (None: `always` and `periodic:10W`).
    pub baselines: Option<Vec<Baseline>>,
    /// The window and stride the `always` baseline alarms at, without a detect report.
    pub window: u64,
    /// The significance level drawn in the power plot, without a detect report.
    pub alpha: f64,
    /// Replace an existing report.
    pub overwrite: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            max_delay: 500,
            max_early: 0,
            rate_unit: 1000,
            drifted_min: 1.0,
            power_target: 0.8,
            confidence: 0.95,
            level_bins: None,
            baselines: None,
            window: 100,
            alpha: 0.05,
            overwrite: false,
        }
    }
}

/// Where a detector's alarms and windows come from.
#[derive(Debug, Clone, Default)]
pub struct ScoreInputs {
    /// `detect` reports on this stream.
    pub detections: Vec<PathBuf>,
    /// Users' alarm files (Parquet or CSV): `sample_id` or `timestamp`, optional `detector`.
    pub alarms: Vec<PathBuf>,
    /// Users' window files (Parquet or CSV): `first_sample_id`, `last_sample_id`, `alarm`,
    /// optional `p_value` and `detector`.
    pub windows: Vec<PathBuf>,
}

/// One file read as an input of the score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileInput {
    /// The file or folder, as given.
    pub path: String,
    /// SHA-256 of the file (a detect report: of its `detect.json`).
    pub sha256: String,
}

/// A detector's line of `summary.csv` and `score.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorScore {
    /// Its name.
    pub detector: String,
    /// `detect`, `file` or `baseline`.
    pub source: String,
    /// Stream-level metrics.
    #[serde(skip)]
    pub metrics: StreamMetrics,
    /// Mean delay in seconds over detected episodes.
    #[serde(skip)]
    pub mdt_seconds: f64,
    /// Observed in-control run lengths: their mean, count and the censored tails.
    #[serde(skip)]
    pub arl0: (f64, usize, usize),
    /// Window counts: all, h0, h1, mixed (None: no windows).
    #[serde(skip)]
    pub window_counts: Option<[usize; 4]>,
    /// Alarms on clean windows over clean windows, with its interval.
    #[serde(skip)]
    pub fpr: Option<(f64, f64, f64)>,
    /// Alarms on drifted windows over drifted windows.
    #[serde(skip)]
    pub power: Option<f64>,
    /// The p-values on clean windows.
    pub calibration: Option<Calibration>,
}

/// `score.json`: the inputs, the settings and what the tables summarize.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRecord {
    /// The tool and version.
    pub tool: String,
    /// The stream's outputs.
    pub stream: Vec<InputRecord>,
    /// Detect reports read.
    pub detections: Vec<FileInput>,
    /// Users' alarm and window files read.
    pub files: Vec<FileInput>,
    /// The settings.
    pub settings: serde_json::Value,
    /// The episodes' rules, in words.
    pub episode_rules: String,
    /// Episodes found.
    pub episodes: usize,
    /// Warnings about what the numbers mean.
    pub warnings: Vec<String>,
    /// Per detector.
    pub detectors: Vec<DetectorScore>,
    /// The minimum detectable levels.
    pub minimum_detectable_levels: Vec<DetectableLevel>,
}

/// A detector to score: its alarms (sample ids) and perhaps its windows.
struct Scored {
    name: String,
    source: &'static str,
    alarms: Vec<i64>,
    windows: Option<Vec<ExternalWindow>>,
}

fn settings_error(reason: String) -> DetectError {
    DetectError::Settings(reason)
}

fn file_error(path: &Path, reason: String) -> DetectError {
    DetectError::Input {
        folder: path.to_owned(),
        reason,
    }
}

fn sha256_of(path: &Path) -> Result<String, DetectError> {
    let copy = drift_store::fetch_file_if_remote(path)?;
    let path = copy.as_ref().map_or(path, |(_, file)| file);
    drift_core::open_regular(path)
        .and_then(drift_core::sha256_hex)
        .map_err(|e| file_error(path, e.to_string()))
}

/// The stride and window of a detect report, and the detectors' names in its order.
struct DetectReport {
    window: u64,
    stride: u64,
    alpha: f64,
    detectors: Vec<String>,
}

fn read_detect_report(folder: &Path, truth: &StreamTruth) -> Result<DetectReport, DetectError> {
    let refuse = |reason: String| file_error(folder, reason);
    let path = folder.join("detect.json");
    let text = drift_core::read_small_text(&path, drift_core::METADATA_LIMIT).map_err(|e| {
        refuse(format!(
            "cannot read detect.json ({e}): not a detect report?"
        ))
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| refuse(format!("detect.json is not JSON: {e}")))?;
    let hashes: Vec<&str> = json["stream"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|i| i["drift_json_sha256"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let ours: Vec<&str> = truth
        .inputs
        .iter()
        .map(|i| i.drift_json_sha256.as_str())
        .collect();
    if hashes != ours {
        return Err(refuse(format!(
            "was run on another stream than the one given (its outputs' drift.json hashes differ; \
             it tested {})",
            json["stream"]
                .as_array()
                .map(|s| s
                    .iter()
                    .filter_map(|i| i["folder"].as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        )));
    }
    let number = |key: &str| {
        json[key]
            .as_u64()
            .ok_or_else(|| refuse(format!("detect.json has no {key}")))
    };
    Ok(DetectReport {
        window: number("window")?,
        stride: number("stride")?,
        alpha: json["alpha"].as_f64().unwrap_or(0.05),
        detectors: json["detectors"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|d| d["detector"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// A file's alarms, by detector (the file's stem where it has no `detector` column), as
/// sample ids of the stream.
fn read_alarm_file(
    path: &Path,
    truth: &StreamTruth,
) -> Result<Vec<(String, Vec<i64>)>, DetectError> {
    let rows = read_table(path, drift_writer::read_alarm_table, read_alarm_csv)?;
    let stem = file_stem(path);
    let mut by_detector: Vec<(String, Vec<i64>)> = Vec::new();
    for (index, row) in rows.into_iter().enumerate() {
        let id = match (row.sample_id, row.timestamp) {
            (Some(id), _) => {
                if truth.sample(id).is_none() {
                    return Err(file_error(
                        path,
                        format!(
                            "alarm {index} is at sample {id}, which the stream ({}..={}) does not hold",
                            truth.first_id(),
                            truth.last_id()
                        ),
                    ));
                }
                id
            }
            (None, Some(t)) => truth.sample_at(t).ok_or_else(|| {
                file_error(
                    path,
                    format!("alarm {index} is at time {t}, outside the stream's timestamps"),
                )
            })?,
            (None, None) => unreachable!("the table reader refuses alarms without a position"),
        };
        let name = row.detector.unwrap_or_else(|| stem.clone());
        match by_detector.iter_mut().find(|(n, _)| *n == name) {
            Some((_, ids)) => ids.push(id),
            None => by_detector.push((name, vec![id])),
        }
    }
    Ok(by_detector)
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "alarms".into(), |s| s.to_string_lossy().into_owned())
}

/// A Parquet or CSV table, by its extension.
fn read_table<T>(
    path: &Path,
    parquet: fn(&Path) -> Result<Vec<T>, drift_writer::WriterError>,
    csv: fn(&Path) -> Result<Vec<T>, DetectError>,
) -> Result<Vec<T>, DetectError> {
    // A file on object storage is read from a local copy.
    let copy = drift_store::fetch_file_if_remote(path)?;
    let path = copy.as_ref().map_or(path, |(_, file)| file);
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => Ok(parquet(path)?),
        Some("csv") => csv(path),
        _ => Err(file_error(
            path,
            "is neither .parquet nor .csv: name the file by its format".into(),
        )),
    }
}

/// A CSV file's header and records (bounded: alarm and window files are small).
fn csv_records(path: &Path) -> Result<(Vec<String>, Vec<csv::StringRecord>), DetectError> {
    let text =
        drift_core::read_small_text(path, 1 << 30).map_err(|e| file_error(path, e.to_string()))?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| file_error(path, format!("not CSV: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let records = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, format!("not CSV: {e}")))?;
    Ok((header, records))
}

/// Parses column `name` of `record` (None: no such column or an empty field).
fn csv_field<T: FromStr>(
    path: &Path,
    header: &[String],
    record: &csv::StringRecord,
    row: usize,
    name: &str,
) -> Result<Option<T>, DetectError> {
    let Some(column) = header.iter().position(|h| h == name) else {
        return Ok(None);
    };
    let text = record.get(column).unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        file_error(
            path,
            format!("row {row}: {name} {text:?} is not what the column holds"),
        )
    })
}

fn read_alarm_csv(path: &Path) -> Result<Vec<ExternalAlarm>, DetectError> {
    let (header, records) = csv_records(path)?;
    if !header.iter().any(|h| h == "sample_id" || h == "timestamp") {
        return Err(file_error(
            path,
            "no column sample_id or timestamp: which sample raised each alarm?".into(),
        ));
    }
    records
        .iter()
        .enumerate()
        .map(|(row, record)| {
            let alarm = ExternalAlarm {
                detector: csv_field(path, &header, record, row, "detector")?,
                sample_id: csv_field(path, &header, record, row, "sample_id")?,
                timestamp: csv_field(path, &header, record, row, "timestamp")?,
            };
            if alarm.sample_id.is_none() && alarm.timestamp.is_none() {
                return Err(file_error(
                    path,
                    format!("alarm {row} has neither a sample_id nor a timestamp"),
                ));
            }
            Ok(alarm)
        })
        .collect()
}

fn read_window_csv(path: &Path) -> Result<Vec<ExternalWindow>, DetectError> {
    let (header, records) = csv_records(path)?;
    records
        .iter()
        .enumerate()
        .map(|(row, record)| {
            let required = |name: &str| {
                file_error(
                    path,
                    format!("row {row} has no {name}: not a table of windows"),
                )
            };
            let alarm: String =
                csv_field(path, &header, record, row, "alarm")?.ok_or_else(|| required("alarm"))?;
            let alarm = match alarm.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(file_error(
                        path,
                        format!("row {row}: alarm {other:?} is not true or false"),
                    ));
                }
            };
            Ok(ExternalWindow {
                detector: csv_field(path, &header, record, row, "detector")?,
                first_sample_id: csv_field(path, &header, record, row, "first_sample_id")?
                    .ok_or_else(|| required("first_sample_id"))?,
                last_sample_id: csv_field(path, &header, record, row, "last_sample_id")?
                    .ok_or_else(|| required("last_sample_id"))?,
                alarm,
                p_value: csv_field(path, &header, record, row, "p_value")?,
            })
        })
        .collect()
}

/// What a window's samples were.
fn window_truth(samples: &[truth::TruthSample]) -> WindowTruth {
    let mut transforms: Vec<&str> = Vec::new();
    let (mut drifted, mut level_sum) = (0usize, 0.0);
    for sample in samples.iter().filter(|s| s.drifted) {
        drifted += 1;
        for (name, _) in &sample.levels {
            if !transforms.contains(&name.as_str()) {
                transforms.push(name);
            }
        }
        level_sum += sample.levels.iter().map(|l| l.1).fold(0.0, f64::max);
    }
    WindowTruth {
        drifted_fraction: drifted as f64 / samples.len() as f64,
        label_shift: samples.iter().all(|s| s.label_shift),
        any_label_shift: samples.iter().any(|s| s.label_shift),
        transforms: transforms.join("+"),
        level: (drifted > 0).then(|| level_sum / drifted as f64),
    }
}

/// Scores every detector of `inputs` against the ground truth of `stream` (output folders in
/// stream order) and commits the report into `output`.
pub fn score(
    stream: &[PathBuf],
    inputs: &ScoreInputs,
    output: &Path,
    options: &ScoreOptions,
) -> Result<ScoreRecord, DetectError> {
    drift_store::transaction::write_folder(
        output,
        SCORE_FILES,
        "score.json",
        options.overwrite,
        |folder| score_into(stream, inputs, folder, options),
    )
}

/// [`score`] into the local folder `output`.
fn score_into(
    stream: &[PathBuf],
    inputs: &ScoreInputs,
    output: &Path,
    options: &ScoreOptions,
) -> Result<ScoreRecord, DetectError> {
    check_options(options, stream, inputs)?;
    // Lock the report first: a failure below leaves any old report as it was.
    let mut report = ReportWriter::create(output, SCORE_FILES, "score.json", options.overwrite)?;
    let truth = truth::read_stream(stream)?;
    if truth.samples.is_empty() {
        return Err(settings_error("the stream holds no samples".into()));
    }
    let collected = Collected::read(inputs, &truth, options)?;
    let judge = Judge::new(&truth, options);
    let mut tables = Tables::default();
    let scores: Vec<DetectorScore> = collected
        .scored
        .iter()
        .map(|detector| judge.score(detector, &mut tables))
        .collect();
    let windowed: Vec<String> = collected
        .scored
        .iter()
        .filter(|s| s.windows.is_some())
        .map(|s| s.name.clone())
        .collect();
    let bins = options
        .level_bins
        .map_or(LevelBins::Distinct, LevelBins::Equal);
    let power_rows = power::power_rows(&windowed, &tables.windows, bins, options.confidence);
    let detectable = power::detectable_levels(&power_rows, options.power_target);

    let path = |name: &str| output.join(name);
    report.add(
        "episodes.parquet",
        &episodes_table(&tables.episodes, &path("episodes.parquet"))?,
    )?;
    report.add(
        "windows_scored.parquet",
        &scored_windows_table(&tables.windows, &path("windows_scored.parquet"))?,
    )?;
    report.add(
        "power.parquet",
        &power_table(&power_rows, &path("power.parquet"))?,
    )?;
    report.add("summary.csv", summary_csv(&scores).as_bytes())?;
    let plot = power_plot(&power_rows, collected.alpha, options.confidence)?;
    report.add(
        "power_by_level.png",
        &drift_writer::encode_png(&plot.rgb, drift_writer::PngCompression::High)?,
    )?;
    report.add("power_by_level.svg", plot.svg.as_bytes())?;
    let clean_p_values: Vec<(String, Vec<f64>)> = windowed
        .iter()
        .map(|detector| {
            let p_values = tables
                .windows
                .iter()
                .filter(|w| &w.detector == detector && w.truth == "h0")
                .filter_map(|w| w.p_value)
                .collect();
            (detector.clone(), p_values)
        })
        .filter(|(_, p): &(String, Vec<f64>)| !p.is_empty())
        .collect();
    let plot = drift_measure::calibration_plot(&clean_p_values)
        .map_err(|e| settings_error(format!("cannot draw the calibration plot: {e}")))?;
    report.add(
        "pvalue_calibration.png",
        &drift_writer::encode_png(&plot.rgb, drift_writer::PngCompression::High)?,
    )?;
    report.add("pvalue_calibration.svg", plot.svg.as_bytes())?;
    let plot = delay_plot(&tables.episodes, options.max_delay as f64)?;
    report.add(
        "delay_by_level.png",
        &drift_writer::encode_png(&plot.rgb, drift_writer::PngCompression::High)?,
    )?;
    report.add("delay_by_level.svg", plot.svg.as_bytes())?;
    let points: Vec<(String, f64, f64)> = scores
        .iter()
        .map(|s| (s.detector.clone(), s.metrics.far, s.metrics.mdt))
        .collect();
    let plot = drift_measure::delay_far_plot(&points, options.rate_unit as f64)
        .map_err(|e| settings_error(format!("cannot draw the delay plot: {e}")))?;
    report.add(
        "delay_vs_far.png",
        &drift_writer::encode_png(&plot.rgb, drift_writer::PngCompression::High)?,
    )?;
    report.add("delay_vs_far.svg", plot.svg.as_bytes())?;
    let record = ScoreRecord {
        tool: format!("drift-pipeline {}", env!("CARGO_PKG_VERSION")),
        stream: truth.inputs.clone(),
        detections: collected.detections,
        files: collected.files,
        settings: serde_json::json!({
            "max_delay": options.max_delay,
            "max_early": options.max_early,
            "rate_unit": options.rate_unit,
            "drifted_min": options.drifted_min,
            "power_target": options.power_target,
            "confidence": options.confidence,
            "level_bins": options.level_bins,
            "baselines": collected.baselines.iter().map(|b| b.name()).collect::<Vec<_>>(),
            "baseline_window": collected.window,
            "baseline_stride": collected.stride,
            "alpha": collected.alpha,
        }),
        episode_rules: EPISODE_RULES.into(),
        episodes: truth.episodes.len(),
        warnings: collected.warnings,
        detectors: scores,
        minimum_detectable_levels: detectable,
    };
    let json = serde_json::to_string_pretty(&record).expect("the record serializes") + "\n";
    report.add("score.json", json.as_bytes())?;
    report.finish()?;
    Ok(record)
}

/// Every detector to score, read from the inputs, with what the inputs record.
struct Collected {
    scored: Vec<Scored>,
    detections: Vec<FileInput>,
    files: Vec<FileInput>,
    baselines: Vec<Baseline>,
    /// The window and stride of the `always` baseline, and the alpha of the plot: the first
    /// detect report's, else the options'.
    window: u64,
    stride: u64,
    alpha: f64,
    warnings: Vec<String>,
}

impl Collected {
    fn read(
        inputs: &ScoreInputs,
        truth: &StreamTruth,
        options: &ScoreOptions,
    ) -> Result<Self, DetectError> {
        let mut collected = Collected {
            scored: Vec::new(),
            detections: Vec::new(),
            files: Vec::new(),
            baselines: Vec::new(),
            window: options.window,
            stride: options.window,
            alpha: options.alpha,
            warnings: Vec::new(),
        };
        for (index, folder) in inputs.detections.iter().enumerate() {
            collected.add_detections(folder, index == 0, truth)?;
        }
        for path in &inputs.alarms {
            for (name, ids) in read_alarm_file(path, truth)? {
                collected.scored.push(Scored {
                    name,
                    source: "file",
                    alarms: ids,
                    windows: None,
                });
            }
            collected.files.push(FileInput {
                path: path.display().to_string(),
                sha256: sha256_of(path)?,
            });
        }
        for path in &inputs.windows {
            collected.add_windows(path)?;
        }
        collected.baselines = options
            .baselines
            .clone()
            .unwrap_or_else(|| vec![Baseline::Always, Baseline::Periodic(10 * collected.window)]);
        for baseline in &collected.baselines {
            collected.scored.push(Scored {
                name: baseline.name(),
                source: "baseline",
                alarms: baseline_alarms(*baseline, truth, collected.window, collected.stride),
                windows: None,
            });
        }
        collected.check(truth)?;
        Ok(collected)
    }

    /// A detect report's detectors, with their alarms and windows.
    fn add_detections(
        &mut self,
        folder: &Path,
        first: bool,
        truth: &StreamTruth,
    ) -> Result<(), DetectError> {
        // A report on object storage is read from a local copy; messages name its URL.
        let copy =
            drift_store::fetch_report_if_remote(folder, "detect.json", crate::run::DETECT_FILES)?;
        let local = copy.as_ref().map_or(folder, |c| c.path());
        let detect = read_detect_report(local, truth)?;
        if first {
            (self.window, self.stride, self.alpha) = (detect.window, detect.stride, detect.alpha);
        }
        if detect.stride < detect.window {
            self.warnings.push(format!(
                "{}: windows overlap (stride {} < window {}): their outcomes are correlated, so \
                 the clean windows' size and p-value calibration are not of independent tests",
                folder.display(),
                detect.stride,
                detect.window
            ));
        }
        let alarms = read_alarm_file(&local.join("alarms.parquet"), truth)?;
        let windows = drift_writer::read_window_table(&local.join("windows.parquet"))?;
        for name in detect.detectors {
            let ids = alarms
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, ids)| ids.clone())
                .unwrap_or_default();
            let own: Vec<ExternalWindow> = windows
                .iter()
                .filter(|w| w.detector.as_deref() == Some(name.as_str()))
                .cloned()
                .collect();
            self.scored.push(Scored {
                name,
                source: "detect",
                alarms: ids,
                windows: Some(own),
            });
        }
        self.detections.push(FileInput {
            path: folder.display().to_string(),
            sha256: sha256_of(&local.join("detect.json"))?,
        });
        Ok(())
    }

    /// A user's windows: each detector's (the file's name without a `detector` column); a
    /// detector whose alarms came in an alarm file gets its windows.
    fn add_windows(&mut self, path: &Path) -> Result<(), DetectError> {
        let windows = read_table(path, drift_writer::read_window_table, read_window_csv)?;
        let name_of = |w: &ExternalWindow| w.detector.clone().unwrap_or_else(|| file_stem(path));
        let mut names: Vec<String> = Vec::new();
        for w in &windows {
            let name = name_of(w);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        for name in names {
            let own: Vec<ExternalWindow> = windows
                .iter()
                .filter(|w| name_of(w) == name)
                .cloned()
                .collect();
            let alarms = own
                .iter()
                .filter(|w| w.alarm)
                .map(|w| w.last_sample_id)
                .collect();
            match self
                .scored
                .iter_mut()
                .find(|s| s.name == name && s.windows.is_none())
            {
                Some(existing) => existing.windows = Some(own),
                None => self.scored.push(Scored {
                    name,
                    source: "file",
                    alarms,
                    windows: Some(own),
                }),
            }
        }
        self.files.push(FileInput {
            path: path.display().to_string(),
            sha256: sha256_of(path)?,
        });
        Ok(())
    }

    /// One name per detector, every window within the stream.
    fn check(&self, truth: &StreamTruth) -> Result<(), DetectError> {
        let scored = &self.scored;
        if let Some(twice) = scored
            .iter()
            .enumerate()
            .find(|(i, s)| scored[..*i].iter().any(|t| t.name == s.name))
        {
            return Err(settings_error(format!(
                "detector {} comes from two inputs: give each file a detector column or its own name",
                twice.1.name
            )));
        }
        for s in scored {
            if let Some(windows) = &s.windows
                && let Some(bad) = windows
                    .iter()
                    .find(|w| truth.range(w.first_sample_id, w.last_sample_id).is_none())
            {
                return Err(settings_error(format!(
                    "detector {}: window {}..={} is not within the stream ({}..={})",
                    s.name,
                    bad.first_sample_id,
                    bad.last_sample_id,
                    truth.first_id(),
                    truth.last_id()
                )));
            }
        }
        Ok(())
    }
}

/// The rows of the score's tables, detector after detector.
#[derive(Default)]
struct Tables {
    episodes: Vec<EpisodeRow>,
    windows: Vec<ScoredWindowRow>,
}

/// What every detector is scored against: the truth, its changes and in-control stretches.
struct Judge<'a> {
    truth: &'a StreamTruth,
    options: &'a ScoreOptions,
    changes: Vec<Change>,
    tolerance: Tolerance,
    extent: StreamExtent,
    stretches: Vec<(i64, i64)>,
}

impl<'a> Judge<'a> {
    fn new(truth: &'a StreamTruth, options: &'a ScoreOptions) -> Self {
        let tolerance = Tolerance {
            max_delay: options.max_delay as i64,
            max_early: options.max_early as i64,
        };
        let changes: Vec<Change> = truth
            .episodes
            .iter()
            .map(|e| Change {
                start: e.start,
                end: e.end,
            })
            .collect();
        let stretches = in_control_stretches(truth, &changes, tolerance);
        Self {
            truth,
            options,
            extent: StreamExtent {
                first: truth.first_id(),
                samples: truth.samples.len(),
                rate_unit: options.rate_unit as f64,
            },
            changes,
            tolerance,
            stretches,
        }
    }

    /// One detector's score; its episode and window rows go to `tables`.
    fn score(&self, detector: &Scored, tables: &mut Tables) -> DetectorScore {
        let truth = self.truth;
        let (metrics, outcomes, false_alarms) =
            stream_metrics(&self.changes, &detector.alarms, self.tolerance, self.extent);
        let timestamp = |id: i64| truth.sample(id).map_or(f64::NAN, |t| t.timestamp);
        let mut delays_seconds = Vec::new();
        for (k, (episode, outcome)) in truth.episodes.iter().zip(&outcomes).enumerate() {
            let start_timestamp = timestamp(episode.start);
            let delay_seconds = outcome.first_alarm.map(|a| timestamp(a) - start_timestamp);
            delays_seconds.extend(delay_seconds);
            tables.episodes.push(EpisodeRow {
                detector: detector.name.clone(),
                episode: k as i64,
                segment: episode.segment.clone(),
                kind: episode.kind.clone(),
                transforms: episode.transforms.clone(),
                level: episode.level,
                start_sample_id: episode.start,
                end_sample_id: episode.end,
                start_timestamp,
                window_first_sample_id: outcome.window_first,
                window_last_sample_id: outcome.window_last,
                detected: outcome.detected(),
                first_alarm_sample_id: outcome.first_alarm,
                delay: outcome.first_alarm.map(|a| a - episode.start),
                delay_seconds,
                alarms_in_window: outcome.alarms_in_window as i64,
            });
        }
        let (runs, censored) = run_lengths(&self.stretches, &false_alarms);
        let mut score = DetectorScore {
            detector: detector.name.clone(),
            source: detector.source.to_owned(),
            metrics,
            mdt_seconds: matching::mean(delays_seconds.into_iter()),
            arl0: (
                matching::mean(runs.iter().map(|&r| r as f64)),
                runs.len(),
                censored,
            ),
            window_counts: None,
            fpr: None,
            power: None,
            calibration: None,
        };
        if let Some(windows) = &detector.windows {
            let start = tables.windows.len();
            tables
                .windows
                .extend(windows.iter().map(|w| self.judge_window(&detector.name, w)));
            self.window_level(&tables.windows[start..], &mut score);
        }
        score
    }

    /// A window with what its samples were.
    fn judge_window(&self, detector: &str, window: &ExternalWindow) -> ScoredWindowRow {
        let samples = self
            .truth
            .range(window.first_sample_id, window.last_sample_id)
            .expect("windows were checked against the stream");
        let judged = window_truth(samples);
        let (class, key) = classify(&judged, self.options.drifted_min);
        ScoredWindowRow {
            detector: detector.to_owned(),
            first_sample_id: window.first_sample_id,
            last_sample_id: window.last_sample_id,
            p_value: window.p_value,
            alarm: window.alarm,
            drifted_fraction: judged.drifted_fraction,
            label_shift: judged.any_label_shift,
            truth: class.to_owned(),
            transforms: key,
            level: judged.level,
        }
    }

    /// The window-level numbers of one detector's judged windows.
    fn window_level(&self, own: &[ScoredWindowRow], score: &mut DetectorScore) {
        let count = |class: &str| own.iter().filter(|w| w.truth == class).count();
        let alarms_in = |class: &str| own.iter().filter(|w| w.truth == class && w.alarm).count();
        let (h0, h1) = (count("h0"), count("h1"));
        score.window_counts = Some([own.len(), h0, h1, count("mixed")]);
        if h0 > 0 {
            let alarms = alarms_in("h0");
            let (low, high) =
                power::clopper_pearson(alarms as u64, h0 as u64, self.options.confidence);
            score.fpr = Some((alarms as f64 / h0 as f64, low, high));
        }
        if h1 > 0 {
            score.power = Some(alarms_in("h1") as f64 / h1 as f64);
        }
        let clean_p: Vec<f64> = own
            .iter()
            .filter(|w| w.truth == "h0")
            .filter_map(|w| w.p_value)
            .collect();
        score.calibration = power::calibration(&clean_p);
    }
}

/// The episode rules as `score.json` states them.
pub const EPISODE_RULES: &str = "one episode per change, by segment in stream order: abrupt \
transforms at the segment's first sample (unless the previous segment had the same transforms \
and levels); gradual from the first sample with drift probability > 0 to the first with 1; \
incremental from the segment's first sample to its last; recurring at the first sample of each \
drifted run; label shift and concept change (other class priors or published labels than the \
previous segment's) at the segment's first sample; episodes with one onset are one. An alarm \
counts for episode k if it lies in [s_k - max_early, min(e_k + max_delay, s_(k+1) - max_early - 1)]";

fn check_options(
    options: &ScoreOptions,
    stream: &[PathBuf],
    inputs: &ScoreInputs,
) -> Result<(), DetectError> {
    if stream.is_empty() {
        return Err(settings_error("no stream given".into()));
    }
    if inputs.detections.is_empty() && inputs.alarms.is_empty() && inputs.windows.is_empty() {
        return Err(settings_error(
            "nothing to score: give --detections, --alarms or --windows".into(),
        ));
    }
    if !(options.drifted_min > 0.0 && options.drifted_min <= 1.0) {
        return Err(settings_error(format!(
            "drifted-min {} is not in (0, 1]",
            options.drifted_min
        )));
    }
    if !(options.power_target > 0.0 && options.power_target <= 1.0) {
        return Err(settings_error(format!(
            "power-target {} is not in (0, 1]",
            options.power_target
        )));
    }
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        return Err(settings_error(format!(
            "confidence {} is not in (0, 1)",
            options.confidence
        )));
    }
    if options.level_bins == Some(0) || options.rate_unit == 0 || options.window == 0 {
        return Err(settings_error(
            "level-bins, rate-unit and window must be at least 1".into(),
        ));
    }
    Ok(())
}

/// A baseline's alarms on the stream.
fn baseline_alarms(baseline: Baseline, truth: &StreamTruth, window: u64, stride: u64) -> Vec<i64> {
    let (first, last) = (truth.first_id(), truth.last_id());
    let (offset, step) = match baseline {
        Baseline::Always => (window as i64 - 1, stride as i64),
        Baseline::Periodic(period) => (period as i64 - 1, period as i64),
    };
    (0..)
        .map(|k| first + offset + k * step)
        .take_while(|&id| id <= last)
        .collect()
}

/// Maximal runs of samples that are clean, not label-shifted and outside every episode's
/// window: where a detector is in control.
fn in_control_stretches(
    truth: &StreamTruth,
    changes: &[Change],
    tolerance: Tolerance,
) -> Vec<(i64, i64)> {
    let (outcomes, _) = matching::match_alarms(changes, &[], tolerance);
    let mut stretches = Vec::new();
    let mut open: Option<(i64, i64)> = None;
    let mut windows = outcomes.iter().peekable();
    for sample in &truth.samples {
        let id = sample.sample_id;
        while windows.peek().is_some_and(|w| w.window_last < id) {
            windows.next();
        }
        let in_window = windows.peek().is_some_and(|w| w.window_first <= id);
        if !sample.drifted && !sample.label_shift && !in_window {
            open = Some(open.map_or((id, id), |(s, _)| (s, id)));
        } else if let Some(stretch) = open.take() {
            stretches.push(stretch);
        }
    }
    stretches.extend(open);
    stretches
}

/// A CSV number: empty for NaN (a ratio without a denominator), `inf` for infinity.
fn csv_number(value: f64) -> String {
    if value.is_nan() {
        String::new()
    } else if value.is_infinite() {
        if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{value}")
    }
}

/// The columns of `summary.csv`, in order.
pub const SUMMARY_COLUMNS: &[&str] = &[
    "detector",
    "source",
    "samples",
    "episodes",
    "detected",
    "n_alarms",
    "tp_alarms",
    "fp_alarms",
    "precision",
    "episode_recall",
    "mdr",
    "recall_alarms",
    "f1",
    "f1_capymoa",
    "mdt",
    "mdt_seconds",
    "ndt",
    "mdt_penalised",
    "far",
    "mtfa",
    "mtr",
    "arl0",
    "arl0_runs",
    "arl0_censored",
    "windows",
    "h0_windows",
    "h1_windows",
    "mixed_windows",
    "fpr",
    "fpr_ci_low",
    "fpr_ci_high",
    "power",
    "p_le_0_01",
    "p_le_0_05",
    "p_le_0_10",
    "p_ks_distance",
    "p_ks_p_value",
];

/// `summary.csv`: one row per detector, baselines last.
fn summary_csv(scores: &[DetectorScore]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(SUMMARY_COLUMNS)
        .expect("writing to memory cannot fail");
    for s in scores {
        let m = &s.metrics;
        let n = |v: f64| csv_number(v);
        let count = |v: usize| v.to_string();
        let optional = |v: Option<f64>| v.map_or(String::new(), csv_number);
        let windows = |i: usize| s.window_counts.map_or(String::new(), |c| c[i].to_string());
        let fpr = |i: usize| {
            s.fpr
                .map_or(String::new(), |f| csv_number([f.0, f.1, f.2][i]))
        };
        let calibration = |f: fn(&Calibration) -> f64| {
            s.calibration
                .as_ref()
                .map_or(String::new(), |c| csv_number(f(c)))
        };
        let row = [
            s.detector.clone(),
            s.source.clone(),
            count(m.samples),
            count(m.episodes),
            count(m.detected),
            count(m.alarms),
            count(m.tp_alarms),
            count(m.fp_alarms),
            n(m.precision),
            n(m.episode_recall),
            n(m.mdr),
            n(m.recall_alarms),
            n(m.f1),
            n(m.f1_capymoa),
            n(m.mdt),
            n(s.mdt_seconds),
            n(m.ndt),
            n(m.mdt_penalised),
            n(m.far),
            n(m.mtfa),
            n(m.mtr),
            n(s.arl0.0),
            count(s.arl0.1),
            count(s.arl0.2),
            windows(0),
            windows(1),
            windows(2),
            windows(3),
            fpr(0),
            fpr(1),
            fpr(2),
            optional(s.power),
            calibration(|c| c.share_below[0]),
            calibration(|c| c.share_below[1]),
            calibration(|c| c.share_below[2]),
            calibration(|c| c.ks_distance),
            calibration(|c| c.ks_p_value),
        ];
        writer
            .write_record(&row)
            .expect("writing to memory cannot fail");
    }
    String::from_utf8(writer.into_inner().expect("writing to memory cannot fail"))
        .expect("the fields are UTF-8")
}

/// The delay plot: a panel per transform list, per detector the median delay of its detected
/// episodes at each level, with the shortest and the longest.
fn delay_plot(episodes: &[EpisodeRow], max_delay: f64) -> Result<drift_measure::Plot, DetectError> {
    let mut delays: BTreeMap<(&str, &str), BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    let mut detectors: Vec<&str> = Vec::new();
    for episode in episodes {
        let (Some(level), Some(delay), false) =
            (episode.level, episode.delay, episode.transforms.is_empty())
        else {
            continue;
        };
        if !order.contains(&episode.transforms.as_str()) {
            order.push(&episode.transforms);
        }
        if !detectors.contains(&episode.detector.as_str()) {
            detectors.push(&episode.detector);
        }
        delays
            .entry((&episode.transforms, &episode.detector))
            .or_default()
            .entry(level.to_bits())
            .or_default()
            .push(delay as f64);
    }
    let panels: Vec<drift_measure::LevelPanel> = order
        .iter()
        .map(|transforms| drift_measure::LevelPanel {
            transforms: (*transforms).to_owned(),
            lines: detectors
                .iter()
                .filter_map(|detector| {
                    let by_level = delays.get(&(transforms, detector))?;
                    let mut points: Vec<(f64, f64, f64, f64)> = by_level
                        .iter()
                        .map(|(level, values)| {
                            let mut values = values.clone();
                            values.sort_by(f64::total_cmp);
                            let n = values.len();
                            let median = if n % 2 == 1 {
                                values[n / 2]
                            } else {
                                0.5 * (values[n / 2 - 1] + values[n / 2])
                            };
                            (f64::from_bits(*level), median, values[0], values[n - 1])
                        })
                        .collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Some(drift_measure::LevelLine {
                        detector: (*detector).to_owned(),
                        points,
                    })
                })
                .collect(),
        })
        .collect();
    drift_measure::delay_plot(&panels, max_delay)
        .map_err(|e| settings_error(format!("cannot draw the delay plot: {e}")))
}

/// The power plot: a panel per transform list, a line per detector with its interval.
fn power_plot(
    rows: &[PowerRow],
    alpha: f64,
    confidence: f64,
) -> Result<drift_measure::Plot, DetectError> {
    let mut panels: BTreeMap<&str, Vec<drift_measure::LevelLine>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for row in rows.iter().filter(|r| r.transforms != "none") {
        let Some(level) = row.level else { continue };
        if !order.contains(&row.transforms.as_str()) {
            order.push(&row.transforms);
        }
        let lines = panels.entry(&row.transforms).or_default();
        let line = match lines.iter_mut().find(|l| l.detector == row.detector) {
            Some(line) => line,
            None => {
                let size = rows
                    .iter()
                    .find(|r| r.detector == row.detector && r.transforms == "none");
                lines.push(drift_measure::LevelLine {
                    detector: row.detector.clone(),
                    points: size
                        .map(|s| (0.0, s.power, s.ci_low, s.ci_high))
                        .into_iter()
                        .collect(),
                });
                lines.last_mut().expect("just pushed")
            }
        };
        line.points
            .push((level, row.power, row.ci_low, row.ci_high));
    }
    let panels: Vec<drift_measure::LevelPanel> = order
        .into_iter()
        .map(|t| drift_measure::LevelPanel {
            transforms: t.to_owned(),
            lines: panels.remove(t).unwrap_or_default(),
        })
        .collect();
    drift_measure::power_plot(&panels, alpha, confidence)
        .map_err(|e| settings_error(format!("cannot draw the power plot: {e}")))
}
