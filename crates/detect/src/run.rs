//! A detection run: a clean reference output against a stream of outputs, window by window,
//! each detector's outcome per window and its alarms, written as one report transaction
//! (`windows.parquet`, `alarms.parquet`, `detect.json`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use drift_core::{Purpose, Shard, sample_rng};
use drift_writer::{
    AlarmRow, EMBEDDING_DIM, EmbeddingBatches, OnlineRow, ReportWriter, WindowRow, WriterError,
    alarms_table, online_table, windows_table,
};
use serde::{Deserialize, Serialize};

use crate::cvm::{EXACT_UP_TO, cvm_test};
use crate::ks::{Correction, FeatureTest, feature_columns, feature_tests, ks_test};
use crate::lsdd::LsddReference;
use crate::mmd::{Bandwidth, MmdReference, draw_permutations};
use crate::mmd_long::{CalibratedMmd, linear_mmd};
use crate::mmd_online::{MmdOnline, OnlineMonitor};

/// The files of a detection report; `detect.json`, the marker, is committed last.
pub const DETECT_FILES: &[&str] = &[
    "windows.parquet",
    "online.parquet",
    "alarms.parquet",
    "detect.json",
];

/// Stream samples an online detector takes at once (its kernel columns as one matrix product);
/// fixed, so its steps do not depend on how the stream's files are cut.
const ONLINE_BLOCK: usize = 256;

/// A two-sample test run on each feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerFeature {
    /// Kolmogorov-Smirnov (alibi's KSDrift).
    Ks,
    /// Cramér-von Mises (alibi's CVMDrift).
    Cvm,
}

impl PerFeature {
    /// The detector's name.
    pub fn name(self) -> &'static str {
        match self {
            PerFeature::Ks => "ks",
            PerFeature::Cvm => "cvm",
        }
    }

    fn test(self) -> FeatureTest {
        match self {
            PerFeature::Ks => ks_test,
            PerFeature::Cvm => cvm_test,
        }
    }
}

/// A detector and its settings, parsed from a spec such as `mmd`, `ks:correction=fdr` or
/// `mmd:permutations=500,sigma=2.5`. Defaults are alibi-detect's.
#[derive(Debug, Clone, PartialEq)]
pub enum DetectorSpec {
    /// A two-sample test per feature (KS or CvM), corrected for the number of features.
    PerFeature {
        /// The test.
        test: PerFeature,
        /// Bonferroni (default) or FDR.
        correction: Correction,
    },
    /// MMD with a permutation test.
    Mmd {
        /// Permutations per window (default 100).
        permutations: usize,
        /// The RBF bandwidth; the median heuristic on the reference when absent.
        sigma: Option<f64>,
    },
    /// MMD^2 against a fixed sub-reference, its null drawn once from a calibration pool split
    /// off the reference (`mmd:null=calibrated`): the long-stream mode.
    MmdCalibrated {
        /// Null statistics drawn (default 1000).
        draws: usize,
        /// Reference samples set aside as the calibration pool (default: half the reference).
        pool: Option<usize>,
        /// The RBF bandwidth; the median heuristic on the reference when absent.
        sigma: Option<f64>,
    },
    /// The linear-time MMD estimator with its normal null (`mmd:estimator=linear`).
    MmdLinear {
        /// The RBF bandwidth; the median heuristic on the reference when absent.
        sigma: Option<f64>,
    },
    /// The least-squares density difference with a permutation test.
    Lsdd {
        /// Permutations per window (default 100).
        permutations: usize,
        /// The RBF bandwidth on the standardised reference; the median heuristic when absent.
        sigma: Option<f64>,
        /// Kernel centres taken from the reference (default: max(R / 20, 1)).
        centers: Option<usize>,
        /// The largest mean relative difference a regularisation may cause (default 0.2).
        lambda_rd_max: f64,
    },
    /// Online MMD (alibi's MMDDriftOnline): one statistic per stream sample over its own
    /// sliding window, thresholds configured on the reference for an expected run time; reset
    /// after each alarm.
    MmdOnline {
        /// The expected run time under no drift, in samples (required).
        ert: f64,
        /// The sliding window (required).
        window: usize,
        /// Bootstraps configuring the thresholds (default 1000, alibi's).
        bootstraps: usize,
        /// The RBF bandwidth; the median heuristic on the reference when absent.
        sigma: Option<f64>,
    },
}

/// A detector spec that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("detector {spec:?}: {reason}")]
pub struct SpecError {
    spec: String,
    reason: String,
}

