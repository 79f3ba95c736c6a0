//! The ground truth of a stream, from its outputs' `drift_log.parquet` and `drift.json`: each
//! sample's drift, and the drift episodes (change points) derived from the segments' shapes.
//!
//! Episode rules, per output folder (one segment) in stream order:
//!
//! | segment | onset s | end e |
//! |---|---|---|
//! | abrupt transforms (unless the previous segment had the same transforms and levels, abrupt) | its first sample | s |
//! | gradual | the first sample with drift probability > 0 | the first with probability 1 (else its last) |
//! | incremental | its first sample | its last |
//! | recurring | the first sample of each run of drifted samples | s |
//! | label shift (class priors other than the previous segment's) | its first sample | s |
//! | concept change (published labels other than the previous segment's) | its first sample | s |
//!
//! Episodes with the same onset are one, their kinds joined by `+`. A return to clean data is a
//! recovery, not an episode.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::run::{DetectError, InputRecord, OutputRecord};

/// One sample's ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthSample {
    /// Its id.
    pub sample_id: i64,
    /// Its timestamp.
    pub timestamp: f64,
    /// Whether it got the transforms.
    pub drifted: bool,
    /// The probability it had of being drifted.
    pub probability: f64,
    /// Whether its class was drawn under label shift.
    pub label_shift: bool,
    /// Each applied transform's level.
    pub levels: Vec<(String, f64)>,
}

/// A drift episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// The segment it starts in.
    pub segment: String,
    /// What changed (`abrupt`, `gradual`, ..., joined by `+`).
    pub kind: String,
    /// The transforms, joined by `+`.
    pub transforms: String,
    /// The largest of the segment's transform levels.
    pub level: Option<f64>,
    /// The onset.
    pub start: i64,
    /// The first sample at full strength.
    pub end: i64,
}

/// A stream's samples, in id order (ids consecutive from `samples[0]`), and its episodes.
#[derive(Debug, Clone)]
pub struct StreamTruth {
    /// Each folder as read.
    pub inputs: Vec<InputRecord>,
    /// Every sample.
    pub samples: Vec<TruthSample>,
    /// The episodes, by onset.
    pub episodes: Vec<Episode>,
}

impl StreamTruth {
    /// The first sample's id.
    pub fn first_id(&self) -> i64 {
        self.samples.first().map_or(0, |s| s.sample_id)
    }

    /// The last sample's id.
    pub fn last_id(&self) -> i64 {
        self.samples.last().map_or(-1, |s| s.sample_id)
    }

    /// The sample with `id`, if the stream has it.
    pub fn sample(&self, id: i64) -> Option<&TruthSample> {
        usize::try_from(id - self.first_id())
            .ok()
            .and_then(|i| self.samples.get(i))
    }

    /// The samples from `first` to `last` (both included), if the stream holds them all.
    pub fn range(&self, first: i64, last: i64) -> Option<&[TruthSample]> {
        let from = usize::try_from(first - self.first_id()).ok()?;
        let to = usize::try_from(last - self.first_id()).ok()?;
        (from <= to && to < self.samples.len()).then(|| &self.samples[from..=to])
    }

    /// The sample an alarm at time `t` was raised at: the last sample at or before `t`.
    pub fn sample_at(&self, t: f64) -> Option<i64> {
        let after = self.samples.partition_point(|s| s.timestamp <= t);
        let last = self.samples.last()?;
        // Later than the last sample by more than a sample's spacing is after the stream.
        let spacing = self
            .samples
            .len()
            .checked_sub(2)
            .map_or(0.0, |i| last.timestamp - self.samples[i].timestamp);
        if after == 0 || t > last.timestamp + spacing {
            None
        } else {
            Some(self.samples[after - 1].sample_id)
        }
    }
}

/// What a segment's record says about the drift it holds.
struct SegmentRecord {
    name: String,
    shape: String,
    transforms: Vec<(String, f64)>,
    priors: serde_json::Value,
    labels: serde_json::Value,
}

