//! drift-evaluate: how strong is a drift? A sweep of one transform list over drift levels, measured
//! as SPEC's per-batch KL between drifted and clean embeddings.
//!
//! The first N images of the seeded permutation are cut into batches of B. For each batch, one
//! thread decodes the images and applies the transform list at every level; the calling thread
//! embeds the clean batch once and each drifted version, and computes the KL against the clean
//! embeddings, which are never recomputed. Image i of the order is sample_id i, so its drifted
//! version at a level is exactly what `generate --transform` would write as sample i with the
//! same seed and size.

mod preview;

pub use preview::{
    PREVIEW_LEVELS, PreviewError, PreviewOptions, PreviewSheet, PreviewSource, preview,
    write_preview,
};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use drift_core::{ImageSize, RgbImage8};
use drift_measure::{LevelSeries, LevelSummary, PlotLabels, batch_kl};
use drift_reader::{Dataset, DecodeLimits, Decoder};
use drift_sampler::Sampler;
use drift_transformer::{TransformChain, TransformKind, TransformSpec};

use drift_pipeline::records::{self, EmbeddingRecord, RecordError};
use drift_pipeline::{
    EmbeddingOptions, EmbeddingStage, PipelineError, Progress, Shard, StreamClock,
};
use drift_reader::ReaderError;
use drift_sampler::SamplerError;
use drift_transformer::TransformError;
use drift_writer::{KlRow, PngCompression, ReportWriter, WriterError, encode_png, kl_table};
use serde::{Deserialize, Serialize};

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// No transform to sweep.
    #[error("invalid sweep: no transform to evaluate")]
    NoTransform,
    /// No drift level to sweep.
    #[error("invalid sweep: no drift level")]
    NoLevel,
    /// A drift level outside [0, 1].
    #[error("invalid sweep: drift level {0} is outside [0, 1]")]
    LevelOutside(f64),
    /// A drift level given twice.
    #[error("invalid sweep: drift level {0} is given twice")]
    LevelTwice(f64),
    /// A sweep with fewer batches per level than shards.
    #[error(
        "shard {shard}: the sweep has {batches} batches per level, fewer than the {} shards",
        shard.count
    )]
    TooFewBatches {
        /// The shard.
        shard: Shard,
        /// Batches per level.
        batches: usize,
    },
    /// Listing or decoding the dataset failed.
    #[error(transparent)]
    Reader(#[from] ReaderError),
    /// More images asked for than the dataset has.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// A transform at a level that was refused.
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// Loading the network, or an output folder inside the dataset.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A report on object storage could not be locked or committed.
    #[error(transparent)]
    RemoteReport(#[from] drift_store::transaction::TransactionError),
    /// Object storage failed.
    #[error(transparent)]
    Store(#[from] drift_store::StoreError),
    /// Embedding a batch failed.
    #[error(transparent)]
    Embedder(#[from] drift_embedder::EmbedderError),
    /// A KL or a plot that could not be computed.
    #[error("batch {batch}: {source}")]
    Measure {
        /// The batch.
        batch: usize,
        /// What failed.
        source: drift_measure::MeasureError,
    },
    /// Writing the report failed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// A target KL that cannot be searched for, or that no level reaches.
    #[error("--target-kl: {0}")]
    TargetKl(String),
    /// The run was interrupted; nothing was written.
    #[error("interrupted: the report folder was left as it was")]
    Cancelled,
}

/// Why shard reports could not be merged into one report.
#[derive(Debug, thiserror::Error)]
pub enum ReportMergeError {
    /// A shard report's `evaluation.json` that could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A report given to merge that is not a shard report.
    #[error("{folder}: not a shard report (a sharded sweep makes one)")]
    NotAShardReport {
        /// The report folder.
        folder: PathBuf,
    },
    /// No shard report given to merge.
    #[error("merge: no shard given")]
    NoShards,
    /// A shard report of another sweep.
    #[error("merge: shard {index}/{count} ({folder}) is not of the same sweep as {first}")]
    OtherSweep {
        /// The shard.
        index: u64,
        /// Shards of its sweep.
        count: u64,
        /// Its folder.
        folder: PathBuf,
        /// The first shard's folder.
        first: PathBuf,
    },
    /// A shard given twice.
    #[error("merge: shard {index}/{count} ({folder}) is given twice")]
    Twice {
        /// The shard.
        index: u64,
        /// Shards of its sweep.
        count: u64,
        /// The second folder that holds it.
        folder: PathBuf,
    },
    /// A shard none of the folders holds.
    #[error("merge: shard {index}/{count} is missing")]
    Missing {
        /// The shard.
        index: u64,
        /// Shards of the sweep.
        count: u64,
    },
    /// A shard whose batches do not start where the shard before ended.
    #[error("merge: shard {index}/{count} ({folder}) does not start at batch {expected}")]
    Gap {
        /// The shard.
        index: u64,
        /// Shards of its sweep.
        count: u64,
        /// Its folder.
        folder: PathBuf,
        /// Where the shard before ended.
        expected: u64,
    },
    /// Writing the merged report (its plots, its files) failed.
    #[error(transparent)]
    Report(#[from] EvaluateError),
    /// Reading a shard's KL table failed.
    #[error(transparent)]
    Writer(#[from] WriterError),
}

// Shard reports and merged reports on object storage fail as a report's writing does.
impl From<drift_store::StoreError> for ReportMergeError {
    fn from(error: drift_store::StoreError) -> Self {
        ReportMergeError::Report(error.into())
    }
}

impl From<drift_store::transaction::TransactionError> for ReportMergeError {
    fn from(error: drift_store::transaction::TransactionError) -> Self {
        ReportMergeError::Report(error.into())
    }
}

/// `evaluation.json`: how an `evaluate` report was made. Fields in alphabetical order, as
/// every record (see [`drift_pipeline::records`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationRecord {
    /// Images per KL.
    pub batch_size: usize,
    /// Batches at every level.
    pub batches_per_level: usize,
    /// The network and weights.
    pub embeddings: EmbeddingRecord,
    /// `WxH`.
    pub image_size: String,
    /// Images evaluated (each at every level).
    pub images: u64,
    /// The levels, ascending.
    pub levels: Vec<f64>,
    /// What a KL is, in words.
    pub measure: String,
    /// How drift parameters are drawn, in words.
    pub parameters_drawn: String,
    /// The permutation's and the draws' seed.
    pub seed: u64,
    /// Which part of a sharded sweep this report is; absent for a whole sweep's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ReportShardRecord>,
    /// With `--target-kl`: the level found and the search's bracket; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_kl: Option<TargetKlRecord>,
    /// Always `drift-pipeline`.
    pub tool: String,
    /// The transform list, in order.
    pub transforms: Vec<String>,
    /// The version that wrote it.
    pub version: String,
}

/// `evaluation.json`'s `target_kl`: the level whose median KL reaches the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetKlRecord {
    /// The level found: its median KL reaches the target (measured in this report).
    pub level: f64,
    /// The median KL at `level`.
    pub median: f64,
    /// The highest measured level below `level` (0: the identity, KL 0), whose median KL is
    /// below the target.
    pub below: f64,
    /// The median KL at `below` (0 at level 0).
    pub below_median: f64,
    /// How the level was found, in words.
    pub search: String,
    /// The median KL asked for.
    pub target: f64,
    /// The search stops once `level - below` is at most this.
    pub tolerance: f64,
}

/// What `--target-kl` asks: the level of the transform list whose median KL reaches `target`,
/// to within `tolerance` in level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetKl {
    /// The median KL (> 0).
    pub target: f64,
    /// The level tolerance (> 0).
    pub tolerance: f64,
}

/// `evaluation.json`'s `shard`: which batches of which sweep a shard report holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportShardRecord {
    /// The line under each plot's title, as the whole report will have it.
    pub context: String,
    /// Shards of the sweep.
    pub count: u64,
    /// The CPU kind that embedded.
    pub cpu: String,
    /// The batch after this shard's last (of every level).
    pub end_batch: u64,
    /// This shard's first batch (of every level).
    pub first_batch: u64,
    /// This shard, from 0.
    pub index: u64,
}

/// `kl.parquet`: one row per drift level and batch.
pub const KL_TABLE: &str = "kl.parquet";
/// `summary.csv`: one row per drift level.
pub const SUMMARY_CSV: &str = "summary.csv";
/// The line plot (batch KL over batch index).
pub const LINE_PLOT: [&str; 2] = ["kl_by_batch.png", "kl_by_batch.svg"];
/// The box plot (one box per drift level).
pub const BOX_PLOT: [&str; 2] = ["kl_by_level.png", "kl_by_level.svg"];
/// `evaluation.json`: what was measured, how, and with which weights.
pub const EVALUATION_JSON: &str = "evaluation.json";

/// What one shard of a sweep writes: its batches' KL rows and the record with its `shard`.
const SHARD_REPORT_FILES: [&str; 2] = [KL_TABLE, EVALUATION_JSON];

const REPORT_FILES: [&str; 7] = [
    KL_TABLE,
    SUMMARY_CSV,
    LINE_PLOT[0],
    LINE_PLOT[1],
    BOX_PLOT[0],
    BOX_PLOT[1],
    EVALUATION_JSON,
];

/// SPEC's sweep: 0.1, 0.2, ..., 1.0.
pub fn default_levels() -> Vec<f64> {
    (1..=10).map(|i| f64::from(i) / 10.0).collect()
}

/// What to sweep and how.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// The transform list, applied in order, every transform at the sweep's level.
    pub transforms: Vec<TransformKind>,
    /// Drift levels, each in [0, 1]; measured in ascending order.
    pub levels: Vec<f64>,
    /// Evaluate the first N images of the seeded permutation (default: all).
    pub num_samples: Option<u64>,
    /// Seed of the permutation and of every transform draw.
    pub seed: u64,
    /// Image size the network sees (as `generate --size`).
    pub size: ImageSize,
    /// Weights, device and normalization; `batch_size` is SPEC's B, the images per KL.
    pub embedding: EmbeddingOptions,
    /// Threads for the embedder's kernels; 0 means one per core.
    pub threads: usize,
    /// Replace an earlier report in the output folder.
    pub overwrite: bool,
    /// Decompression-bomb guards.
    pub decode_limits: DecodeLimits,
    /// Set to true (from a Ctrl-C handler, say) to stop cleanly; nothing is written.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Measure only this shard's batches (of every level): `merge` joins the shard reports.
    pub shard: Option<Shard>,
    /// Find the level whose median KL reaches a target: the levels are measured, then the
    /// bracket below the first level that reaches it is bisected.
    pub target_kl: Option<TargetKl>,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        Self {
            transforms: vec![TransformKind::named("default").expect("registered")],
            levels: default_levels(),
            num_samples: None,
            seed: drift_pipeline::DEFAULT_SEED,
            size: ImageSize::default(),
            embedding: EmbeddingOptions::default(),
            threads: 0,
            overwrite: false,
            decode_limits: DecodeLimits::default(),
            cancel: None,
            shard: None,
            target_kl: None,
        }
    }
}