impl FromStr for DetectorSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let error = |reason: String| SpecError {
            spec: spec.to_owned(),
            reason,
        };
        let (name, settings) = spec.split_once(':').unwrap_or((spec, ""));
        let mut pairs = Vec::new();
        for pair in settings.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| error(format!("{pair:?} is not key=value")))?;
            pairs.push((key.trim(), value.trim()));
        }
        let unknown =
            |key: &str, known: &str| error(format!("unknown setting {key:?} (known: {known})"));
        match name.trim() {
            name @ ("ks" | "cvm") => {
                let test = if name == "ks" {
                    PerFeature::Ks
                } else {
                    PerFeature::Cvm
                };
                let mut correction = Correction::Bonferroni;
                for (key, value) in pairs {
                    match key {
                        "correction" => {
                            correction = match value {
                                "bonferroni" => Correction::Bonferroni,
                                "fdr" => Correction::Fdr,
                                other => {
                                    return Err(error(format!(
                                        "correction {other:?} is neither bonferroni nor fdr"
                                    )));
                                }
                            }
                        }
                        other => return Err(unknown(other, "correction")),
                    }
                }
                Ok(DetectorSpec::PerFeature { test, correction })
            }
            name @ ("mmd" | "lsdd") => {
                let (mut permutations, mut sigma) = (100, None);
                let (mut centers, mut lambda_rd_max) = (None, 0.2);
                // mmd's long-stream modes.
                let (mut null, mut estimator, mut draws, mut pool) = (None, None, None, None);
                let mut permutations_given = false;
                let whole = |key: &str, value: &str| whole_number(key, value, 1).map_err(error);
                for (key, value) in pairs {
                    match key {
                        "permutations" => {
                            permutations = whole(key, value)?;
                            permutations_given = true;
                        }
                        "sigma" => sigma = Some(positive_sigma(value).map_err(error)?),
                        "centers" if name == "lsdd" => centers = Some(whole(key, value)?),
                        "lambda_rd_max" if name == "lsdd" => {
                            lambda_rd_max = value
                                .parse::<f64>()
                                .ok()
                                .filter(|r| *r > 0.0 && *r < 1.0)
                                .ok_or_else(|| {
                                    error(format!("lambda_rd_max {value:?} is not in (0, 1)"))
                                })?;
                        }
                        "null" if name == "mmd" => null = Some(value),
                        "estimator" if name == "mmd" => estimator = Some(value),
                        "draws" if name == "mmd" => draws = Some(whole(key, value)?),
                        "pool" if name == "mmd" => pool = Some(whole(key, value)?),
                        other if name == "lsdd" => {
                            return Err(unknown(
                                other,
                                "permutations, sigma, centers, lambda_rd_max",
                            ));
                        }
                        other => {
                            return Err(unknown(
                                other,
                                "permutations, sigma, null, draws, pool, estimator",
                            ));
                        }
                    }
                }
                Ok(if name == "mmd" {
                    match (null, estimator) {
                        (None | Some("permutation"), None | Some("quadratic")) => {
                            if draws.is_some() || pool.is_some() {
                                return Err(error(
                                    "draws and pool belong to null=calibrated".into(),
                                ));
                            }
                            DetectorSpec::Mmd {
                                permutations,
                                sigma,
                            }
                        }
                        (Some("calibrated"), None | Some("quadratic")) => {
                            if permutations_given {
                                return Err(error(
                                    "a calibrated null draws no permutations (its draws: draws=N)"
                                        .into(),
                                ));
                            }
                            DetectorSpec::MmdCalibrated {
                                draws: draws.unwrap_or(1000),
                                pool,
                                sigma,
                            }
                        }
                        (None, Some("linear")) => {
                            if permutations_given || draws.is_some() || pool.is_some() {
                                return Err(error(
                                    "the linear estimator's null is normal: no permutations, draws or pool"
                                        .into(),
                                ));
                            }
                            DetectorSpec::MmdLinear { sigma }
                        }
                        (_, Some(other)) if other != "linear" && other != "quadratic" => {
                            return Err(error(format!(
                                "estimator {other:?} is neither quadratic nor linear"
                            )));
                        }
                        (Some(other), _) if other != "permutation" && other != "calibrated" => {
                            return Err(error(format!(
                                "null {other:?} is neither permutation nor calibrated"
                            )));
                        }
                        _ => {
                            return Err(error(
                                "the linear estimator has its own (normal) null".into(),
                            ));
                        }
                    }
                } else {
                    DetectorSpec::Lsdd {
                        permutations,
                        sigma,
                        centers,
                        lambda_rd_max,
                    }
                })
            }
            "mmd-online" => {
                let (mut ert, mut window, mut bootstraps, mut sigma) = (None, None, 1000, None);
                for (key, value) in pairs {
                    let whole = |least: usize| whole_number(key, value, least).map_err(error);
                    match key {
                        "ert" => {
                            ert = Some(
                                value
                                    .parse::<f64>()
                                    .ok()
                                    .filter(|e| e.is_finite() && *e > 1.0)
                                    .ok_or_else(|| {
                                        error(format!("ert {value:?} is not a number above 1"))
                                    })?,
                            );
                        }
                        "window" => window = Some(whole(2)?),
                        "bootstraps" => bootstraps = whole(2)?,
                        "sigma" => sigma = Some(positive_sigma(value).map_err(error)?),
                        other => return Err(unknown(other, "ert, window, bootstraps, sigma")),
                    }
                }
                let (Some(ert), Some(window)) = (ert, window) else {
                    return Err(error(
                        "mmd-online needs its expected run time and window, as in \
                         mmd-online:ert=500,window=50"
                            .into(),
                    ));
                };
                if (bootstraps as f64) < ert {
                    return Err(error(format!(
                        "{bootstraps} bootstraps cannot estimate the 1 - 1/ERT quantile for an \
                         ERT of {ert} (alibi: ideally ten times the ERT)"
                    )));
                }
                Ok(DetectorSpec::MmdOnline {
                    ert,
                    window,
                    bootstraps,
                    sigma,
                })
            }
            other => Err(error(format!(
                "unknown detector {other:?} (known: ks, cvm, mmd, lsdd, mmd-online)"
            ))),
        }
    }
}

/// A count setting's value, at least `least`.
fn whole_number(key: &str, value: &str, least: usize) -> Result<usize, String> {
    value
        .parse()
        .ok()
        .filter(|&n: &usize| n >= least)
        .ok_or_else(|| format!("{key} {value:?} is not a whole number of at least {least}"))
}

/// A bandwidth setting's value.
fn positive_sigma(value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| format!("sigma {value:?} is not a positive number"))
}

impl DetectorSpec {
    /// Whether the detector decides per stream sample (online) rather than per window.
    pub fn is_online(&self) -> bool {
        matches!(self, DetectorSpec::MmdOnline { .. })
    }

    /// The name in the report: the spec with its defaults left out.
    pub fn name(&self) -> String {
        match self {
            DetectorSpec::PerFeature {
                test,
                correction: Correction::Bonferroni,
            } => test.name().to_owned(),
            DetectorSpec::PerFeature {
                test,
                correction: Correction::Fdr,
            } => format!("{}:correction=fdr", test.name()),
            DetectorSpec::Mmd {
                permutations,
                sigma,
            } => named(
                "mmd",
                [
                    (*permutations != 100).then(|| format!("permutations={permutations}")),
                    sigma.map(|sigma| format!("sigma={sigma}")),
                ],
            ),
            DetectorSpec::MmdCalibrated { draws, pool, sigma } => named(
                "mmd",
                [
                    Some("null=calibrated".to_owned()),
                    (*draws != 1000).then(|| format!("draws={draws}")),
                    pool.map(|pool| format!("pool={pool}")),
                    sigma.map(|sigma| format!("sigma={sigma}")),
                ],
            ),
            DetectorSpec::MmdLinear { sigma } => named(
                "mmd",
                [
                    Some("estimator=linear".to_owned()),
                    sigma.map(|sigma| format!("sigma={sigma}")),
                ],
            ),
            DetectorSpec::Lsdd {
                permutations,
                sigma,
                centers,
                lambda_rd_max,
            } => named(
                "lsdd",
                [
                    (*permutations != 100).then(|| format!("permutations={permutations}")),
                    sigma.map(|sigma| format!("sigma={sigma}")),
                    centers.map(|centers| format!("centers={centers}")),
                    (*lambda_rd_max != 0.2).then(|| format!("lambda_rd_max={lambda_rd_max}")),
                ],
            ),
            DetectorSpec::MmdOnline {
                ert,
                window,
                bootstraps,
                sigma,
            } => named(
                "mmd-online",
                [
                    Some(format!("ert={ert}")),
                    Some(format!("window={window}")),
                    (*bootstraps != 1000).then(|| format!("bootstraps={bootstraps}")),
                    sigma.map(|sigma| format!("sigma={sigma}")),
                ],
            ),
        }
    }
}

/// `name`, or `name:a,b` with the settings that differ from the defaults (None: a default).
fn named<const N: usize>(name: &str, settings: [Option<String>; N]) -> String {
    let settings: Vec<String> = settings.into_iter().flatten().collect();
    if settings.is_empty() {
        name.to_owned()
    } else {
        format!("{name}:{}", settings.join(","))
    }
}

/// How a detection runs.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// The detectors, in report order.
    pub detectors: Vec<DetectorSpec>,
    /// Samples per test window.
    pub window: usize,
    /// Samples from one window's start to the next (default: the window, so windows do not
    /// overlap and their outcomes are independent under no drift).
    pub stride: Option<usize>,
    /// The significance level.
    pub alpha: f64,
    /// The seed of every permutation.
    pub seed: u64,
    /// Replace an existing report.
    pub overwrite: bool,
    /// Threads testing windows (the report does not depend on it).
    pub threads: usize,
    /// Test only this shard's contiguous range of the stream's windows (`merge` joins the
    /// shard reports into the report one process writes).
    pub shard: Option<Shard>,
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self {
            detectors: vec![DetectorSpec::Mmd {
                permutations: 100,
                sigma: None,
            }],
            window: 100,
            stride: None,
            alpha: 0.05,
            seed: 0,
            overwrite: false,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            shard: None,
        }
    }
}

