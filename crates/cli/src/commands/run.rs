//! `drift-pipeline run`: a scenario file, its shard flags applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use drift_pipeline::Scenario;

use crate::args::ShardArgs;
use crate::report::{ProgressReport, classes_drawn, drift_description, report_summary, warn_about};

pub(crate) fn run_scenario(
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
    let mut printed = Ok(());
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
            if printed.is_ok() {
                printed = report_summary(summary, &classes_drawn(segment, dataset), &drift, quiet);
            }
        },
    )?;
    Ok(printed?)
}
