//! The `drift-pipeline` command line: flags, progress bars, messages and exit codes, over the
//! drift-pipeline library. The binary (`main.rs`) and the Python wheel's `drift-pipeline`
//! script both run [`main_with`]. It owns every flag name, the demo data (`demo`) and the
//! weights download (`weights_fetch`).

pub mod demo;
pub mod weights_fetch;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use drift_pipeline::{
    Dataset, DriftGenerator, DriftShape, EmbeddingOptions, FrontEnd, GeneratorOptions, ImageSize,
    MAX_THREADS, PipelineError, PngCompression, Progress, RawRun, RawSegment, Recovery, RunSpec,
    SampleSummary, Scenario, TransformKind, TransformSpec, WriterError,
};
use indicatif::{ProgressBar, ProgressStyle};

/// The command line's spelling of the run's keys: flags, for errors the run spec reports.
pub const COMMAND_LINE: FrontEnd = FrontEnd {
    key: |key| {
        let flag = match key {
            "samples" => "num-samples",
            "transforms" => "transform",
            "name" => "segment",
            other => return format!("--{}", other.replace('_', "-")),
        };
        format!("--{flag}")
    },
    segment: Some(|_, _| "the run".to_owned()),
    overwrite_hint: "use --overwrite to replace it",
    needs_embeddings: "only applies with --embeddings",
};