/// Why a detection could not run.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// An input folder or the report folder failed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// An input on object storage could not be read.
    #[error(transparent)]
    Store(#[from] drift_store::StoreError),
    /// A report on object storage could not be locked or committed.
    #[error(transparent)]
    RemoteReport(#[from] drift_store::transaction::TransactionError),
    /// An input folder is not usable for detection.
    #[error("{folder}: {reason}")]
    Input {
        /// The folder.
        folder: PathBuf,
        /// Why.
        reason: String,
    },
    /// The settings do not fit the inputs.
    #[error("{0}")]
    Settings(String),
}

/// What a detection found, per detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorSummary {
    /// The detector's name in the report.
    pub detector: String,
    /// Windows tested.
    pub windows: usize,
    /// Windows that raised an alarm.
    pub alarms: usize,
    /// MMD: the bandwidth used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    /// MMD: permutations per window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permutations: Option<usize>,
    /// KS and CvM: the correction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<Correction>,
    /// KS and CvM: reference features holding one value only (a ReLU feature that is always
    /// 0). scipy's Cramér-von Mises statistic ranks ties as if ordered, so it finds such a
    /// feature drifted in every window where it stays constant (p about 5e-9 for 80 against 20
    /// zeros), and so do alibi's CVMDrift and `cvm`; KS is unaffected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constant_features: Option<usize>,
    /// LSDD: its centres and regularisations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsdd: Option<LsddSummary>,
    /// Online detectors: the configuration and every threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<OnlineSummary>,
    /// MMD with a calibrated null: the split and the null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationSummary>,
}

/// What `detect.json` records of a calibrated null (`mmd:null=calibrated`); p-values are
/// (1 + b) / (1 + B), b the null statistics at least the window's, B the draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSummary {
    /// The sub-reference every window is compared with.
    pub sub_reference: usize,
    /// Reference samples set aside; each null window is W of them.
    pub pool: usize,
    /// Null statistics drawn.
    pub draws: usize,
    /// The null's median, 95th and 99th percentiles (lower order statistics).
    pub null_median: f64,
    /// See `null_median`.
    pub null_q95: f64,
    /// See `null_median`.
    pub null_q99: f64,
}

/// What `detect.json` records of an online detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineSummary {
    /// The expected run time the thresholds target.
    pub ert: f64,
    /// The sliding window.
    pub window: usize,
    /// Bootstraps that configured the thresholds.
    pub bootstraps: usize,
    /// The sub-reference the stream is compared with (the reference less 2W - 1 samples).
    pub sub_reference: usize,
    /// Reference splits drawn until the initial window started below the first threshold.
    pub splits_tried: usize,
    /// Stream samples seen (rows of `online.parquet`).
    pub steps: usize,
    /// The threshold of steps t = 1..W (alibi's `thresholds`; a later step uses the last).
    pub thresholds: Vec<f64>,
    /// After an alarm the detector resets to t = 0 (the initial window), as alibi's
    /// `reset_state()`, so each alarm starts a new run.
    pub reset_after_alarm: bool,
}

/// What `detect.json` records of an LSDD detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LsddSummary {
    /// Kernel centres split off the reference.
    pub centers: usize,
    /// The reference rows left to compare with (the reference less its centres).
    pub effective_reference: usize,
    /// The largest mean relative difference a regularisation may cause.
    pub lambda_rd_max: f64,
    /// Windows per regularisation chosen (alibi chooses lambda per window, from its
    /// permutations; `windows.parquet` has each window's).
    pub lambdas: BTreeMap<String, usize>,
}

/// One input folder as `detect.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The folder, as given.
    pub folder: String,
    /// SHA-256 of its `drift.json` (which hashes every table).
    pub drift_json_sha256: String,
    /// Its samples.
    pub samples: usize,
}

/// `detect.json`: every input and resolved parameter, so the report can be reproduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectRecord {
    /// The tool and version.
    pub tool: String,
    /// The reference output.
    pub reference: InputRecord,
    /// The stream's outputs, in stream order.
    pub stream: Vec<InputRecord>,
    /// Samples per window.
    pub window: usize,
    /// Samples between window starts.
    pub stride: usize,
    /// The significance level (alarm iff p < alpha; KS after the correction).
    pub alpha: f64,
    /// The seed of the permutations (window w of detector d draws from (seed, w, d)).
    pub seed: u64,
    /// The p-value convention of permutation tests.
    pub p_value_convention: String,
    /// The embeddings' weights and normalization (equal in every input).
    pub embeddings: serde_json::Value,
    /// Per detector.
    pub detectors: Vec<DetectorSummary>,
    /// A shard report's part of the stream's windows; absent for a whole report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<DetectShardRecord>,
}

/// `detect.json`'s `shard`: which of the stream's windows a shard report holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectShardRecord {
    /// The shard, from 0.
    pub index: u64,
    /// Shards in all.
    pub count: u64,
    /// Its first window.
    pub first_window: u64,
    /// The window after its last.
    pub end_window: u64,
    /// The stream's windows.
    pub windows: u64,
}

/// An input folder, checked: its record's embeddings and its drift log.
struct Input {
    folder: PathBuf,
    /// Where its files are read: the folder, or a local copy of an output on object storage.
    files: InputFiles,
    record: InputRecord,
    embeddings: serde_json::Value,
    /// The reference's image sources (empty for a stream folder).
    sources: BTreeSet<String>,
    /// A stream folder's first image that the reference holds too.
    shared: Option<String>,
    first_id: u64,
    last_id: u64,
    clean: bool,
}

/// An input output folder's files: the folder itself, or, for an output on object storage, a
/// local copy of its record, drift log and embeddings (each checked against the record's
/// SHA-256; the images are not needed).
pub(crate) struct InputFiles {
    folder: PathBuf,
    copy: Option<drift_store::LocalCopy>,
}

impl InputFiles {
    pub(crate) fn open(folder: &Path) -> Result<Self, DetectError> {
        let skip = [drift_writer::SAMPLED_IMAGES];
        let copy = drift_store::fetch_if_remote(folder, drift_writer::DRIFT_JSON, &skip)?;
        Ok(Self {
            folder: folder.to_owned(),
            copy,
        })
    }

    /// Where the files are.
    pub(crate) fn path(&self) -> &Path {
        self.copy.as_ref().map_or(&self.folder, |copy| copy.path())
    }
}

/// An output folder's `drift.json`, read and hashed.
pub(crate) struct OutputRecord {
    /// The folder as `detect.json` and `score.json` record it (samples: 0 until counted).
    pub input: InputRecord,
    /// The record.
    pub json: serde_json::Value,
}

impl OutputRecord {
    pub(crate) fn read(files: &InputFiles) -> Result<Self, DetectError> {
        let folder = &files.folder;
        let input_error = |reason: String| DetectError::Input {
            folder: folder.to_owned(),
            reason,
        };
        let marker = files.path().join(drift_writer::DRIFT_JSON);
        let text =
            drift_core::read_small_text(&marker, drift_core::METADATA_LIMIT).map_err(|e| {
                input_error(format!(
                    "cannot read drift.json ({e}): not an output folder?"
                ))
            })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| input_error(format!("drift.json is not JSON: {e}")))?;
        let hash =
            drift_core::sha256_hex(text.as_bytes()).map_err(|e| input_error(e.to_string()))?;
        let samples = json["samples"].as_u64().unwrap_or(0) as usize;
        Ok(Self {
            input: InputRecord {
                folder: folder.display().to_string(),
                drift_json_sha256: hash,
                samples,
            },
            json,
        })
    }
}

