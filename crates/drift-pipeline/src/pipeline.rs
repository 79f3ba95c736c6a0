//! One `sample` call as a pipeline of threads linked by bounded channels:
//!
//! ```text
//! feeder -> decoders (N) -> sequencer -> transformers (N) -> encoders (N) -> writer
//!   ^                          |                    |                         ^   |
//!   |                          |                    +--> embedder (batches) --+   |
//!   +------ credits <----------+---- (skipped) ------------- (written) <----------+
//! ```
//!
//! With embeddings on, transformers also hand each image to the embedder, which runs batches
//! of consecutive sample ids (so batches never depend on scheduling) on its own thread pool.
//!
//! The feeder sends candidate images in permutation order, one credit each; a credit comes back
//! when its candidate is skipped or written, so at most `window` candidates are in flight and
//! every reorder buffer stays bounded. The sequencer restores permutation order, drops unreadable
//! images (or stops on them) and hands out sample ids, so ids never depend on scheduling; the
//! writer restores sample_id order. Errors travel as data to the writer, which owns the outcome.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select};
use drift_core::{DriftLogRow, RgbImage8, Sample, SampleMeta};
use drift_reader::{Dataset, Decoder, ReaderError};
use drift_sampler::{ClassPlan, Sampler};
use drift_transformer::{Drift, SegmentPosition};
use drift_writer::{
    FileRecord, OutputFolder, OutputWriter, StagedOutput, WriterOptions, encode_png,
};

use crate::records::{self, ClassPriorsRecord, DriftRecord, SkippedRecord, Span, TransformRecord};
use crate::shard::ShardRecord;
use crate::stream::{CallRecord, StreamRecord};
use crate::{
    ClassMapping, EmbeddingStage, GeneratorOptions, PipelineError, Progress, SampleSummary,
    SkippedImage, StageTimes,
};

/// Which of a call's samples a run makes: all of them, or a shard's.
pub(crate) struct Part<'a> {
    /// The sampler at the part's first sample.
    pub sampler: &'a Sampler,
    /// Samples the part makes.
    pub samples: u64,
    /// Samples of the whole call (the segment drift shapes run over).
    pub segment_samples: u64,
    /// The shard's record, for `drift.json` (its `candidates` and hash are filled in there).
    pub shard: Option<&'a ShardRecord>,
}

impl<'a> Part<'a> {
    pub fn whole(sampler: &'a Sampler, samples: u64) -> Self {
        Self {
            sampler,
            samples,
            segment_samples: samples,
            shard: None,
        }
    }
}

/// Everything one `sample` call needs, borrowed from the generator.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a> {
    pub dataset: &'a Dataset,
    /// Set when the dataset is on object storage: images are fetched, many at once.
    pub remote_images: Option<&'a drift_store::RemoteImages>,
    /// The sampler at the first sample this run makes (a shard's, or the call's).
    pub sampler: &'a Sampler,
    /// The call's first sample id and samples: the segment its drift shape runs over.
    pub segment_first: u64,
    pub segment_samples: u64,
    /// Set when this run is one shard of the call.
    pub shard: Option<&'a ShardRecord>,
    /// From a verified manifest: per image, whether it decodes (checked as images come).
    pub known_decodes: Option<&'a [bool]>,
    /// The stream's calls before this one.
    pub history: &'a [crate::stream::CallRecord],
    /// What file names derive from.
    pub stream_key: u64,
    /// Which classes the call's candidates come from.
    pub class_plan: &'a ClassPlan,
    pub decoder: &'a Decoder,
    pub drift: &'a Drift,
    /// The `segment` column of `drift_log.parquet`.
    pub segment: &'a str,
    pub embedding: Option<&'a EmbeddingStage>,
    pub class_mapping: &'a ClassMapping,
    pub options: &'a GeneratorOptions,
    pub threads: usize,
    pub requested: u64,
}

