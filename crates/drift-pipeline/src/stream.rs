//! A stream that continues across runs. Every output records, in `drift.json`'s `stream`, the
//! sampler's whole history up to its last sample (one [`CallRecord`] per `sample` call) with the
//! dataset's fingerprint and the clock; a later run reads it back ([`StreamState::read`]) and
//! replays the sampler from it without decoding anything, so the stream goes on where that
//! output ended, on any machine, days later: the next sample id, the next timestamp, and no
//! image used again while unused ones remain (label shift's per-class cursors included).

use std::path::{Path, PathBuf};

use drift_sampler::{ClassPlan, Sampler, StreamClock};
use serde::{Deserialize, Serialize};

use crate::{ImageSize, PipelineError};

/// One `sample` call as the sampler saw it: enough to replay it without decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRecord {
    /// Candidates consumed in permutation (or drawn-class) order, skipped images included.
    pub candidates: usize,
    /// Label shift's class weights, by original label; absent when classes came as in the
    /// dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<Vec<f64>>,
    /// Samples written.
    pub samples: u64,
    /// Label shift reused a class's images once all were used.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_replacement: bool,
}

impl CallRecord {
    /// The call that drew with `plan`, consumed `candidates` and wrote `samples`.
    pub fn new(plan: &ClassPlan, candidates: usize, samples: u64) -> Self {
        let (class_weights, with_replacement) = match plan {
            ClassPlan::AsInDataset => (None, false),
            ClassPlan::Weighted {
                weights,
                with_replacement,
            } => (Some(weights.clone()), *with_replacement),
        };
        Self {
            candidates,
            class_weights,
            samples,
            with_replacement,
        }
    }

    fn plan(&self) -> ClassPlan {
        match &self.class_weights {
            None => ClassPlan::AsInDataset,
            Some(weights) => ClassPlan::Weighted {
                weights: weights.clone(),
                with_replacement: self.with_replacement,
            },
        }
    }
}

/// `drift.json`'s `stream`: what a continuation needs besides the seed and the image size
/// (top-level fields of the record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRecord {
    /// Every call from sample 0 to this output's last, this output's own included.
    pub calls: Vec<CallRecord>,
    /// [`crate::Dataset::fingerprint`] of the input.
    pub dataset_fingerprint: String,
    /// Images the input had.
    pub dataset_images: usize,
    /// Seconds between samples.
    pub delta_timestamp: f64,
    /// The input folder, absolute: a continuation's default input.
    pub input: String,
    /// Timestamp of sample 0.
    pub start_timestamp: f64,
}

/// The fields of `drift.json` a continuation reads; the others are ignored.
#[derive(Deserialize)]
struct ContinuationFields {
    seed: u64,
    image_size: String,
    stream: Option<StreamRecord>,
    #[serde(default)]
    shard: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    skipped_images: Vec<crate::records::SkippedRecord>,
}

/// Where an earlier output left its stream: read from its `drift.json` by [`StreamState::read`],
/// continued by [`crate::DriftGenerator::continue_stream`].
#[derive(Debug, Clone)]
pub struct StreamState {
    folder: PathBuf,
    seed: u64,
    size: ImageSize,
    record: StreamRecord,
    /// What the output holds, from its drift log (which `drift.json` hashes): each sample's
    /// id and source image, and the images it skipped. The record is checked against them.
    logged: Vec<(u64, Option<String>)>,
    skipped: Vec<String>,
}

impl StreamState {
    /// Reads the stream state of the output in `folder`, which must be complete (every file
    /// matches `drift.json`'s sizes and hashes).
    pub fn read(folder: &Path) -> Result<Self, PipelineError> {
        let refuse = |reason: String| PipelineError::Continuation {
            folder: folder.to_owned(),
            reason,
        };
        // On object storage: the record and the drift log, checked against the record's
        // hashes (the images are not needed to continue).
        let copy;
        let local = match drift_store::is_url(folder) {
            true => {
                copy = crate::remote::fetch_output(
                    folder,
                    &[drift_writer::SAMPLED_IMAGES, "embeddings.parquet"],
                )
                .map_err(|e| refuse(format!("it is not a complete output ({e})")))?;
                copy.path()
            }
            false => {
                drift_writer::verify(folder)
                    .map_err(|e| refuse(format!("it is not a complete output ({e})")))?;
                folder
            }
        };
        let text =
            drift_core::read_small_text(&local.join("drift.json"), drift_core::METADATA_LIMIT)
                .map_err(|e| refuse(format!("drift.json: {e}")))?;
        let fields: ContinuationFields =
            serde_json::from_str(&text).map_err(|e| refuse(format!("drift.json: {e}")))?;
        if fields.shard.is_some() {
            return Err(refuse(
                "it is one shard of a run, not a whole stream: merge the shards (drift-pipeline \
                 merge) and continue from the merged output"
                    .into(),
            ));
        }
        let record = fields.stream.ok_or_else(|| {
            refuse(
                "its drift.json has no stream record (it was written by a version before 0.1 \
                 could continue streams); generate it again"
                    .into(),
            )
        })?;
        let size = fields
            .image_size
            .parse()
            .map_err(|e| refuse(format!("drift.json: image_size: {e}")))?;
        let logged = drift_writer::read_drift_log(local)
            .map_err(|e| refuse(e.to_string()))?
            .into_iter()
            .map(|sample| (sample.sample_id, sample.source_path))
            .collect();
        Ok(Self {
            folder: folder.to_owned(),
            seed: fields.seed,
            size,
            record,
            logged,
            skipped: fields.skipped_images.into_iter().map(|s| s.path).collect(),
        })
    }