/// What a sweep measured.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The report folder.
    pub output: PathBuf,
    /// The transform list as text (`default`, `rotate+hue`).
    pub transforms: String,
    /// Every batch at every level, by level then batch.
    pub rows: Vec<KlRow>,
    /// Per-level statistics, in level order.
    pub summaries: Vec<LevelSummary>,
    /// Images evaluated (each at every level).
    pub images: u64,
    /// Batches per level.
    pub batches: usize,
    /// Device, normalization and weights, in words.
    pub embedding_description: String,
    /// Wall time of the sweep, loading the weights included.
    pub elapsed: Duration,
    /// With a target KL: the level found.
    pub target_kl: Option<TargetKlRecord>,
}

impl Evaluation {
    /// Images evaluated per second, counting each image once per level (as the Python tool did).
    pub fn images_per_second(&self) -> f64 {
        (self.images as f64 * self.summaries.len() as f64) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One unit of work for the embedder: a batch, clean (`level` None) or at level `level`.
struct Unit {
    batch: usize,
    level: Option<usize>,
    images: Vec<RgbImage8>,
}

/// Runs the sweep over the dataset at `input` and writes the report to `output`. `progress` is
/// told about embeddings done out of the total (images x (levels + 1)).
pub fn evaluate(
    input: &Path,
    output: &Path,
    options: &EvaluateOptions,
    progress: &dyn Progress,
) -> Result<Evaluation, EvaluateError> {
    drift_pipeline::check_output_location(output, input)?;
    let names: &'static [&'static str] = match options.shard {
        Some(_) => &SHARD_REPORT_FILES,
        None => &REPORT_FILES,
    };
    let written = drift_store::transaction::write_folder(
        output,
        names,
        EVALUATION_JSON,
        options.overwrite,
        |folder| evaluate_into(input, folder, options, progress),
    );
    written.map(|evaluation| Evaluation {
        output: output.to_owned(),
        ..evaluation
    })
}

/// [`evaluate`] into the local folder `output`.
fn evaluate_into(
    input: &Path,
    output: &Path,
    options: &EvaluateOptions,
    progress: &dyn Progress,
) -> Result<Evaluation, EvaluateError> {
    let started = Instant::now();
    let levels = checked_levels(options)?;
    let transforms = options
        .transforms
        .iter()
        .map(|kind| kind.name())
        .collect::<Vec<_>>()
        .join("+");
    let (dataset, remote_images) = drift_pipeline::open_dataset(input)?;
    let sampler = Sampler::new(dataset.images().len(), options.seed, StreamClock::default());
    let images = options.num_samples.unwrap_or(dataset.images().len() as u64);
    sampler.check(images, &drift_sampler::ClassPlan::AsInDataset)?;
    // Refuse an existing report before the (long) sweep, not after it.
    drift_pipeline::check_output_location(output, input)?;
    let names: &'static [&'static str] = match options.shard {
        Some(_) => &SHARD_REPORT_FILES,
        None => &REPORT_FILES,
    };
    let mut report = ReportWriter::create(output, names, EVALUATION_JSON, options.overwrite)?;
    if let Some(recovery) = report.recovery() {
        progress.recovered(output, recovery);
    }
    let threads = drift_pipeline::worker_threads(options.threads);
    let stage = EmbeddingStage::load(&options.embedding, threads, options.size)?;
    let embedding_description = format!(
        "{}, normalize {}, weights {}",
        stage.embedder.device_description(),
        stage.embedder.normalize().name(),
        stage.source.describe()
    );
    progress.embedding(&embedding_description);
    let order: Vec<usize> = sampler.pending().take(images as usize).collect();
    let batches = order.len().div_ceil(stage.batch_size);
    let part = shard_batches(options.shard, batches)?;
    let measure = |levels: &[f64]| -> Result<Vec<Vec<KlRow>>, EvaluateError> {
        let chains = level_chains(&options.transforms, levels)?;
        let sweep = Sweep {
            dataset: &dataset,
            remote_images: remote_images.as_ref(),
            decoder: Decoder::new(options.size).with_limits(options.decode_limits),
            order: &order,
            batch_size: stage.batch_size,
            batches: part.clone(),
            chains: &chains,
            seed: options.seed,
        };
        let labels = (transforms.as_str(), levels, batches);
        let kls = sweep.run(&stage, labels, options, progress)?;
        if cancelled(options) {
            return Err(EvaluateError::Cancelled);
        }
        Ok(kls)
    };
    let mut levels = levels;
    let mut kls = measure(&levels)?;
    let target_kl = match options.target_kl {
        Some(target) => Some(search_level(target, &mut levels, &mut kls, &measure)?),
        None => None,
    };
    let (series, summaries) = level_statistics(&kls, &levels);
    let evaluation = Evaluation {
        output: output.to_owned(),
        transforms,
        rows: kls.into_iter().flatten().collect(),
        summaries,
        images,
        batches,
        embedding_description,
        elapsed: Duration::ZERO,
        target_kl,
    };
    let facts = ReportFacts::of(&stage, options, input, &evaluation, &series);
    match options.shard {
        Some(shard) => write_shard_report(&mut report, &evaluation, &facts, shard, part)?,
        None => write_report(&mut report, &evaluation, &series, &facts)?,
    }
    report.finish()?;
    Ok(Evaluation {
        elapsed: started.elapsed(),
        ..evaluation
    })
}

