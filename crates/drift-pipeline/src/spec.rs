//! One validated run description for every front end, after ripgrep's `HiArgs`: the command
//! line, scenario files and (later) Python keyword arguments each fill a [`RawRun`] with what
//! the user wrote, and [`RunSpec::build`] is the one place where defaults live and every value
//! is checked, before anything runs. Its errors name the key as the user wrote it: `--batch-size`
//! on the command line, `key 'batch_size'` in a scenario file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Deserialize;

use crate::{
    ClassPriors, CpuBackend, DeviceChoice, EmbeddingOptions, GeneratorOptions, ImageSize,
    LabelShift, Normalize, PipelineError, PngCompression, StreamClock, TransformSpec,
};
use drift_transformer::{Drift, DriftShape, TransformChain};

/// The seed when none is given, in every front end.
pub const DEFAULT_SEED: u64 = 42;
/// Images per forward pass when none is given, in every front end.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Worker threads per parallel stage for a requested count: 0 means one per core.
pub fn worker_threads(requested: usize) -> usize {
    match requested {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
}

/// How a front end spells the run's keys and places in its errors. The library knows only its
/// own format's spelling ([`FrontEnd::SCENARIO_FILE`]); each other front end (the command
/// line, Python) supplies its own, so the library never names a flag or a keyword.
#[derive(Debug, Clone, Copy)]
pub struct FrontEnd {
    /// Key `key` (the scenario file's name) in this front end's words: `--num-samples`,
    /// `keyword 'num_samples'`, `key 'samples'`.
    pub key: fn(key: &str) -> String,
    /// Segment `index` (from 0) named `name` as a place: `the run`, `sample() (name)`. `None`:
    /// the scenario file's `segment N (name)`, and its keys spelled after it.
    pub segment: Option<fn(index: usize, name: &str) -> String>,
    /// How to ask for replacing an existing output: `use --overwrite to replace it`.
    pub overwrite_hint: &'static str,
    /// Says that a key only applies with embeddings on: `only applies with --embeddings`.
    pub needs_embeddings: &'static str,
}

impl FrontEnd {
    /// Scenario files (`drift-pipeline run`, `run_scenario`): the library's own format.
    pub const SCENARIO_FILE: FrontEnd = FrontEnd {
        key: |key| format!("key '{key}'"),
        segment: None,
        overwrite_hint: "set overwrite = true to replace it",
        needs_embeddings: "only applies with embeddings = true",
    };

    /// Key `key` as this front end spells it.
    pub fn key(&self, key: &str) -> String {
        (self.key)(key)
    }

    /// Key `key` of segment `index` (from 0) named `name`.
    fn segment_key(&self, index: usize, name: &str, key: &str) -> String {
        match self.segment {
            None => format!("segment {} ({name}), key '{key}'", index + 1),
            Some(_) => self.key(key),
        }
    }

    /// Segment `index` named `name`, as a place.
    pub(crate) fn segment(&self, index: usize, name: &str) -> String {
        match self.segment {
            None => format!("segment {} ({name})", index + 1),
            Some(segment) => segment(index, name),
        }
    }
}

/// A run as a front end received it: every setting optional, values with a syntax as text.
/// Field names are the scenario file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    /// The dataset root (default with `continue_from`: the stream's input).
    pub input: Option<PathBuf>,
    /// An earlier output whose stream this run continues: its seed, input, size and clock are
    /// the defaults, and a different one is refused.
    pub continue_from: Option<PathBuf>,
    /// Seed of every random draw (default [`DEFAULT_SEED`]).
    pub seed: Option<u64>,
    /// `WxH` or one number.
    pub size: Option<String>,
    /// Timestamp of sample 0.
    pub start_timestamp: Option<f64>,
    /// Seconds between samples (above 0).
    pub delta_timestamp: Option<f64>,
    #[serde(default)]
    /// Zip entries under `<class_name>/`.
    pub organize_by_class: bool,
    /// A JSON or TOML class mapping for published labels.
    pub class_mapping: Option<PathBuf>,
    #[serde(default)]
    /// Skip unreadable images instead of failing.
    pub skip_bad_images: bool,
    #[serde(default)]
    /// Replace existing outputs.
    pub overwrite: bool,
    /// `fast`, `balanced` or `high`.
    pub png_compression: Option<String>,
    /// `drop`, `white`, `black` or `#RRGGBB`.
    pub alpha: Option<String>,
    #[serde(default)]
    /// Write `embeddings.parquet` too.
    pub embeddings: bool,
    /// ResNet18 weights (default: the cache).
    pub weights: Option<PathBuf>,
    /// `none` or `imagenet`.
    pub normalize: Option<String>,
    /// `auto`, `cpu` or `gpu`.
    pub device: Option<String>,
    /// `flex` or `ndarray`.
    pub cpu_backend: Option<String>,
    /// Images per forward pass, 1 to 4096 (default [`DEFAULT_BATCH_SIZE`]).
    pub batch_size: Option<u64>,
    /// Worker threads per parallel stage; 0 or none means one per core.
    pub threads: Option<usize>,
    /// A dataset manifest (`drift-pipeline index`): the listing comes from it, not a scan.
    pub manifest: Option<PathBuf>,
    /// Make only shard `K/N` of every segment (see [`crate::Shard`]) into `shard_output`.
    pub shard: Option<String>,
    /// A shard's folder: segment N goes to `shard_output/segment-N`.
    pub shard_output: Option<PathBuf>,
    #[serde(rename = "segment", default)]
    /// The segments, in order (`[[segment]]` in a scenario file).
    pub segments: Vec<RawSegment>,
}

