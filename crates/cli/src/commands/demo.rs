//! `drift-pipeline demo`: a synthetic dataset (`crate::demo`) and, with `--run`, a reference
//! and a drifted production sample of it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use drift_pipeline::{DriftGenerator, GeneratorOptions, SampleSummary};

use crate::args::RunArgs;
use crate::report::{ProgressReport, report};

pub(crate) fn options(run: &RunArgs, cancel: Arc<AtomicBool>) -> GeneratorOptions {
    GeneratorOptions {
        threads: run.threads,
        png_compression: run.png_compression,
        cancel: Some(cancel),
        ..GeneratorOptions::default()
    }
}

pub(crate) fn sample(
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

pub(crate) fn run_demo(
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
    crate::demo::write_dataset(&input, images_per_class, 7)
        .with_context(|| format!("cannot write the demo dataset to {}", input.display()))?;
    outln!(
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
    report(&reference, &generator, run.quiet)?;
    // Production data drifted by the one-knob `default` transform (blur at this level).
    generator.add_abrupt_drift(vec!["default=0.3".parse()?])?;
    let production = sample(
        &mut generator,
        total - total / 2,
        &dir.join("production"),
        run.quiet,
    )?;
    report(&production, &generator, run.quiet)?;
    Ok(())
}