/// A finished call: the summary, the staged output (not yet in place), and how far the
/// permutation cursor moved.
pub(crate) struct Outcome {
    pub summary: SampleSummary,
    pub staged: StagedOutput,
    pub positions_used: usize,
}

/// Requests in flight when a dataset is read from object storage: one takes tens of
/// milliseconds, so the reads overlap far more than the decoders do.
pub(crate) const REMOTE_READS_IN_FLIGHT: usize = 32;

struct Candidate {
    position: usize,
    dataset_index: usize,
    /// The image's bytes when fetched from object storage (else it is read from its path).
    fetched: Option<Result<drift_store::Bytes, drift_store::StoreError>>,
}

struct Decoded {
    position: usize,
    dataset_index: usize,
    image: Result<RgbImage8, ReaderError>,
}

struct Encoded {
    meta: SampleMeta,
    png: Vec<u8>,
    log: DriftLogRow,
}

/// What reaches the writer: PNGs one by one, embeddings a batch at a time, and the sequencer's
/// report once it has handed out its last sample id (or stopped).
enum ToWriter {
    Encoded(Result<Encoded, PipelineError>),
    Embedded(Result<Vec<(u64, Vec<f32>)>, PipelineError>),
    Sequenced(SequencerReport),
}

/// Nanoseconds of work per stage, added to by every thread of the stage.
#[derive(Default)]
struct StageClock {
    decode: AtomicU64,
    transform: AtomicU64,
    encode: AtomicU64,
    embed: AtomicU64,
    write: AtomicU64,
}

impl StageClock {
    /// Runs `work`, adding its duration to `stage`.
    fn time<T>(stage: &AtomicU64, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = work();
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        stage.fetch_add(nanos, Ordering::Relaxed);
        result
    }

    fn times(&self) -> StageTimes {
        let read = |stage: &AtomicU64| Duration::from_nanos(stage.load(Ordering::Relaxed));
        StageTimes {
            decode: read(&self.decode),
            transform: read(&self.transform),
            encode: read(&self.encode),
            embed: read(&self.embed),
            write: read(&self.write),
        }
    }
}

/// What the sequencer did, sent to the writer as its last message.
#[derive(Default)]
struct SequencerReport {
    produced: u64,
    positions_used: usize,
    skipped: Vec<SkippedImage>,
    /// An unreadable image without `skip_bad_images`: the call fails with it.
    fatal: Option<PipelineError>,
}

/// How many threads each parallel stage gets and how much may be in flight.
#[derive(Clone, Copy)]
struct Sizing {
    threads: usize,
    /// Capacity of each channel between stages.
    capacity: usize,
    /// Candidates in flight (credits).
    window: usize,
}

impl Sizing {
    fn of(job: &Job<'_>) -> Self {
        let threads = job.threads.max(1);
        // An embedding batch needs all its samples in flight at once; twice that lets the next
        // batch be decoded while one is embedded.
        let batch = job.embedding.map_or(0, |stage| stage.batch_size);
        let in_flight = job.remote_images.map_or(0, |_| 2 * REMOTE_READS_IN_FLIGHT);
        Self {
            threads,
            capacity: 2 * threads,
            window: (8 * threads).max(16).max(2 * batch).max(in_flight),
        }
    }
}