/// One segment as a front end received it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSegment {
    /// The segment's name (default `segment N`).
    pub name: Option<String>,
    /// Samples to write (at least 1).
    pub samples: u64,
    /// The output folder.
    pub output: PathBuf,
    /// `NAME=LEVEL` each.
    #[serde(default)]
    pub transforms: Vec<String>,
    /// A drift shape, e.g. `gradual:width=500`.
    pub drift: Option<String>,
    /// A class mapping from this segment on.
    pub class_mapping: Option<PathBuf>,
    /// Label shift: relative weights by class name.
    pub class_weights: Option<BTreeMap<String, f64>>,
    /// Label shift: priors drawn from a symmetric Dirichlet of this concentration.
    pub class_dirichlet: Option<f64>,
    #[serde(default)]
    /// Reuse a class's images once all are used.
    pub with_replacement: bool,
}

/// One validated segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its name (or `segment N`).
    pub name: String,
    /// Samples to write.
    pub samples: u64,
    /// Output folder, resolved against the front end's base folder.
    pub output: PathBuf,
    /// Its drift (empty: clean).
    pub transforms: Vec<TransformSpec>,
    /// How the drift arrives over the segment's samples.
    pub shape: DriftShape,
    /// A class mapping that takes effect from this segment on (a concept change).
    pub class_mapping: Option<PathBuf>,
    /// Label shift within this segment.
    pub label_shift: LabelShift,
}

/// A run description every value of which has been checked.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Where it came from (for the spelling of later errors).
    pub front_end: FrontEnd,
    /// Seed of every random draw.
    pub seed: u64,
    /// The dataset root.
    pub input: PathBuf,
    /// How samples are made and written.
    pub options: GeneratorOptions,
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// The stream this run continues (`continue_from`), read and checked.
    pub continues: Option<crate::StreamState>,
    /// Only this shard of every segment, into this folder.
    pub shard: Option<(crate::Shard, PathBuf)>,
}

