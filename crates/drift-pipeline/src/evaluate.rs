//! `evaluate`: how strong is a drift? A sweep of one transform list over drift levels, measured
//! as SPEC's per-batch KL between drifted and clean embeddings.
//!
//! The first N images of the seeded permutation are cut into batches of B. For each batch, one
//! thread decodes the images and applies the transform list at every level; the calling thread
//! embeds the clean batch once and each drifted version, and computes the KL against the clean
//! embeddings, which are never recomputed. Image i of the order is sample_id i, so its drifted
//! version at a level is exactly what `generate --transform` would write as sample i with the
//! same seed and size.

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

use crate::records::{self, EvaluationRecord};
use drift_writer::{KlRow, PngCompression, ReportWriter, encode_png, kl_table};

use crate::{EmbeddingOptions, EmbeddingStage, PipelineError, Progress, StreamClock};

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
    pub shard: Option<crate::Shard>,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        Self {
            transforms: vec![TransformKind::named("default").expect("registered")],
            levels: default_levels(),
            num_samples: None,
            seed: crate::DEFAULT_SEED,
            size: ImageSize::default(),
            embedding: EmbeddingOptions::default(),
            threads: 0,
            overwrite: false,
            decode_limits: DecodeLimits::default(),
            cancel: None,
            shard: None,
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
) -> Result<Evaluation, PipelineError> {
    let started = Instant::now();
    let levels = checked_levels(options)?;
    let transforms = options
        .transforms
        .iter()
        .map(|kind| kind.name())
        .collect::<Vec<_>>()
        .join("+");
    let dataset = Dataset::scan(input)?;
    let sampler = Sampler::new(dataset.images().len(), options.seed, StreamClock::default());
    let images = options.num_samples.unwrap_or(dataset.images().len() as u64);
    sampler.check(images, &drift_sampler::ClassPlan::AsInDataset)?;
    // Refuse an existing report before the (long) sweep, not after it.
    crate::check_output_location(output, input)?;
    let names: &'static [&'static str] = match options.shard {
        Some(_) => &SHARD_REPORT_FILES,
        None => &REPORT_FILES,
    };
    let mut report = ReportWriter::create(output, names, EVALUATION_JSON, options.overwrite)?;
    if let Some(recovery) = report.recovery() {
        progress.recovered(output, recovery);
    }
    let threads = crate::worker_threads(options.threads);
    let stage = crate::load_embedder(&options.embedding, threads, options.size)?;
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
    let chains = level_chains(&options.transforms, &levels)?;
    let sweep = Sweep {
        dataset: &dataset,
        decoder: Decoder::new(options.size).with_limits(options.decode_limits),
        order: &order,
        batch_size: stage.batch_size,
        batches: part.clone(),
        chains: &chains,
        seed: options.seed,
    };
    let labels = (transforms.as_str(), levels.as_slice(), batches);
    let kls = sweep.run(&stage, labels, options, progress)?;
    if cancelled(options) {
        return Err(PipelineError::Cancelled);
    }
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
    shard: Option<crate::Shard>,
    batches: usize,
) -> Result<std::ops::Range<usize>, PipelineError> {
    let Some(shard) = shard else {
        return Ok(0..batches);
    };
    if (batches as u64) < shard.count {
        return Err(PipelineError::Shard {
            shard: shard.to_string(),
            reason: format!(
                "the sweep has {batches} batches per level, fewer than the {} shards",
                shard.count
            ),
        });
    }
    let (start, end) = shard.range(batches as u64);
    Ok(start as usize..end as usize)
}