#[derive(Parser)]
#[command(
    name = "drift-pipeline",
    version,
    about = "Generate image datasets with controlled, synthetic drift."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sample a class-folder dataset into a timestamped stream (zip + Parquet tables).
    Generate(Box<GenerateArgs>),
    /// Run a scenario file: segments of clean and drifted samples from one seeded stream.
    Run {
        /// The scenario (TOML); see docs/scenario.toml.
        scenario: PathBuf,
        /// Worker threads per parallel stage (default: one per core).
        #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = threads)]
        threads: usize,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        shard: ShardArgs,
        /// With --shard: the shard's folder (segment N goes to DIR/segment-N).
        #[arg(long, value_name = "DIR", requires = "shard")]
        output: Option<PathBuf>,
    },
    /// Write a dataset manifest: the listing (paths, classes, sizes) and, with --verify, which
    /// images decode. Sharded runs read it instead of listing the dataset on every worker.
    Index {
        /// The dataset root: one sub-folder per class.
        dir: PathBuf,
        /// The manifest file to write (Parquet; replaced atomically).
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
        /// Decode every image and record which decode (what --skip-bad-images skips).
        #[arg(long)]
        verify: bool,
        /// Decoding threads with --verify (default: one per core).
        #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = threads)]
        threads: usize,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Join the shard folders of a run (made with --shard K/N) into the output one process
    /// writes, byte for byte: a one-segment run into --output, a scenario's segments into their
    /// own folders; `evaluate --shard` reports into the report --output names. Refuses missing,
    /// duplicated or foreign shards. Reads the shards only.
    Merge {
        /// The shard folders, in any order.
        #[arg(required = true, value_name = "SHARD_DIR")]
        shards: Vec<PathBuf>,
        /// The merged output folder (one-segment runs and evaluate reports; a scenario's
        /// segments go where it says).
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Replace existing outputs.
        #[arg(long)]
        overwrite: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Measure how strong a drift is: the KL between drifted and clean embeddings, per batch,
    /// at each drift level; writes kl.parquet, summary.csv and two plots (PNG and SVG).
    Evaluate(EvaluateArgs),
    /// ResNet18 weights for --embeddings: download them, or show what is cached.
    Weights {
        #[command(subcommand)]
        command: WeightsCommand,
    },
    /// Plot drift logs over time: the drift probability, the drifted fraction and each
    /// transform's level per sample, segments marked, and each class's share when a segment
    /// has label shift. Writes FILE.png and FILE.svg.
    Timeline(TimelineArgs),
    /// Check that an output folder holds one complete output: every file its drift.json lists,
    /// with the recorded size and SHA-256, and nothing else. Reads only.
    Verify {
        /// The output folder.
        dir: PathBuf,
    },
    /// Show a dataset's classes, labels, image counts, ignored files (counted by kind) and
    /// images with an alpha channel (read from each image's header).
    Inspect {
        /// The dataset root: one sub-folder per class.
        dir: PathBuf,
        /// List every ignored file, not the first 20.
        #[arg(long)]
        all: bool,
    },
    /// Generate a small synthetic dataset and sample it: a first run with no input of your own.
    Demo {
        /// Where to put the demo dataset (DIR/dataset) and its samples: DIR/reference (clean) and
        /// DIR/production (drifted with default=0.3).
        dir: PathBuf,
        /// Replace outputs of an earlier demo run.
        #[arg(long)]
        overwrite: bool,
        /// Generated images per class (4 classes); each of the two sample calls takes half of
        /// all images.
        #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        images_per_class: u64,
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(Subcommand)]
enum WeightsCommand {
    /// Download torchvision's resnet18-f37072fd.pth (IMAGENET1K_V1) into the cache directory,
    /// verifying its SHA-256; a mismatch deletes the download.
    Fetch {
        /// Download from here instead (a mirror).
        #[arg(long)]
        url: Option<String>,
        /// Expect this SHA-256 instead of torchvision's (for other files).
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Save here instead of the cache directory.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show the cache directory and which known weights files it holds, verified.
    List,
}

#[derive(Args)]
struct GenerateArgs {
    /// The dataset root: one sub-folder per class, images found recursively [default with
    /// --continue-from: the stream's input].
    #[arg(long, value_name = "DIR", required_unless_present = "continue_from")]
    input: Option<PathBuf>,
    /// Continue the stream of an earlier output: sample ids, timestamps and images go on where
    /// DIR ended (no image of DIR's stream comes again while unused ones remain). Its seed,
    /// input, size and clock are the defaults; a different one, or a changed dataset, is
    /// refused.
    #[arg(long, value_name = "DIR")]
    continue_from: Option<PathBuf>,
    /// The output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// How many samples to draw (each image at most once).
    #[arg(long, value_name = "N")]
    num_samples: u64,
    /// Seed of the permutation, file names and every random draw [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Put zip entries under <class_name>/ instead of the zip root.
    #[arg(long)]
    organize_by_class: bool,
    /// Output image size, WIDTHxHEIGHT or one number for a square [default: 224x224].
    #[arg(long, value_name = "WxH")]
    size: Option<String>,
    /// Timestamp of sample 0, in seconds since the Unix epoch [default: 1717232400, 2024-06-01
    /// 09:00 UTC].
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    start_timestamp: Option<f64>,
    /// Seconds between consecutive samples [default: 1800].
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    delta_timestamp: Option<f64>,
    /// JSON or TOML table: class name or original label -> published label.
    #[arg(long, value_name = "FILE")]
    class_mapping: Option<PathBuf>,
    /// Skip unreadable images (counted and reported) instead of failing.
    #[arg(long)]
    skip_bad_images: bool,
    /// Alpha channels: drop (the default; colours under transparency stay, as torchvision's
    /// ImageFolder) or composite onto white, black or #RRGGBB.
    #[arg(long, value_name = "MODE")]
    alpha: Option<String>,
    /// Drift: apply transform NAME at drift_level LEVEL in [0, 1]; repeat to chain, in order.
    #[arg(long = "transform", value_name = "NAME=LEVEL", long_help = transform_help(
        "Drift: apply transform NAME at drift_level LEVEL in [0, 1]; repeat to chain, in order."))]
    transforms: Vec<String>,
    /// How the drift arrives over the samples: abrupt (all, the default), gradual:width=N
    /// [,center=K][,ramp=linear], incremental:from=A,to=B (levels scaled from A to B), or
    /// recurring:period=N,duty=F. Needs --transform.
    #[arg(long, value_name = "SHAPE")]
    drift: Option<String>,
    /// The segment name in drift_log.parquet and drift.json [default: segment 1].
    #[arg(long, value_name = "NAME")]
    segment: Option<String>,
    /// Replace an existing output in the output folder.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    shard: ShardArgs,
    #[command(flatten)]
    embedding: EmbeddingArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct ShardArgs {
    /// Make only shard K (from 0) of N: each segment's contiguous sample ids from K*n/N, into
    /// the output folder's segment-1/ (segment-N/ for a scenario); `merge` joins the N shards
    /// into what one process writes, byte for byte. Any engine can run the shards (SLURM:
    /// --shard $SLURM_ARRAY_TASK_ID/N).
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// A dataset manifest (drift-pipeline index): the listing comes from it instead of listing
    /// the input again; files the run reads are checked against it. Sharded runs with
    /// --skip-bad-images need one made with --verify.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
}

#[derive(Args)]
struct TimelineArgs {
    /// Output folders (of generate, or a scenario's segments), plotted as one stream in
    /// sample_id order; folders whose sample ids overlap are warned about.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Where to write the plot: FILE.png and FILE.svg (name either one, or no extension).
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Samples in the sliding window of the drifted fraction and the class shares.
    #[arg(long, value_name = "N", default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    window: u64,
    /// The plot's title [default: "Drift over time" and the folders].
    #[arg(long)]
    title: Option<String>,
    /// Draw the class-share panel even without label shift.
    #[arg(long)]
    class_mix: bool,
}

#[derive(Args)]
struct EvaluateArgs {
    /// The dataset root: one sub-folder per class, images found recursively.
    #[arg(long, value_name = "DIR")]
    input: PathBuf,
    /// The report folder (created if missing).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// The transform to sweep; repeat for a combined list, applied in order, all at each level.
    #[arg(long = "transform", value_name = "NAME", required = true, value_parser = sweep_transform, long_help = transform_help(
        "The transform to sweep; repeat for a combined list, applied in order, all at each level."))]
    transforms: Vec<TransformKind>,
    /// Drift levels to measure, comma-separated, each in [0, 1].
    #[arg(long, value_name = "L,L,...", value_delimiter = ',', value_parser = unit_f64,
          default_value = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")]
    levels: Vec<f64>,
    /// Evaluate only the first N images of the seeded order (default: the whole dataset).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    num_samples: Option<u64>,
    /// Seed of the image order and of every transform draw.
    #[arg(long, default_value_t = drift_pipeline::DEFAULT_SEED)]
    seed: u64,
    /// Image size the network sees, WIDTHxHEIGHT or one number for a square.
    #[arg(long, value_name = "WxH", default_value = "224x224")]
    size: ImageSize,
    /// Replace an earlier report in the output folder.
    #[arg(long)]
    overwrite: bool,
    /// Measure only shard K (from 0) of N of the batches (of every level) into the output
    /// folder; `merge` joins the N shard reports into the report one process writes.
    #[arg(long, value_name = "K/N")]
    shard: Option<drift_pipeline::Shard>,
    #[command(flatten)]
    network: NetworkArgs,
    /// Threads for the embedder (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = threads)]
    threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// The network's flags, as written: the run spec parses and checks them.