/// A run that was refused, or failed: where (in the front end's spelling) and why.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A value that does not parse or makes no sense.
    #[error("{place}: {reason}")]
    Invalid {
        /// `--batch-size`, `key 'size'` or `segment 2 (production), key 'transforms'`.
        place: String,
        /// What is wrong.
        reason: String,
    },
    /// An output folder that holds an output, and replacing it was not asked for.
    #[error("{place}: {} already exists, and replacing it was not asked for ({hint})", existing.display())]
    OutputExists {
        /// The segment's output key, in the front end's spelling.
        place: String,
        /// The existing output (its marker file).
        existing: PathBuf,
        /// How this front end asks for replacing it.
        hint: &'static str,
    },
    /// The dataset or a segment failed.
    #[error("{place}: {source}")]
    Run {
        /// Where it failed.
        place: String,
        /// Why.
        source: Box<PipelineError>,
    },
}

impl RunSpec {
    /// Checks `raw` and fills in the defaults. Relative paths are taken relative to `base`.
    pub fn build(raw: RawRun, front_end: FrontEnd, base: &Path) -> Result<Self, SpecError> {
        if raw.segments.is_empty() {
            return Err(SpecError::Invalid {
                place: "[[segment]]".into(),
                reason: "a scenario needs at least one segment".into(),
            });
        }
        Self::build_stream(raw, front_end, base)
    }

    /// As [`RunSpec::build`], for a front end that gives segments one call at a time (Python's
    /// `sample`): no segment is needed here; each later one goes through
    /// [`RunSpec::segment`].
    pub fn build_stream(raw: RawRun, front_end: FrontEnd, base: &Path) -> Result<Self, SpecError> {
        let continues = match &raw.continue_from {
            Some(folder) => Some(crate::StreamState::read(&at_base(base, folder)).map_err(
                |e| SpecError::Invalid {
                    place: front_end.key("continue_from"),
                    reason: e.to_string(),
                },
            )?),
            None => None,
        };
        let options = generator_options(&raw, continues.as_ref(), front_end, base)?;
        let (seed, input) = seed_and_input(&raw, continues.as_ref(), front_end, base)?;
        let shard = match (&raw.shard, &raw.shard_output) {
            (None, _) => None,
            (Some(text), Some(folder)) => Some((
                text.parse::<crate::Shard>()
                    .map_err(|reason| SpecError::Invalid {
                        place: front_end.key("shard"),
                        reason,
                    })?,
                at_base(base, folder),
            )),
            (Some(_), None) => {
                return Err(SpecError::Invalid {
                    place: front_end.key("shard"),
                    reason: "a shard needs a folder of its own to write to".into(),
                });
            }
        };
        let mut spec = Self {
            front_end,
            seed,
            input,
            options,
            segments: Vec::with_capacity(raw.segments.len()),
            continues,
            shard,
        };
        // A continued stream's segments are numbered on from its earlier calls.
        let earlier_calls = spec.continues.as_ref().map_or(0, |s| s.calls().len());
        for (index, segment) in raw.segments.into_iter().enumerate() {
            let segment = spec.check_segment(segment, index, earlier_calls + index, base)?;
            spec.segments.push(segment);
        }
        Ok(spec)
    }

    /// Checks one more segment of a stream built by [`RunSpec::build_stream`]: `calls` is how
    /// many the stream has made (it numbers the default name).
    pub fn segment(&self, raw: RawSegment, calls: usize) -> Result<Segment, SpecError> {
        self.check_segment(raw, calls, calls, Path::new(""))
    }

    /// Segment `index` of this run, the stream's call `number` (from 0), checked against the
    /// segments before it and the stream it continues.
    fn check_segment(
        &self,
        mut raw: RawSegment,
        index: usize,
        number: usize,
        base: &Path,
    ) -> Result<Segment, SpecError> {
        raw.name = raw.name.or_else(|| Some(format!("segment {}", number + 1)));
        let segment = build_segment(
            raw,
            index,
            &self.segments,
            &self.input,
            self.front_end,
            base,
        )?;
        if let Some(stream) = &self.continues {
            check_not_continued(&segment, stream).map_err(|reason| SpecError::Invalid {
                place: self.front_end.segment_key(index, &segment.name, "output"),
                reason,
            })?;
        }
        Ok(segment)
    }

    /// Replaces the cancel flag (set by a signal handler).
    pub fn set_cancel(&mut self, cancel: Option<Arc<AtomicBool>>) {
        self.options.cancel = cancel;
    }
}

