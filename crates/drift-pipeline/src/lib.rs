//! drift-pipeline: image datasets with controlled, synthetic drift.
//!
//! A [`DriftGenerator`] is built from a seed, a class-folder dataset and [`GeneratorOptions`]. Each
//! [`DriftGenerator::sample`] call takes the next `n` images of one seeded permutation (never
//! repeating an image across calls), and writes an output folder in the layout drift-monitoring
//! platforms ingest: `sampled_images.zip`, `input_mapping.parquet`, `target.parquet`, with
//! embeddings on `embeddings.parquet`, and the ground truth `drift_log.parquet` and `drift.json`
//! (see [`OUTPUT_FILES`]). Sample ids and timestamps continue across calls, as in the Python tool
//! this crate replaces.
//!
//! Front ends describe a run as a [`RawRun`] and [`RunSpec::build`] validates it: the command
//! line and scenario files do, with one set of defaults and checks.
//!
//! ```
//! use drift_pipeline::{DriftGenerator, GeneratorOptions};
//! # let scratch = tempfile::tempdir().unwrap();
//! # let input = scratch.path().join("data");
//! # for (class, shade) in [("cat", 40u8), ("dog", 200)] {
//! #     std::fs::create_dir_all(input.join(class)).unwrap();
//! #     for i in 0..11u8 {
//! #         let size = drift_pipeline::ImageSize::new(9, 7).unwrap();
//! #         let pixels = (0..9 * 7 * 3).map(|p| shade.wrapping_add(i * 5 + p as u8)).collect();
//! #         let image = drift_core::RgbImage8::from_pixels(size, pixels).unwrap();
//! #         let png = drift_pipeline::encode_png(&image, drift_pipeline::PngCompression::Fast).unwrap();
//! #         std::fs::write(input.join(class).join(format!("{i}.png")), png).unwrap();
//! #     }
//! # }
//! // `input` holds one folder per class.
//! let mut generator = DriftGenerator::new(42, &input, GeneratorOptions::default()).unwrap();
//! let reference = generator.sample(5, &scratch.path().join("reference")).unwrap();
//! let production = generator.sample(7, &scratch.path().join("production")).unwrap();
//! assert_eq!(reference.first_sample_id, 0);
//! assert_eq!(production.first_sample_id, 5);
//! assert_eq!(production.samples, 7);
//!
//! // More production data, blurred: each image gets its own drawn parameters.
//! generator.add_abrupt_drift(vec!["gaussian_blur=0.4".parse().unwrap()]).unwrap();
//! generator.sample(4, &scratch.path().join("drifted")).unwrap();
//! generator.reset();
//! ```
//!
//! The stages live in their own crates (`drift-reader`, `drift-sampler`, `drift-transformer`,
//! `drift-embedder`, `drift-writer`); this crate wires them as threads linked by bounded
//! channels. The command line is its own crate (`drift-pipeline-cli`), as is the Python module:
//! this library names no flag and no keyword, and pulls in no CLI library.

mod class_mapping;
mod label_shift;
mod manifest;
mod pipeline;
pub mod records;
pub mod remote;
mod scenario;
mod shard;
mod spec;
mod stream;