#[derive(Args)]
struct NetworkArgs {
    /// ResNet18 weights: torchvision .pth or safetensors (default: the cache, see `weights`).
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Where to embed: auto (a GPU if this build has one and it answers, else CPU, the
    /// default), cpu, gpu.
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    /// CPU backend: flex (fastest, the default) or ndarray (builds with the `ndarray` feature).
    #[arg(long, value_name = "BACKEND")]
    cpu_backend: Option<String>,
    /// Network input: none ([0, 1] pixels, as the Python tool; the default) or imagenet
    /// (mean/std).
    #[arg(long, value_name = "MODE")]
    normalize: Option<String>,
    /// Images per forward pass (in evaluate, also the images per KL: SPEC's batch B)
    /// [default: 32].
    #[arg(long, value_name = "N")]
    batch_size: Option<u64>,
}

impl NetworkArgs {
    /// The flags into `raw`, with embeddings on or off.
    fn fill(&self, raw: &mut RawRun, embeddings: bool) {
        raw.embeddings = embeddings;
        raw.weights = self.weights.clone();
        raw.device = self.device.clone();
        raw.cpu_backend = self.cpu_backend.clone();
        raw.normalize = self.normalize.clone();
        raw.batch_size = self.batch_size;
    }

    /// The embedding options, checked by the run spec.
    fn options(&self) -> Result<EmbeddingOptions> {
        let mut raw = RawRun::default();
        self.fill(&mut raw, true);
        Ok(
            drift_pipeline::embedding_options(&raw, COMMAND_LINE, Path::new(""))?
                .expect("embeddings are on"),
        )
    }
}

#[derive(Args)]
struct EmbeddingArgs {
    /// Also write embeddings.parquet: 512-d ResNet18 features of every sample.
    #[arg(long)]
    embeddings: bool,
    #[command(flatten)]
    network: NetworkArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Worker threads per parallel stage (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = threads)]
    threads: usize,
    /// PNG compression effort: fast, balanced or high.
    #[arg(long, value_name = "LEVEL", default_value = "fast")]
    png_compression: PngCompression,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

fn threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n <= MAX_THREADS => Ok(n),
        Ok(_) => Err(format!(
            "{text} threads is more than the {MAX_THREADS} allowed (0 means one per core)"
        )),
        Err(_) => Err(format!("'{text}' is not a thread count")),
    }
}

fn finite_f64(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("'{text}' is not a finite number")),
    }
}

/// `--help` for a transform flag: `summary`, then every registered transform and what its level
/// controls (from the registry, so a new transform shows up here by itself).
/// A transform to sweep: a name alone; with a level, say that the levels are `--levels`'.
fn sweep_transform(text: &str) -> Result<TransformKind, String> {
    text.parse::<TransformKind>().map_err(|error| match error {
        drift_pipeline::TransformError::UnexpectedLevel { name, .. } => {
            let level = text
                .split_once('=')
                .map_or("0.5", |(_, level)| level.trim());
            format!(
                "'{text}': evaluate measures every level of --levels; give --transform {name} \
                 --levels {level}"
            )
        }
        other => other.to_string(),
    })
}

fn transform_help(summary: &str) -> String {
    let mut help = format!("{summary}\n\nTransforms:");
    for kind in TransformKind::all() {
        help.push_str(&format!("\n  {}: {}", kind.name(), kind.description()));
    }
    help
}

fn unit_f64(text: &str) -> Result<f64, String> {
    match finite_f64(text.trim())? {
        value if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("drift level '{text}' is outside [0, 1]")),
    }
}

/// The signals that stop a run cleanly: the pipeline stops, every output folder keeps what it
/// had, and the exit code is 128 + the signal's number. A second one ends the process at once
/// (the next run into the folder removes what it staged).
const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// Runs the command line on `args` (the program name first, as `std::env::args_os`) and
/// returns the exit code: 0, 1 for an error, 2 for bad usage, 128 + n after signal n.
pub fn main_with<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let _ = error.print();
            return error.exit_code() as u8;
        }
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let signal = Arc::new(AtomicUsize::new(0));
    for number in STOP_SIGNALS {
        // Registered first, so it sees the flag as it was before this signal set it. Failing to
        // install the handlers only loses the clean stop.
        let _ =
            signal_hook::flag::register_conditional_shutdown(number, 128 + number, cancel.clone());
        let _ = signal_hook::flag::register_usize(number, signal.clone(), number as usize);
        let _ = signal_hook::flag::register(number, cancel.clone());
    }
    match run(cli, cancel) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {}{}", error_chain(error.as_ref()), hint(&error));
            let interrupted = error.chain().any(|cause| {
                let pipeline = cause.downcast_ref::<PipelineError>().or_else(|| {
                    cause
                        .downcast_ref::<Box<PipelineError>>()
                        .map(AsRef::as_ref)
                });
                matches!(pipeline, Some(PipelineError::Cancelled))
            });
            let code = match signal.load(Ordering::Relaxed) {
                number if interrupted && number > 0 => 128 + number,
                _ if interrupted => 130,
                _ => 1,
            };
            code as u8
        }
    }
}