/// The batches (of every level) shard `shard` of a sweep of `batches` measures.
fn shard_batches(
    shard: Option<Shard>,
    batches: usize,
) -> Result<std::ops::Range<usize>, EvaluateError> {
    let Some(shard) = shard else {
        return Ok(0..batches);
    };
    if (batches as u64) < shard.count {
        return Err(EvaluateError::TooFewBatches { shard, batches });
    }
    let (start, end) = shard.range(batches as u64);
    Ok(start as usize..end as usize)
}

/// The transform list at each level.
fn level_chains(
    transforms: &[TransformKind],
    levels: &[f64],
) -> Result<Vec<TransformChain>, EvaluateError> {
    levels
        .iter()
        .map(|&level| {
            let specs = transforms
                .iter()
                .map(|&kind| TransformSpec::new(kind, level))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TransformChain::new(specs))
        })
        .collect()
}

/// Each level's KLs as a series, and the statistics of each.
fn level_statistics(kls: &[Vec<KlRow>], levels: &[f64]) -> (Vec<LevelSeries>, Vec<LevelSummary>) {
    let series: Vec<LevelSeries> = kls
        .iter()
        .zip(levels)
        .map(|(rows, &drift_level)| LevelSeries {
            drift_level,
            kls: rows.iter().map(|row| row.kl).collect(),
        })
        .collect();
    let summaries = series
        .iter()
        .filter_map(|s| LevelSummary::new(s.drift_level, &s.kls))
        .collect();
    (series, summaries)
}