pub(crate) fn run(
    job: Job<'_>,
    output: OutputFolder,
    progress: &dyn Progress,
) -> Result<Outcome, PipelineError> {
    let started = Instant::now();
    let output_path = output.path().to_owned();
    let writer = OutputWriter::create(
        output,
        WriterOptions {
            organize_by_class: job.options.organize_by_class,
            overwrite: job.options.overwrite,
            embeddings: job.embedding.is_some(),
            segment: job.segment.to_owned(),
            source_root: job.dataset.root().to_owned(),
            class_priors: class_priors(job.class_plan),
        },
        job.dataset.classes().clone(),
    )?;
    let stage_clock = StageClock::default();
    let (writer, report) = run_stages(&job, writer, progress, &stage_clock)?;
    // drift.json, made once the other files are closed, names each with its size and hash.
    let staged = StageClock::time(&stage_clock.write, || {
        writer.finish(|files| drift_record(&job, &report, files))
    })?;
    let written = staged.summary().clone();
    let clock = job.sampler.clock();
    let first_sample_id = job.sampler.next_sample_id();
    Ok(Outcome {
        staged,
        summary: SampleSummary {
            output: output_path,
            samples: written.samples,
            first_sample_id,
            timestamps: (
                clock.timestamp(first_sample_id),
                clock.timestamp(first_sample_id + written.samples - 1),
            ),
            skipped: report.skipped,
            zip_bytes: written.zip_bytes,
            elapsed: started.elapsed(),
            stage_times: stage_clock.times(),
        },
        positions_used: report.positions_used,
    })
}

/// Spawns every stage's threads, runs the writer on this one, and returns what it returns:
/// the writer owns the outcome, and every other stage's failure reaches it as a message.
fn run_stages(
    job: &Job<'_>,
    writer: OutputWriter,
    progress: &dyn Progress,
    clock: &StageClock,
) -> Result<(OutputWriter, SequencerReport), PipelineError> {
    let Sizing {
        threads,
        capacity,
        window,
    } = Sizing::of(job);
    let (credit_tx, credit_rx) = bounded::<()>(window);
    for _ in 0..window {
        credit_tx
            .send(())
            .expect("the channel holds exactly `window` credits");
    }
    // Never sent on: dropping the sender (the writer finishing, for any reason) stops the feeder.
    let (writer_done_tx, writer_done_rx) = bounded::<()>(0);
    let (candidate_tx, candidate_rx) = bounded::<Candidate>(capacity);
    let (decoded_tx, decoded_rx) = bounded::<Decoded>(capacity);
    let (sample_tx, sample_rx) = bounded::<Sample>(capacity);
    let (transformed_tx, transformed_rx) = bounded::<(Sample, DriftLogRow)>(capacity);
    let (writer_tx, writer_rx) = bounded::<ToWriter>(capacity);
    let (embed_tx, embed_rx) = bounded::<(u64, RgbImage8)>(window);
    // Set once the sequencer has all it needs: decoders skip what is still queued.
    let enough = &AtomicBool::new(false);
    thread::scope(|scope| {
        let candidate_rx = match job.remote_images {
            Some(images) => {
                // Fetched candidates wait unbounded: the credits bound how many there are.
                let (fetched_tx, fetched_rx) = crossbeam_channel::unbounded::<Candidate>();
                scope.spawn(move || fetch_stage(images, candidate_rx, fetched_tx));
                fetched_rx
            }
            None => candidate_rx,
        };
        scope.spawn(|| feed(job, credit_rx, writer_done_rx, candidate_tx));
        for _ in 0..threads {
            let (rx, tx) = (candidate_rx.clone(), decoded_tx.clone());
            scope.spawn(move || decode_stage(job, rx, tx, enough, clock));
        }
        let (credits, to_writer) = (credit_tx.clone(), writer_tx.clone());
        scope.spawn(move || sequence(job, decoded_rx, sample_tx, credits, to_writer, enough));
        let embed_tx = job.embedding.map(|_| embed_tx);
        for _ in 0..threads {
            let (rx, tx, embed_tx) = (sample_rx.clone(), transformed_tx.clone(), embed_tx.clone());
            scope.spawn(move || transform_stage(job, rx, tx, embed_tx, clock));
        }
        match job.embedding {
            Some(stage) => {
                let tx = writer_tx.clone();
                scope.spawn(move || embed_stage(job, stage, embed_rx, tx, clock));
            }
            None => drop(embed_rx),
        }
        for _ in 0..threads {
            let (rx, tx) = (transformed_rx.clone(), writer_tx.clone());
            scope.spawn(move || encode_stage(job, rx, tx, clock));
        }
        // Only the stages hold senders and receivers now, so each channel closes when the
        // stage before it ends.
        drop((
            candidate_rx,
            decoded_tx,
            sample_rx,
            transformed_tx,
            embed_tx,
        ));
        drop((transformed_rx, writer_tx));
        let outcome = write(job, writer, writer_rx, credit_tx, progress, clock);
        drop(writer_done_tx);
        outcome
    })
}