/// What to do about `error` in this front end's words (stage errors name no flags).
fn hint(error: &anyhow::Error) -> &'static str {
    fn pipeline<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a PipelineError> {
        cause.downcast_ref::<PipelineError>().or_else(|| {
            cause
                .downcast_ref::<Box<PipelineError>>()
                .map(AsRef::as_ref)
        })
    }
    for cause in error.chain() {
        match (pipeline(cause), cause.downcast_ref::<WriterError>()) {
            (Some(PipelineError::Writer(WriterError::OutputExists { .. })), _)
            | (_, Some(WriterError::OutputExists { .. })) => {
                return " (use --overwrite to replace it)";
            }
            (Some(PipelineError::Reader(drift_pipeline::ReaderError::Decode { .. })), _) => {
                return " (--skip-bad-images skips unreadable images, counted and listed)";
            }
            _ => {}
        }
    }
    ""
}

/// The error and its causes on one line, each cause once: libraries often show their source
/// in their own message too (`... (os error 28): No space left on device (os error 28)`).
/// Every front end reports errors in these words.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(error);
    while let Some(current) = cause {
        let text = current.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = current.source();
    }
    line
}

fn run(cli: Cli, cancel: Arc<AtomicBool>) -> Result<()> {
    match cli.command {
        Command::Generate(args) => generate(*args, cancel),
        Command::Inspect { dir, all } => inspect(&dir, all),
        Command::Timeline(args) => timeline(&args),
        Command::Verify { dir } => {
            let files = drift_pipeline::verify(&dir)?;
            let bytes: u64 = files.iter().map(|file| file.bytes).sum();
            println!(
                "{}: complete output, {} files and drift.json verified ({bytes} bytes)",
                dir.display(),
                files.len()
            );
            Ok(())
        }
        Command::Evaluate(args) => evaluate(args, cancel),
        Command::Weights { command } => weights(command),
        Command::Run {
            scenario,
            threads,
            quiet,
            shard,
            output,
        } => run_scenario(&scenario, threads, quiet, &shard, output, cancel),
        Command::Index {
            dir,
            output,
            verify,
            threads,
            quiet,
        } => index(&dir, &output, verify, threads, quiet),
        Command::Merge {
            shards,
            output,
            overwrite,
            quiet,
        } => merge(&shards, output.as_deref(), overwrite, quiet),
        Command::Demo {
            dir,
            overwrite,
            images_per_class,
            run,
        } => run_demo(&dir, overwrite, images_per_class as usize, run, cancel),
    }
}

fn options(run: &RunArgs, cancel: Arc<AtomicBool>) -> GeneratorOptions {
    GeneratorOptions {
        threads: run.threads,
        png_compression: run.png_compression,
        cancel: Some(cancel),
        ..GeneratorOptions::default()
    }
}

/// `generate` is a one-segment run: its flags fill the same raw run a scenario file does, and
/// the run spec checks them.
fn generate(args: GenerateArgs, cancel: Arc<AtomicBool>) -> Result<()> {
    let mut raw = RawRun {
        input: args.input,
        continue_from: args.continue_from,
        seed: args.seed,
        size: args.size,
        start_timestamp: args.start_timestamp,
        delta_timestamp: args.delta_timestamp,
        organize_by_class: args.organize_by_class,
        class_mapping: args.class_mapping,
        skip_bad_images: args.skip_bad_images,
        alpha: args.alpha,
        overwrite: args.overwrite,
        png_compression: Some(args.run.png_compression.name().to_owned()),
        threads: Some(args.run.threads),
        shard_output: args.shard.shard.as_ref().map(|_| args.output.clone()),
        shard: args.shard.shard,
        manifest: args.shard.manifest,
        segments: vec![RawSegment {
            name: args.segment,
            samples: args.num_samples,
            output: args.output,
            transforms: args.transforms,
            drift: args.drift,
            ..RawSegment::default()
        }],
        ..RawRun::default()
    };
    args.embedding
        .network
        .fill(&mut raw, args.embedding.embeddings);
    let mut spec = RunSpec::build(raw, COMMAND_LINE, Path::new(""))?;
    warn_about(&spec.segments);
    spec.set_cancel(Some(cancel));
    let quiet = args.run.quiet;
    spec.run(
        |segment| Box::new(ProgressReport::new(segment.samples, quiet, "samples", None)),
        |segment, summary, dataset| {
            let drift = drift_description(&segment.transforms, &segment.shape);
            report_summary(summary, &classes_drawn(segment, dataset), &drift, quiet);
        },
    )?;
    Ok(())
}