/// The transform list at each level.
fn level_chains(
    transforms: &[TransformKind],
    levels: &[f64],
) -> Result<Vec<TransformChain>, PipelineError> {
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
    ) -> Result<Vec<Vec<KlRow>>, PipelineError> {
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
            let (unit_tx, unit_rx) = bounded::<Result<Unit, PipelineError>>(1);
            scope.spawn(move || self.make_units(unit_tx));
            embed_units(unit_rx, stage, labels, options, progress, total_embeddings)
        })
    }

    /// Decodes each batch and sends it clean, then drifted at every level; an unreadable image
    /// is sent as the error it is, and ends the sweep.
    fn make_units(&self, units: Sender<Result<Unit, PipelineError>>) {
        let batches = self.order.chunks(self.batch_size).enumerate();
        for (batch, indices) in batches.skip(self.batches.start).take(self.batches.len()) {
            let first_id = (batch * self.batch_size) as u64;
            let clean: Result<Vec<RgbImage8>, PipelineError> = indices
                .iter()
                .map(|&i| Ok(self.decoder.decode(&self.dataset.images()[i].path)?))
                .collect();
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
    units: Receiver<Result<Unit, PipelineError>>,
    stage: &EmbeddingStage,
    (transforms, levels, batches): (&str, &[f64], usize),
    options: &EvaluateOptions,
    progress: &dyn Progress,
    total_embeddings: u64,
) -> Result<Vec<Vec<KlRow>>, PipelineError> {
    let mut kls: Vec<Vec<KlRow>> = vec![Vec::with_capacity(batches); levels.len()];
    let mut clean_embeddings: Vec<Vec<f32>> = Vec::new();
    let mut done = 0u64;
    for unit in units {
        if cancelled(options) {
            return Err(PipelineError::Cancelled);
        }
        let unit = unit?;
        let refs: Vec<&RgbImage8> = unit.images.iter().collect();
        let embeddings = stage.embedder.embed(&refs)?;
        done += embeddings.len() as u64;
        match unit.level {
            None => clean_embeddings = embeddings,
            Some(level) => {
                let kl = batch_kl(&embeddings, &clean_embeddings).map_err(|error| {
                    PipelineError::Measure {
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
fn checked_levels(options: &EvaluateOptions) -> Result<Vec<f64>, PipelineError> {
    if options.transforms.is_empty() {
        return Err(PipelineError::InvalidSweep(
            "no transform to evaluate".to_owned(),
        ));
    }
    if options.levels.is_empty() {
        return Err(PipelineError::InvalidSweep("no drift level".to_owned()));
    }
    let mut levels = options.levels.clone();
    if let Some(bad) = levels.iter().find(|l| !(0.0..=1.0).contains(*l)) {
        return Err(PipelineError::InvalidSweep(format!(
            "drift level {bad} is outside [0, 1]"
        )));
    }
    levels.sort_by(f64::total_cmp);
    if let Some(pair) = levels.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(PipelineError::InvalidSweep(format!(
            "drift level {} is given twice",
            pair[0]
        )));
    }
    Ok(levels)
}

/// What a report's plots and record say beyond the KL rows: from the embedder that measured
/// them, or from a shard report's record when merging.
struct ReportFacts {
    batch_size: usize,
    /// The line under each plot's title (dataset, weights, normalization).
    context: String,
    /// `evaluation.json`.
    record: String,
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
        let record = records::to_json(&EvaluationRecord {
            batch_size: stage.batch_size,
            batches_per_level: evaluation.batches,
            embeddings: crate::embedding_record(stage),
            image_size: options.size.to_string(),
            images: evaluation.images,
            levels: series.iter().map(|s| s.drift_level).collect(),
            measure: "KL(softmax(drifted) || softmax(clean)) per batch, averaged over the batch",
            parameters_drawn: "per image, from (seed, sample_id = position in the seeded order, \
                               transform index)",
            seed: options.seed,
            tool: records::TOOL,
            transforms: options.transforms.iter().map(|k| k.name()).collect(),
            version: env!("CARGO_PKG_VERSION"),
        });
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
    shard: crate::Shard,
    batches: std::ops::Range<usize>,
) -> Result<(), PipelineError> {
    let table_path = report.path(KL_TABLE).expect("kl.parquet is a report file");
    report.add(KL_TABLE, &kl_table(&evaluation.rows, &table_path)?)?;
    let mut record: serde_json::Value =
        serde_json::from_str(&facts.record).expect("the record is JSON");
    record["shard"] = serde_json::json!({
        "context": facts.context,
        "count": shard.count,
        "cpu": crate::cpu_kind(),
        "end_batch": batches.end,
        "first_batch": batches.start,
        "index": shard.index,
    });
    report.add(EVALUATION_JSON, records::to_json(&record).as_bytes())?;
    Ok(())
}

fn write_report(
    report: &mut ReportWriter,
    evaluation: &Evaluation,
    series: &[LevelSeries],
    facts: &ReportFacts,
) -> Result<(), PipelineError> {
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
        let plot = plot.map_err(|source| PipelineError::Measure { batch: 0, source })?;
        report.add(names[0], &encode_png(&plot.rgb, PngCompression::High)?)?;
        report.add(names[1], plot.svg.as_bytes())?;
    }
    report.add(EVALUATION_JSON, facts.record.as_bytes())?;
    Ok(())
}

/// A shard report, read: its folder, record, shard fields and KL rows.
struct ShardReport {
    folder: PathBuf,
    record: serde_json::Value,
    index: u64,
    count: u64,
    first_batch: u64,
    end_batch: u64,
    rows: Vec<KlRow>,
}

fn read_shard_report(folder: &Path) -> Result<ShardReport, PipelineError> {
    let refuse = |reason: String| PipelineError::Merge(format!("{}: {reason}", folder.display()));
    let text = std::fs::read_to_string(folder.join(EVALUATION_JSON))
        .map_err(|e| refuse(format!("{EVALUATION_JSON}: {e}")))?;
    let record: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| refuse(format!("{EVALUATION_JSON}: {e}")))?;
    let field = |name: &str| record["shard"][name].as_u64();
    let (Some(index), Some(count), Some(first_batch), Some(end_batch)) = (
        field("index"),
        field("count"),
        field("first_batch"),
        field("end_batch"),
    ) else {
        return Err(refuse(
            "not a shard report (evaluate --shard K/N makes one)".into(),
        ));
    };
    let rows = drift_writer::read_kl_table(&folder.join(KL_TABLE))?;
    Ok(ShardReport {
        folder: folder.to_owned(),
        record,
        index,
        count,
        first_batch,
        end_batch,
        rows,
    })
}

/// The record without what differs between the shards of one sweep.
fn report_settings(record: &serde_json::Value) -> serde_json::Value {
    let mut view = record.clone();
    if let Some(shard) = view["shard"].as_object_mut() {
        for key in ["cpu", "end_batch", "first_batch", "index"] {
            shard.remove(key);
        }
    }
    view
}

/// Refuses shard reports that are not exactly shards 0..N of one sweep, in order.
fn check_report_set(parts: &[ShardReport]) -> Result<(), PipelineError> {
    let first = parts
        .first()
        .ok_or_else(|| PipelineError::Merge("no shard given".into()))?;
    let settings = report_settings(&first.record);
    let batches = first.record["batches_per_level"].as_u64().unwrap_or(0);
    let mut next_batch = 0;
    for (expected, part) in (0..).zip(parts) {
        let shard = format!(
            "shard {}/{} ({})",
            part.index,
            part.count,
            part.folder.display()
        );
        if report_settings(&part.record) != settings {
            return Err(PipelineError::Merge(format!(
                "{shard} is not of the same sweep as {}",
                first.folder.display()
            )));
        }
        if part.index != expected {
            let what = match part.index < expected {
                true => format!("{shard} is given twice"),
                false => format!("shard {expected}/{} is missing", part.count),
            };
            return Err(PipelineError::Merge(what));
        }
        if part.first_batch != next_batch {
            return Err(PipelineError::Merge(format!(
                "{shard} does not start at batch {next_batch}"
            )));
        }
        next_batch = part.end_batch;
    }
    if parts.len() as u64 != first.count || next_batch != batches {
        return Err(PipelineError::Merge(format!(
            "shard {}/{} is missing",
            parts.len(),
            first.count
        )));
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
) -> Result<Evaluation, PipelineError> {
    let started = Instant::now();
    let mut parts = shards
        .iter()
        .map(|folder| read_shard_report(folder))
        .collect::<Result<Vec<_>, _>>()?;
    parts.sort_by_key(|part| part.index);
    check_report_set(&parts)?;
    let first = &parts[0];
    let batches = first.record["batches_per_level"].as_u64().unwrap_or(0);
    let levels: Vec<f64> = first.record["levels"]
        .as_array()
        .map(|l| l.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    // Each shard's rows are by level then batch; a level's rows are every shard's in order.
    let kls: Vec<Vec<KlRow>> = levels
        .iter()
        .map(|&level| {
            let rows = parts.iter().flat_map(|part| &part.rows);
            rows.filter(|r| r.drift_level == level).cloned().collect()
        })
        .collect();
    let (series, summaries) = level_statistics(&kls, &levels);
    let mut record = first.record.clone();
    let context = record["shard"]["context"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    record.as_object_mut().map(|map| map.remove("shard"));
    let facts = ReportFacts {
        batch_size: record["batch_size"].as_u64().unwrap_or(0) as usize,
        context,
        record: records::to_json(&record),
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
        images: record["images"].as_u64().unwrap_or(0),
        batches: batches as usize,
        embedding_description: String::new(),
        elapsed: Duration::ZERO,
    };
    let mut report = ReportWriter::create(output, &REPORT_FILES, EVALUATION_JSON, overwrite)?;
    write_report(&mut report, &evaluation, &series, &facts)?;
    report.finish()?;
    Ok(Evaluation {
        elapsed: started.elapsed(),
        ..evaluation
    })
}