/// Reads and checks `folder`; a stream folder (`reference_sources` given) is checked for images
/// it shares with the reference.
fn read_input(
    folder: &Path,
    reference_sources: Option<&BTreeSet<String>>,
) -> Result<Input, DetectError> {
    let files = InputFiles::open(folder)?;
    let OutputRecord { mut input, json } = OutputRecord::read(&files)?;
    input.samples = 0;
    let embeddings = json
        .get("embeddings")
        .filter(|e| !e.is_null())
        .cloned()
        .ok_or_else(|| DetectError::Input {
            folder: folder.to_owned(),
            reason: "has no embeddings (generate it with --embeddings)".to_owned(),
        })?;
    // The log a batch at a time: a stream folder may hold millions of samples. The reference's
    // sources are kept; a stream folder's are only looked up in them.
    let (mut first_id, mut last_id, mut clean) = (None, 0, true);
    let mut sources = BTreeSet::new();
    let mut shared = None;
    for batch in drift_writer::DriftLogBatches::open(files.path())? {
        for sample in batch? {
            input.samples += 1;
            first_id.get_or_insert(sample.sample_id);
            last_id = sample.sample_id;
            clean &= !sample.drifted && sample.class_prior.is_none();
            if let Some(source) = sample.source_path {
                match reference_sources {
                    None => {
                        sources.insert(source);
                    }
                    Some(reference) => {
                        if shared.is_none() && reference.contains(&source) {
                            shared = Some(source);
                        }
                    }
                }
            }
        }
    }
    Ok(Input {
        folder: folder.to_owned(),
        files,
        record: input,
        embeddings,
        sources,
        shared,
        first_id: first_id.unwrap_or(0),
        last_id,
        clean,
    })
}

/// The fields of the embeddings record that make two outputs' embeddings comparable.
fn embedding_identity(embeddings: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    (
        embeddings["weights_sha256"].clone(),
        embeddings["normalize"].clone(),
    )
}

/// A detector set up on the reference.
enum Prepared<'a> {
    PerFeature {
        test: PerFeature,
        reference_sorted: &'a [Vec<f64>],
        correction: Correction,
    },
    Mmd {
        reference: Box<MmdReference>,
        permutations: usize,
    },
    Lsdd {
        reference: Box<LsddReference>,
        permutations: usize,
        lambda_rd_max: f64,
    },
    MmdOnline {
        detector: Box<MmdOnline>,
        bootstraps: usize,
    },
    MmdCalibrated {
        detector: Box<CalibratedMmd>,
    },
    MmdLinear {
        reference: Box<MmdReference>,
    },
}

/// Runs `options.detectors` over `stream` (output folders in stream order) against the clean
/// output `reference`, and commits the report into `output`.
pub fn detect(
    reference: &Path,
    stream: &[PathBuf],
    output: &Path,
    options: &DetectOptions,
) -> Result<DetectRecord, DetectError> {
    drift_store::transaction::write_folder(
        output,
        DETECT_FILES,
        "detect.json",
        options.overwrite,
        |folder| detect_into(reference, stream, folder, options),
    )
}