/// What the unit-making thread needs: the images in order and the chains at every level.
struct Sweep<'a> {
    dataset: &'a Dataset,
    /// Set when the dataset is on object storage: a batch's images are fetched together.
    remote_images: Option<&'a drift_pipeline::RemoteImages>,
    decoder: Decoder,
    order: &'a [usize],
    batch_size: usize,
    /// The batches this run measures (all, or a shard's).
    batches: std::ops::Range<usize>,
    chains: &'a [TransformChain],
    seed: u64,
}

impl Sweep<'_> {
    /// Makes the units on a thread of its own and embeds them on this one: the KL rows per
    /// level. `labels` is (transforms as text, levels, batches per level).
    fn run(
        &self,
        stage: &EmbeddingStage,
        labels: (&str, &[f64], usize),
        options: &EvaluateOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<Vec<KlRow>>, EvaluateError> {
        let images: u64 = self
            .order
            .chunks(self.batch_size)
            .skip(self.batches.start)
            .take(self.batches.len())
            .map(|chunk| chunk.len() as u64)
            .sum();
        let total_embeddings = images * (self.chains.len() as u64 + 1);
        thread::scope(|scope| {
            // Two units in flight: the next one is being prepared while this one is embedded.
            let (unit_tx, unit_rx) = bounded::<Result<Unit, EvaluateError>>(1);
            scope.spawn(move || self.make_units(unit_tx));
            embed_units(unit_rx, stage, labels, options, progress, total_embeddings)
        })
    }

    /// Decodes each batch and sends it clean, then drifted at every level; an unreadable image
    /// is sent as the error it is, and ends the sweep.
    fn make_units(&self, units: Sender<Result<Unit, EvaluateError>>) {
        let batches = self.order.chunks(self.batch_size).enumerate();
        for (batch, indices) in batches.skip(self.batches.start).take(self.batches.len()) {
            let first_id = (batch * self.batch_size) as u64;
            let clean: Result<Vec<RgbImage8>, EvaluateError> = match self.remote_images {
                None => indices
                    .iter()
                    .map(|&i| Ok(self.decoder.decode(&self.dataset.images()[i].path)?))
                    .collect(),
                Some(remote) => indices
                    .iter()
                    .zip(remote.read_many(indices))
                    .map(|(&i, bytes)| {
                        let path = &self.dataset.images()[i].path;
                        let bytes = bytes.map_err(drift_pipeline::PipelineError::from)?;
                        Ok(self.decoder.decode_bytes(&bytes, path)?)
                    })
                    .collect(),
            };
            let clean = match clean {
                Ok(clean) => clean,
                Err(error) => {
                    let _ = units.send(Err(error));
                    return;
                }
            };
            // The clean batch goes first: the KLs need its embeddings.
            let clean_unit = Unit {
                batch,
                level: None,
                images: clean.clone(),
            };
            if units.send(Ok(clean_unit)).is_err() {
                return;
            }
            for (level, chain) in self.chains.iter().enumerate() {
                let images = clean
                    .iter()
                    .enumerate()
                    .map(|(k, image)| chain.apply(image.clone(), self.seed, first_id + k as u64).0)
                    .collect();
                let unit = Unit {
                    batch,
                    level: Some(level),
                    images,
                };
                if units.send(Ok(unit)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Embeds each unit as it comes and measures each drifted batch against its clean one: the
/// KL rows per level. `labels` is (transforms as text, levels, batches per level).
fn embed_units(
    units: Receiver<Result<Unit, EvaluateError>>,
    stage: &EmbeddingStage,
    (transforms, levels, batches): (&str, &[f64], usize),
    options: &EvaluateOptions,
    progress: &dyn Progress,
    total_embeddings: u64,
) -> Result<Vec<Vec<KlRow>>, EvaluateError> {
    let mut kls: Vec<Vec<KlRow>> = vec![Vec::with_capacity(batches); levels.len()];
    let mut clean_embeddings: Vec<Vec<f32>> = Vec::new();
    let mut done = 0u64;
    for unit in units {
        if cancelled(options) {
            return Err(EvaluateError::Cancelled);
        }
        let unit = unit?;
        let refs: Vec<&RgbImage8> = unit.images.iter().collect();
        let embeddings = stage.embedder.embed(&refs)?;
        done += embeddings.len() as u64;
        match unit.level {
            None => clean_embeddings = embeddings,
            Some(level) => {
                let kl = batch_kl(&embeddings, &clean_embeddings).map_err(|error| {
                    EvaluateError::Measure {
                        batch: unit.batch,
                        source: error,
                    }
                })?;
                kls[level].push(KlRow {
                    transforms: transforms.to_owned(),
                    drift_level: levels[level],
                    batch: unit.batch as i64,
                    images: embeddings.len() as i64,
                    kl,
                });
            }
        }
        progress.samples_written(done, total_embeddings);
    }
    Ok(kls)
}

fn cancelled(options: &EvaluateOptions) -> bool {
    options
        .cancel
        .as_ref()
        .is_some_and(|flag| flag.load(Ordering::Relaxed))
}

/// The levels, validated and in ascending order.
fn checked_levels(options: &EvaluateOptions) -> Result<Vec<f64>, EvaluateError> {
    if options.transforms.is_empty() {
        return Err(EvaluateError::NoTransform);
    }
    if options.levels.is_empty() {
        return Err(EvaluateError::NoLevel);
    }
    let mut levels = options.levels.clone();
    if let Some(&bad) = levels.iter().find(|l| !(0.0..=1.0).contains(*l)) {
        return Err(EvaluateError::LevelOutside(bad));
    }
    levels.sort_by(f64::total_cmp);
    if let Some(pair) = levels.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(EvaluateError::LevelTwice(pair[0]));
    }
    if let Some(target) = options.target_kl {
        if !(target.target.is_finite() && target.target > 0.0) {
            return Err(EvaluateError::TargetKl(format!(
                "the target {} is not a positive KL (level 0, the identity, has KL 0)",
                target.target
            )));
        }
        if !(target.tolerance > 0.0 && target.tolerance < 1.0) {
            return Err(EvaluateError::TargetKl(format!(
                "the tolerance {} is not a level step in (0, 1)",
                target.tolerance
            )));
        }
        if options.shard.is_some() {
            return Err(EvaluateError::TargetKl(
                "a search needs every batch's KL at each step: it cannot run as a shard".into(),
            ));
        }
    }
    Ok(levels)
}

/// How a target KL's level is found, in words (`evaluation.json`).
const TARGET_SEARCH: &str = "the levels measured, then the bracket between the first level whose \
median KL reaches the target and the level below it (0, the identity, with KL 0, below the \
first) halved until it is no wider than the tolerance, each midpoint (rounded to 1e-4) measured \
on the same images and draws; the level is the bracket's upper end, its median measured here. \
A KL that does not rise with the level has several crossings: this is one of them";

/// Measures the KL rows of the sweep's batches at each of some levels.
type Measure<'a> = dyn Fn(&[f64]) -> Result<Vec<Vec<KlRow>>, EvaluateError> + 'a;

/// Finds the level whose median KL reaches `target`: from the measured `levels` (ascending,
/// with their `kls`), bisecting with `measure`; every level measured joins `levels` and `kls`.
fn search_level(
    target: TargetKl,
    levels: &mut Vec<f64>,
    kls: &mut Vec<Vec<KlRow>>,
    measure: &Measure<'_>,
) -> Result<TargetKlRecord, EvaluateError> {
    let median = |rows: &[KlRow], level: f64| {
        let values: Vec<f64> = rows.iter().map(|r| r.kl).collect();
        LevelSummary::new(level, &values).map_or(f64::NAN, |s| s.median)
    };
    let medians: Vec<f64> = levels
        .iter()
        .zip(kls.iter())
        .map(|(&level, rows)| median(rows, level))
        .collect();
    let Some(first) = medians.iter().position(|&m| m >= target.target) else {
        let (level, reached) = (levels[levels.len() - 1], medians[medians.len() - 1]);
        return Err(EvaluateError::TargetKl(format!(
            "no measured level reaches a median KL of {}: at level {level} it is {reached} \
             (a stronger transform list, or more levels up to 1, may)",
            target.target
        )));
    };
    let (mut high, mut high_median) = (levels[first], medians[first]);
    let (mut low, mut low_median) = match first {
        0 => (0.0, 0.0),
        _ => (levels[first - 1], medians[first - 1]),
    };
    while high - low > target.tolerance {
        let middle = ((low + high) / 2.0 * 1e4).round() / 1e4;
        if middle <= low || middle >= high {
            break;
        }
        let rows = measure(&[middle])?.pop().expect("one level measured");
        let middle_median = median(&rows, middle);
        let at = levels.partition_point(|&l| l < middle);
        levels.insert(at, middle);
        kls.insert(at, rows);
        if middle_median >= target.target {
            (high, high_median) = (middle, middle_median);
        } else {
            (low, low_median) = (middle, middle_median);
        }
    }
    Ok(TargetKlRecord {
        level: high,
        median: high_median,
        below: low,
        below_median: low_median,
        search: TARGET_SEARCH.to_owned(),
        target: target.target,
        tolerance: target.tolerance,
    })
}

/// What a report's plots and record say beyond the KL rows: from the embedder that measured
/// them, or from a shard report's record when merging.
struct ReportFacts {
    batch_size: usize,
    /// The line under each plot's title (dataset, weights, normalization).
    context: String,
    /// `evaluation.json`, without a shard record.
    record: EvaluationRecord,
}

impl ReportFacts {
    fn of(
        stage: &EmbeddingStage,
        options: &EvaluateOptions,
        input: &Path,
        evaluation: &Evaluation,
        series: &[LevelSeries],
    ) -> Self {
        let dataset = std::path::absolute(input)
            .ok()
            .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| input.display().to_string());
        let weights = match &stage.source.provenance {
            drift_embedder::Provenance::Reference(_) => "reference weights".to_owned(),
            _ => format!(
                "weights {} (not the reference)",
                stage.source.path.file_name().map_or_else(
                    || stage.source.path.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                )
            ),
        };
        let context = format!(
            "dataset {dataset}, {weights}, normalize {}",
            stage.embedder.normalize().name()
        );
        let record = EvaluationRecord {
            batch_size: stage.batch_size,
            batches_per_level: evaluation.batches,
            embeddings: stage.record(),
            image_size: options.size.to_string(),
            images: evaluation.images,
            levels: series.iter().map(|s| s.drift_level).collect(),
            measure: "KL(softmax(drifted) || softmax(clean)) per batch, averaged over the batch"
                .to_owned(),
            parameters_drawn: "per image, from (seed, sample_id = position in the seeded order, \
                               transform index)"
                .to_owned(),
            seed: options.seed,
            shard: None,
            target_kl: evaluation.target_kl.clone(),
            tool: records::TOOL.to_owned(),
            transforms: options
                .transforms
                .iter()
                .map(|k| k.name().to_owned())
                .collect(),
            version: records::VERSION.to_owned(),
        };
        Self {
            batch_size: stage.batch_size,
            context,
            record,
        }
    }
}

/// A shard's report: its KL rows, and the whole sweep's record with a `shard` record (which
/// batches, the plots' context line, the CPU kind).
fn write_shard_report(
    report: &mut ReportWriter,
    evaluation: &Evaluation,
    facts: &ReportFacts,
    shard: Shard,
    batches: std::ops::Range<usize>,
) -> Result<(), EvaluateError> {
    let table_path = report.path(KL_TABLE).expect("kl.parquet is a report file");
    report.add(KL_TABLE, &kl_table(&evaluation.rows, &table_path)?)?;
    let record = EvaluationRecord {
        shard: Some(ReportShardRecord {
            context: facts.context.clone(),
            count: shard.count,
            cpu: drift_pipeline::cpu_kind(),
            end_batch: batches.end as u64,
            first_batch: batches.start as u64,
            index: shard.index,
        }),
        ..facts.record.clone()
    };
    report.add(EVALUATION_JSON, records::to_json(&record).as_bytes())?;
    Ok(())
}

fn write_report(
    report: &mut ReportWriter,
    evaluation: &Evaluation,
    series: &[LevelSeries],
    facts: &ReportFacts,
) -> Result<(), EvaluateError> {
    let table_path = report.path(KL_TABLE).expect("kl.parquet is a report file");
    report.add(KL_TABLE, &kl_table(&evaluation.rows, &table_path)?)?;
    report.add(
        SUMMARY_CSV,
        drift_measure::summary_csv(&evaluation.summaries).as_bytes(),
    )?;
    let labels = PlotLabels {
        transforms: &evaluation.transforms,
        batch_size: facts.batch_size,
        images: evaluation.images,
        context: &facts.context,
    };
    for (names, plot) in [
        (LINE_PLOT, drift_measure::line_plot(labels, series)),
        (BOX_PLOT, drift_measure::box_plot(labels, series)),
    ] {
        let plot = plot.map_err(|source| EvaluateError::Measure { batch: 0, source })?;
        report.add(names[0], &encode_png(&plot.rgb, PngCompression::High)?)?;
        report.add(names[1], plot.svg.as_bytes())?;
    }
    report.add(EVALUATION_JSON, records::to_json(&facts.record).as_bytes())?;
    Ok(())
}

/// A shard report, read: its folder, record, shard record and KL rows.
struct ShardReport {
    folder: PathBuf,
    record: EvaluationRecord,
    shard: ReportShardRecord,
    rows: Vec<KlRow>,
}

/// Reads the shard report `folder` from `local` (the folder, or a local copy of it).
fn read_shard_report(folder: &Path, local: &Path) -> Result<ShardReport, ReportMergeError> {
    let record: EvaluationRecord = records::read(&local.join(EVALUATION_JSON))?;
    let Some(shard) = record.shard.clone() else {
        return Err(ReportMergeError::NotAShardReport {
            folder: folder.to_owned(),
        });
    };
    let rows = drift_writer::read_kl_table(&local.join(KL_TABLE))?;
    Ok(ShardReport {
        folder: folder.to_owned(),
        record,
        shard,
        rows,
    })
}

impl ShardReport {
    /// The record without what differs between the shards of one sweep.
    fn settings(&self) -> EvaluationRecord {
        let mut settings = self.record.clone();
        if let Some(shard) = &mut settings.shard {
            shard.cpu.clear();
            (shard.end_batch, shard.first_batch, shard.index) = (0, 0, 0);
        }
        settings
    }
}

/// Refuses shard reports that are not exactly shards 0..N of one sweep, in order.
fn check_report_set(parts: &[ShardReport]) -> Result<(), ReportMergeError> {
    let first = parts.first().ok_or(ReportMergeError::NoShards)?;
    let settings = first.settings();
    let mut next_batch = 0;
    for (expected, part) in (0..).zip(parts) {
        let (index, count) = (part.shard.index, part.shard.count);
        if part.settings() != settings {
            return Err(ReportMergeError::OtherSweep {
                index,
                count,
                folder: part.folder.clone(),
                first: first.folder.clone(),
            });
        }
        if index != expected {
            return Err(match index < expected {
                true => ReportMergeError::Twice {
                    index,
                    count,
                    folder: part.folder.clone(),
                },
                false => ReportMergeError::Missing {
                    index: expected,
                    count,
                },
            });
        }
        if part.shard.first_batch != next_batch {
            return Err(ReportMergeError::Gap {
                index,
                count,
                folder: part.folder.clone(),
                expected: next_batch,
            });
        }
        next_batch = part.shard.end_batch;
    }
    let count = first.shard.count;
    if parts.len() as u64 != count || next_batch != first.record.batches_per_level as u64 {
        return Err(ReportMergeError::Missing {
            index: parts.len() as u64,
            count,
        });
    }
    Ok(())
}

/// Joins the shard reports of one sweep (`evaluate --shard K/N`) into the report one process
/// writes, byte for byte: every batch's KL as its shard measured it, the statistics, plots and
/// record made from all of them. Refuses missing, duplicated and foreign shards.
pub fn merge_reports(
    shards: &[PathBuf],
    output: &Path,
    overwrite: bool,
) -> Result<Evaluation, ReportMergeError> {
    let started = Instant::now();
    // Shard reports on object storage are read from local copies; an output there is written
    // by the remote transaction.
    let copies = shards
        .iter()
        .map(|shard| {
            drift_store::fetch_report_if_remote(shard, EVALUATION_JSON, &SHARD_REPORT_FILES)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut parts = shards
        .iter()
        .zip(&copies)
        .map(|(folder, copy)| read_shard_report(folder, copy.as_ref().map_or(folder, |c| c.path())))
        .collect::<Result<Vec<_>, _>>()?;
    let written = drift_store::transaction::write_folder(
        output,
        &REPORT_FILES,
        EVALUATION_JSON,
        overwrite,
        |folder| merge_shard_reports(&mut parts, folder, overwrite),
    );
    written.map(|evaluation| Evaluation {
        output: output.to_owned(),
        elapsed: started.elapsed(),
        ..evaluation
    })
}

/// Joins the shard reports `parts` into the local folder `output`.
fn merge_shard_reports(
    parts: &mut [ShardReport],
    output: &Path,
    overwrite: bool,
) -> Result<Evaluation, ReportMergeError> {
    parts.sort_by_key(|part| part.shard.index);
    check_report_set(parts)?;
    let first = &parts[0];
    let levels = &first.record.levels;
    // Each shard's rows are by level then batch; a level's rows are every shard's in order.
    let kls: Vec<Vec<KlRow>> = levels
        .iter()
        .map(|&level| {
            let rows = parts.iter().flat_map(|part| &part.rows);
            rows.filter(|r| r.drift_level == level).cloned().collect()
        })
        .collect();
    let (series, summaries) = level_statistics(&kls, levels);
    let facts = ReportFacts {
        batch_size: first.record.batch_size,
        context: first.shard.context.clone(),
        record: EvaluationRecord {
            shard: None,
            ..first.record.clone()
        },
    };
    let evaluation = Evaluation {
        output: output.to_owned(),
        transforms: first
            .rows
            .first()
            .map(|r| r.transforms.clone())
            .unwrap_or_default(),
        rows: kls.into_iter().flatten().collect(),
        summaries,
        images: first.record.images,
        batches: first.record.batches_per_level,
        embedding_description: String::new(),
        elapsed: Duration::ZERO,
        target_kl: None,
    };
    let mut report = ReportWriter::create(output, &REPORT_FILES, EVALUATION_JSON, overwrite)?;
    write_report(&mut report, &evaluation, &series, &facts)?;
    report.finish()?;
    Ok(evaluation)
}
