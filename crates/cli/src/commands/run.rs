//! `drift-pipeline run`: a scenario file, its shard flags applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use drift_pipeline::Scenario;

use crate::args::ShardArgs;
use crate::report::{ProgressReport, SegmentSummaries, warn_about};

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
    let mut summaries = SegmentSummaries::new(quiet);
    scenario.run(
        |segment| {
            Box::new(ProgressReport::new(
                segment.samples,
                quiet,
                "samples",
                Some(&segment.name),
            ))
        },
        |segment, summary, dataset| summaries.print(segment, summary, dataset),
    )?;
    Ok(summaries.finish()?)
}