/// [`detect`] into the local folder `output`.
fn detect_into(
    reference: &Path,
    stream: &[PathBuf],
    output: &Path,
    options: &DetectOptions,
) -> Result<DetectRecord, DetectError> {
    let (names, stride) = check_settings(options, stream)?;
    let window = options.window;
    // Lock the report first: a failure below leaves any old report as it was.
    let report = ReportWriter::create(output, DETECT_FILES, "detect.json", options.overwrite)?;
    let (reference_input, inputs) = read_inputs(reference, stream)?;
    let total: usize = inputs.iter().map(|i| i.record.samples).sum();
    let windows = if total >= window {
        ((total - window) / stride + 1) as u64
    } else {
        0
    };
    let shard = match options.shard {
        None => None,
        Some(shard) => {
            if let Some(online) = options.detectors.iter().find(|d| d.is_online()) {
                return Err(DetectError::Settings(format!(
                    "--shard {shard}: {} is an online detector, which reads the stream in order \
                     from its start; run it without --shard",
                    online.name()
                )));
            }
            if windows < shard.count {
                return Err(DetectError::Settings(format!(
                    "--shard {shard}: the stream has {windows} windows, fewer than the {} \
                     shards: every shard needs one",
                    shard.count
                )));
            }
            let (first_window, end_window) = shard.range(windows);
            Some(DetectShardRecord {
                index: shard.index,
                count: shard.count,
                first_window,
                end_window,
                windows,
            })
        }
    };
    let tested_windows = shard
        .as_ref()
        .map_or((0, windows), |s| (s.first_window, s.end_window));
    let reference_rows = read_reference_rows(reference_input.files.path())?;
    let reference_count = reference_rows.len() / EMBEDDING_DIM;
    let batch_detectors = options.detectors.iter().any(|spec| !spec.is_online());
    if batch_detectors && window > reference_count {
        return Err(DetectError::Input {
            folder: reference.to_owned(),
            reason: format!(
                "holds {reference_count} samples, fewer than a window of {window}: a window is \
                 tested against at least as many reference samples (a larger reference, or a \
                 smaller --window)"
            ),
        });
    }
    let uses_cvm = options.detectors.iter().any(|spec| {
        matches!(
            spec,
            DetectorSpec::PerFeature {
                test: PerFeature::Cvm,
                ..
            }
        )
    });
    if uses_cvm && reference_count.max(window) <= EXACT_UP_TO {
        return Err(DetectError::Settings(format!(
            "cvm with a reference of {reference_count} and windows of {window}: scipy (and alibi) \
             test samples of at most {EXACT_UP_TO} by the exact distribution, which is not \
             ported; use a reference or window of more than {EXACT_UP_TO}"
        )));
    }
    // The reference's columns, sorted once for every per-feature detector.
    let per_feature = options
        .detectors
        .iter()
        .any(|spec| matches!(spec, DetectorSpec::PerFeature { .. }));
    let reference_sorted: Vec<Vec<f64>> = if per_feature {
        let mut columns = feature_columns(&reference_rows, EMBEDDING_DIM);
        columns
            .iter_mut()
            .for_each(|column| column.sort_by(f64::total_cmp));
        columns
    } else {
        Vec::new()
    };
    let prepared: Vec<Prepared> = options
        .detectors
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            Ok(match spec {
                DetectorSpec::PerFeature { test, correction } => Prepared::PerFeature {
                    test: *test,
                    reference_sorted: &reference_sorted,
                    correction: *correction,
                },
                DetectorSpec::Mmd {
                    permutations,
                    sigma,
                } => Prepared::Mmd {
                    reference: Box::new(MmdReference::new(
                        reference_rows.clone(),
                        EMBEDDING_DIM,
                        *sigma,
                    )),
                    permutations: *permutations,
                },
                DetectorSpec::Lsdd {
                    permutations,
                    sigma,
                    centers,
                    lambda_rd_max,
                } => {
                    // The reference's split into kernel centres and the rest, drawn once per run
                    // from (seed, 0, the detector's setup purpose), as alibi's `torch.randperm`.
                    let count = reference_count;
                    let centers = centers.unwrap_or((count / 20).max(1)).min(count - 1);
                    let mut rng = sample_rng(options.seed, 0, Purpose::DetectorSetup(index as u32));
                    let split = draw_permutations(&mut rng, count, 1).remove(0);
                    Prepared::Lsdd {
                        reference: Box::new(LsddReference::new(
                            &reference_rows,
                            EMBEDDING_DIM,
                            *sigma,
                            &split,
                            centers,
                            *lambda_rd_max,
                        )),
                        permutations: *permutations,
                        lambda_rd_max: *lambda_rd_max,
                    }
                }
                DetectorSpec::MmdCalibrated { draws, pool, sigma } => {
                    let pool = pool.unwrap_or(reference_count / 2);
                    if pool < 2 * window || pool + 2 > reference_count {
                        return Err(DetectError::Settings(format!(
                            "{}: a calibration pool of {pool} of the reference's {reference_count} \
                         samples: the pool must hold at least two windows ({}) and leave at \
                         least 2 samples (ten windows or more keep the null's spread; a larger \
                         reference or a smaller --window)",
                            names[index],
                            2 * window
                        )));
                    }
                    // The split, then each null window, from (seed, 0, the detector's setup
                    // purpose).
                    let reference =
                        MmdReference::new(reference_rows.clone(), EMBEDDING_DIM, *sigma);
                    let mut rng = sample_rng(options.seed, 0, Purpose::DetectorSetup(index as u32));
                    let split = draw_permutations(&mut rng, reference_count, 1).remove(0);
                    let null_windows: Vec<Vec<usize>> = (0..*draws)
                        .map(|_| rand::seq::index::sample(&mut rng, pool, window).into_vec())
                        .collect();
                    Prepared::MmdCalibrated {
                        detector: Box::new(CalibratedMmd::new(
                            &reference,
                            &split,
                            pool,
                            &null_windows,
                            options.threads,
                        )),
                    }
                }
                DetectorSpec::MmdLinear { sigma } => Prepared::MmdLinear {
                    reference: Box::new(MmdReference::new(
                        reference_rows.clone(),
                        EMBEDDING_DIM,
                        *sigma,
                    )),
                },
                DetectorSpec::MmdOnline {
                    ert,
                    window,
                    bootstraps,
                    sigma,
                } => {
                    // The bootstraps, then the reference splits, from (seed, 0, the detector's setup
                    // purpose), in the order alibi's `torch.randperm` draws them.
                    let reference =
                        MmdReference::new(reference_rows.clone(), EMBEDDING_DIM, *sigma);
                    let mut rng = sample_rng(options.seed, 0, Purpose::DetectorSetup(index as u32));
                    let drawn = draw_permutations(&mut rng, reference_count, *bootstraps);
                    let detector = MmdOnline::configure(
                        &reference,
                        *ert,
                        *window,
                        &drawn,
                        || draw_permutations(&mut rng, reference_count, 1).remove(0),
                        options.threads,
                    )
                    .map_err(|e| DetectError::Settings(format!("{}: {e}", names[index])))?;
                    Prepared::MmdOnline {
                        detector: Box::new(detector),
                        bootstraps: *bootstraps,
                    }
                }
            })
        })
        .collect::<Result<_, DetectError>>()?;
    let tested = Tested {
        prepared: &prepared,
        names: &names,
        reference_count,
        options,
        windows: tested_windows,
    };
    let (rows, online) = tested.stream(&inputs, WindowBuffer::new(window, stride))?;

    // Each detector's alarms, in detector order: a window's last sample, an online step's.
    let alarms: Vec<AlarmRow> = rows
        .iter()
        .zip(&online)
        .flat_map(|(windows, steps)| {
            let from_windows = windows.iter().filter(|r| r.alarm).map(|r| AlarmRow {
                detector: r.detector.clone(),
                sample_id: r.last_sample_id,
                timestamp: r.last_timestamp,
            });
            let from_steps = steps.iter().filter(|r| r.alarm).map(|r| AlarmRow {
                detector: r.detector.clone(),
                sample_id: r.sample_id,
                timestamp: r.timestamp,
            });
            from_windows.chain(from_steps).collect::<Vec<_>>()
        })
        .collect();
    let summaries = prepared
        .iter()
        .zip(&names)
        .zip(rows.iter().zip(&online))
        .map(|((detector, name), (rows, steps))| detector.summary(name, rows, steps))
        .collect();
    let record = DetectRecord {
        tool: format!("drift-pipeline {}", env!("CARGO_PKG_VERSION")),
        reference: reference_input.record,
        stream: inputs.into_iter().map(|i| i.record).collect(),
        window,
        stride,
        alpha: options.alpha,
        seed: options.seed,
        p_value_convention: "permutation tests: p = b/B with b the permuted statistics at least the observed one (alibi-detect's; the observed statistic is not counted), both in windows.parquet, so (b+1)/(B+1) can be derived".into(),
        embeddings: reference_input.embeddings,
        detectors: summaries,
        shard,
    };
    let all_rows: Vec<WindowRow> = rows.into_iter().flatten().collect();
    let all_steps: Vec<OnlineRow> = online.into_iter().flatten().collect();
    write_report(report, output, &all_rows, &all_steps, &alarms, &record)?;
    Ok(record)
}

/// Stages the report's files and commits them, `detect.json` last.
pub(crate) fn write_report(
    mut report: ReportWriter,
    output: &Path,
    windows: &[WindowRow],
    steps: &[OnlineRow],
    alarms: &[AlarmRow],
    record: &DetectRecord,
) -> Result<(), DetectError> {
    let path = |name: &str| output.join(name);
    report.add(
        "windows.parquet",
        &windows_table(windows, &path("windows.parquet"))?,
    )?;
    report.add(
        "online.parquet",
        &online_table(steps, &path("online.parquet"))?,
    )?;
    report.add(
        "alarms.parquet",
        &alarms_table(alarms, &path("alarms.parquet"))?,
    )?;
    let json = serde_json::to_string_pretty(record).expect("the record serializes") + "\n";
    report.add("detect.json", json.as_bytes())?;
    report.finish()?;
    Ok(())
}

/// The checks of the settings alone; returns the detectors' names and the stride.
fn check_settings(
    options: &DetectOptions,
    stream: &[PathBuf],
) -> Result<(Vec<String>, usize), DetectError> {
    let settings = |reason: String| Err(DetectError::Settings(reason));
    if options.detectors.is_empty() {
        return settings("no detector given".into());
    }
    if stream.is_empty() {
        return settings("no stream given".into());
    }
    if !(options.alpha > 0.0 && options.alpha < 1.0) {
        return settings(format!("alpha {} is not between 0 and 1", options.alpha));
    }
    let window = options.window;
    let stride = options.stride.unwrap_or(window);
    if window < 2 || stride < 1 {
        return settings(format!(
            "window {window} and stride {stride}: a window needs at least 2 samples and the stride at least 1"
        ));
    }
    let names: Vec<String> = options.detectors.iter().map(DetectorSpec::name).collect();
    if let Some(twice) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
    {
        return settings(format!("detector {} is given twice", twice.1));
    }
    Ok((names, stride))
}

