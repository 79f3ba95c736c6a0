//! The JSON record every output carries, `drift.json` (every `generate` output, scenario segment
//! and shard), as typed structs, and how records are read and printed (`drift-evaluate`'s
//! `evaluation.json` shares [`EmbeddingRecord`], [`to_json`] and [`read`]).
//!
//! Fields are declared in alphabetical order, and maps are `BTreeMap`s, because that is the
//! order the records were first written in (serde_json's maps sort their keys): the bytes of a
//! record do not depend on which version of the code wrote it. Every record reads back into the
//! type that wrote it (`merge` and `--continue-from` read them; nothing edits a record as
//! untyped JSON).

use std::collections::BTreeMap;

use drift_writer::FileRecord;
use serde::{Deserialize, Serialize};

pub use crate::shard::ShardRecord;
pub use crate::stream::{CallRecord, StreamRecord};

/// The tool's name in every record.
pub const TOOL: &str = "drift-pipeline";
/// The version that wrote a record.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `drift.json`: what was applied to one output, the ranges it covers, the images skipped and
/// each other file's size and SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftRecord {
    /// How alpha channels were composited (`#rrggbb`); absent when dropped, the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<String>,
    /// Class priors under label shift; `None` (null) when classes come as in the dataset.
    pub class_priors: Option<ClassPriorsRecord>,
    /// The drift shape, or `none` without transforms.
    pub drift: String,
    /// The network and weights, with embeddings on.
    pub embeddings: Option<EmbeddingRecord>,
    /// Every other file of the output.
    pub files: Vec<FileRecord>,
    /// Where the ground truth is, in words.
    pub ground_truth: String,
    /// `WxH`.
    pub image_size: String,
    /// Class name -> published label.
    pub labels: BTreeMap<String, i64>,
    /// How drift parameters are drawn, in words.
    pub parameters_drawn: String,
    /// The first and last sample id of the output.
    pub sample_id: Span<u64>,
    /// Samples in the output.
    pub samples: u64,
    /// The stream's seed.
    pub seed: u64,
    /// The segment's name.
    pub segment: String,
    /// Which shard of which run this output is; absent for a whole run's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// Images left out as unreadable.
    pub skipped_images: Vec<SkippedRecord>,
    /// Where the stream stands after this output: what a continuation replays.
    pub stream: StreamRecord,
    /// The first and last sample's timestamp.
    pub timestamp: Span<f64>,
    /// Always `drift-pipeline`.
    pub tool: String,
    /// The drift's transforms, in order.
    pub transforms: Vec<TransformRecord>,
    /// The version that wrote it.
    pub version: String,
}

/// What `drift.json` says of how drift parameters are drawn.
pub const PARAMETERS_DRAWN: &str = "per image, from (seed, sample_id, transform index)";
/// What `drift.json` says of the ground truth.
pub const GROUND_TRUTH: &str =
    "drift_log.parquet: per sample, drifted or not, its probability, levels and parameters";

/// The first and last of a range, both included.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span<T> {
    /// The first.
    pub first: T,
    /// The last.
    pub last: T,
}

/// Label shift's class priors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPriorsRecord {
    /// Class name -> prior (normalised to sum to 1).
    pub priors: BTreeMap<String, f64>,
    /// A class's images are reused once all are used.
    pub with_replacement: bool,
}

/// One transform of the drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformRecord {
    /// Its drift level.
    pub drift_level: f64,
    /// Its family: `torchvision` (SPEC's) or `imagenet_c`.
    pub family: String,
    /// Its registry name.
    pub name: String,
}

/// An image left out with `skip_bad_images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedRecord {
    /// Relative to the dataset root.
    pub path: String,
    /// The decoder's words.
    pub reason: String,
}

/// The `embeddings` record of `drift.json` and `evaluation.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRecord {
    /// The device, in words.
    pub device: String,
    /// The network, in words.
    pub model: String,
    /// The input normalization.
    pub normalize: String,
    /// The weights are the published reference ones.
    pub reference_weights: bool,
    /// The weights file's name.
    pub weights_file: Option<String>,
    /// SHA-256 of the weights file.
    pub weights_sha256: String,
}

/// A record as the file holds it: pretty JSON and a final newline.
pub fn to_json(record: &impl Serialize) -> String {
    serde_json::to_string_pretty(record).expect("records have string keys and finite numbers")
        + "\n"
}

/// A record file that could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read (missing, not a regular file, too large).
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the record this version writes.
    #[error("{path}: {source}")]
    Syntax {
        /// The file.
        path: std::path::PathBuf,
        /// Where and why.
        source: serde_json::Error,
    },
}

/// Reads a record file (bounded: see [`drift_core::METADATA_LIMIT`]) into the type that writes
/// it; unknown fields are refused, so a record read and written again is the record read.
pub fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, RecordError> {
    let text = drift_core::read_small_text(path, drift_core::METADATA_LIMIT).map_err(|source| {
        RecordError::Read {
            path: path.to_owned(),
            source,
        }
    })?;
    serde_json::from_str(&text).map_err(|source| RecordError::Syntax {
        path: path.to_owned(),
        source,
    })
}

impl DriftRecord {
    /// `drift.json`'s text. A shard's record carries the hash of what all shards of its run
    /// share ([`DriftRecord::settings_sha256`]) and is printed with every object's keys sorted,
    /// as shard records always were.
    pub fn to_json(&self) -> String {
        let Some(shard) = &self.shard else {
            return to_json(self);
        };
        let record = DriftRecord {
            shard: Some(ShardRecord {
                settings_sha256: self.settings_sha256(),
                ..shard.clone()
            }),
            ..self.clone()
        };
        to_json(&serde_json::to_value(&record).expect("records serialize"))
    }

    /// The record without what differs between the shards of one run: its files, ranges,
    /// skipped images, its part of the last stream call, the embedding device and its place
    /// among the shards. Equal for every shard of a run. (A projection for hashing and for
    /// naming the first setting that differs; the record itself is never edited this way.)
    pub fn settings_view(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        let Value::Object(mut view) = serde_json::to_value(self).expect("records serialize") else {
            unreachable!("a struct serializes to an object")
        };
        for key in [
            "files",
            "sample_id",
            "samples",
            "skipped_images",
            "timestamp",
        ] {
            view.remove(key);
        }
        if let Some(Value::Object(embeddings)) = view.get_mut("embeddings") {
            embeddings.remove("device");
        }
        if let Some(Value::Object(stream)) = view.get_mut("stream")
            && let Some(Value::Array(calls)) = stream.get_mut("calls")
            && let Some(Value::Object(last)) = calls.last_mut()
        {
            last.remove("candidates");
            last.remove("samples");
        }
        if let Some(Value::Object(shard)) = view.get_mut("shard") {
            for key in ["candidates", "cpu", "index", "output", "settings_sha256"] {
                shard.remove(key);
            }
        }
        view
    }

    /// SHA-256 of [`DriftRecord::settings_view`] as compact JSON.
    pub fn settings_sha256(&self) -> String {
        let text = serde_json::to_string(&self.settings_view()).expect("a JSON map serializes");
        drift_core::sha256_hex(text.as_bytes()).expect("hashing bytes in memory cannot fail")
    }
}