fn evaluate(args: EvaluateArgs, cancel: Arc<AtomicBool>) -> Result<()> {
    use drift_pipeline::evaluate::{EvaluateOptions, evaluate};
    let options = EvaluateOptions {
        transforms: args.transforms,
        levels: args.levels,
        num_samples: args.num_samples,
        seed: args.seed,
        size: args.size,
        embedding: args.network.options()?,
        threads: args.threads,
        overwrite: args.overwrite,
        cancel: Some(cancel),
        shard: args.shard,
        ..EvaluateOptions::default()
    };
    let bar = ProgressReport::new(0, args.quiet, "embeddings", None);
    let result = evaluate(&args.input, &args.output, &options, &bar);
    bar.bar.finish_and_clear();
    let evaluation = result.map_err(|error| match error {
        PipelineError::Reader(_) => {
            anyhow::Error::new(error).context(format!("cannot use input {}", args.input.display()))
        }
        other => anyhow::Error::new(other)
            .context(format!("cannot evaluate into {}", args.output.display())),
    })?;
    println!(
        "{}: {} levels x {} batches of up to {} images ({} images); {}",
        evaluation.transforms,
        evaluation.summaries.len(),
        evaluation.batches,
        options.embedding.batch_size,
        evaluation.images,
        evaluation.embedding_description
    );
    println!(
        "{:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "level", "batches", "median", "p25", "p75", "mean", "sd"
    );
    // Four decimals for KLs of pretrained weights (0.01..1); small ones keep their digits.
    let kl = |value: f64| {
        if value == 0.0 || value >= 0.01 {
            format!("{value:.4}")
        } else {
            format!("{value:.3e}")
        }
    };
    for s in &evaluation.summaries {
        println!(
            "{:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
            format!("{:?}", s.drift_level),
            s.batches,
            kl(s.median),
            kl(s.p25),
            kl(s.p75),
            kl(s.mean),
            s.sd.map_or("-".to_owned(), kl)
        );
    }
    println!(
        "wrote kl.parquet, summary.csv, kl_by_batch.png/.svg, kl_by_level.png/.svg and \
         evaluation.json to {} in {:.1} s, {:.1} images/s (each image at each level)",
        evaluation.output.display(),
        evaluation.elapsed.as_secs_f64(),
        evaluation.images_per_second()
    );
    Ok(())
}

fn sample(
    generator: &mut DriftGenerator,
    n: u64,
    output: &Path,
    quiet: bool,
) -> Result<SampleSummary> {
    let bar = ProgressReport::new(n, quiet, "samples", None);
    let result = generator.sample_with_progress(n, output, &bar);
    bar.bar.finish_and_clear();
    result.with_context(|| format!("cannot write {n} samples to {}", output.display()))
}

fn report(summary: &SampleSummary, generator: &DriftGenerator, quiet: bool) {
    let drift = drift_description(
        generator.drift().chain().specs(),
        &generator.drift().shape(),
    );
    report_summary(
        summary,
        &generator.dataset().classes().len().to_string(),
        &drift,
        quiet,
    );
}

fn drift_description(specs: &[TransformSpec], shape: &DriftShape) -> String {
    match specs {
        [] => "no drift".to_owned(),
        specs => {
            let list: Vec<String> = specs.iter().map(ToString::to_string).collect();
            format!("drift {} ({shape})", list.join(", "))
        }
    }
}

/// Prints each segment's warnings (allowed, probably not meant) before anything runs.
fn warn_about(segments: &[drift_pipeline::Segment]) {
    for warning in segments.iter().flat_map(drift_pipeline::Segment::warnings) {
        eprintln!("warning: {warning}");
    }
}

/// The classes a segment draws from, in words: all of them, or under label shift with weights
/// "2 of 17" (classes not named are not drawn).
fn classes_drawn(segment: &drift_pipeline::Segment, dataset: &Dataset) -> String {
    let all = dataset.classes().len();
    match &segment.label_shift.priors {
        drift_pipeline::ClassPriors::Weights(weights) => {
            let drawn = weights.iter().filter(|(_, w)| *w > 0.0).count();
            format!("{drawn} of {all}")
        }
        _ => all.to_string(),
    }
}

fn report_summary(summary: &SampleSummary, classes: &str, drift: &str, quiet: bool) {
    let skipped = match summary.skipped.len() {
        0 => String::new(),
        1 => "; skipped 1 unreadable image (listed in drift.json)".to_owned(),
        n => format!("; skipped {n} unreadable images (listed in drift.json)"),
    };
    println!(
        "wrote {} samples ({} classes, sample_id {}..={}, {drift}) to {} in {:.2} s, {:.0} images/s{skipped}",
        summary.samples,
        classes,
        summary.first_sample_id,
        summary.first_sample_id + summary.samples - 1,
        summary.output.display(),
        summary.elapsed.as_secs_f64(),
        summary.images_per_second(),
    );
    // Warnings, so --quiet (which hides progress) does not hide them.
    for image in &summary.skipped {
        eprintln!("skipped {}: {}", image.path.display(), image.reason);
    }
    if !quiet {
        // Where the time went, so a slow run says which stage to look at.
        let per_sample =
            |time: std::time::Duration| 1e3 * time.as_secs_f64() / summary.samples.max(1) as f64;
        let stages: Vec<String> = summary
            .stage_times
            .stages()
            .iter()
            .filter(|(_, time)| !time.is_zero())
            .map(|&(name, time)| format!("{name} {:.2}", per_sample(time)))
            .collect();
        println!(
            "thread time per sample, ms: {} (busiest: {})",
            stages.join(", "),
            summary.stage_times.busiest().0
        );
    }
}

/// An indicatif bar on a terminal; hidden when stderr is not a terminal or with --quiet.
struct ProgressReport {
    bar: ProgressBar,
    quiet: bool,
}