impl SegmentRecord {
    fn from_json(record: &serde_json::Value) -> Self {
        let transforms = record["transforms"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|t| {
                        (
                            t["name"].as_str().unwrap_or("?").to_owned(),
                            t["drift_level"].as_f64().unwrap_or(f64::NAN),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let drift = record["drift"].as_str().unwrap_or("none");
        Self {
            name: record["segment"].as_str().unwrap_or("").to_owned(),
            shape: drift.split(':').next().unwrap_or(drift).to_owned(),
            transforms,
            priors: record["class_priors"].clone(),
            labels: record["labels"].clone(),
        }
    }
}

/// Reads the stream's folders (consecutive, in stream order) and derives its episodes.
pub fn read_stream(folders: &[PathBuf]) -> Result<StreamTruth, DetectError> {
    let mut inputs = Vec::new();
    let mut samples: Vec<TruthSample> = Vec::new();
    let mut episodes: BTreeMap<i64, Episode> = BTreeMap::new();
    let mut previous: Option<(SegmentRecord, PathBuf)> = None;
    for folder in folders {
        let files = crate::run::InputFiles::open(folder)?;
        let output = OutputRecord::read(&files)?;
        let refuse = |reason: String| DetectError::Input {
            folder: folder.clone(),
            reason,
        };
        let log = drift_writer::read_drift_log(files.path())?;
        let start = samples.len();
        for logged in log {
            let id = i64::try_from(logged.sample_id)
                .map_err(|_| refuse(format!("sample id {} is too large", logged.sample_id)))?;
            if let Some(last) = samples.last()
                && id != last.sample_id + 1
            {
                return Err(refuse(if samples.len() == start {
                    format!(
                        "starts at sample {id} but {} ends at sample {}: the stream's folders \
                         must be consecutive, in stream order",
                        previous
                            .as_ref()
                            .map_or(String::new(), |p| p.1.display().to_string()),
                        last.sample_id
                    )
                } else {
                    format!(
                        "its drift log jumps from sample {} to {id}: not one output's log",
                        last.sample_id
                    )
                }));
            }
            samples.push(TruthSample {
                sample_id: id,
                timestamp: logged.timestamp,
                drifted: logged.drifted,
                probability: logged.probability,
                label_shift: logged.class_prior.is_some(),
                levels: logged.levels,
            });
        }
        let segment = SegmentRecord::from_json(&output.json);
        for episode in
            segment_episodes(&segment, previous.as_ref().map(|p| &p.0), &samples[start..])
        {
            match episodes.get_mut(&episode.start) {
                Some(same) => {
                    same.kind = format!("{}+{}", same.kind, episode.kind);
                    same.end = same.end.max(episode.end);
                }
                None => {
                    episodes.insert(episode.start, episode);
                }
            }
        }
        let mut input = output.input;
        input.samples = samples.len() - start;
        inputs.push(input);
        previous = Some((segment, folder.clone()));
    }
    Ok(StreamTruth {
        inputs,
        samples,
        episodes: episodes.into_values().collect(),
    })
}

/// The episodes that start in one segment (`samples`: its samples).
fn segment_episodes(
    segment: &SegmentRecord,
    previous: Option<&SegmentRecord>,
    samples: &[TruthSample],
) -> Vec<Episode> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Vec::new();
    };
    let transforms: Vec<&str> = segment.transforms.iter().map(|t| t.0.as_str()).collect();
    let level = segment.transforms.iter().map(|t| t.1).reduce(f64::max);
    let episode = |kind: &str, start: i64, end: i64, with_transforms: bool| Episode {
        segment: segment.name.clone(),
        kind: kind.to_owned(),
        transforms: if with_transforms {
            transforms.join("+")
        } else {
            String::new()
        },
        level: if with_transforms { level } else { None },
        start,
        end,
    };
    let mut out = Vec::new();
    if !transforms.is_empty() {
        match segment.shape.as_str() {
            "gradual" => {
                let onset = samples.iter().find(|s| s.probability > 0.0);
                let full = samples
                    .iter()
                    .find(|s| s.probability >= 1.0)
                    .unwrap_or(last);
                if let Some(onset) = onset {
                    out.push(episode("gradual", onset.sample_id, full.sample_id, true));
                }
            }
            "incremental" => out.push(episode(
                "incremental",
                first.sample_id,
                last.sample_id,
                true,
            )),
            "recurring" => {
                let mut was_drifted = false;
                for sample in samples {
                    if sample.drifted && !was_drifted {
                        out.push(episode(
                            "recurring",
                            sample.sample_id,
                            sample.sample_id,
                            true,
                        ));
                    }
                    was_drifted = sample.drifted;
                }
            }
            _ => {
                let continued = previous.is_some_and(|p| {
                    p.shape == segment.shape && p.transforms == segment.transforms
                });
                if !continued {
                    out.push(episode("abrupt", first.sample_id, first.sample_id, true));
                }
            }
        }
    }
    if !segment.priors.is_null() && previous.is_none_or(|p| p.priors != segment.priors) {
        out.push(episode(
            "label_shift",
            first.sample_id,
            first.sample_id,
            false,
        ));
    }
    if previous.is_some_and(|p| p.labels != segment.labels) {
        out.push(episode("concept", first.sample_id, first.sample_id, false));
    }
    out
}