/// How samples are made and written, from `raw` (and the stream it continues), checked.
fn generator_options(
    raw: &RawRun,
    continues: Option<&crate::StreamState>,
    front_end: FrontEnd,
    base: &Path,
) -> Result<GeneratorOptions, SpecError> {
    let invalid = |key: &str, reason: String| SpecError::Invalid {
        place: front_end.key(key),
        reason,
    };
    let mut options = GeneratorOptions {
        organize_by_class: raw.organize_by_class,
        class_mapping: raw.class_mapping.as_ref().map(|p| base.join(p)),
        skip_bad_images: raw.skip_bad_images,
        overwrite: raw.overwrite,
        threads: raw.threads.unwrap_or(0),
        clock: clock(raw, continues, front_end)?,
        embeddings: embedding_options(raw, front_end, base)?,
        manifest: raw.manifest.as_ref().map(|p| at_base(base, p)),
        ..GeneratorOptions::default()
    };
    if let Some(size) = &raw.size {
        options.size = size
            .parse::<ImageSize>()
            .map_err(|e| invalid("size", e.to_string()))?;
    }
    if let Some(stream) = continues {
        if raw.size.is_some() && options.size != stream.size() {
            let reason = kept_by_stream("image size", stream, options.size);
            return Err(invalid("size", reason));
        }
        options.size = stream.size();
    }
    if let Some(alpha) = &raw.alpha {
        options.alpha = alpha
            .parse::<crate::Alpha>()
            .map_err(|e| invalid("alpha", e))?;
    }
    if let Some(compression) = &raw.png_compression {
        options.png_compression = compression
            .parse::<PngCompression>()
            .map_err(|e| invalid("png_compression", e))?;
    }
    options.validate().map_err(|e| option_error(e, front_end))?;
    Ok(options)
}

/// `path` relative to the front end's base folder, unless it is a URL (object storage).
fn at_base(base: &Path, path: &Path) -> PathBuf {
    match drift_store::is_url(path) {
        true => path.to_owned(),
        false => base.join(path),
    }
}

/// The seed and the input folder: given, the continued stream's, or the defaults.
fn seed_and_input(
    raw: &RawRun,
    continues: Option<&crate::StreamState>,
    front_end: FrontEnd,
    base: &Path,
) -> Result<(u64, PathBuf), SpecError> {
    let invalid = |key: &str, reason: String| SpecError::Invalid {
        place: front_end.key(key),
        reason,
    };
    let seed = match (raw.seed, continues) {
        (Some(seed), Some(stream)) if seed != stream.seed() => {
            return Err(invalid("seed", kept_by_stream("seed", stream, seed)));
        }
        (Some(seed), _) => seed,
        (None, Some(stream)) => stream.seed(),
        (None, None) => DEFAULT_SEED,
    };
    let input = match (&raw.input, continues) {
        (Some(input), _) => at_base(base, input),
        (None, Some(stream)) => stream.input().to_owned(),
        (None, None) => {
            return Err(invalid(
                "input",
                "is missing: name the dataset folder".into(),
            ));
        }
    };
    // A URL is checked (scheme, no credentials) before anything runs.
    drift_store::Location::from_path(&input).map_err(|e| invalid("input", e.to_string()))?;
    Ok((seed, input))
}

/// The stream clock of `raw` (checked with the other options by `GeneratorOptions::validate`):
/// a continued stream's unless given, and then it must be the same.
fn clock(
    raw: &RawRun,
    continues: Option<&crate::StreamState>,
    front_end: FrontEnd,
) -> Result<StreamClock, SpecError> {
    let defaults = continues.map_or_else(StreamClock::default, crate::StreamState::clock);
    let clock = StreamClock {
        start: raw.start_timestamp.unwrap_or(defaults.start),
        delta: raw.delta_timestamp.unwrap_or(defaults.delta),
    };
    if let Some(stream) = continues {
        for (key, given, kept) in [
            ("start_timestamp", clock.start, defaults.start),
            ("delta_timestamp", clock.delta, defaults.delta),
        ] {
            if given.to_bits() != kept.to_bits() {
                return Err(SpecError::Invalid {
                    place: front_end.key(key),
                    reason: kept_by_stream(key, stream, given),
                });
            }
        }
    }
    Ok(clock)
}

