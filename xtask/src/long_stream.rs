//! `cargo xtask long-stream`: `detect` on the long stream, a 1,000,000-sample stream
//! against a 5,000-sample reference in windows of 500, timed, with its peak memory.
//!
//! The outputs are synthetic, written through the output writer (a PNG of one pixel per sample,
//! N(0, 1) embeddings, the stream's second half shifted by 0.1 in every feature) with a
//! `drift.json` that holds what `detect` reads (samples, the embeddings' identity): embedding a
//! million images would take hours here, and the detectors' cost does not depend on where the
//! embeddings came from. They are built once under the target directory (about 4 GiB of
//! embeddings) and reused while the sizes match.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use drift_core::{ClassTable, Purpose, SampleMeta, sample_rng};
use drift_writer::{DriftLogRow, OUTPUT_FILES, OutputFolder, OutputWriter, WriterOptions};
use rand_distr::{Distribution, StandardNormal};

use crate::bench::{flag_values, process_usage};

struct Sizes {
    samples: u64,
    reference: u64,
    window: usize,
    detectors: Vec<String>,
    threads: usize,
    dir: PathBuf,
}

fn sizes(args: &[String], root: &Path) -> Result<Sizes> {
    let mut sizes = Sizes {
        samples: 1_000_000,
        reference: 5_000,
        window: 500,
        detectors: Vec::new(),
        threads: std::thread::available_parallelism().map_or(1, usize::from),
        dir: crate::target_dir(root).join("long-stream"),
    };
    for (flag, value) in flag_values(args)? {
        match flag {
            "--samples" => sizes.samples = value.parse().context("--samples")?,
            "--reference" => sizes.reference = value.parse().context("--reference")?,
            "--window" => sizes.window = value.parse().context("--window")?,
            "--detector" => sizes.detectors.push(value.to_owned()),
            "--threads" => sizes.threads = value.parse().context("--threads")?,
            "--dir" => sizes.dir = PathBuf::from(value),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    if sizes.detectors.is_empty() {
        sizes.detectors.push("mmd:null=calibrated".into());
    }
    Ok(sizes)
}

/// Builds the outputs if missing, then runs each detector in its own process (its peak memory
/// its own) and prints one line per run.
pub fn run(args: &[String], root: &Path) -> Result<()> {
    let sizes = sizes(args, root)?;
    let stamp = sizes.dir.join("sizes");
    let wanted = format!("{} {}\n", sizes.samples, sizes.reference);
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&sizes.dir);
        std::fs::create_dir_all(&sizes.dir)?;
        let started = Instant::now();
        let half = sizes.samples / 2;
        write_output(&sizes.dir.join("ref"), 0, sizes.reference, 0.0, "ref")?;
        write_output(
            &sizes.dir.join("clean"),
            sizes.reference,
            half,
            0.0,
            "clean",
        )?;
        write_output(
            &sizes.dir.join("shifted"),
            sizes.reference + half,
            sizes.samples - half,
            0.1,
            "shifted",
        )?;
        std::fs::write(&stamp, wanted)?;
        eprintln!(
            "long-stream: outputs written in {:.0} s under {}",
            started.elapsed().as_secs_f64(),
            sizes.dir.display()
        );
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    println!(
        "detect on {} stream samples, reference {}, windows of {}, {} threads, {cpu}",
        sizes.samples, sizes.reference, sizes.window, sizes.threads
    );
    for detector in &sizes.detectors {
        let output = Command::new(std::env::current_exe()?)
            .arg("long-stream-detect")
            .args(["--dir", &sizes.dir.to_string_lossy()])
            .args(["--window", &sizes.window.to_string()])
            .args(["--threads", &sizes.threads.to_string()])
            .args(["--detector", detector])
            .output()
            .context("cannot start the detect process")?;
        if !output.status.success() {
            anyhow::bail!(
                "detect {detector} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
    Ok(())
}

/// One detect run in this process: wall and CPU seconds, peak resident memory.
pub fn detect_child(args: &[String]) -> Result<()> {
    let (cpu_at_start, _) = process_usage()?;
    let (mut dir, mut window, mut threads, mut detector) = (None, 500, 2, None);
    for (flag, value) in flag_values(args)? {
        match flag {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--window" => window = value.parse()?,
            "--threads" => threads = value.parse()?,
            "--detector" => detector = Some(value.parse::<drift_detect::DetectorSpec>()?),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let dir = dir.context("--dir")?;
    let detector = detector.context("--detector")?;
    let name = detector.name();
    let options = drift_detect::DetectOptions {
        detectors: vec![detector],
        window,
        stride: None,
        alpha: 0.05,
        seed: 0,
        overwrite: true,
        threads,
        shard: None,
    };
    let started = Instant::now();
    let record = drift_detect::detect(
        &dir.join("ref"),
        &[dir.join("clean"), dir.join("shifted")],
        &dir.join("report"),
        &options,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let (cpu, peak) = process_usage()?;
    let summary = &record.detectors[0];
    println!(
        "  {name}: {seconds:.1} s wall, {:.1} s CPU, peak RSS {:.0} MiB; {} windows, {} alarms",
        cpu - cpu_at_start,
        peak as f64 / (1024.0 * 1024.0),
        summary.windows,
        summary.alarms
    );
    Ok(())
}

/// An output of `count` synthetic samples from `first_id`, embeddings N(0, 1) + `shift`.
fn write_output(folder: &Path, first_id: u64, count: u64, shift: f64, name: &str) -> Result<()> {
    // A PNG of one black pixel: what the zip holds does not matter to `detect`.
    let png = drift_writer::encode_png(
        &drift_core::RgbImage8::black(drift_core::ImageSize::new(1, 1)?),
        drift_writer::PngCompression::Fast,
    )?;
    let mut writer = OutputWriter::create(
        OutputFolder::lock(folder, &OUTPUT_FILES)?,
        WriterOptions {
            organize_by_class: false,
            overwrite: true,
            embeddings: true,
            segment: name.into(),
            source_root: PathBuf::new(),
            class_priors: None,
        },
        ClassTable::new(vec!["synthetic".into()]),
    )?;
    let mut rng = sample_rng(7, first_id, Purpose::Permutation);
    let mut embedding = vec![0f32; drift_writer::EMBEDDING_DIM];
    for i in 0..count {
        let id = first_id + i;
        for value in &mut embedding {
            let v: f64 = StandardNormal.sample(&mut rng);
            *value = (v + shift) as f32;
        }
        let meta = SampleMeta {
            sample_id: id,
            timestamp: 1_717_232_400.0 + 60.0 * id as f64,
            label: 0,
            source_path: PathBuf::from(format!("{name}/{id}.png")),
            file_name: format!("{id:012}.png"),
        };
        writer.write(&meta, 0, &png, Some(&embedding), &DriftLogRow::clean())?;
    }
    let record = serde_json::json!({
        "tool": "cargo xtask long-stream (synthetic)",
        "samples": count,
        "embeddings": {"weights_sha256": "synthetic", "normalize": "none"},
    });
    writer
        .finish(|_| serde_json::to_string_pretty(&record).expect("json") + "\n")?
        .commit()?;
    Ok(())
}