/// Applies the drift to each sample, hands the drifted image to the embedder (with embeddings
/// on) and the sample and its drift log row to the encoders.
fn transform_stage(
    job: &Job<'_>,
    samples: Receiver<Sample>,
    transformed: Sender<(Sample, DriftLogRow)>,
    to_embedder: Option<Sender<(u64, RgbImage8)>>,
    clock: &StageClock,
) {
    let seed = job.sampler.seed();
    for mut sample in samples {
        let sample_id = sample.meta.sample_id;
        let position = SegmentPosition {
            index: sample_id - job.segment_first,
            len: job.segment_samples,
        };
        let (image, outcome) = StageClock::time(&clock.transform, || {
            job.drift.apply(sample.image, seed, sample_id, position)
        });
        if let Some(to_embedder) = &to_embedder
            && to_embedder.send((sample_id, image.clone())).is_err()
        {
            return;
        }
        sample.image = image;
        if transformed.send((sample, outcome.log_row())).is_err() {
            return;
        }
    }
}

/// PNG-encodes each sample for the zip.
fn encode_stage(
    job: &Job<'_>,
    transformed: Receiver<(Sample, DriftLogRow)>,
    to_writer: Sender<ToWriter>,
    clock: &StageClock,
) {
    let compression = job.options.png_compression;
    for (sample, log) in transformed {
        let encoded = StageClock::time(&clock.encode, || encode_png(&sample.image, compression))
            .map(|png| Encoded {
                meta: sample.meta.clone(),
                png,
                log,
            })
            .map_err(|source| PipelineError::Encode {
                sample_id: sample.meta.sample_id,
                source_path: sample.meta.source_path,
                source,
            });
        if to_writer.send(ToWriter::Encoded(encoded)).is_err() {
            return;
        }
    }
}