/// Why a continuation refuses another `what` than its stream's.
fn kept_by_stream(
    what: &str,
    stream: &crate::StreamState,
    given: impl std::fmt::Display,
) -> String {
    let kept = match what {
        "seed" => stream.seed().to_string(),
        "image size" => stream.size().to_string(),
        "start_timestamp" => stream.clock().start.to_string(),
        _ => stream.clock().delta.to_string(),
    };
    format!(
        "{given} differs from the {what} of the stream in {} ({kept}); a continued \
         stream keeps it (leave it out)",
        stream.folder().display()
    )
}

/// Refuses a segment that would write over the output being continued.
fn check_not_continued(segment: &Segment, stream: &crate::StreamState) -> Result<(), String> {
    let same = drift_writer::resolve_path(&segment.output)
        .ok()
        .zip(drift_writer::resolve_path(stream.folder()).ok())
        .is_some_and(|(a, b)| a == b);
    if same {
        return Err(format!(
            "{} is the output whose stream this run continues: write the continuation to \
             another folder",
            segment.output.display()
        ));
    }
    Ok(())
}

/// An option's range error, at the key as `front_end` spells it.
fn option_error(error: crate::OptionError, front_end: FrontEnd) -> SpecError {
    SpecError::Invalid {
        place: front_end.key(error.key),
        reason: error.reason,
    }
}

/// The embedding options of `raw` (`None` with embeddings off), checked: a front end that
/// takes only the network's settings (evaluate) uses this part of the spec alone.
pub fn embedding_options(
    raw: &RawRun,
    front_end: FrontEnd,
    base: &Path,
) -> Result<Option<EmbeddingOptions>, SpecError> {
    let invalid = |key: &str, reason: String| SpecError::Invalid {
        place: front_end.key(key),
        reason,
    };
    if !raw.embeddings {
        let set = [
            ("weights", raw.weights.is_some()),
            ("normalize", raw.normalize.is_some()),
            ("device", raw.device.is_some()),
            ("cpu_backend", raw.cpu_backend.is_some()),
            ("batch_size", raw.batch_size.is_some()),
        ];
        return match set.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(invalid(key, front_end.needs_embeddings.into())),
            None => Ok(None),
        };
    }
    let mut embedding = EmbeddingOptions {
        weights: raw.weights.as_ref().map(|p| at_base(base, p)),
        ..EmbeddingOptions::default()
    };
    if let Some(normalize) = &raw.normalize {
        embedding.normalize = normalize
            .parse::<Normalize>()
            .map_err(|e| invalid("normalize", e))?;
    }
    if let Some(device) = &raw.device {
        embedding.device = device
            .parse::<DeviceChoice>()
            .map_err(|e| invalid("device", e))?;
    }
    if let Some(backend) = &raw.cpu_backend {
        embedding.cpu_backend = backend
            .parse::<CpuBackend>()
            .map_err(|e| invalid("cpu_backend", e))?;
    }
    if let Some(batch_size) = raw.batch_size {
        embedding.batch_size = usize::try_from(batch_size).unwrap_or(usize::MAX);
    }
    embedding
        .validate()
        .map_err(|e| option_error(e, front_end))?;
    Ok(Some(embedding))
}