impl ProgressReport {
    /// A bar of `total` `unit`s, named `name` (a scenario's segment) when given.
    fn new(total: u64, quiet: bool, unit: &str, name: Option<&str>) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self {
                bar: ProgressBar::hidden(),
                quiet,
            };
        }
        let bar = ProgressBar::new(total);
        let prefix = if name.is_some() { "{prefix:>12} " } else { "" };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{prefix}{{bar:40}} {{pos}}/{{len}} {unit}, {{rate}}, eta {{settled_eta}}"
            ))
            .expect("the template is valid")
            // At most one decimal: "37.5/s", not indicatif's "37.5213/s".
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1}/s", state.per_sec());
                },
            )
            // The first estimates come from a handful of items and a cold start (a 12 s job
            // showed 7 min): no ETA until 5% is done and a second has passed.
            .with_key(
                "settled_eta",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let settled = state.elapsed().as_secs_f64() >= 1.0
                        && state.len().is_some_and(|len| state.pos() * 20 >= len);
                    let _ = if settled {
                        write!(w, "{:#}", indicatif::HumanDuration(state.eta()))
                    } else {
                        write!(w, "-")
                    };
                },
            ),
        );
        if let Some(name) = name {
            bar.set_prefix(name.to_owned());
        }
        Self { bar, quiet }
    }
}

impl Progress for ProgressReport {
    fn samples_written(&self, written: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(written);
        // Drawn at 100% when done: a bar left at its last throttled redraw (196/200) reads as
        // dropped samples.
        if written >= total {
            self.bar.finish();
        }
    }

    /// A note, not progress: shown with --quiet too.
    fn recovered(&self, folder: &Path, recovery: &Recovery) {
        self.bar
            .suspend(|| eprintln!("note: {}: {recovery}", folder.display()));
    }

    fn embedding(&self, description: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("embedding on {description}"));
        }
    }
}

fn run_scenario(
    path: &Path,
    threads: usize,
    quiet: bool,
    shard: &ShardArgs,
    output: Option<PathBuf>,
    cancel: Arc<AtomicBool>,
) -> Result<()> {
    if shard.shard.is_some() && output.is_none() {
        anyhow::bail!(
            "--shard: give the shard's folder with --output DIR (segment N goes to DIR/segment-N)"
        );
    }
    // The scenario's own paths are relative to its folder; the command line's to the working
    // directory.
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let mut scenario = Scenario::load_with(path, |raw| {
        if shard.shard.is_some() {
            raw.shard = shard.shard.clone();
            raw.shard_output = output.as_ref().map(absolute);
        }
        if let Some(manifest) = &shard.manifest {
            raw.manifest = Some(absolute(manifest));
        }
    })?;
    warn_about(scenario.segments());
    scenario.set_run_options(threads, Some(cancel));
    scenario.run(
        |segment| {
            Box::new(ProgressReport::new(
                segment.samples,
                quiet,
                "samples",
                Some(&segment.name),
            ))
        },
        |segment, summary, dataset| {
            let drift = drift_description(&segment.transforms, &segment.shape);
            report_summary(summary, &classes_drawn(segment, dataset), &drift, quiet);
        },
    )?;
    Ok(())
}

fn weights(command: WeightsCommand) -> Result<()> {
    use crate::weights_fetch::{FetchRequest, Fetched, fetch};
    match command {
        WeightsCommand::Fetch {
            url,
            sha256,
            output,
            quiet,
        } => {
            let request = FetchRequest::new(url, sha256, output)?;
            let bar = if quiet || !std::io::stderr().is_terminal() {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0).with_style(
                    ProgressStyle::with_template(
                        "{bar:40} {bytes}/{total_bytes}, {bytes_per_sec}, eta {eta}",
                    )
                    .expect("the template is valid"),
                )
            };
            if !quiet {
                eprintln!(
                    "downloading {} to {}",
                    request.url,
                    request.destination.display()
                );
            }
            let result = fetch(&request, &|received, total| {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(received);
            });
            bar.finish_and_clear();
            match result? {
                Fetched::Downloaded(bytes) => println!(
                    "saved {} ({bytes} bytes, sha256 {} verified)",
                    request.destination.display(),
                    request.sha256
                ),
                Fetched::AlreadyPresent => println!(
                    "{} is already there (sha256 {} verified)",
                    request.destination.display(),
                    request.sha256
                ),
            }
            Ok(())
        }
        WeightsCommand::List => {
            use drift_pipeline::weights::{CACHE_ENV, KNOWN_WEIGHTS, cache_dir, sha256_file};
            let Some(dir) = cache_dir() else {
                anyhow::bail!("no cache directory: set {CACHE_ENV} or HOME");
            };
            println!(
                "cache directory {} (override with {CACHE_ENV})",
                dir.display()
            );
            for known in KNOWN_WEIGHTS {
                let path = dir.join(known.file_name);
                let state = if !path.is_file() {
                    "absent".to_owned()
                } else {
                    match sha256_file(&path) {
                        Ok(hash) if hash == known.sha256 => "present, sha256 verified".to_owned(),
                        Ok(hash) => format!("present but WRONG sha256 {hash}: delete it"),
                        Err(error) => format!("unreadable: {error}"),
                    }
                };
                println!("  {:<32} {state}  ({})", known.file_name, known.description);
            }
            Ok(())
        }
    }
}

