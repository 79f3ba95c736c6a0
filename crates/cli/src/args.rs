//! The command line's grammar: every subcommand, flag and value parser (clap derive). The
//! commands (`commands/`) take these as they are; flag names live here and in the messages of
//! the command that owns them.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use drift_pipeline::{
    EmbeddingOptions, ImageSize, MAX_THREADS, PngCompression, RawRun, TransformKind,
};

use crate::COMMAND_LINE;

#[derive(Parser)]
#[command(
    name = "drift-pipeline",
    version,
    about = "Generate image datasets with controlled, synthetic drift."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Sample a class-folder dataset into a timestamped stream (zip + Parquet tables).
    Generate(Box<GenerateArgs>),
    /// Run a scenario file: segments of clean and drifted samples from one seeded stream.
    Run {
        /// The scenario (TOML); see docs/scenario.toml.
        scenario: PathBuf,
        /// Worker threads per parallel stage (default: one per core).
        #[arg(long, allow_negative_numbers = true, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = threads)]
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
        #[arg(long, allow_negative_numbers = true, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = threads)]
        threads: usize,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Join the shard folders of a run (made with --shard K/N) into the output one process
    /// writes, byte for byte: a one-segment run into --output, a scenario's segments into their
    /// own folders; `evaluate --shard` and `detect --shard` reports into the report --output
    /// names. Refuses missing, duplicated or foreign shards. Reads the shards only.
    Merge {
        /// The shard folders, in any order.
        #[arg(required = true, value_name = "SHARD_DIR")]
        shards: Vec<PathBuf>,
        /// The merged output folder (one-segment runs and evaluate reports; a scenario's
        /// segments go where it says).
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Do not merge: check the shards as a merge would and write shard-index.json into
        /// --output, listing them in sample order with their files' sizes and SHA-256 (the
        /// no-merge layout, for loaders that read shards).
        #[arg(long)]
        index: bool,
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
    /// Would a detector catch this drift: run drift detectors (KS or Cramér-von Mises per
    /// feature, MMD or LSDD with a permutation test; alibi-detect's definitions and defaults) over a
    /// stream's embeddings against a clean reference output, window by window. Writes
    /// windows.parquet, alarms.parquet and detect.json.
    Detect(DetectArgs),
    /// Grade detectors against the stream's ground truth: alarms (from detect reports or your
    /// own files) matched to the drift episodes its drift logs record, with delay, precision,
    /// recall, false-alarm rate and run length beside always/periodic baselines; windows
    /// judged by what their samples were, for the size and the power per transform and level
    /// (Clopper-Pearson). Writes episodes.parquet, windows_scored.parquet, power.parquet,
    /// summary.csv, power_by_level.png/.svg, pvalue_calibration.png/.svg,
    /// delay_by_level.png/.svg, delay_vs_far.png/.svg and score.json.
    Score(ScoreArgs),
    /// ResNet18 weights for --embeddings: download them, or show what is cached.
    Weights {
        #[command(subcommand)]
        command: WeightsCommand,
    },
    /// Plot drift logs over time: the drift probability, the drifted fraction and each
    /// transform's level per sample, segments marked, and each class's share when a segment
    /// has label shift. Writes FILE.png and FILE.svg.
    Timeline(TimelineArgs),
    /// Draw what a drift looks like: a contact sheet with a row per transform and a column per
    /// drift level (the original first), each cell what generate would write for that image,
    /// transform and level. Writes FILE.png and FILE.svg.
    Preview(PreviewArgs),
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
        #[arg(long, allow_negative_numbers = true, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        images_per_class: u64,
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum WeightsCommand {
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
pub(crate) struct GenerateArgs {
    /// The dataset root: one sub-folder per class, images found recursively [default with
    /// --continue-from: the stream's input].
    #[arg(long, value_name = "DIR", required_unless_present = "continue_from")]
    pub(crate) input: Option<PathBuf>,
    /// Continue the stream of an earlier output: sample ids, timestamps and images go on where
    /// DIR ended (no image of DIR's stream comes again while unused ones remain). Its seed,
    /// input, size and clock are the defaults; a different one, or a changed dataset, is
    /// refused.
    #[arg(long, value_name = "DIR")]
    pub(crate) continue_from: Option<PathBuf>,
    /// The output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) output: PathBuf,
    /// How many samples to draw (each image at most once).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub(crate) num_samples: u64,
    /// Seed of the permutation, file names and every random draw [default: 42].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) seed: Option<u64>,
    /// Put zip entries under <class_name>/ instead of the zip root.
    #[arg(long)]
    pub(crate) organize_by_class: bool,
    /// Output image size, WIDTHxHEIGHT or one number for a square [default: 224x224].
    #[arg(long, value_name = "WxH")]
    pub(crate) size: Option<String>,
    /// Timestamp of sample 0, in seconds since the Unix epoch [default: 1717232400, 2024-06-01
    /// 09:00 UTC].
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub(crate) start_timestamp: Option<f64>,
    /// Seconds between consecutive samples [default: 1800].
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub(crate) delta_timestamp: Option<f64>,
    /// JSON or TOML table: class name or original label -> published label.
    #[arg(long, value_name = "FILE")]
    pub(crate) class_mapping: Option<PathBuf>,
    /// Skip unreadable images (counted and reported) instead of failing.
    #[arg(long)]
    pub(crate) skip_bad_images: bool,
    /// Alpha channels: drop (the default; colours under transparency stay, as torchvision's
    /// ImageFolder) or composite onto white, black or #RRGGBB.
    #[arg(long, value_name = "MODE")]
    pub(crate) alpha: Option<String>,
    /// Drift: apply transform NAME at drift_level LEVEL in [0, 1] (or an ImageNet-C corruption
    /// at severity k: NAME@k); repeat to chain, in order.
    #[arg(long = "transform", value_name = "NAME=LEVEL", long_help = transform_help(
        "Drift: apply transform NAME at drift_level LEVEL in [0, 1] (or an ImageNet-C corruption \
         at severity k: NAME@k); repeat to chain, in order."))]
    pub(crate) transforms: Vec<String>,
    /// How the drift arrives over the samples: abrupt (all, the default), gradual:width=N
    /// [,center=K][,ramp=linear], incremental:from=A,to=B (levels scaled from A to B), or
    /// recurring:period=N,duty=F. Needs --transform.
    #[arg(long, value_name = "SHAPE")]
    pub(crate) drift: Option<String>,
    /// The segment name in drift_log.parquet and drift.json [default: segment 1].
    #[arg(long, value_name = "NAME")]
    pub(crate) segment: Option<String>,
    /// Replace an existing output in the output folder.
    #[arg(long)]
    pub(crate) overwrite: bool,
    #[command(flatten)]
    pub(crate) shard: ShardArgs,
    #[command(flatten)]
    pub(crate) embedding: EmbeddingArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Args)]