    /// The output folder it was read from.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The stream's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The stream's image size.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// The stream's input folder, as the earlier run resolved it.
    pub fn input(&self) -> &Path {
        Path::new(&self.record.input)
    }

    /// The stream's clock.
    pub fn clock(&self) -> StreamClock {
        StreamClock {
            start: self.record.start_timestamp,
            delta: self.record.delta_timestamp,
        }
    }

    /// The id the continuation's first sample gets.
    pub fn next_sample_id(&self) -> u64 {
        self.record.calls.iter().map(|call| call.samples).sum()
    }

    /// The calls to replay.
    pub(crate) fn calls(&self) -> &[CallRecord] {
        &self.record.calls
    }

    /// Checks that `sampler` (fresh, over `dataset`, at `size`) is this stream's, and replays
    /// every recorded call on it.
    pub(crate) fn replay(
        &self,
        sampler: &mut Sampler,
        dataset: &crate::Dataset,
        size: ImageSize,
    ) -> Result<(), PipelineError> {
        let refuse = |reason: String| PipelineError::Continuation {
            folder: self.folder.clone(),
            reason,
        };
        self.check_same_stream(sampler, dataset, size)
            .map_err(refuse)?;
        let classes = dataset.classes().len();
        for (index, call) in self.record.calls.iter().enumerate() {
            let plan = call.plan();
            let weights_fit = call
                .class_weights
                .as_ref()
                .is_none_or(|w| w.len() == classes);
            let available = sampler
                .candidates(&plan)
                .take(call.candidates)
                .take_while(Result::is_ok)
                .count();
            if !weights_fit || call.samples > call.candidates as u64 || available < call.candidates
            {
                return Err(refuse(format!(
                    "call {} of its stream record does not fit the dataset (drift.json was \
                     edited?)",
                    index + 1
                )));
            }
            if index + 1 == self.record.calls.len() {
                self.check_output_holds(sampler, &plan, call, dataset)
                    .map_err(|reason| refuse(format!("{reason} (drift.json was edited?)")))?;
            }
            sampler.advance(&plan, call.candidates, call.samples);
        }
        Ok(())
    }

    /// Refuses a sampler that is not fresh, or not over this stream's dataset (fingerprint),
    /// seed, image size and clock.
    fn check_same_stream(
        &self,
        sampler: &Sampler,
        dataset: &crate::Dataset,
        size: ImageSize,
    ) -> Result<(), String> {
        if sampler.next_sample_id() != 0 {
            return Err(
                "the generator has already sampled; continue a stream on a new generator".into(),
            );
        }
        if dataset.fingerprint() != self.record.dataset_fingerprint {
            let images = dataset.images().len();
            let then = self.record.dataset_images;
            let change = if images == then {
                format!("file names or sizes changed, {images} images then and now")
            } else {
                format!("{then} images then, {images} now")
            };
            return Err(format!(
                "the input dataset {} is not the one the stream sampled ({change})",
                dataset.root().display()
            ));
        }
        let mismatch = |what: &str, then: String, now: String| {
            format!("the stream's {what} is {then}, this run's {now}; a stream keeps its {what}")
        };
        if sampler.seed() != self.seed {
            return Err(mismatch(
                "seed",
                self.seed.to_string(),
                sampler.seed().to_string(),
            ));
        }
        if size != self.size {
            return Err(mismatch(
                "image size",
                self.size.to_string(),
                size.to_string(),
            ));
        }
        let clock = self.clock();
        if sampler.clock() != clock {
            return Err(mismatch(
                "clock (start, delta)",
                format!("({}, {})", clock.start, clock.delta),
                format!("({}, {})", sampler.clock().start, sampler.clock().delta),
            ));
        }
        Ok(())
    }

    /// The record is trusted only as far as the output's own tables confirm it (`drift.json`
    /// hashes the tables, nothing hashes `drift.json`): the last call, replayed, must give
    /// exactly the sample ids and source images of the output's drift log, the skipped images
    /// left out.
    fn check_output_holds(
        &self,
        sampler: &Sampler,
        plan: &ClassPlan,
        call: &CallRecord,
        dataset: &crate::Dataset,
    ) -> Result<(), String> {
        let first = sampler.next_sample_id();
        let ids_fit = self.logged.len() as u64 == call.samples
            && self
                .logged
                .iter()
                .zip(first..)
                .all(|((id, _), want)| *id == want);
        if !ids_fit {
            let (from, to) = match (self.logged.first(), self.logged.last()) {
                (Some((a, _)), Some((b, _))) => (a.to_string(), b.to_string()),
                _ => ("-".into(), "-".into()),
            };
            return Err(format!(
                "its stream record ends with {} samples from sample {first}, but its drift log \
                 holds samples {from} to {to}",
                call.samples
            ));
        }
        if self.logged.iter().any(|(_, source)| source.is_none()) {
            // A drift log of a version before provenance: the ids are all there is to check.
            return Ok(());
        }
        let root = dataset.root();
        let replayed = sampler
            .candidates(plan)
            .take(call.candidates)
            .filter_map(Result::ok)
            .map(|index| {
                let path = &dataset.images()[index].path;
                path.strip_prefix(root)
                    .unwrap_or(path)
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|path| !self.skipped.contains(path));
        let logged = self
            .logged
            .iter()
            .filter_map(|(_, source)| source.as_deref());
        if let Some((position, (want, have))) = replayed
            .zip(logged)
            .enumerate()
            .find(|(_, (want, have))| want != have)
        {
            return Err(format!(
                "replaying its stream record gives {want} as sample {}, but its drift log has \
                 {have}",
                first + position as u64
            ));
        }
        Ok(())
    }
}