fn timeline(args: &TimelineArgs) -> Result<()> {
    let stem = match args.output.extension().and_then(|e| e.to_str()) {
        None => args.output.clone(),
        Some("png" | "svg") => args.output.with_extension(""),
        Some(other) => anyhow::bail!(
            "--output {}: the plot is written as PNG and SVG; name it FILE.png, FILE.svg or \
             FILE, not .{other}",
            args.output.display()
        ),
    };
    let mut points = Vec::new();
    let mut ranges = Vec::new();
    let mut label_shift = false;
    for dir in &args.dirs {
        let samples = drift_pipeline::read_drift_log(dir)
            .with_context(|| format!("cannot plot {}", dir.display()))?;
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            ranges.push((first.sample_id, last.sample_id, dir));
        }
        label_shift |= samples.iter().any(|s| s.class_prior.is_some());
        points.extend(samples.into_iter().map(|s| drift_pipeline::TimelinePoint {
            sample_id: s.sample_id,
            segment: s.segment,
            drifted: s.drifted,
            probability: s.probability,
            levels: s.levels,
            class_name: s.class_name,
        }));
    }
    ranges.sort();
    for pair in ranges.windows(2) {
        let ((_, last, a), (first, _, b)) = (pair[0], pair[1]);
        if first <= last {
            eprintln!(
                "warning: {} and {} overlap in sample_id ({first}..={last}): they are not one \
                 stream (generate --continue-from continues one)",
                a.display(),
                b.display()
            );
        }
    }
    points.sort_by_key(|p| p.sample_id);
    let title = args.title.clone().unwrap_or_else(|| {
        let names: Vec<String> = args
            .dirs
            .iter()
            .map(|d| {
                d.file_name().map_or_else(
                    || d.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            })
            .collect();
        format!("Drift over time: {}", names.join(", "))
    });
    let plot = drift_pipeline::timeline_plot(
        &title,
        &points,
        args.window as usize,
        label_shift || args.class_mix,
    )
    .context("cannot draw the timeline")?;
    let png = drift_pipeline::encode_png(&plot.rgb, PngCompression::High)?;
    let (png_path, svg_path) = (stem.with_extension("png"), stem.with_extension("svg"));
    std::fs::write(&png_path, png)
        .with_context(|| format!("cannot write {}", png_path.display()))?;
    std::fs::write(&svg_path, plot.svg)
        .with_context(|| format!("cannot write {}", svg_path.display()))?;
    println!(
        "wrote {} and {}: {} samples from {} folders",
        png_path.display(),
        svg_path.display(),
        points.len(),
        args.dirs.len()
    );
    Ok(())
}

fn index(dir: &Path, output: &Path, verify: bool, threads: usize, quiet: bool) -> Result<()> {
    let dataset = Dataset::scan(dir).with_context(|| format!("cannot index {}", dir.display()))?;
    let decoder = drift_pipeline::Decoder::new(ImageSize::default());
    let bar = ProgressReport::new(
        dataset.images().len() as u64,
        quiet || !verify,
        "images",
        None,
    );
    let (manifest, undecodable) = drift_pipeline::DatasetManifest::index(
        &dataset,
        verify.then_some(&decoder),
        drift_pipeline::worker_threads(threads),
        &|done| bar.bar.set_position(done as u64),
    );
    bar.bar.finish_and_clear();
    manifest
        .write(output)
        .with_context(|| format!("cannot write the manifest {}", output.display()))?;
    let checked = match verify {
        true => format!(", {} do not decode", undecodable.len()),
        false => " (not decoded: --verify checks which decode)".to_owned(),
    };
    println!(
        "{}: {} images in {} classes{checked}; fingerprint {}",
        output.display(),
        manifest.images(),
        dataset.classes().len(),
        &manifest.fingerprint()[..16]
    );
    for image in undecodable.iter().take(drift_pipeline::IGNORED_EXAMPLES) {
        println!("  {}: {}", image.path, image.reason);
    }
    if undecodable.len() > drift_pipeline::IGNORED_EXAMPLES {
        println!(
            "  ... and {} more",
            undecodable.len() - drift_pipeline::IGNORED_EXAMPLES
        );
    }
    Ok(())
}

fn merge(shards: &[PathBuf], output: Option<&Path>, overwrite: bool, quiet: bool) -> Result<()> {
    if shards
        .iter()
        .any(|s| s.join(drift_pipeline::evaluate::EVALUATION_JSON).exists())
    {
        let output = output.ok_or_else(|| {
            anyhow::anyhow!("merging evaluate shards: give the report folder with --output")
        })?;
        let evaluation = drift_pipeline::evaluate::merge_reports(shards, output, overwrite)?;
        println!(
            "merged {} shard reports into {}: {} levels x {} batches",
            shards.len(),
            output.display(),
            evaluation.summaries.len(),
            evaluation.batches
        );
        return Ok(());
    }
    let bar = ProgressReport::new(0, quiet, "samples", None);
    let result = drift_pipeline::merge(shards, output, overwrite, &|done, total| {
        bar.bar.set_length(total);
        bar.bar.set_position(done);
    });
    bar.bar.finish_and_clear();
    let summary = result?;
    for warning in &summary.warnings {
        eprintln!("warning: {warning}");
    }
    let seconds = summary.elapsed.as_secs_f64();
    for (folder, samples) in &summary.outputs {
        println!("merged {samples} samples into {}", folder.display());
    }
    println!(
        "{} shard folders, {:.1} MB of images in {seconds:.2} s ({:.1} MB/s)",
        shards.len(),
        summary.zip_bytes as f64 / 1e6,
        summary.zip_bytes as f64 / 1e6 / seconds.max(1e-9)
    );
    Ok(())
}