pub(crate) struct ShardArgs {
    /// Make only shard K (from 0) of N: each segment's contiguous sample ids from K*n/N, into
    /// the output folder's segment-1/ (segment-N/ for a scenario); `merge` joins the N shards
    /// into what one process writes, byte for byte. Any engine can run the shards (SLURM:
    /// --shard $SLURM_ARRAY_TASK_ID/N).
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<String>,
    /// A dataset manifest (drift-pipeline index): the listing comes from it instead of listing
    /// the input again; files the run reads are checked against it. Sharded runs with
    /// --skip-bad-images need one made with --verify.
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct TimelineArgs {
    /// Output folders (of generate, or a scenario's segments), plotted as one stream in
    /// sample_id order; folders whose sample ids overlap are warned about.
    #[arg(required = true, value_name = "DIR")]
    pub(crate) dirs: Vec<PathBuf>,
    /// Where to write the plot: FILE.png and FILE.svg (name either one, or no extension).
    #[arg(long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// Samples in the sliding window of the drifted fraction and the class shares.
    #[arg(long, allow_negative_numbers = true, value_name = "N", default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) window: u64,
    /// The plot's title [default: "Drift over time" and the folders].
    #[arg(long)]
    pub(crate) title: Option<String>,
    /// Draw the class-share panel even without label shift.
    #[arg(long)]
    pub(crate) class_mix: bool,
    /// A detect report on this stream: a panel per detector under the drift, with its
    /// statistic at each decision, its threshold (where it is on the statistic's scale; KS and
    /// CvM decide on p-values) and its alarms as red ticks.
    #[arg(long, value_name = "DIR")]
    pub(crate) detections: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct PreviewArgs {
    /// The image to preview the transforms on (or --input for a dataset's images).
    #[arg(
        value_name = "IMAGE",
        required_unless_present = "input",
        conflicts_with = "input"
    )]
    pub(crate) image: Option<PathBuf>,
    /// A dataset (one sub-folder per class, local or on object storage): preview on --samples
    /// of its images, spread evenly over its listing, a row per transform and image.
    #[arg(long, value_name = "DIR")]
    pub(crate) input: Option<PathBuf>,
    /// Images of --input.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "input", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) samples: u64,
    /// A transform to show, a row each (repeat the flag): any name --transform takes, without
    /// a level.
    #[arg(
        long = "transform",
        value_name = "NAME",
        required_unless_present = "catalog"
    )]
    pub(crate) transforms: Vec<String>,
    /// Every registered transform: SPEC's eight and the 19 ImageNet-C corruptions.
    #[arg(long, conflicts_with = "transforms")]
    pub(crate) catalog: bool,
    /// The columns' drift levels, comma-separated [default: 0.2,0.4,0.6,0.8,1.0].
    #[arg(
        long,
        value_name = "L,...",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub(crate) levels: Vec<f64>,
    /// Image size, as generate's --size [default: 224x224].
    #[arg(long, value_name = "WxH")]
    pub(crate) size: Option<String>,
    /// Seed of every draw, as generate's --seed (image i of the sheet is sample_id i) [default:
    /// 42].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) seed: Option<u64>,
    /// Where to write the sheet: FILE.png and FILE.svg (name either one, or no extension).
    #[arg(long, value_name = "FILE")]
    pub(crate) output: PathBuf,
}