fn build_segment(
    segment: RawSegment,
    index: usize,
    earlier: &[Segment],
    input: &Path,
    front_end: FrontEnd,
    base: &Path,
) -> Result<Segment, SpecError> {
    let name = segment
        .name
        .unwrap_or_else(|| format!("segment {}", index + 1));
    let invalid = |key: &str, reason: String| SpecError::Invalid {
        place: front_end.segment_key(index, &name, key),
        reason,
    };
    if segment.samples == 0 {
        return Err(invalid("samples", "must be at least 1".into()));
    }
    let transforms = segment
        .transforms
        .iter()
        .map(|t| t.parse::<TransformSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("transforms", e.to_string()))?;
    let shape = match &segment.drift {
        None => DriftShape::Abrupt,
        Some(text) => {
            let shape = text
                .parse::<DriftShape>()
                .map_err(|e| invalid("drift", e.to_string()))?;
            if transforms.is_empty() && shape != DriftShape::Abrupt {
                let reason = format!("{shape} needs {}", front_end.key("transforms"));
                return Err(invalid("drift", reason));
            }
            shape
        }
    };
    Drift::new(TransformChain::new(transforms.clone()), shape)
        .map_err(|e| invalid("transforms", e.to_string()))?;
    let priors = match (segment.class_weights, segment.class_dirichlet) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "class_dirichlet",
                "give class_weights or class_dirichlet, not both".into(),
            ));
        }
        (Some(weights), None) => ClassPriors::Weights(weights.into_iter().collect()),
        (None, Some(alpha)) => ClassPriors::Dirichlet(alpha),
        (None, None) if segment.with_replacement => {
            return Err(invalid(
                "with_replacement",
                "only applies with class_weights or class_dirichlet".into(),
            ));
        }
        (None, None) => ClassPriors::AsInDataset,
    };
    let output = segment_output(&segment.output, earlier, input, base)
        .map_err(|reason| invalid("output", reason))?;
    Ok(Segment {
        name,
        samples: segment.samples,
        output,
        transforms,
        shape,
        class_mapping: segment.class_mapping.map(|p| base.join(p)),
        label_shift: LabelShift {
            priors,
            with_replacement: segment.with_replacement,
        },
    })
}

/// The segment's output folder, refused if empty, the same as an earlier segment's, or in the
/// input. Whether it holds an output is looked at only under its lock (see [`RunSpec::run`]).
fn segment_output(
    output: &Path,
    earlier: &[Segment],
    input: &Path,
    base: &Path,
) -> Result<PathBuf, String> {
    if output.as_os_str().is_empty() {
        return Err("is empty: name a folder for the segment's output".into());
    }
    let output = at_base(base, output);
    // A URL is checked (scheme, no credentials) before anything runs.
    drift_store::Location::from_path(&output).map_err(|e| e.to_string())?;
    let resolved =
        drift_writer::resolve_path(&output).map_err(|e| format!("{}: {e}", output.display()))?;
    if let Some(earlier) = earlier
        .iter()
        .find(|s| drift_writer::resolve_path(&s.output).is_ok_and(|other| other == resolved))
    {
        return Err(format!(
            "{} is also the output of {} ({}), the same folder",
            output.display(),
            earlier.name,
            earlier.output.display()
        ));
    }
    crate::check_output_location(&output, input).map_err(|e| e.to_string())?;
    Ok(output)
}