fn inspect(dir: &Path, all: bool) -> Result<()> {
    let dataset =
        Dataset::scan(dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    let counts = dataset.counts_per_class();
    let width = dataset
        .classes()
        .names()
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(5)
        .max(5);
    println!("dataset {}", dir.display());
    println!("{:>5}  {:<width$}  {:>8}", "label", "class", "images");
    for (label, name) in dataset.classes().names().iter().enumerate() {
        println!("{label:>5}  {name:<width$}  {:>8}", counts[label]);
    }
    println!(
        "{} classes, {} images, {} files or folders ignored",
        dataset.classes().len(),
        dataset.images().len(),
        dataset.ignored_count()
    );
    report_ignored(&dataset, all);
    report_transparency(&dataset);
    Ok(())
}

/// The ignored paths by kind, then the first 20 (or all) of them.
fn report_ignored(dataset: &Dataset, all: bool) {
    if dataset.ignored_count() == 0 {
        return;
    }
    let kinds: Vec<String> = dataset
        .ignored_by_kind()
        .iter()
        .map(|(kind, count)| format!("{count} {kind}"))
        .collect();
    println!("  ignored by kind: {}", kinds.join(", "));
    let shown = if all {
        dataset.ignored()
    } else {
        dataset.ignored_examples()
    };
    for path in shown {
        println!("  ignored {}", path.display());
    }
    if shown.len() < dataset.ignored_count() {
        println!(
            "  ... and {} more (--all lists them all)",
            dataset.ignored_count() - shown.len()
        );
    }
}

/// How many images have an alpha channel and how many are fully transparent, with what
/// `generate` does about them.
fn report_transparency(dataset: &Dataset) {
    let decoder = drift_pipeline::Decoder::new(ImageSize::default());
    let (mut with_alpha, mut invisible, mut unreadable) = (0usize, Vec::new(), 0usize);
    for image in dataset.images() {
        match decoder.transparency(&image.path) {
            Ok(drift_pipeline::Transparency::Opaque) => {}
            Ok(drift_pipeline::Transparency::Alpha) => with_alpha += 1,
            Ok(drift_pipeline::Transparency::FullyTransparent) => {
                with_alpha += 1;
                invisible.push(&image.path);
            }
            Err(_) => unreadable += 1,
        }
    }
    if with_alpha == 0 {
        println!("alpha: no image has an alpha channel");
    } else {
        println!(
            "alpha: {with_alpha} images have an alpha channel, {} of them fully transparent; \
             generate drops alpha by default (the colours stored under the transparency \
             stay, as torchvision's ImageFolder does), --alpha white, black or #RRGGBB \
             composites them onto a colour",
            invisible.len()
        );
        for path in invisible.iter().take(drift_pipeline::IGNORED_EXAMPLES) {
            println!("  fully transparent {}", path.display());
        }
    }
    if unreadable > 0 {
        println!(
            "unreadable: {unreadable} images cannot be read (generate --skip-bad-images skips \
             them)"
        );
    }
}

fn run_demo(
    dir: &Path,
    overwrite: bool,
    images_per_class: usize,
    run: RunArgs,
    cancel: Arc<AtomicBool>,
) -> Result<()> {
    let input = dir.join("dataset");
    // Refuse before writing anything: the demo's files must not replace a user's.
    if !overwrite {
        if let Some(existing) = std::fs::read_dir(&input)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
        {
            anyhow::bail!(
                "{} is not empty (it holds {}): the demo writes its dataset there; use \
                 --overwrite to replace an earlier demo run, or choose another folder",
                input.display(),
                existing.path().display()
            );
        }
        for output in ["reference", "production"] {
            let folder = dir.join(output);
            if let Some(file) = drift_pipeline::existing_output(&folder) {
                anyhow::bail!(
                    "output {} already exists (use --overwrite to replace it)",
                    file.display()
                );
            }
        }
    }
    demo::write_dataset(&input, images_per_class, 7)
        .with_context(|| format!("cannot write the demo dataset to {}", input.display()))?;
    println!(
        "demo dataset: {} (4 generated classes, {images_per_class} images each)",
        input.display()
    );
    let options = GeneratorOptions {
        overwrite,
        ..options(&run, cancel)
    };
    let mut generator = DriftGenerator::new(drift_pipeline::DEFAULT_SEED, &input, options)?;
    let total = 4 * images_per_class as u64;
    let reference = sample(&mut generator, total / 2, &dir.join("reference"), run.quiet)?;
    report(&reference, &generator, run.quiet);
    // Production data drifted by the one-knob `default` transform (blur at this level).
    generator.add_abrupt_drift(vec!["default=0.3".parse()?])?;
    let production = sample(
        &mut generator,
        total - total / 2,
        &dir.join("production"),
        run.quiet,
    )?;
    report(&production, &generator, run.quiet);
    Ok(())
}