pub use class_mapping::{ClassMapping, ClassMappingError};
pub use drift_core::{ClassTable, EMBEDDING_DIM, ImageSize};
pub use drift_embedder::weights;
pub use drift_embedder::{CpuBackend, DeviceChoice, EmbedderError, Normalize, WeightsSource};
pub use drift_reader::{
    Alpha, Dataset, DecodeLimits, Decoder, IGNORED_EXAMPLES, ReaderError, Transparency,
};
pub use drift_sampler::StreamClock;
pub use drift_store::transaction::TransactionError as RemoteOutputError;
pub use drift_store::{RemoteImages, StoreError};
pub use drift_transformer::{
    Drift, DriftShape, Ramp, TransformChain, TransformError, TransformKind, TransformSpec,
};
pub use drift_writer::{
    ABORT_AT_ENV, FileRecord, LoggedSample, OUTPUT_FILES, PngCompression, Recovery, SAMPLED_IMAGES,
    WriterError, encode_png, existing_output, read_drift_log, verify,
};
pub use label_shift::{ClassPriors, LabelShift, LabelShiftError};
pub use manifest::{DatasetManifest, UndecodableImage};
pub use remote::SCRATCH_ENV;
pub use scenario::{Scenario, ScenarioError};
pub use shard::{Shard, ShardError, cpu_kind};
pub use spec::{
    DEFAULT_BATCH_SIZE, DEFAULT_SEED, FrontEnd, RawRun, RawSegment, RunSpec, Segment, SpecError,
    embedding_options, worker_threads,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
pub use stream::StreamState;

use drift_embedder::{Embedder, EmbedderOptions, StateDict};

use drift_sampler::{Sampler, SamplerError};
use drift_writer::{OutputFolder, StagedOutput};

/// Everything that can stop a generator. Each variant carries the file, flag or sample involved.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Listing or decoding the dataset failed.
    #[error(transparent)]
    Reader(#[from] ReaderError),
    /// A sample request the sampler refused.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// Writing the output failed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// Object storage failed (listing or reading a dataset there).
    #[error(transparent)]
    Store(#[from] drift_store::StoreError),
    /// An output on object storage could not be locked or committed.
    #[error(transparent)]
    RemoteOutput(#[from] drift_store::transaction::TransactionError),
    /// The class mapping file was refused.
    #[error(transparent)]
    ClassMapping(#[from] ClassMappingError),
    /// With `skip_bad_images`, too many images were unreadable to make the samples asked for.
    #[error(
        "asked for {requested} samples but only {produced} could be made: the remaining images \
         ran out after skipping {skipped} unreadable ones"
    )]
    RanOut {
        /// Asked for.
        requested: u64,
        /// Made before the images ran out.
        produced: u64,
        /// Unreadable images skipped.
        skipped: usize,
    },
    /// PNG encoding of one sample failed.
    #[error("sample {sample_id} ({source_path}): {source}")]
    Encode {
        /// The sample.
        sample_id: u64,
        /// The image it came from.
        source_path: PathBuf,
        /// What failed.
        source: WriterError,
    },
    /// A drift that was refused (empty, unknown name, level outside [0, 1]).
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// Loading the weights or embedding failed.
    #[error(transparent)]
    Embedder(#[from] EmbedderError),
    /// Embeddings were asked for but no weights were given or cached.
    #[error("{}", drift_embedder::weights::how_to_get_weights())]
    NoWeights,
    /// Label shift that cannot be applied (unknown class, bad weight, a class ran out).
    #[error(transparent)]
    LabelShift(#[from] LabelShiftError),
    /// The run was interrupted (a signal); every output folder holds what it held before.
    #[error("interrupted: every output folder was left as it was")]
    Cancelled,
    /// An output folder that is, or is inside, the input dataset.
    #[error("output {output} {relation} the input dataset {input}: {consequence}")]
    OutputInInput {
        /// The output folder.
        output: PathBuf,
        /// The dataset root.
        input: PathBuf,
        /// "is" or "is inside".
        relation: &'static str,
        /// What writing there would do.
        consequence: &'static str,
    },
    /// An option outside its range.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// An earlier output whose stream cannot be continued here.
    #[error("cannot continue the stream of {folder}: {reason}")]
    Continuation {
        /// The earlier output.
        folder: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A timestamp of the stream that is not a finite number.
    #[error(
        "sample {sample_id} would get timestamp {timestamp} (start {start} + {sample_id} x delta \
         {delta}): timestamps must be finite"
    )]
    TimestampOverflow {
        /// The sample.
        sample_id: u64,
        /// Its timestamp.
        timestamp: f64,
        /// The stream's start.
        start: f64,
        /// The stream's step.
        delta: f64,
    },
    /// A dataset manifest that cannot be used.
    #[error("dataset manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A shard that cannot be made as asked.
    #[error(transparent)]
    Shard(#[from] ShardError),
}

/// The most worker threads per stage a run may ask for: far more than any machine has cores,
/// few enough that spawning them cannot fail.
pub const MAX_THREADS: usize = 1024;

/// Refuses an output folder that is the dataset or lies inside it (it would become an
/// image-less class that breaks every later run on the dataset), or inside a class folder that
/// is a symlink to somewhere else (writing there writes into the dataset). Paths are compared
/// resolved, so `..`, symlinks and relative spellings cannot hide it.
pub fn check_output_location(output: &Path, input: &Path) -> Result<(), PipelineError> {
    let relation = match drift_store::is_url(output) || drift_store::is_url(input) {
        true => url_relation(output, input)?,
        false => path_relation(output, input)?,
    };
    match relation {
        Some((relation, consequence)) => Err(PipelineError::OutputInInput {
            output: output.to_owned(),
            input: input.to_owned(),
            relation,
            consequence,
        }),
        None => Ok(()),
    }
}

/// How an output can lie in its input, and why that is refused.
type Relation = Option<(&'static str, &'static str)>;
const IS_THE_INPUT: (&str, &str) = (
    "is",
    "outputs cannot be written into the dataset they sample",
);
const INSIDE_THE_INPUT: (&str, &str) = (
    "is inside",
    "it would become an image-less class that breaks every later run on the dataset",
);

/// Where the local folder `output` lies in the local dataset `input`, compared resolved.
fn path_relation(output: &Path, input: &Path) -> Result<Relation, PipelineError> {
    let resolve = |path: &Path| {
        drift_writer::resolve_path(path).map_err(|source| WriterError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let (resolved_output, resolved_input) = (resolve(output)?, resolve(input)?);
    if resolved_output == resolved_input {
        return Ok(Some(IS_THE_INPUT));
    }
    if resolved_output.starts_with(&resolved_input) {
        return Ok(Some(INSIDE_THE_INPUT));
    }
    // A class folder may be a symlink to a folder elsewhere: that folder is the dataset too.
    for entry in std::fs::read_dir(&resolved_input)
        .into_iter()
        .flatten()
        .flatten()
    {
        let linked = entry.file_type().is_ok_and(|kind| kind.is_symlink());
        if linked
            && let Ok(class) = std::fs::canonicalize(entry.path())
            && class.is_dir()
            && resolved_output.starts_with(&class)
        {
            return Ok(Some((
                "is inside a class folder (a symlink) of",
                "writing there would write into the dataset",
            )));
        }
    }
    Ok(None)
}

/// Where `output` lies in `input` when either is a URL: only a URL can lie inside a URL, and
/// the comparison is of the normalised `scheme://bucket/prefix` spellings.
fn url_relation(output: &Path, input: &Path) -> Result<Relation, PipelineError> {
    let spelled = |path: &Path| -> Result<Option<String>, PipelineError> {
        Ok(match drift_store::Location::from_path(path)? {
            drift_store::Location::Remote(remote) => Some(remote.url().to_owned()),
            drift_store::Location::Local(_) => None,
        })
    };
    let (Some(out), Some(inp)) = (spelled(output)?, spelled(input)?) else {
        return Ok(None);
    };
    Ok(if out == inp {
        Some(IS_THE_INPUT)
    } else if out.starts_with(&format!("{inp}/")) {
        Some(INSIDE_THE_INPUT)
    } else {
        None
    })
}

/// Lists the dataset at `input`, a folder or an object-store URL (one listing, `ImageFolder`
/// semantics either way); for a URL, also how its images are read.
pub fn open_dataset(
    input: &Path,
) -> Result<(Dataset, Option<drift_store::RemoteImages>), PipelineError> {
    match drift_store::Location::from_path(input)? {
        drift_store::Location::Local(_) => Ok((Dataset::scan(input)?, None)),
        drift_store::Location::Remote(remote) => {
            let objects = remote.list()?.into_iter().map(|o| (o.key, o.bytes));
            let dataset = Dataset::from_objects(input, objects)?;
            let images = remote_images(input, &dataset)?;
            Ok((dataset, images))
        }
    }
}

/// How the images of `dataset` (listed at `input`) are read when `input` is a URL.
fn remote_images(
    input: &Path,
    dataset: &Dataset,
) -> Result<Option<drift_store::RemoteImages>, PipelineError> {
    let drift_store::Location::Remote(root) = drift_store::Location::from_path(input)? else {
        return Ok(None);
    };
    let keys = dataset
        .images()
        .iter()
        .map(|image| pipeline::relative_to(&image.path, dataset.root()))
        .collect();
    Ok(Some(drift_store::RemoteImages::new(
        root,
        keys,
        pipeline::REMOTE_READS_IN_FLIGHT,
    )))
}

/// How samples are made and written. `Default` gives SPEC's defaults.
#[derive(Debug, Clone, Default)]
pub struct GeneratorOptions {
    /// Output image size (default 224x224).
    pub size: ImageSize,
    /// Timestamps: start and step.
    pub clock: StreamClock,
    /// Zip entries under `<class_name>/`.
    pub organize_by_class: bool,
    /// A JSON or TOML class mapping applied to published labels.
    pub class_mapping: Option<PathBuf>,
    /// Skip unreadable images (counted and reported) instead of failing.
    pub skip_bad_images: bool,
    /// Replace existing outputs.
    pub overwrite: bool,
    /// Worker threads per parallel stage; 0 means one per core.
    pub threads: usize,
    /// PNG effort.
    pub png_compression: PngCompression,
    /// Decompression-bomb guards.
    pub decode_limits: DecodeLimits,
    /// What happens to alpha channels: dropped (default, as torchvision) or composited.
    pub alpha: Alpha,
    /// Set to true (from a Ctrl-C handler, say) to stop a running `sample` call cleanly.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Write `embeddings.parquet` too (ResNet18 features of every sample).
    pub embeddings: Option<EmbeddingOptions>,
    /// A dataset manifest (`drift-pipeline index`): the listing comes from it instead of a
    /// scan, and, verified, it says which images decode.
    pub manifest: Option<PathBuf>,
}

/// The largest embedding batch a run may ask for.
pub const MAX_BATCH_SIZE: usize = 4096;

/// An option of [`GeneratorOptions`] or [`EmbeddingOptions`] outside its range: its key (as a
/// scenario file spells it; the run spec respells it for its front end) and why. These are the
/// options' only range checks: the library and every front end go through them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("option '{key}': {reason}")]
pub struct OptionError {
    /// The option.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl GeneratorOptions {
    /// Checks every option's range.
    pub fn validate(&self) -> Result<(), OptionError> {
        let bad = |key, reason: String| Err(OptionError { key, reason });
        if self.threads > MAX_THREADS {
            return bad(
                "threads",
                format!(
                    "{} worker threads asked for; at most {MAX_THREADS} are allowed (0 means one \
                     per core)",
                    self.threads
                ),
            );
        }
        if !self.clock.start.is_finite() {
            return bad("start_timestamp", "must be a finite number".into());
        }
        if !(self.clock.delta.is_finite() && self.clock.delta > 0.0) {
            return bad("delta_timestamp", "must be greater than 0".into());
        }
        self.embeddings
            .as_ref()
            .map_or(Ok(()), EmbeddingOptions::validate)
    }
}

impl EmbeddingOptions {
    /// Checks every option's range.
    pub fn validate(&self) -> Result<(), OptionError> {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(OptionError {
                key: "batch_size",
                reason: format!("must be 1 to {MAX_BATCH_SIZE}, got {}", self.batch_size),
            });
        }
        Ok(())
    }
}

/// How embeddings are computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingOptions {
    /// A torchvision `.pth` or safetensors file; `None` looks in the cache directory.
    pub weights: Option<PathBuf>,
    /// CPU, GPU or whichever is there.
    pub device: DeviceChoice,
    /// The CPU backend.
    pub cpu_backend: CpuBackend,
    /// Input normalization.
    pub normalize: Normalize,
    /// Images per forward pass (the last batch of a call may be smaller).
    pub batch_size: usize,
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        Self {
            weights: None,
            device: DeviceChoice::default(),
            cpu_backend: CpuBackend::default(),
            normalize: Normalize::default(),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// The loaded network and what it was loaded from.
pub struct EmbeddingStage {
    /// The network on its device.
    pub embedder: Embedder,
    /// The weights file and its provenance.
    pub source: WeightsSource,
    /// Images per forward pass.
    pub batch_size: usize,
}

/// Told about progress while a `sample` call runs (from the writer thread).
pub trait Progress: Sync {
    /// `written` of `total` samples are in the output.
    fn samples_written(&self, written: u64, total: u64);

    /// The lock of output folder `folder` found what a run that died there left, and did
    /// `recovery` about it (told once, before anything is written).
    fn recovered(&self, folder: &Path, recovery: &Recovery) {
        let _ = (folder, recovery);
    }

    /// The network embeds on `description` (device, normalization, batch, weights): told once,
    /// at the start of a run with embeddings.
    fn embedding(&self, description: &str) {
        let _ = description;
    }
}

/// No progress reporting.
impl Progress for () {
    fn samples_written(&self, _written: u64, _total: u64) {}
}

/// What one `sample` call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSummary {
    /// The output folder.
    pub output: PathBuf,
    /// Samples written.
    pub samples: u64,
    /// Id of the first sample written.
    pub first_sample_id: u64,
    /// Timestamps of the first and last sample.
    pub timestamps: (f64, f64),
    /// Unreadable images skipped (only with `skip_bad_images`).
    pub skipped: Vec<SkippedImage>,
    /// Bytes of `sampled_images.zip`.
    pub zip_bytes: u64,
    /// Wall time of the call.
    pub elapsed: Duration,
    /// Where the worker threads spent that time.
    pub stage_times: StageTimes,
}

/// Time the pipeline's threads spent working, per stage, summed over the stage's threads; time
/// blocked on a channel is not counted. It is wall time inside each step, so on a machine with
/// more busy threads than cores it includes time a step waited for a core: compare stages with
/// each other, not with CPU time. The stage with the most time is where speed is won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StageTimes {
    /// Reading, decoding and resizing source images.
    pub decode: Duration,
    /// Applying the drift.
    pub transform: Duration,
    /// PNG encoding.
    pub encode: Duration,
    /// Embedding batches (zero without embeddings).
    pub embed: Duration,
    /// Appending to the zip and the tables, and finishing the files.
    pub write: Duration,
}

impl StageTimes {
    /// Each stage's name and time, in pipeline order.
    pub fn stages(&self) -> [(&'static str, Duration); 5] {
        [
            ("decode", self.decode),
            ("transform", self.transform),
            ("encode", self.encode),
            ("embed", self.embed),
            ("write", self.write),
        ]
    }

    /// The stage with the most time.
    pub fn busiest(&self) -> (&'static str, Duration) {
        self.stages()
            .into_iter()
            .max_by_key(|&(_, time)| time)
            .expect("five stages")
    }

    /// Time summed over all stages.
    pub fn total(&self) -> Duration {
        self.stages().iter().map(|&(_, time)| time).sum()
    }
}

impl SampleSummary {
    /// Samples per second of wall time.
    pub fn images_per_second(&self) -> f64 {
        self.samples as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// An image left out with `skip_bad_images`, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedImage {
    /// The file.
    pub path: PathBuf,
    /// The decoder's words.
    pub reason: String,
}

/// A seeded sample stream over one dataset. See the crate docs for an example.
pub struct DriftGenerator {
    dataset: Dataset,
    /// Where the images are read from when the dataset is on object storage.
    remote_images: Option<drift_store::RemoteImages>,
    sampler: Sampler,
    decoder: Decoder,
    class_mapping: ClassMapping,
    drift: Drift,
    label_shift: LabelShift,
    segment: Option<String>,
    /// Every successful `sample` call of the stream so far (continued ones included).
    history: Vec<stream::CallRecord>,
    /// What file names derive from (the seed and the dataset's fingerprint).
    stream_key: u64,
    embedding: Option<EmbeddingStage>,
    options: GeneratorOptions,
    /// From a verified manifest: per image, whether it decodes.
    known_decodes: Option<Vec<bool>>,
}

/// Where a shard's segment goes: which shard, and the segment's place in its run.
#[derive(Debug, Clone)]
pub(crate) struct ShardPlacement {
    pub shard: Shard,
    pub segment_index: usize,
    pub segments: usize,
    /// The segment's own output folder in the run.
    pub output: PathBuf,
}

impl DriftGenerator {
    /// Scans `input` (nothing is decoded yet) and draws the permutation from `seed`. With
    /// embeddings on, loads and checks the weights once, here.
    pub fn new(seed: u64, input: &Path, options: GeneratorOptions) -> Result<Self, PipelineError> {
        options.validate()?;
        let (dataset, remote_images, known_decodes) = match &options.manifest {
            Some(path) => {
                let manifest = DatasetManifest::read(path)?;
                let dataset = manifest.dataset(input)?;
                let remote_images = remote_images(input, &dataset)?;
                (dataset, remote_images, manifest.decodes())
            }
            None => {
                let (dataset, remote_images) = open_dataset(input)?;
                (dataset, remote_images, None)
            }
        };
        let class_mapping = match &options.class_mapping {
            Some(path) => ClassMapping::load(path, dataset.classes())?,
            None => ClassMapping::identity(dataset.classes()),
        };
        let embedding = match &options.embeddings {
            Some(embedding) => Some(load_embedder(embedding, options.threads, options.size)?),
            None => None,
        };
        Ok(Self {
            embedding,
            sampler: Sampler::new(dataset.images().len(), seed, options.clock).with_labels(
                &dataset
                    .images()
                    .iter()
                    .map(|image| image.label)
                    .collect::<Vec<_>>(),
            ),
            label_shift: LabelShift::default(),
            stream_key: drift_sampler::stream_key(seed, dataset.fingerprint()),
            decoder: Decoder::new(options.size)
                .with_limits(options.decode_limits)
                .with_alpha(options.alpha),
            dataset,
            remote_images,
            class_mapping,
            drift: Drift::none(),
            segment: None,
            history: Vec::new(),
            options,
            known_decodes,
        })
    }

    /// Continues the stream an earlier output ended (see [`StreamState`]): the next call's
    /// first sample gets the id after that output's last, and no image it or the outputs
    /// before it used comes again while unused ones remain. Refused unless this generator is
    /// new and has the stream's dataset (the same fingerprint), seed, image size and clock.
    pub fn continue_stream(&mut self, state: &StreamState) -> Result<(), PipelineError> {
        if !self.history.is_empty() {
            return Err(PipelineError::Continuation {
                folder: state.folder().to_owned(),
                reason: "this generator has already sampled; continue on a new one".into(),
            });
        }
        let mut sampler = self.sampler.clone();
        state.replay(&mut sampler, &self.dataset, self.decoder.size())?;
        self.sampler = sampler;
        self.history = state.calls().to_vec();
        Ok(())
    }

    /// Applies `transforms`, in order, to every sample of later `sample` calls (until
    /// [`DriftGenerator::reset`] or the next drift, which replaces it).
    pub fn add_abrupt_drift(
        &mut self,
        transforms: Vec<TransformSpec>,
    ) -> Result<(), PipelineError> {
        self.add_drift(transforms, DriftShape::Abrupt)
    }

    /// Applies `transforms`, in order, in the given shape over each later `sample` call: the
    /// call's samples are the segment the shape runs across (see [`DriftShape`]).
    pub fn add_drift(
        &mut self,
        transforms: Vec<TransformSpec>,
        shape: DriftShape,
    ) -> Result<(), PipelineError> {
        if transforms.is_empty() {
            return Err(TransformError::Empty.into());
        }
        self.drift = Drift::new(TransformChain::new(transforms), shape)?;
        Ok(())
    }

    /// Removes any drift: later samples are clean.
    pub fn reset(&mut self) {
        self.drift = Drift::none();
    }

    /// The drift applied to later samples.
    pub fn drift(&self) -> &Drift {
        &self.drift
    }

    /// Publishes labels through the mapping file at `path` from the next `sample` call on (a
    /// concept change); `None` goes back to the original labels.
    pub fn set_class_mapping(&mut self, path: Option<&Path>) -> Result<(), PipelineError> {
        self.class_mapping = match path {
            Some(path) => ClassMapping::load(path, self.dataset.classes())?,
            None => ClassMapping::identity(self.dataset.classes()),
        };
        Ok(())
    }

    /// Label shift: the class proportions of later `sample` calls (until the next call of this).
    pub fn set_label_shift(&mut self, shift: LabelShift) -> Result<(), PipelineError> {
        shift.validate(self.dataset.classes())?;
        self.label_shift = shift;
        Ok(())
    }

    /// Checks that calls of `calls[i].0` samples under label shift `calls[i].1`, in order, can
    /// all be made, without making them: the index of the first that cannot, and why.
    pub fn check_calls(&self, calls: &[(u64, LabelShift)]) -> Result<(), (usize, PipelineError)> {
        let classes = self.dataset.classes();
        let mut sampler = self.sampler.clone();
        for (index, (n, shift)) in calls.iter().enumerate() {
            shift.validate(classes).map_err(|e| (index, e.into()))?;
            let plan = shift.plan(classes, &sampler);
            label_shift::check(&sampler, *n, &plan, classes).map_err(|e| (index, e))?;
            sampler.advance(&plan, *n as usize, *n);
            check_timestamps(self.sampler.clock(), sampler.next_sample_id())
                .map_err(|e| (index, e))?;
        }
        Ok(())
    }

    /// Names the segment of later `sample` calls in `drift_log.parquet` and `drift.json`
    /// (default: `segment N` for the Nth successful call).
    pub fn set_segment_name(&mut self, name: Option<String>) {
        self.segment = name;
    }

    /// With embeddings on: the device that embeds and the weights file, in words.
    pub fn embedding_description(&self) -> Option<String> {
        self.embedding.as_ref().map(|stage| {
            format!(
                "{}, normalize {}, batch {}, weights {}",
                stage.embedder.device_description(),
                stage.embedder.normalize().name(),
                stage.batch_size,
                stage.source.describe()
            )
        })
    }

    /// With embeddings on: the weights file used.
    pub fn weights_source(&self) -> Option<&WeightsSource> {
        self.embedding.as_ref().map(|stage| &stage.source)
    }

    /// The scanned dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Images not yet sampled.
    pub fn remaining(&self) -> usize {
        self.sampler.remaining()
    }

    /// The id the next sample will get.
    pub fn next_sample_id(&self) -> u64 {
        self.sampler.next_sample_id()
    }

    /// Successful `sample` calls the stream has made (a continued stream's earlier ones too).
    pub fn calls_made(&self) -> usize {
        self.history.len()
    }

    /// How later calls write: zip entries under `<class_name>/`, and whether an existing
    /// output may be replaced.
    pub fn set_output_options(&mut self, organize_by_class: bool, overwrite: bool) {
        self.options.organize_by_class = organize_by_class;
        self.options.overwrite = overwrite;
    }

    /// Writes the next `n` samples to `output`.
    pub fn sample(&mut self, n: u64, output: &Path) -> Result<SampleSummary, PipelineError> {
        self.sample_with_progress(n, output, &())
    }

    /// As [`DriftGenerator::sample`], reporting progress. On error the generator is unchanged:
    /// the same call can be retried. The output folder is locked for the call, its files staged
    /// and committed together at the end; on error it holds what it held before.
    pub fn sample_with_progress(
        &mut self,
        n: u64,
        output: &Path,
        progress: &dyn Progress,
    ) -> Result<SampleSummary, PipelineError> {
        // Checks that need no output come first, so that a refused call creates nothing.
        let class_plan = self.check_call(n)?;
        if drift_store::is_url(output) {
            return self.sample_to_store(n, &class_plan, output, progress);
        }
        let folder = self.lock_output(output)?;
        if let Some(recovery) = folder.recovery() {
            progress.recovered(folder.path(), recovery);
        }
        let outcome = self.stage(n, &class_plan, folder, progress)?;
        outcome.staged.commit()?;
        self.advance(&class_plan, outcome.positions_used, n);
        Ok(outcome.summary)
    }

    /// [`DriftGenerator::sample_with_progress`] into an object-store prefix: under its remote
    /// lock, through a local scratch folder, published by the remote transaction.
    fn sample_to_store(
        &mut self,
        n: u64,
        class_plan: &drift_sampler::ClassPlan,
        output: &Path,
        progress: &dyn Progress,
    ) -> Result<SampleSummary, PipelineError> {
        check_output_location(output, self.dataset.root())?;
        let remote = remote::lock(output)?;
        if let Some(recovery) = remote.recovery() {
            progress.recovered(output, recovery);
        }
        if !self.options.overwrite
            && let Some(existing) = remote.existing_output()?
        {
            return Err(WriterError::OutputExists {
                path: existing.into(),
            }
            .into());
        }
        let mut scratch = None;
        let local = remote::scratch_folder(&mut scratch, 0)?;
        let folder = OutputFolder::lock(&local, &OUTPUT_FILES)?;
        let outcome = self.stage(n, class_plan, folder, progress)?;
        outcome.staged.commit()?;
        remote::publish(vec![(remote, local)])?;
        self.advance(class_plan, outcome.positions_used, n);
        let mut summary = outcome.summary;
        summary.output = output.to_owned();
        Ok(summary)
    }

    /// Checks that `output` may be written (not the input or inside it) and takes its lock.
    pub(crate) fn lock_output(&self, output: &Path) -> Result<OutputFolder, PipelineError> {
        check_output_location(output, self.dataset.root())?;
        Ok(OutputFolder::lock(output, &OUTPUT_FILES)?)
    }

    /// Makes the next `n` samples into `folder`'s staging area without committing them or
    /// moving the generator on.
    fn stage(
        &self,
        n: u64,
        class_plan: &drift_sampler::ClassPlan,
        folder: OutputFolder,
        progress: &dyn Progress,
    ) -> Result<pipeline::Outcome, PipelineError> {
        if self.options.manifest.is_some() {
            let candidates = self.candidates_for(class_plan, n)?;
            self.check_against_manifest(&self.sampler, class_plan, candidates)?;
        }
        self.stage_part(
            pipeline::Part::whole(&self.sampler, n),
            class_plan,
            folder,
            progress,
        )
    }

    /// As [`DriftGenerator::stage`], for the `part` of the call's samples that a shard makes.
    fn stage_part(
        &self,
        part: pipeline::Part<'_>,
        class_plan: &drift_sampler::ClassPlan,
        folder: OutputFolder,
        progress: &dyn Progress,
    ) -> Result<pipeline::Outcome, PipelineError> {
        let threads = worker_threads(self.options.threads);
        let segment = self
            .segment
            .clone()
            .unwrap_or_else(|| format!("segment {}", self.history.len() + 1));
        let job = pipeline::Job {
            dataset: &self.dataset,
            remote_images: self.remote_images.as_ref(),
            sampler: part.sampler,
            segment_first: self.sampler.next_sample_id(),
            segment_samples: part.segment_samples,
            shard: part.shard,
            known_decodes: self.known_decodes.as_deref(),
            history: &self.history,
            stream_key: self.stream_key,
            class_plan,
            decoder: &self.decoder,
            drift: &self.drift,
            segment: &segment,
            embedding: self.embedding.as_ref(),
            class_mapping: &self.class_mapping,
            options: &self.options,
            threads,
            requested: part.samples,
        };
        pipeline::run(job, folder, progress)
    }

    /// As [`DriftGenerator::sample_staged`], making only `placement.shard`'s part of the
    /// call's `n` samples; the generator moves on past the whole call.
    /// Refuses shard `shard` of a segment of `n` samples where it cannot be made: checked
    /// before any output folder is locked (or created).
    pub(crate) fn check_shard(&self, n: u64, shard: Shard) -> Result<(), PipelineError> {
        if n < shard.count {
            return Err(ShardError::TooFewSamples { shard, samples: n }.into());
        }
        if self.options.skip_bad_images && self.known_decodes.is_none() {
            return Err(ShardError::NeedsVerifiedManifest { shard }.into());
        }
        Ok(())
    }

    pub(crate) fn sample_shard_staged(
        &mut self,
        n: u64,
        placement: &ShardPlacement,
        folder: OutputFolder,
        progress: &dyn Progress,
    ) -> Result<(SampleSummary, StagedOutput), PipelineError> {
        let shard = placement.shard;
        self.check_shard(n, shard)?;
        let class_plan = self.check_call(n)?;
        let (start, end) = shard.range(n);
        let before = self.candidates_for(&class_plan, start)?;
        let through = self.candidates_for(&class_plan, end)?;
        let total = self.candidates_for(&class_plan, n)?;
        let mut sampler = self.sampler.clone();
        sampler.advance(&class_plan, before, start);
        self.check_against_manifest(&sampler, &class_plan, through - before)?;
        let record = shard::ShardRecord {
            candidates: through - before,
            count: shard.count,
            cpu: shard::cpu_kind(),
            index: shard.index,
            output: std::path::absolute(&placement.output)
                .unwrap_or_else(|_| placement.output.clone())
                .to_string_lossy()
                .into_owned(),
            segment_first_sample_id: self.sampler.next_sample_id(),
            segment_index: placement.segment_index,
            segment_samples: n,
            segments: placement.segments,
            settings_sha256: String::new(),
        };
        let part = pipeline::Part {
            sampler: &sampler,
            samples: end - start,
            segment_samples: n,
            shard: Some(&record),
        };
        let outcome = self.stage_part(part, &class_plan, folder, progress)?;
        if outcome.positions_used != through - before {
            return Err(ShardError::DecodesChanged {
                shard,
                used: outcome.positions_used,
                manifest: through - before,
            }
            .into());
        }
        self.advance(&class_plan, total, n);
        Ok((outcome.summary, outcome.staged))
    }

    /// With a manifest: checks that the next `candidates` images `sampler` gives under `plan`
    /// are still as the manifest lists them, before the run reads them.
    fn check_against_manifest(
        &self,
        sampler: &Sampler,
        plan: &drift_sampler::ClassPlan,
        candidates: usize,
    ) -> Result<(), PipelineError> {
        // On object storage each read is checked against the listed size as it arrives
        // (`pipeline::decode_stage`): asking first would cost one request per image more.
        if self.options.manifest.is_none() || self.remote_images.is_some() {
            return Ok(());
        }
        let indices: Vec<usize> = sampler
            .candidates(plan)
            .take(candidates)
            .map_while(Result::ok)
            .collect();
        Ok(self.dataset.check_unchanged(indices)?)
    }

    /// Candidates the first `samples` samples of a call under `plan` consume: as many, unless
    /// a verified manifest says some of them do not decode and are skipped.
    fn candidates_for(
        &self,
        plan: &drift_sampler::ClassPlan,
        samples: u64,
    ) -> Result<usize, PipelineError> {
        let Some(decodes) = self
            .known_decodes
            .as_deref()
            .filter(|_| self.options.skip_bad_images)
        else {
            return Ok(samples as usize);
        };
        if samples == 0 {
            return Ok(0);
        }
        let mut good = 0;
        for (position, candidate) in self.sampler.candidates(plan).enumerate() {
            let Ok(index) = candidate else { break };
            good += u64::from(decodes[index]);
            if good == samples {
                return Ok(position + 1);
            }
        }
        Err(PipelineError::RanOut {
            requested: samples,
            produced: good,
            skipped: decodes.iter().filter(|d| !**d).count(),
        })
    }

    /// As [`DriftGenerator::sample_with_progress`], but leaves the output staged: the scenario
    /// commits all its segments together. The generator moves on as if the call had landed.
    pub(crate) fn sample_staged(
        &mut self,
        n: u64,
        folder: OutputFolder,
        progress: &dyn Progress,
    ) -> Result<(SampleSummary, StagedOutput), PipelineError> {
        let class_plan = self.check_call(n)?;
        let outcome = self.stage(n, &class_plan, folder, progress)?;
        self.advance(&class_plan, outcome.positions_used, n);
        Ok((outcome.summary, outcome.staged))
    }

    /// Moves the stream on past a call that landed (or was staged to land).
    fn advance(&mut self, plan: &drift_sampler::ClassPlan, candidates: usize, samples: u64) {
        self.sampler.advance(plan, candidates, samples);
        self.history
            .push(stream::CallRecord::new(plan, candidates, samples));
    }

    /// Whether a call of `n` samples can be made from here: the label shift's classes have the
    /// images, and every timestamp is finite. The call's class plan.
    fn check_call(&self, n: u64) -> Result<drift_sampler::ClassPlan, PipelineError> {
        let class_plan = self.label_shift.plan(self.dataset.classes(), &self.sampler);
        label_shift::check(&self.sampler, n, &class_plan, self.dataset.classes())?;
        check_timestamps(self.sampler.clock(), self.sampler.next_sample_id() + n)?;
        Ok(class_plan)
    }
}

/// Refuses a stream whose samples before `end` would not all have finite timestamps
/// (timestamps grow with the id, so the last one is the largest).
fn check_timestamps(clock: StreamClock, end: u64) -> Result<(), PipelineError> {
    let last = end.saturating_sub(1);
    let timestamp = clock.timestamp(last);
    if timestamp.is_finite() {
        return Ok(());
    }
    Err(PipelineError::TimestampOverflow {
        sample_id: last,
        timestamp,
        start: clock.start,
        delta: clock.delta,
    })
}

/// The `embeddings` record of `drift.json` and `evaluation.json`: the network, the weights and
/// how they were run.
impl EmbeddingStage {
    /// The `embeddings` record of `drift.json` and `evaluation.json`.
    pub fn record(&self) -> records::EmbeddingRecord {
        embedding_record(self)
    }

    /// Loads the weights `options` name (or the cached ones) onto the device, after checking
    /// the options and that a batch of `size` images fits in memory.
    pub fn load(
        options: &EmbeddingOptions,
        threads: usize,
        size: ImageSize,
    ) -> Result<Self, PipelineError> {
        load_embedder(options, threads, size)
    }
}

fn embedding_record(stage: &EmbeddingStage) -> records::EmbeddingRecord {
    records::EmbeddingRecord {
        device: stage.embedder.device_description().to_owned(),
        model: "resnet18 (torchvision architecture, fc removed)".to_owned(),
        normalize: stage.embedder.normalize().name().to_owned(),
        reference_weights: matches!(
            stage.source.provenance,
            drift_embedder::Provenance::Reference(_)
        ),
        weights_file: stage
            .source
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        weights_sha256: stage.source.sha256.clone(),
    }
}

/// Loads the weights at `path`, a file or an object-store URL (downloaded to scratch space, read,
/// and removed; the source then names the URL).
pub fn load_weights(
    path: &Path,
) -> Result<(StateDict, drift_embedder::weights::WeightsSource), PipelineError> {
    if !drift_store::is_url(path) {
        return Ok(StateDict::load(path)?);
    }
    let (parent, name) = drift_store::RemoteLocation::from_url_path(path)?.parent_and_name()?;
    let scratch = drift_store::scratch_dir("drift-pipeline-weights-")?;
    let local = scratch.path().join(&name);
    parent.download_file(&name, &local)?;
    let (weights, mut source) = StateDict::load(&local)?;
    source.path = path.to_owned();
    Ok((weights, source))
}

fn load_embedder(
    options: &EmbeddingOptions,
    threads: usize,
    size: ImageSize,
) -> Result<EmbeddingStage, PipelineError> {
    options.validate()?;
    drift_embedder::check_batch_memory(options.batch_size, size, threads)?;
    let path = match &options.weights {
        Some(path) => path.clone(),
        None => drift_embedder::weights::find_cached().ok_or(PipelineError::NoWeights)?,
    };
    let (weights, source) = load_weights(&path)?;
    let embedder = Embedder::new(
        &weights,
        EmbedderOptions {
            device: options.device,
            cpu_backend: options.cpu_backend,
            normalize: options.normalize,
            threads,
        },
    )?;
    Ok(EmbeddingStage {
        embedder,
        source,
        batch_size: options.batch_size,
    })
}
