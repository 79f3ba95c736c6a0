//! The JSON records an output carries: `drift.json` (every `generate` output and scenario
//! segment) and `evaluation.json` (the `evaluate` report), as typed structs.
//!
//! Fields are declared in alphabetical order, and maps are `BTreeMap`s, because that is the
//! order the records were first written in (serde_json's maps sort their keys): the bytes of a
//! record do not depend on which version of the code wrote it.

use std::collections::BTreeMap;

use drift_writer::FileRecord;
use serde::Serialize;

/// The tool's name in every record.
pub(crate) const TOOL: &str = "drift-pipeline";

/// `drift.json`: what was applied to one output, the ranges it covers, the images skipped and
/// each other file's size and SHA-256.
#[derive(Debug, Serialize)]
pub(crate) struct DriftRecord {
    /// How alpha channels were composited (`#rrggbb`); absent when dropped, the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<String>,
    /// Class priors under label shift; `None` (null) when classes come as in the dataset.
    pub class_priors: Option<ClassPriorsRecord>,
    /// The drift shape, or `none` without transforms.
    pub drift: String,
    /// The network and weights, with embeddings on.
    pub embeddings: Option<EmbeddingRecord>,
    /// Every other file of the output.
    pub files: Vec<FileRecord>,
    pub ground_truth: &'static str,
    /// `WxH`.
    pub image_size: String,
    /// Class name -> published label.
    pub labels: BTreeMap<String, i64>,
    pub parameters_drawn: &'static str,
    pub sample_id: Span<u64>,
    pub samples: u64,
    pub seed: u64,
    pub segment: String,
    /// Which shard of which run this output is; absent for a whole run's output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::ShardRecord>,
    pub skipped_images: Vec<SkippedRecord>,
    /// Where the stream stands after this output: what a continuation replays.
    pub stream: crate::stream::StreamRecord,
    pub timestamp: Span<f64>,
    pub tool: &'static str,
    pub transforms: Vec<TransformRecord>,
    pub version: &'static str,
}

/// What `drift.json` says of how drift parameters are drawn.
pub(crate) const PARAMETERS_DRAWN: &str = "per image, from (seed, sample_id, transform index)";
/// What `drift.json` says of the ground truth.
pub(crate) const GROUND_TRUTH: &str =
    "drift_log.parquet: per sample, drifted or not, its probability, levels and parameters";

/// The first and last of a range, both included.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Span<T> {
    pub first: T,
    pub last: T,
}

/// Label shift's class priors.
#[derive(Debug, Serialize)]
pub(crate) struct ClassPriorsRecord {
    /// Class name -> prior (normalised to sum to 1).
    pub priors: BTreeMap<String, f64>,
    pub with_replacement: bool,
}

/// One transform of the drift.
#[derive(Debug, Serialize)]
pub(crate) struct TransformRecord {
    pub drift_level: f64,
    pub name: &'static str,
}

/// An image left out with `skip_bad_images`.
#[derive(Debug, Serialize)]
pub(crate) struct SkippedRecord {
    /// Relative to the dataset root.
    pub path: String,
    pub reason: String,
}

/// The `embeddings` record of `drift.json` and `evaluation.json`.
#[derive(Debug, Serialize)]
pub(crate) struct EmbeddingRecord {
    pub device: String,
    pub model: &'static str,
    pub normalize: &'static str,
    pub reference_weights: bool,
    pub weights_file: Option<String>,
    pub weights_sha256: String,
}

/// `evaluation.json`: how an `evaluate` report was made.
#[derive(Debug, Serialize)]
pub(crate) struct EvaluationRecord {
    pub batch_size: usize,
    pub batches_per_level: usize,
    pub embeddings: EmbeddingRecord,
    /// `WxH`.
    pub image_size: String,
    pub images: u64,
    pub levels: Vec<f64>,
    pub measure: &'static str,
    pub parameters_drawn: &'static str,
    pub seed: u64,
    pub tool: &'static str,
    pub transforms: Vec<&'static str>,
    pub version: &'static str,
}

/// A record as the file holds it: pretty JSON and a final newline.
pub(crate) fn to_json(record: &impl Serialize) -> String {
    serde_json::to_string_pretty(record).expect("records have string keys and finite numbers")
        + "\n"
}