impl RunSpec {
    /// Scans the input, checks that the segments fit in the dataset, locks every segment's
    /// output folder, runs the segments in order into their staging areas, and commits them all
    /// together at the end: a failure or interruption leaves every output folder as it was.
    /// `progress` is asked for a reporter per segment; `finished` is told about each segment
    /// (with the scanned dataset) once all are committed.
    pub fn run(
        &self,
        mut progress: impl FnMut(&Segment) -> Box<dyn crate::Progress>,
        mut finished: impl FnMut(&Segment, &crate::SampleSummary, &crate::Dataset),
    ) -> Result<Vec<crate::SampleSummary>, SpecError> {
        let mut generator = self.generator()?;
        self.check_fit(&generator)?;
        if let Some((shard, _)) = &self.shard {
            for (index, segment) in self.segments.iter().enumerate() {
                let place = self.front_end.segment(index, &segment.name);
                generator
                    .check_shard(segment.samples, *shard)
                    .map_err(|e| run_error(place, e))?;
            }
        }
        // Every folder is locked before any segment runs, so that no other writer can slip in
        // between segments, and an alias the paths did not show (a bind mount) is refused too.
        // A segment whose output is on object storage is written to a local scratch folder
        // under its remote lock, then published by the remote transaction.
        let mut scratch = None;
        let mut remotes = Vec::new();
        let mut folders = Vec::with_capacity(self.segments.len());
        let mut reporters = Vec::with_capacity(self.segments.len());
        for (index, segment) in self.segments.iter().enumerate() {
            let place = self.front_end.segment_key(index, &segment.name, "output");
            let reporter = progress(segment);
            let path = match &self.shard {
                Some((_, folder)) => folder.join(crate::shard::segment_folder(index)),
                None => segment.output.clone(),
            };
            let path = match path {
                url if drift_store::is_url(&url) => {
                    let remote =
                        crate::remote::lock(&url).map_err(|e| run_error(place.clone(), e))?;
                    if let Some(recovery) = remote.recovery() {
                        reporter.recovered(&url, recovery);
                    }
                    let existing = remote
                        .existing_output()
                        .map_err(|e| run_error(place.clone(), e.into()))?;
                    if !self.options.overwrite
                        && let Some(existing) = existing
                    {
                        return Err(SpecError::OutputExists {
                            place,
                            existing: existing.into(),
                            hint: self.front_end.overwrite_hint,
                        });
                    }
                    let local = crate::remote::scratch_folder(&mut scratch, index)
                        .map_err(|e| run_error(place.clone(), e))?;
                    remotes.push((index, remote, local.clone(), url));
                    local
                }
                path => path,
            };
            let folder = generator
                .lock_output(&path)
                .map_err(|e| run_error(place.clone(), e))?;
            if let Some(recovery) = folder.recovery() {
                reporter.recovered(folder.path(), recovery);
            }
            if !self.options.overwrite
                && let Some(existing) = folder.existing_output()
            {
                return Err(SpecError::OutputExists {
                    place,
                    existing,
                    hint: self.front_end.overwrite_hint,
                });
            }
            folders.push(folder);
            reporters.push(reporter);
        }
        if let (Some(description), Some(first)) =
            (generator.embedding_description(), reporters.first())
        {
            first.embedding(&description);
        }
        let mut staged = Vec::with_capacity(self.segments.len());
        let mut summaries = Vec::with_capacity(self.segments.len());
        let work = self.segments.iter().enumerate().zip(folders).zip(reporters);
        for (((index, segment), folder), reporter) in work {
            let place = self.front_end.segment(index, &segment.name);
            let segments = self.segments.len();
            let (summary, output) = apply_segment(&mut generator, segment)
                .and_then(|()| match &self.shard {
                    None => generator.sample_staged(segment.samples, folder, reporter.as_ref()),
                    Some((shard, _)) => {
                        let placement = crate::ShardPlacement {
                            shard: *shard,
                            segment_index: index,
                            segments,
                            output: segment.output.clone(),
                        };
                        let n = segment.samples;
                        generator.sample_shard_staged(n, &placement, folder, reporter.as_ref())
                    }
                })
                .map_err(|e| run_error(place, e))?;
            staged.push(output);
            summaries.push(summary);
        }
        drift_writer::commit_outputs(staged).map_err(|e| run_error("commit".into(), e.into()))?;
        if !remotes.is_empty() {
            for (index, _, _, url) in &remotes {
                summaries[*index].output = url.clone();
            }
            let remotes = remotes
                .into_iter()
                .map(|(_, r, local, _)| (r, local))
                .collect();
            crate::remote::publish(remotes).map_err(|e| run_error("commit".into(), e))?;
        }
        for (segment, summary) in self.segments.iter().zip(&summaries) {
            finished(segment, summary, generator.dataset());
        }
        Ok(summaries)
    }