#[derive(Args)]
pub(crate) struct DetectArgs {
    /// A clean output with embeddings (no drifted or label-shifted sample), sharing no image
    /// with the stream.
    #[arg(long, value_name = "DIR")]
    pub(crate) reference: PathBuf,
    /// The stream: output folders with embeddings (generate outputs or a scenario's segments),
    /// consecutive, in stream order.
    #[arg(long, value_name = "DIR", required = true, num_args = 1..)]
    pub(crate) stream: Vec<PathBuf>,
    /// The report folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) output: PathBuf,
    /// A detector: `mmd` (settings `permutations=N`, `sigma=S`; default: 100 permutations, the
    /// median heuristic; for long streams `null=calibrated` with `draws=B`, `pool=P`, or
    /// `estimator=linear`), `lsdd` (also `centers=C`, `lambda_rd_max=R`; default R/20 centres,
    /// 0.2), `ks` or `cvm` (a test per feature; setting `correction=bonferroni|fdr`),
    /// `mmd-online:ert=E,window=W` (per sample; also `bootstraps=B`, `sigma=S`); repeat for
    /// several.
    #[arg(long = "detector", value_name = "SPEC", default_value = "mmd")]
    pub(crate) detectors: Vec<drift_detect::DetectorSpec>,
    /// Samples per test window.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub(crate) window: u64,
    /// Samples from one window's start to the next [default: the window, so windows do not
    /// overlap].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub(crate) stride: Option<u64>,
    /// The significance level: a window raises an alarm if its p-value is below it (KS: after
    /// the correction for 512 features).
    #[arg(long, value_name = "P", default_value_t = 0.05)]
    pub(crate) alpha: f64,
    /// The seed of every permutation (window w of detector d draws from (seed, w, d)).
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Threads testing windows (default: one per core); the report is the same at any count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) threads: Option<u64>,
    /// Replace an existing report in the output folder.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Test only shard K (from 0) of N: a contiguous range of the stream's windows, with the
    /// draws one process makes for them; `merge --output DIR` joins the N shard reports into
    /// the report one process writes, byte for byte (not with online detectors).
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<String>,
}