/// The reference and the stream's folders, each read and checked: a clean reference, the same
/// embeddings everywhere, no image shared with the reference, consecutive stream folders.
fn read_inputs(reference: &Path, stream: &[PathBuf]) -> Result<(Input, Vec<Input>), DetectError> {
    let reference_input = read_input(reference, None)?;
    if !reference_input.clean {
        return Err(DetectError::Input {
            folder: reference.to_owned(),
            reason: "is not a clean output (some samples are drifted or label-shifted): a reference must hold no drift".into(),
        });
    }
    let identity = embedding_identity(&reference_input.embeddings);
    let mut inputs: Vec<Input> = Vec::new();
    for folder in stream {
        let input = read_input(folder, Some(&reference_input.sources))?;
        let refuse = |reason: String| {
            Err(DetectError::Input {
                folder: folder.clone(),
                reason,
            })
        };
        if embedding_identity(&input.embeddings) != identity {
            return refuse(format!(
                "its embeddings come from other weights or another normalization than the reference's ({} with {}, against {} with {})",
                input.embeddings["weights_sha256"],
                input.embeddings["normalize"],
                identity.0,
                identity.1
            ));
        }
        if let Some(shared) = &input.shared {
            return refuse(format!(
                "shares the image {shared} with the reference {}: a test against a reference that holds stream images is biased",
                reference.display()
            ));
        }
        if let Some(previous) = inputs.last()
            && input.record.samples > 0
            && input.first_id != previous.last_id + 1
        {
            return refuse(format!(
                "starts at sample {} but {} ends at sample {}: the stream's folders must be consecutive, in stream order",
                input.first_id,
                previous.folder.display(),
                previous.last_id
            ));
        }
        inputs.push(input);
    }
    Ok((reference_input, inputs))
}

/// The reference's embeddings, whole (a few thousand rows), at least 2.
fn read_reference_rows(reference: &Path) -> Result<Vec<f64>, DetectError> {
    let mut rows = Vec::new();
    for batch in EmbeddingBatches::open(reference)? {
        rows.extend(batch?.values);
    }
    let count = rows.len() / EMBEDDING_DIM;
    if count < 2 {
        return Err(DetectError::Input {
            folder: reference.to_owned(),
            reason: format!("holds {count} samples; a reference needs at least 2"),
        });
    }
    Ok(rows)
}

impl Prepared<'_> {
    /// The detector's line of `detect.json`, from its rows.
    fn summary(&self, name: &str, rows: &[WindowRow], steps: &[OnlineRow]) -> DetectorSummary {
        let (bandwidth, permutations, correction, constant_features) = match self {
            Prepared::MmdOnline { detector, .. } => (Some(detector.bandwidth()), None, None, None),
            Prepared::MmdCalibrated { detector } => (Some(detector.bandwidth()), None, None, None),
            Prepared::MmdLinear { reference } => (Some(reference.bandwidth()), None, None, None),
            Prepared::Mmd {
                reference,
                permutations,
            } => (Some(reference.bandwidth()), Some(*permutations), None, None),
            Prepared::Lsdd {
                reference,
                permutations,
                ..
            } => (Some(reference.bandwidth()), Some(*permutations), None, None),
            Prepared::PerFeature {
                reference_sorted,
                correction,
                ..
            } => (
                None,
                None,
                Some(*correction),
                Some(
                    reference_sorted
                        .iter()
                        .filter(|column| column.first() == column.last())
                        .count(),
                ),
            ),
        };
        let lsdd = match self {
            Prepared::Lsdd {
                reference,
                lambda_rd_max,
                ..
            } => {
                let mut lambdas: BTreeMap<String, usize> = BTreeMap::new();
                for lambda in rows.iter().filter_map(|r| r.lambda) {
                    *lambdas.entry(format!("{lambda:e}")).or_default() += 1;
                }
                Some(LsddSummary {
                    centers: reference.centers(),
                    effective_reference: reference.effective_len(),
                    lambda_rd_max: *lambda_rd_max,
                    lambdas,
                })
            }
            _ => None,
        };
        let online = match self {
            Prepared::MmdOnline {
                detector,
                bootstraps,
            } => Some(OnlineSummary {
                ert: detector.ert(),
                window: detector.window(),
                bootstraps: *bootstraps,
                sub_reference: detector.sub_reference_len(),
                splits_tried: detector.splits_tried(),
                steps: steps.len(),
                thresholds: detector.thresholds().to_vec(),
                reset_after_alarm: true,
            }),
            _ => None,
        };
        let calibration = match self {
            Prepared::MmdCalibrated { detector } => {
                let null = detector.null();
                let quantile =
                    |q: f64| null[((q * null.len() as f64) as usize).min(null.len() - 1)];
                Some(CalibrationSummary {
                    sub_reference: detector.sub_reference_len(),
                    pool: detector.pool(),
                    draws: null.len(),
                    null_median: quantile(0.5),
                    null_q95: quantile(0.95),
                    null_q99: quantile(0.99),
                })
            }
            _ => None,
        };
        DetectorSummary {
            detector: name.to_owned(),
            windows: rows.len(),
            alarms: rows.iter().filter(|r| r.alarm).count()
                + steps.iter().filter(|r| r.alarm).count(),
            bandwidth,
            permutations,
            correction,
            constant_features,
            lsdd,
            online,
            calibration,
        }
    }
}

/// The last `window` samples of the stream, and when a window is due.
struct WindowBuffer {
    window: usize,
    stride: usize,
    ids: std::collections::VecDeque<(i64, f64)>,
    values: std::collections::VecDeque<f64>,
    seen: usize,
    windows: usize,
}

/// A window's samples.
struct FullWindow {
    index: usize,
    first: (i64, f64),
    last: (i64, f64),
    values: Vec<f64>,
}

impl WindowBuffer {
    fn new(window: usize, stride: usize) -> Self {
        Self {
            window,
            stride,
            ids: Default::default(),
            values: Default::default(),
            seen: 0,
            windows: 0,
        }
    }

    /// Takes the next sample; returns the window it completes, if any (window w covers stream
    /// positions w stride .. w stride + window - 1).
    fn push(&mut self, id: i64, timestamp: f64, values: &[f64]) -> Option<FullWindow> {
        let position = self.seen;
        self.seen += 1;
        self.ids.push_back((id, timestamp));
        self.values.extend(values);
        if self.ids.len() > self.window {
            self.ids.pop_front();
            self.values.drain(..values.len());
        }
        let start = (position + 1).checked_sub(self.window)?;
        if start % self.stride != 0 {
            return None;
        }
        self.windows += 1;
        Some(FullWindow {
            index: start / self.stride,
            first: self.ids[0],
            last: self.ids[self.ids.len() - 1],
            values: self.values.iter().copied().collect(),
        })
    }
}

/// What testing a window needs besides the window.
struct Tested<'a> {
    prepared: &'a [Prepared<'a>],
    names: &'a [String],
    reference_count: usize,
    options: &'a DetectOptions,
    /// The windows to test, `start..end` (a shard's; else all).
    windows: (u64, u64),
}