    /// The generator over the input, with the weights and class mapping loaded, and the
    /// continued stream (if any) replayed.
    pub fn generator(&self) -> Result<crate::DriftGenerator, SpecError> {
        let mut generator =
            crate::DriftGenerator::new(self.seed, &self.input, self.options.clone())
                .map_err(|e| self.generator_error(e))?;
        if let Some(stream) = &self.continues {
            generator
                .continue_stream(stream)
                .map_err(|e| run_error(self.front_end.key("continue_from"), e))?;
        }
        Ok(generator)
    }

    /// A failure to make the generator, at the key whose file failed.
    fn generator_error(&self, e: PipelineError) -> SpecError {
        {
            // Name the key whose file failed, not the dataset's.
            let place = match &e {
                PipelineError::Embedder(_) | PipelineError::NoWeights => {
                    self.front_end.key("weights")
                }
                PipelineError::ClassMapping(_) => self.front_end.key("class_mapping"),
                PipelineError::Manifest { .. } => self.front_end.key("manifest"),
                _ => format!("{} ({})", self.front_end.key("input"), self.input.display()),
            };
            run_error(place, e)
        }
    }

    /// Checks, before anything is written, that the segments fit in the dataset, that their
    /// label shifts can be made, and that their class mappings fit its classes.
    fn check_fit(&self, generator: &crate::DriftGenerator) -> Result<(), SpecError> {
        let total: u64 = self
            .segments
            .iter()
            .filter(|s| !s.label_shift.with_replacement)
            .map(|s| s.samples)
            .sum();
        // One segment gets the sampler's own words below; several get their sum.
        if self.segments.len() > 1 && total > generator.remaining() as u64 {
            return Err(SpecError::Invalid {
                place: "segments".into(),
                reason: format!(
                    "the segments ask for {total} samples in all but the dataset has {} images",
                    generator.remaining()
                ),
            });
        }
        let calls: Vec<(u64, LabelShift)> = self
            .segments
            .iter()
            .map(|s| (s.samples, s.label_shift.clone()))
            .collect();
        if let Err((index, error)) = generator.check_calls(&calls) {
            return Err(SpecError::Invalid {
                place: self.front_end.segment(index, &self.segments[index].name),
                reason: error.to_string(),
            });
        }
        for (index, segment) in self.segments.iter().enumerate() {
            if let Some(path) = &segment.class_mapping {
                crate::ClassMapping::load(path, generator.dataset().classes()).map_err(|e| {
                    SpecError::Invalid {
                        place: self
                            .front_end
                            .segment_key(index, &segment.name, "class_mapping"),
                        reason: e.to_string(),
                    }
                })?;
            }
        }
        Ok(())
    }
}

impl Segment {
    /// Sets `generator` up for this segment: its drift, name, label shift and class mapping.
    pub fn apply(&self, generator: &mut crate::DriftGenerator) -> Result<(), PipelineError> {
        apply_segment(generator, self)
    }

    /// What is allowed but probably not meant: a gradual window or a recurring period wider
    /// than the segment, whose drift then never completes within it.
    pub fn warnings(&self) -> Vec<String> {
        let (what, span) = match self.shape {
            DriftShape::Gradual { width, .. } => ("gradual width", width),
            DriftShape::Recurring { period, .. } => ("recurring period", period),
            _ => return Vec::new(),
        };
        if span <= self.samples {
            return Vec::new();
        }
        vec![format!(
            "{}: {what} {span} is more than its {} samples, so the drift does not complete \
             within it (the shape runs over each segment's own samples)",
            self.name, self.samples
        )]
    }
}

fn apply_segment(
    generator: &mut crate::DriftGenerator,
    segment: &Segment,
) -> Result<(), PipelineError> {
    if segment.transforms.is_empty() {
        generator.reset();
    } else {
        generator.add_drift(segment.transforms.clone(), segment.shape)?;
    }
    generator.set_segment_name(Some(segment.name.clone()));
    generator.set_label_shift(segment.label_shift.clone())?;
    if let Some(path) = &segment.class_mapping {
        generator.set_class_mapping(Some(path))?;
    }
    Ok(())
}

fn run_error(place: String, source: PipelineError) -> SpecError {
    SpecError::Run {
        place,
        source: Box::new(source),
    }
}