#[derive(Args)]
pub(crate) struct EvaluateArgs {
    /// The dataset root: one sub-folder per class, images found recursively.
    #[arg(long, value_name = "DIR")]
    pub(crate) input: PathBuf,
    /// The report folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) output: PathBuf,
    /// The transform to sweep; repeat for a combined list, applied in order, all at each level.
    #[arg(long = "transform", value_name = "NAME", required = true, value_parser = sweep_transform, long_help = transform_help(
        "The transform to sweep; repeat for a combined list, applied in order, all at each level."))]
    pub(crate) transforms: Vec<TransformKind>,
    /// Drift levels to measure, comma-separated, each in [0, 1].
    #[arg(long, value_name = "L,L,...", value_delimiter = ',', value_parser = unit_f64,
          default_value = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")]
    pub(crate) levels: Vec<f64>,
    /// Evaluate only the first N images of the seeded order (default: the whole dataset).
    #[arg(long, allow_negative_numbers = true, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) num_samples: Option<u64>,
    /// Seed of the image order and of every transform draw.
    #[arg(long, allow_negative_numbers = true, default_value_t = drift_pipeline::DEFAULT_SEED)]
    pub(crate) seed: u64,
    /// Image size the network sees, WIDTHxHEIGHT or one number for a square.
    #[arg(long, value_name = "WxH", default_value = "224x224")]
    pub(crate) size: ImageSize,
    /// Replace an earlier report in the output folder.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Measure only shard K (from 0) of N of the batches (of every level) into the output
    /// folder; `merge` joins the N shard reports into the report one process writes.
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<drift_pipeline::Shard>,
    /// Find the level whose median KL reaches this: the levels are measured, then the bracket
    /// below the first that reaches it is halved (each midpoint measured) down to
    /// --target-tolerance; the report holds every level measured and evaluation.json the answer.
    #[arg(long, value_name = "KL", conflicts_with = "shard")]
    pub(crate) target_kl: Option<f64>,
    /// The level precision of --target-kl's search.
    #[arg(
        long,
        value_name = "STEP",
        default_value_t = 0.01,
        requires = "target_kl"
    )]
    pub(crate) target_tolerance: f64,
    #[command(flatten)]
    pub(crate) network: NetworkArgs,
    /// Threads for the embedder (default: one per core).
    #[arg(long, allow_negative_numbers = true, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = threads)]
    pub(crate) threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// The network's flags, as written: the run spec parses and checks them.
#[derive(Args)]
pub(crate) struct NetworkArgs {
    /// ResNet18 weights: torchvision .pth or safetensors (default: the cache, see `weights`).
    #[arg(long, value_name = "FILE")]
    pub(crate) weights: Option<PathBuf>,
    /// Where to embed: auto (a GPU if this build has one and it answers, else CPU, the
    /// default), cpu, gpu.
    #[arg(long, value_name = "DEVICE")]
    pub(crate) device: Option<String>,
    /// CPU backend: flex (fastest, the default) or ndarray (builds with the `ndarray` feature).
    #[arg(long, value_name = "BACKEND")]
    pub(crate) cpu_backend: Option<String>,
    /// Network input: none ([0, 1] pixels, as the Python tool; the default) or imagenet
    /// (mean/std).
    #[arg(long, value_name = "MODE")]
    pub(crate) normalize: Option<String>,
    /// Images per forward pass (in evaluate, also the images per KL: SPEC's batch B)
    /// [default: 32].
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub(crate) batch_size: Option<u64>,
}

impl NetworkArgs {
    /// The flags into `raw`, with embeddings on or off.
    pub(crate) fn fill(&self, raw: &mut RawRun, embeddings: bool) {
        raw.embeddings = embeddings;
        raw.weights = self.weights.clone();
        raw.device = self.device.clone();
        raw.cpu_backend = self.cpu_backend.clone();
        raw.normalize = self.normalize.clone();
        raw.batch_size = self.batch_size;
    }

    /// The embedding options, checked by the run spec.
    pub(crate) fn options(&self) -> Result<EmbeddingOptions> {
        let mut raw = RawRun::default();
        self.fill(&mut raw, true);
        Ok(
            drift_pipeline::embedding_options(&raw, COMMAND_LINE, Path::new(""))?
                .expect("embeddings are on"),
        )
    }
}

#[derive(Args)]
pub(crate) struct EmbeddingArgs {
    /// Also write embeddings.parquet: 512-d ResNet18 features of every sample.
    #[arg(long)]
    pub(crate) embeddings: bool,
    #[command(flatten)]
    pub(crate) network: NetworkArgs,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Worker threads per parallel stage (default: one per core).
    #[arg(long, allow_negative_numbers = true, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = threads)]
    pub(crate) threads: usize,
    /// PNG compression effort: fast, balanced or high.
    #[arg(long, value_name = "LEVEL", default_value = "fast")]
    pub(crate) png_compression: PngCompression,
    /// No progress bars.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

pub(crate) fn threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n <= MAX_THREADS => Ok(n),
        Ok(_) => Err(format!(
            "{text} threads is more than the {MAX_THREADS} allowed (0 means one per core)"
        )),
        Err(_) => Err(format!("'{text}' is not a thread count")),
    }
}