impl Tested<'_> {
    /// Every detector's rows over the stream, read a record batch at a time; a window is
    /// tested once its last sample is read. Windows are tested in groups of two per thread,
    /// each on one thread from its own draws, so the rows do not depend on the thread count.
    #[allow(clippy::type_complexity)]
    fn stream(
        &self,
        inputs: &[Input],
        mut buffer: WindowBuffer,
    ) -> Result<(Vec<Vec<WindowRow>>, Vec<Vec<OnlineRow>>), DetectError> {
        let threads = self.options.threads.max(1);
        let mut rows: Vec<Vec<WindowRow>> = vec![Vec::new(); self.prepared.len()];
        let mut pending = Vec::with_capacity(2 * threads);
        let batch_detectors = self
            .prepared
            .iter()
            .any(|p| !matches!(p, Prepared::MmdOnline { .. }));
        let mut online = OnlineRun::new(self.prepared, self.names);
        let online_detectors = self
            .prepared
            .iter()
            .any(|p| matches!(p, Prepared::MmdOnline { .. }));
        let (first_window, end_window) = self.windows;
        'stream: for input in inputs {
            for batch in EmbeddingBatches::open(input.files.path())? {
                let batch = batch?;
                for (i, values) in batch.values.chunks_exact(EMBEDDING_DIM).enumerate() {
                    let id = batch.sample_ids[i];
                    online.push(id, batch.timestamps[i], values);
                    if !batch_detectors {
                        continue;
                    }
                    // A shard's windows all tested, the rest of the stream is not read.
                    if !online_detectors && buffer.windows as u64 >= end_window {
                        break 'stream;
                    }
                    if let Some(full) = buffer.push(id, batch.timestamps[i], values)
                        && full.index as u64 >= first_window
                    {
                        pending.push(full);
                    }
                    if pending.len() == 2 * threads {
                        self.add(&mut pending, threads, &mut rows)?;
                    }
                }
            }
        }
        self.add(&mut pending, threads, &mut rows)?;
        let online = online.finish();
        if batch_detectors && buffer.windows == 0 {
            return Err(DetectError::Settings(format!(
                "the stream holds {} samples, fewer than one window of {}",
                buffer.seen, buffer.window
            )));
        }
        Ok((rows, online))
    }

    /// Tests the `pending` windows on up to `threads` threads, each a contiguous share, and
    /// appends each detector's rows in window order.
    fn add(
        &self,
        pending: &mut Vec<FullWindow>,
        threads: usize,
        rows: &mut [Vec<WindowRow>],
    ) -> Result<(), DetectError> {
        let tested = crate::map_on_threads(pending, threads, |window| self.test_all(window));
        pending.clear();
        for per_window in tested {
            for (d, row) in per_window?.into_iter().enumerate() {
                rows[d].extend(row);
            }
        }
        Ok(())
    }

    /// Every detector's row for one window.
    fn test_all(&self, window: &FullWindow) -> Result<Vec<Option<WindowRow>>, DetectError> {
        self.prepared
            .iter()
            .enumerate()
            .map(|(d, detector)| {
                test_window(
                    detector,
                    &self.names[d],
                    d,
                    window,
                    self.reference_count,
                    self.options,
                )
            })
            .collect()
    }
}

fn test_window(
    detector: &Prepared,
    name: &str,
    detector_index: usize,
    window: &FullWindow,
    reference_count: usize,
    options: &DetectOptions,
) -> Result<Option<WindowRow>, DetectError> {
    let n_test = window.values.len() / EMBEDDING_DIM;
    let mut row = WindowRow {
        detector: name.to_owned(),
        window: window.index as i64,
        first_sample_id: window.first.0,
        last_sample_id: window.last.0,
        first_timestamp: window.first.1,
        last_timestamp: window.last.1,
        n_reference: reference_count as i64,
        n_test: n_test as i64,
        statistic: 0.0,
        p_value: None,
        perm_exceed: None,
        n_permutations: None,
        threshold: 0.0,
        alarm: false,
        features_drifted: None,
        min_feature_p: None,
        lambda: None,
    };
    match detector {
        Prepared::PerFeature {
            test,
            reference_sorted,
            correction,
        } => {
            let columns = feature_columns(&window.values, EMBEDDING_DIM);
            let outcome = feature_tests(
                reference_sorted,
                &columns,
                options.alpha,
                *correction,
                test.test(),
            );
            let features = outcome.p_values.len() as f64;
            let mut sorted: Vec<f64> = outcome.p_values.iter().map(|&p| f64::from(p)).collect();
            sorted.sort_by(f64::total_cmp);
            // The window's p-value for the global null: Bonferroni's min(1, d min p), or for
            // FDR Simes' min over i of d p_(i) / i.
            let p_value = match correction {
                Correction::Bonferroni => (features * sorted[0]).min(1.0),
                Correction::Fdr => sorted
                    .iter()
                    .enumerate()
                    .map(|(i, p)| features * p / (i + 1) as f64)
                    .fold(1.0, f64::min),
            };
            row.statistic = outcome
                .statistics
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            row.p_value = Some(p_value);
            row.threshold = outcome.threshold;
            row.alarm = outcome.alarm;
            row.features_drifted = Some(outcome.features_drifted as i64);
            row.min_feature_p = Some(sorted[0]);
        }
        Prepared::Mmd {
            reference,
            permutations,
        } => {
            let mut rng = sample_rng(
                options.seed,
                window.index as u64,
                Purpose::DetectorPermutations(detector_index as u32),
            );
            let drawn = draw_permutations(&mut rng, reference_count + n_test, *permutations);
            let outcome = reference.test(&window.values, &drawn, options.alpha);
            let p_value = outcome.p_value();
            row.statistic = outcome.statistic;
            row.p_value = Some(p_value);
            row.perm_exceed = Some(outcome.exceed as i64);
            row.n_permutations = Some(outcome.permutations as i64);
            row.threshold = f64::from(outcome.threshold);
            // alibi: drift iff p < alpha, compared in f32 (its p-value is an f32).
            row.alarm = (p_value as f32) < options.alpha as f32;
        }
        Prepared::Lsdd {
            reference,
            permutations,
            ..
        } => {
            let effective = reference.effective_len();
            let mut rng = sample_rng(
                options.seed,
                window.index as u64,
                Purpose::DetectorPermutations(detector_index as u32),
            );
            let drawn = draw_permutations(&mut rng, effective + n_test, *permutations);
            let outcome = reference
                .test(&window.values, &drawn, options.alpha)
                .map_err(|e| {
                    DetectError::Settings(format!(
                        "{name}: window {} (samples {}..={}): {e}",
                        window.index, window.first.0, window.last.0
                    ))
                })?;
            let p_value = outcome.p_value();
            row.n_reference = effective as i64;
            row.statistic = outcome.statistic;
            row.p_value = Some(p_value);
            row.perm_exceed = Some(outcome.exceed as i64);
            row.n_permutations = Some(outcome.permutations as i64);
            row.threshold = outcome.threshold;
            row.lambda = Some(outcome.lambda);
            // alibi's LSDD p-value is an f32 mean too.
            row.alarm = (p_value as f32) < options.alpha as f32;
        }
        Prepared::MmdCalibrated { detector } => {
            let outcome = detector.test(&window.values, options.alpha);
            let p_value = outcome.p_value();
            row.n_reference = detector.sub_reference_len() as i64;
            row.statistic = outcome.statistic;
            row.p_value = Some(p_value);
            row.perm_exceed = Some(outcome.exceed as i64);
            row.n_permutations = Some(outcome.draws as i64);
            row.threshold = outcome.threshold;
            row.alarm = p_value < options.alpha;
        }
        Prepared::MmdLinear { reference } => {
            // The window's reference samples, drawn from (seed, window, detector).
            let mut rng = sample_rng(
                options.seed,
                window.index as u64,
                Purpose::DetectorPermutations(detector_index as u32),
            );
            let drawn = rand::seq::index::sample(&mut rng, reference_count, n_test);
            let rows: Vec<f64> = drawn
                .iter()
                .flat_map(|i| reference.row(i).iter().copied())
                .collect();
            let outcome = linear_mmd(
                &rows,
                &window.values,
                EMBEDDING_DIM,
                reference.bandwidth(),
                options.alpha,
            );
            row.n_reference = n_test as i64;
            row.statistic = outcome.statistic;
            row.p_value = Some(outcome.p_value);
            row.threshold = outcome.threshold;
            row.alarm = outcome.p_value < options.alpha;
        }
        // Online detectors decide per sample (`OnlineRun`), not per window.
        Prepared::MmdOnline { .. } => return Ok(None),
    }
    Ok(Some(row))
}