/// `path` relative to the dataset root, as text (the whole path if it is not under the root).
pub(crate) fn relative_to(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn cancelled(options: &GeneratorOptions) -> bool {
    options
        .cancel
        .as_ref()
        .is_some_and(|flag| flag.load(Ordering::Relaxed))
}

/// Sends the sampler's candidates in order, one credit each, until they end (the permutation,
/// or a class under label shift, ran out) or the writer is done.
fn feed(
    job: &Job<'_>,
    credits: Receiver<()>,
    writer_done: Receiver<()>,
    candidates: Sender<Candidate>,
) {
    for (position, dataset_index) in job
        .sampler
        .candidates(job.class_plan)
        .map_while(Result::ok)
        .enumerate()
    {
        select! {
            recv(credits) -> credit => if credit.is_err() { return },
            recv(writer_done) -> _ => return,
        }
        if cancelled(job.options)
            || candidates
                .send(Candidate {
                    position,
                    dataset_index,
                    fetched: None,
                })
                .is_err()
        {
            return;
        }
    }
}

/// Reads, decodes and resizes candidate images.
fn decode_stage(
    job: &Job<'_>,
    candidates: Receiver<Candidate>,
    decoded: Sender<Decoded>,
    enough: &AtomicBool,
    clock: &StageClock,
) {
    for candidate in candidates {
        if enough.load(Ordering::Relaxed) {
            return;
        }
        let entry = &job.dataset.images()[candidate.dataset_index];
        let path = &entry.path;
        let image = StageClock::time(&clock.decode, || match candidate.fetched {
            None => job.decoder.decode(path),
            Some(Err(error)) => Err(ReaderError::Io {
                path: path.clone(),
                source: std::io::Error::other(error.to_string()),
            }),
            Some(Ok(bytes)) if bytes.len() as u64 != entry.bytes => Err(ReaderError::Changed {
                path: path.clone(),
                reason: format!("{} bytes listed, {} read", entry.bytes, bytes.len()),
            }),
            Some(Ok(bytes)) => job.decoder.decode_bytes(&bytes, path),
        });
        let message = Decoded {
            position: candidate.position,
            dataset_index: candidate.dataset_index,
            image,
        };
        if decoded.send(message).is_err() {
            return;
        }
    }
}

/// Starts each candidate's read from object storage and passes it on once its bytes arrive
/// (in whatever order they arrive: the sequencer restores the order).
fn fetch_stage(
    images: &drift_store::RemoteImages,
    candidates: Receiver<Candidate>,
    fetched: Sender<Candidate>,
) {
    for mut candidate in candidates {
        let fetched = fetched.clone();
        images.fetch(candidate.dataset_index, move |bytes| {
            candidate.fetched = Some(bytes);
            // A closed channel means the run is over; the bytes are not needed.
            let _ = fetched.send(candidate);
        });
    }
}

/// Restores permutation order, skips or stops on unreadable images, and gives sample ids; its
/// report (what it skipped, how far it got, the error that stopped it) goes to the writer last.
fn sequence(
    job: &Job<'_>,
    decoded: Receiver<Decoded>,
    samples: Sender<Sample>,
    credits: Sender<()>,
    to_writer: Sender<ToWriter>,
    enough: &AtomicBool,
) {
    let report = sequence_samples(job, decoded, samples, credits, enough);
    // The writer may be gone already (it failed); then nobody needs the report.
    let _ = to_writer.send(ToWriter::Sequenced(report));
}

fn sequence_samples(
    job: &Job<'_>,
    decoded: Receiver<Decoded>,
    samples: Sender<Sample>,
    credits: Sender<()>,
    enough: &AtomicBool,
) -> SequencerReport {
    let clock = job.sampler.clock();
    let first_sample_id = job.sampler.next_sample_id();
    let mut report = SequencerReport::default();
    let mut waiting: BTreeMap<usize, Decoded> = BTreeMap::new();
    for message in decoded {
        waiting.insert(message.position, message);
        while let Some(message) = waiting.remove(&report.positions_used) {
            report.positions_used += 1;
            let source_path = job.dataset.images()[message.dataset_index].path.clone();
            if let Some(decodes) = job.known_decodes
                && job.options.skip_bad_images
                && decodes[message.dataset_index] != message.image.is_ok()
            {
                report.fatal = Some(PipelineError::Reader(ReaderError::Changed {
                    path: source_path,
                    reason: format!(
                        "the manifest says it {}, but it {}",
                        if decodes[message.dataset_index] {
                            "decodes"
                        } else {
                            "does not decode"
                        },
                        if message.image.is_ok() {
                            "does"
                        } else {
                            "does not"
                        }
                    ),
                }));
                enough.store(true, Ordering::Relaxed);
                return report;
            }
            match message.image {
                Ok(image) => {
                    let sample_id = first_sample_id + report.produced;
                    let meta = SampleMeta {
                        sample_id,
                        timestamp: clock.timestamp(sample_id),
                        label: job.dataset.images()[message.dataset_index].label,
                        source_path,
                        file_name: drift_sampler::file_name(job.stream_key, sample_id),
                    };
                    report.produced += 1;
                    if samples.send(Sample { meta, image }).is_err() {
                        return report;
                    }
                    if report.produced == job.requested {
                        enough.store(true, Ordering::Relaxed);
                        return report;
                    }
                }
                Err(error) if job.options.skip_bad_images => {
                    report.skipped.push(SkippedImage {
                        path: source_path,
                        reason: error.to_string(),
                    });
                    // The writer may be gone already; then nobody needs the credit.
                    let _ = credits.send(());
                }
                Err(error) => {
                    report.fatal = Some(error.into());
                    enough.store(true, Ordering::Relaxed);
                    return report;
                }
            }
        }
    }
    report
}

/// Embeds images in batches of consecutive sample ids: batch k holds ids
/// `first + k * batch_size ..`, whatever order the images arrive in.
fn embed_stage(
    job: &Job<'_>,
    stage: &EmbeddingStage,
    images: Receiver<(u64, RgbImage8)>,
    to_writer: Sender<ToWriter>,
    clock: &StageClock,
) {
    let end = job.sampler.next_sample_id() + job.requested;
    let mut next = job.sampler.next_sample_id();
    let mut waiting: BTreeMap<u64, RgbImage8> = BTreeMap::new();
    for (sample_id, image) in images {
        waiting.insert(sample_id, image);
        loop {
            let batch_end = (next + stage.batch_size as u64).min(end);
            if !(next..batch_end).all(|id| waiting.contains_key(&id)) {
                break;
            }
            let batch: Vec<RgbImage8> = (next..batch_end)
                .map(|id| waiting.remove(&id).expect("checked above"))
                .collect();
            let refs: Vec<&RgbImage8> = batch.iter().collect();
            let result = StageClock::time(&clock.embed, || stage.embedder.embed(&refs))
                .map(|features| (next..batch_end).zip(features).collect())
                .map_err(PipelineError::from);
            let failed = result.is_err();
            if to_writer.send(ToWriter::Embedded(result)).is_err() || failed {
                return;
            }
            next = batch_end;
            if next == end {
                return;
            }
        }
    }
}

/// Writes samples in sample_id order, each once its PNG (and embedding, when on) is there, and
/// hands back the writer and the sequencer's report once all are in. It owns the call's
/// outcome: a stage's error, a cancel, or a stream that ended early stops it here.
fn write(
    job: &Job<'_>,
    mut writer: OutputWriter,
    incoming: Receiver<ToWriter>,
    credits: Sender<()>,
    progress: &dyn Progress,
    clock: &StageClock,
) -> Result<(OutputWriter, SequencerReport), PipelineError> {
    let first_sample_id = job.sampler.next_sample_id();
    let embeddings_on = job.embedding.is_some();
    let mut waiting: BTreeMap<u64, Encoded> = BTreeMap::new();
    let mut embeddings: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    let mut sequenced: Option<SequencerReport> = None;
    let mut written = 0u64;
    for message in incoming {
        if cancelled(job.options) {
            return Err(PipelineError::Cancelled);
        }
        match message {
            ToWriter::Encoded(encoded) => {
                let encoded = encoded?;
                waiting.insert(encoded.meta.sample_id, encoded);
            }
            ToWriter::Embedded(batch) => embeddings.extend(batch?),
            ToWriter::Sequenced(mut report) => {
                if let Some(error) = report.fatal.take() {
                    return Err(error);
                }
                sequenced = Some(report);
            }
        }
        loop {
            let sample_id = first_sample_id + written;
            if !waiting.contains_key(&sample_id)
                || embeddings_on && !embeddings.contains_key(&sample_id)
            {
                break;
            }
            let sample = waiting.remove(&sample_id).expect("checked above");
            let embedding = embeddings.remove(&sample_id);
            let label = job.class_mapping.map(sample.meta.label);
            StageClock::time(&clock.write, || {
                writer.write(
                    &sample.meta,
                    label,
                    &sample.png,
                    embedding.as_deref(),
                    &sample.log,
                )
            })?;
            written += 1;
            let _ = credits.send(());
            progress.samples_written(written, job.requested);
        }
        if written == job.requested
            && let Some(report) = sequenced.take()
        {
            return Ok((writer, report));
        }
    }
    if cancelled(job.options) {
        return Err(PipelineError::Cancelled);
    }
    let report = sequenced.unwrap_or_default();
    Err(PipelineError::RanOut {
        requested: job.requested,
        produced: report.produced,
        skipped: report.skipped.len(),
    })
}

/// Each class's prior (by original label) under label shift: its weight over their sum; `None`
/// when classes come as in the dataset. The writer logs it per sample and drift.json per class.
fn class_priors(plan: &ClassPlan) -> Option<Vec<f64>> {
    match plan {
        ClassPlan::AsInDataset => None,
        ClassPlan::Weighted { weights, .. } => {
            let total: f64 = weights.iter().sum();
            // `+ 0.0` turns a -0.0 weight's prior into 0.0, which drift.json printed as -0.0.
            Some(weights.iter().map(|w| w / total + 0.0).collect())
        }
    }
}

/// `drift.json`: what was applied to this output, the ranges it covers, the images skipped, and
/// (given when every other file is closed) each file's size and SHA-256.
fn drift_record(job: &Job<'_>, report: &SequencerReport, files: &[FileRecord]) -> String {
    let skipped = &report.skipped;
    let clock = job.sampler.clock();
    let first = job.sampler.next_sample_id();
    let last = first + job.requested - 1;
    let transforms: Vec<TransformRecord> = job
        .drift
        .chain()
        .specs()
        .iter()
        .map(|spec| TransformRecord {
            drift_level: spec.drift_level(),
            family: spec.kind().family().label().to_owned(),
            name: spec.kind().name().to_owned(),
        })
        .collect();
    let names = job.dataset.classes().names();
    let class_priors = match (job.class_plan, class_priors(job.class_plan)) {
        (
            ClassPlan::Weighted {
                with_replacement, ..
            },
            Some(priors),
        ) => Some(ClassPriorsRecord {
            priors: names.iter().cloned().zip(priors).collect(),
            with_replacement: *with_replacement,
        }),
        _ => None,
    };
    let record = DriftRecord {
        alpha: match job.options.alpha {
            crate::Alpha::Drop => None,
            composite => Some(composite.to_string()),
        },
        class_priors,
        drift: if transforms.is_empty() {
            "none".to_owned()
        } else {
            job.drift.shape().to_string()
        },
        embeddings: job.embedding.map(crate::EmbeddingStage::record),
        files: files.to_vec(),
        ground_truth: records::GROUND_TRUTH.to_owned(),
        image_size: job.decoder.size().to_string(),
        labels: names
            .iter()
            .cloned()
            .zip(job.class_mapping.labels().iter().copied())
            .collect(),
        parameters_drawn: records::PARAMETERS_DRAWN.to_owned(),
        sample_id: Span { first, last },
        samples: job.requested,
        seed: job.sampler.seed(),
        segment: job.segment.to_owned(),
        shard: job.shard.map(|shard| ShardRecord {
            candidates: report.positions_used,
            ..shard.clone()
        }),
        skipped_images: skipped
            .iter()
            .map(|image| SkippedRecord {
                path: relative_to(&image.path, job.dataset.root()),
                reason: image.reason.clone(),
            })
            .collect(),
        stream: stream_record(job, report.positions_used),
        timestamp: Span {
            first: clock.timestamp(first),
            last: clock.timestamp(last),
        },
        tool: records::TOOL.to_owned(),
        transforms,
        version: records::VERSION.to_owned(),
    };
    record.to_json()
}

/// `drift.json`'s `stream`: the calls up to this one's end, included, and what they ran on.
fn stream_record(job: &Job<'_>, positions_used: usize) -> StreamRecord {
    let clock = job.sampler.clock();
    let mut calls = job.history.to_vec();
    calls.push(CallRecord::new(
        job.class_plan,
        positions_used,
        job.requested,
    ));
    let root = job.dataset.root();
    StreamRecord {
        calls,
        dataset_fingerprint: job.dataset.fingerprint().to_owned(),
        dataset_images: job.dataset.images().len(),
        delta_timestamp: clock.delta,
        input: match drift_store::is_url(root) {
            true => root.to_string_lossy().into_owned(),
            false => std::path::absolute(root)
                .unwrap_or_else(|_| root.to_owned())
                .to_string_lossy()
                .into_owned(),
        },
        start_timestamp: clock.start,
    }
}