pub(crate) fn finite_f64(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("'{text}' is not a finite number")),
    }
}

/// `--help` for a transform flag: `summary`, then every registered transform and what its level
/// controls (from the registry, so a new transform shows up here by itself).
/// A transform to sweep: a name alone; with a level, say that the levels are `--levels`'.
pub(crate) fn sweep_transform(text: &str) -> Result<TransformKind, String> {
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

pub(crate) fn transform_help(summary: &str) -> String {
    let mut help = format!(
        "{summary}\n\nImageNet-C corruptions are imagenet_c:NAME (the bare NAME too where it \
         is shown in brackets); NAME@k is severity k (level k/5).\n\nTransforms:"
    );
    for kind in TransformKind::all() {
        let alias = kind.alias().map(|a| format!(" ({a})")).unwrap_or_default();
        help.push_str(&format!(
            "\n  {}{alias} [{}]: {}",
            kind.name(),
            kind.family().label(),
            kind.description()
        ));
    }
    help
}

pub(crate) fn unit_f64(text: &str) -> Result<f64, String> {
    match finite_f64(text.trim())? {
        value if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("drift level '{text}' is outside [0, 1]")),
    }
}

#[derive(Args)]
pub(crate) struct ScoreArgs {
    /// The stream: output folders (generate outputs or a scenario's segments), consecutive, in
    /// stream order; embeddings are not needed.
    #[arg(long, value_name = "DIR", required = true, num_args = 1..)]
    pub(crate) stream: Vec<PathBuf>,
    /// A detect report run on this stream (its alarms and windows); repeat for several.
    #[arg(long, value_name = "DIR")]
    pub(crate) detections: Vec<PathBuf>,
    /// Your detector's alarms, .parquet or .csv: `sample_id` (or `timestamp`: the last sample at
    /// or before it), optional `detector` (default: the file's name); repeat for several.
    #[arg(long, value_name = "FILE")]
    pub(crate) alarms: Vec<PathBuf>,
    /// Your batch detector's windows, .parquet or .csv: `first_sample_id`, `last_sample_id`,
    /// `alarm`, optional `p_value` and `detector` (for power curves); repeat for several.
    #[arg(long, value_name = "FILE")]
    pub(crate) windows: Vec<PathBuf>,
    /// The report folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) output: PathBuf,
    /// Samples after a drift episode's end within which an alarm still detects it.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub(crate) max_delay: u64,
    /// Samples before an episode's onset from which an alarm counts for it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_early: u64,
    /// The false-alarm rate `far` counts false alarms per this many samples.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rate_unit: u64,
    /// A window counts as drifted (for power) when at least this share of its samples is; a
    /// window with fewer (but some) drifted samples is mixed and left out.
    #[arg(long, value_name = "SHARE", default_value_t = 1.0)]
    pub(crate) drifted_min: f64,
    /// The power the minimum detectable level must reach.
    #[arg(long, value_name = "P", default_value_t = 0.8)]
    pub(crate) power_target: f64,
    /// The confidence of the Clopper-Pearson intervals.
    #[arg(long, value_name = "C", default_value_t = 0.95)]
    pub(crate) confidence: f64,
    /// Bin levels into N equal bins over [0, 1] (incremental drift) [default: each distinct
    /// level is a bin, as in an abrupt sweep].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub(crate) level_bins: Option<u64>,
    /// A baseline scored beside the detectors: `always` (an alarm at every window's end) or
    /// `periodic:P` (one every P samples); repeat for several [default: always and
    /// periodic:10W, W the detect report's window].
    #[arg(long = "baseline", value_name = "SPEC")]
    pub(crate) baselines: Vec<drift_detect::Baseline>,
    /// The window (and stride) of the `always` baseline without a detect report.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) window: u64,
    /// The significance level drawn in the power plot without a detect report.
    #[arg(long, value_name = "P", default_value_t = 0.05)]
    pub(crate) alpha: f64,
    /// Replace an existing report in the output folder.
    #[arg(long)]
    pub(crate) overwrite: bool,
}