/// The online detectors over the stream: samples gathered into blocks of [`ONLINE_BLOCK`], each
/// block fed to every online detector (one thread each).
struct OnlineRun<'a> {
    /// Per detector (in report order): its monitor if it is online, and its steps.
    monitors: Vec<Option<(&'a str, OnlineMonitor<'a>)>>,
    steps: Vec<Vec<OnlineRow>>,
    ids: Vec<(i64, f64)>,
    values: Vec<f64>,
}

impl<'a> OnlineRun<'a> {
    fn new(prepared: &'a [Prepared<'a>], names: &'a [String]) -> Self {
        let monitors: Vec<_> = prepared
            .iter()
            .zip(names)
            .map(|(p, name)| match p {
                Prepared::MmdOnline { detector, .. } => {
                    Some((name.as_str(), detector.monitor(true)))
                }
                _ => None,
            })
            .collect();
        let steps = vec![Vec::new(); monitors.len()];
        Self {
            monitors,
            steps,
            ids: Vec::new(),
            values: Vec::new(),
        }
    }

    fn push(&mut self, id: i64, timestamp: f64, values: &[f64]) {
        if self.monitors.iter().all(Option::is_none) {
            return;
        }
        self.ids.push((id, timestamp));
        self.values.extend_from_slice(values);
        if self.ids.len() == ONLINE_BLOCK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let (ids, values) = (&self.ids, &self.values);
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .monitors
                .iter_mut()
                .zip(&mut self.steps)
                .filter_map(|(monitor, steps)| Some((monitor.as_mut()?, steps)))
                .map(|((name, monitor), steps)| {
                    scope.spawn(move || {
                        let observed = monitor.observe(values);
                        steps.extend(ids.iter().zip(observed).map(|(&(id, timestamp), step)| {
                            OnlineRow {
                                detector: (*name).to_owned(),
                                sample_id: id,
                                timestamp,
                                t: step.t as i64,
                                statistic: step.statistic,
                                threshold: step.threshold,
                                alarm: step.alarm,
                            }
                        }));
                    })
                })
                .collect();
            for handle in handles {
                handle.join().expect("an online detector panicked");
            }
        });
        self.ids.clear();
        self.values.clear();
    }

    /// The steps per detector (empty for batch detectors), the last partial block included.
    fn finish(mut self) -> Vec<Vec<OnlineRow>> {
        if !self.ids.is_empty() {
            self.flush();
        }
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_name_themselves() {
        assert_eq!(
            "ks:correction=fdr".parse::<DetectorSpec>().unwrap(),
            DetectorSpec::PerFeature {
                test: PerFeature::Ks,
                correction: Correction::Fdr
            }
        );
        assert_eq!("ks".parse::<DetectorSpec>().unwrap().name(), "ks");
        assert_eq!("cvm".parse::<DetectorSpec>().unwrap().name(), "cvm");
        assert_eq!(
            "cvm:correction=fdr".parse::<DetectorSpec>().unwrap(),
            DetectorSpec::PerFeature {
                test: PerFeature::Cvm,
                correction: Correction::Fdr
            }
        );
        assert_eq!("mmd".parse::<DetectorSpec>().unwrap().name(), "mmd");
        assert_eq!(
            "mmd:permutations=500,sigma=2.5"
                .parse::<DetectorSpec>()
                .unwrap()
                .name(),
            "mmd:permutations=500,sigma=2.5"
        );
        assert_eq!("lsdd".parse::<DetectorSpec>().unwrap().name(), "lsdd");
        assert_eq!(
            "lsdd:lambda_rd_max=0.2,centers=12,permutations=50"
                .parse::<DetectorSpec>()
                .unwrap(),
            DetectorSpec::Lsdd {
                permutations: 50,
                sigma: None,
                centers: Some(12),
                lambda_rd_max: 0.2
            }
        );
        assert_eq!(
            "lsdd:lambda_rd_max=0.1,centers=12"
                .parse::<DetectorSpec>()
                .unwrap()
                .name(),
            "lsdd:centers=12,lambda_rd_max=0.1"
        );
        assert_eq!(
            "mmd-online:window=50,ert=500"
                .parse::<DetectorSpec>()
                .unwrap()
                .name(),
            "mmd-online:ert=500,window=50"
        );
        assert_eq!(
            "mmd-online:ert=100,window=20,bootstraps=2000,sigma=1.5"
                .parse::<DetectorSpec>()
                .unwrap(),
            DetectorSpec::MmdOnline {
                ert: 100.0,
                window: 20,
                bootstraps: 2000,
                sigma: Some(1.5)
            }
        );
        assert_eq!(
            "mmd:null=calibrated".parse::<DetectorSpec>().unwrap(),
            DetectorSpec::MmdCalibrated {
                draws: 1000,
                pool: None,
                sigma: None
            }
        );
        assert_eq!(
            "mmd:pool=300,null=calibrated,draws=500"
                .parse::<DetectorSpec>()
                .unwrap()
                .name(),
            "mmd:null=calibrated,draws=500,pool=300"
        );
        assert_eq!(
            "mmd:estimator=linear"
                .parse::<DetectorSpec>()
                .unwrap()
                .name(),
            "mmd:estimator=linear"
        );
        assert_eq!(
            "mmd:null=permutation,estimator=quadratic"
                .parse::<DetectorSpec>()
                .unwrap()
                .name(),
            "mmd"
        );
        for bad in [
            "mmd:null=calibrated,permutations=50",
            "mmd:estimator=linear,permutations=50",
            "mmd:estimator=linear,null=calibrated",
            "mmd:estimator=cubic",
            "mmd:null=bootstrap",
            "mmd:draws=50",
            "mmd-online:ert=1,window=5",
            "mmd-online:ert=50,window=1",
            "mmd-online:ert=50,window=5,permutations=3",
            "wasserstein",
            "mmd:centers=3",
            "lsdd:lambda_rd_max=1.5",
            "lsdd:centers=0",
            "ks:correction=holm",
            "mmd:permutations=0",
            "mmd:sigma=-1",
            "ks:x",
        ] {
            let error = bad.parse::<DetectorSpec>().unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn windows_come_at_every_stride_once_full() {
        let mut buffer = WindowBuffer::new(3, 2);
        let mut due = Vec::new();
        for i in 0..9 {
            if let Some(w) = buffer.push(i, i as f64, &[i as f64]) {
                due.push((w.index, w.first.0, w.last.0, w.values));
            }
        }
        assert_eq!(
            due,
            vec![
                (0, 0, 2, vec![0.0, 1.0, 2.0]),
                (1, 2, 4, vec![2.0, 3.0, 4.0]),
                (2, 4, 6, vec![4.0, 5.0, 6.0]),
                (3, 6, 8, vec![6.0, 7.0, 8.0]),
            ]
        );
        // A stride longer than the window skips samples.
        let mut buffer = WindowBuffer::new(2, 3);
        let starts: Vec<i64> = (0..9)
            .filter_map(|i| buffer.push(i, 0.0, &[0.0]).map(|w| w.first.0))
            .collect();
        assert_eq!(starts, vec![0, 3, 6]);
    }
}
