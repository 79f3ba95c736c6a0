//! `cargo xtask bench`: images/s of each stage on this machine, in a release build.
//!
//! Generates a deterministic demo dataset (or uses `--input DIR`), then times each stage alone
//! on the same images: decode + resize, every transform and the full chain, PNG encode at each
//! compression setting, end-to-end `sample` calls without and with transforms and embeddings,
//! and an `evaluate` sweep (image-levels/s, the Python tool's unit). Ratios within
//! one run are meaningful; absolute numbers on a shared machine are noisy.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use drift_core::{ImageSize, RgbImage8};
use drift_pipeline::{DriftGenerator, GeneratorOptions, TransformChain};
use drift_reader::{Dataset, Decoder};
use drift_transformer::TransformKind;
use drift_writer::{PngCompression, encode_png};

struct Options {
    images: usize,
    input: Option<PathBuf>,
    json: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        images: 1024,
        input: None,
        json: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--images" => options.images = value.parse().context("--images takes a number")?,
            "--input" => options.input = Some(PathBuf::from(value)),
            "--json" => options.json = Some(PathBuf::from(value)),
            other => {
                anyhow::bail!("unknown flag {other}: use --images N, --input DIR, --json FILE")
            }
        }
    }
    Ok(options)
}

/// The embedder alone on 224x224 images at batch 32, and PyTorch's ResNet18 on the same
/// machine in the same run when `DRIFT_BENCH_TORCH_PYTHON` names a Python with torch.
/// Returns PyTorch's images/s when it was measured.
fn embedding_rows(rows: &mut Rows, images: &[RgbImage8], threads: usize) -> Result<Option<f64>> {
    const BATCH: usize = 32;
    let weights = drift_embedder::synthetic_state_dict(18);
    let embedder = drift_embedder::Embedder::new(
        &weights,
        drift_embedder::EmbedderOptions {
            threads,
            ..Default::default()
        },
    )?;
    let batches: Vec<Vec<&RgbImage8>> = images
        .chunks_exact(BATCH)
        .take(4)
        .map(|chunk| chunk.iter().collect())
        .collect();
    anyhow::ensure!(
        !batches.is_empty(),
        "the embedding bench needs {BATCH} images"
    );
    embedder.embed(&batches[0])?; // warm-up
    let started = Instant::now();
    for batch in &batches {
        std::hint::black_box(embedder.embed(batch)?);
    }
    rows.add(
        format!(
            "embed ResNet18, {} (batch {BATCH})",
            embedder.device_description()
        ),
        rate(batches.len() * BATCH, started.elapsed().as_secs_f64()),
    );
    match std::env::var_os("DRIFT_BENCH_TORCH_PYTHON") {
        Some(python) => {
            let script = crate::workspace_root().join("tools/bench/torch_resnet18.py");
            let output = std::process::Command::new(python)
                .arg(script)
                .args([
                    "--threads",
                    &threads.to_string(),
                    "--batch",
                    &BATCH.to_string(),
                ])
                .output()
                .context("cannot run the PyTorch benchmark")?;
            anyhow::ensure!(
                output.status.success(),
                "the PyTorch benchmark failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let line: serde_json::Value = serde_json::from_slice(&output.stdout)?;
            let torch = line["images_per_s"].as_f64().unwrap_or(f64::NAN);
            rows.add(
                format!(
                    "PyTorch {} ResNet18 ({threads} threads, batch {BATCH}), for comparison",
                    line["torch"].as_str().unwrap_or("?")
                ),
                torch,
            );
            Ok(Some(torch))
        }
        None => {
            eprintln!(
                "bench: set DRIFT_BENCH_TORCH_PYTHON to a Python with torch and torchvision to \
                 compare with PyTorch's ResNet18"
            );
            Ok(None)
        }
    }
}

fn rate(count: usize, seconds: f64) -> f64 {
    count as f64 / seconds.max(1e-9)
}

/// The table's rows: printed as they come (a long run shows progress), kept for `--json`.
#[derive(Default)]
struct Rows(Vec<(String, f64)>);

impl Rows {
    fn add(&mut self, stage: String, images_per_s: f64) {
        println!("| {stage} | {images_per_s:>9.1} |");
        self.0.push((stage, images_per_s));
    }
}

/// Cores, CPU model and the git commit: what a number needs to be compared with another.
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(crate::workspace_root())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    serde_json::json!({
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpu": cpu,
        "commit": commit,
        "os": std::env::consts::OS,
    })
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let scratch = tempfile::tempdir()?;
    let input = match &options.input {
        Some(dir) => dir.clone(),
        None => {
            let dir = scratch.path().join("dataset");
            let per_class = options.images.div_ceil(4);
            eprintln!(
                "bench: generating {} demo images (150-1200 px, JPEG and PNG)",
                4 * per_class
            );
            drift_pipeline::demo::write_dataset_sized(&dir, per_class, 11, (150, 1200))?;
            dir
        }
    };
    let dataset = Dataset::scan(&input)?;
    let count = options.images.min(dataset.images().len());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let machine = machine();
    println!(
        "machine: {} cores, {}; commit {}\n",
        machine["cores"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["commit"].as_str().unwrap_or("?")
    );
    println!("| stage | images/s |");
    println!("|---|---:|");
    let mut rows = Rows::default();

    let decoder = Decoder::new(ImageSize::default());
    let started = Instant::now();
    let images: Vec<RgbImage8> = dataset.images()[..count]
        .iter()
        .map(|entry| decoder.decode(&entry.path))
        .collect::<Result<_, _>>()?;
    rows.add(
        "decode + resize to 224x224 (1 thread)".into(),
        rate(count, started.elapsed().as_secs_f64()),
    );

    let sample = &images[..count.min(256)];
    let mut chains: Vec<(String, TransformChain)> = TransformKind::ALL
        .iter()
        .map(|kind| {
            (
                kind.name().to_owned(),
                format!("{kind}=0.5").parse().expect("valid"),
            )
        })
        .collect();
    chains.push((
        "all seven transforms".to_owned(),
        "rotate=0.5,brightness=0.5,contrast=0.5,saturation=0.5,hue=0.5,gaussian_blur=0.5,gaussian_noise=0.5"
            .parse()
            .expect("valid"),
    ));
    for (name, chain) in &chains {
        let started = Instant::now();
        for (i, image) in sample.iter().enumerate() {
            std::hint::black_box(chain.apply(image.clone(), 1, i as u64));
        }
        rows.add(
            format!("transform {name}=0.5 (1 thread)"),
            rate(sample.len(), started.elapsed().as_secs_f64()),
        );
    }
    for compression in PngCompression::ALL {
        let started = Instant::now();
        let mut bytes = 0;
        for image in sample {
            bytes += encode_png(image, compression)?.len();
        }
        rows.add(
            format!(
                "PNG encode {} (1 thread, {:.0} KiB/image)",
                compression.name(),
                bytes as f64 / sample.len() as f64 / 1024.0
            ),
            rate(sample.len(), started.elapsed().as_secs_f64()),
        );
    }

    let torch = embedding_rows(&mut rows, &images, threads)?;

    let weights = scratch.path().join("bench-weights.safetensors");
    drift_embedder::write_synthetic_weights(18, &weights)?;
    for (name, drift, embed) in [
        ("no transform", None, false),
        ("7 transforms", Some(&chains[chains.len() - 1].1), false),
        ("no transform, embeddings", None, true),
    ] {
        let options = GeneratorOptions {
            embeddings: embed.then(|| drift_pipeline::EmbeddingOptions {
                weights: Some(weights.clone()),
                ..Default::default()
            }),
            ..GeneratorOptions::default()
        };
        let mut generator = DriftGenerator::new(42, &input, options)?;
        if let Some(chain) = drift {
            generator.add_abrupt_drift(chain.specs().to_vec())?;
        }
        let output = scratch
            .path()
            .join(format!("out-{}", name.replace(' ', "-")));
        // Embedding is ~10x slower than the rest: time it on fewer images.
        let n = if embed { count.min(256) } else { count };
        let summary = generator.sample(n as u64, &output)?;
        rows.add(
            format!("generate end to end, {name} ({threads} threads, {n} images)"),
            rate(n, summary.elapsed.as_secs_f64()),
        );
    }

    // evaluate: each image once clean and once per level; images/s counts image-levels, as the
    // Python tool's figure did (it embedded clean and drifted every time: 2 passes per image).
    let n = count.min(64);
    let levels = drift_pipeline::evaluate::default_levels();
    let evaluation = drift_pipeline::evaluate::evaluate(
        &input,
        &scratch.path().join("evaluate"),
        &drift_pipeline::evaluate::EvaluateOptions {
            levels: levels.clone(),
            num_samples: Some(n as u64),
            embedding: drift_pipeline::EmbeddingOptions {
                weights: Some(weights.clone()),
                ..Default::default()
            },
            ..Default::default()
        },
        &(),
    )?;
    rows.add(
        format!(
            "evaluate default, {} levels ({threads} threads, {n} images, batch 32)",
            levels.len()
        ),
        evaluation.images_per_second(),
    );
    if let Some(torch) = torch {
        // The Python tool embedded every image twice per level (clean and drifted).
        rows.add(
            "the Python tool's evaluate on PyTorch, estimated (PyTorch / 2), for comparison".into(),
            torch / 2.0,
        );
    }
    if let Some(path) = &options.json {
        let json = serde_json::json!({
            "machine": machine,
            "images": count,
            "rows": rows.0.iter().map(|(stage, rate)| serde_json::json!({
                "stage": stage,
                "images_per_s": rate,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
