//! `drift-pipeline merge`: shard outputs (drift-merge) or shard reports (drift-evaluate)
//! joined into what one process writes.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::report::ProgressReport;

/// `merge --index`: the shards checked and listed in `shard-index.json`, not merged.
pub(crate) fn index(shards: &[PathBuf], output: Option<&Path>, overwrite: bool) -> Result<()> {
    let output = output.ok_or_else(|| {
        anyhow::anyhow!("merge --index: give the folder for shard-index.json with --output")
    })?;
    let index = drift_merge::write_index(shards, output, overwrite)?;
    for segment in &index.segments {
        outln!(
            "segment {}: {} samples in {} shards",
            segment.segment,
            segment.samples,
            segment.shards.len()
        );
    }
    outln!(
        "wrote {} listing {} shard outputs",
        Path::new(&output).join(drift_merge::SHARD_INDEX).display(),
        index.segments.iter().map(|s| s.shards.len()).sum::<usize>()
    );
    Ok(())
}

pub(crate) fn merge(
    shards: &[PathBuf],
    output: Option<&Path>,
    overwrite: bool,
    quiet: bool,
) -> Result<()> {
    // A store that cannot be asked here fails again, with its reason, in the merge below.
    let holds = |name: &str| {
        shards
            .iter()
            .any(|s| drift_pipeline::remote::holds(s, name).unwrap_or(false))
    };
    if holds(drift_evaluate::EVALUATION_JSON) {
        let output = output.ok_or_else(|| {
            anyhow::anyhow!("merging evaluate shards: give the report folder with --output")
        })?;
        let evaluation = drift_evaluate::merge_reports(shards, output, overwrite)?;
        outln!(
            "merged {} shard reports into {}: {} levels x {} batches",
            shards.len(),
            output.display(),
            evaluation.summaries.len(),
            evaluation.batches
        );
        return Ok(());
    }
    if holds("detect.json") {
        let output = output.ok_or_else(|| {
            anyhow::anyhow!("merging detect shards: give the report folder with --output")
        })?;
        let record = drift_detect::merge_reports(shards, output, overwrite)?;
        outln!(
            "merged {} shard reports into {}: {} detectors x {} windows",
            shards.len(),
            output.display(),
            record.detectors.len(),
            record.detectors.first().map_or(0, |d| d.windows)
        );
        return Ok(());
    }
    let bar = ProgressReport::new(0, quiet, "samples", None);
    let result = drift_merge::merge(shards, output, overwrite, &|done, total| {
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
        outln!("merged {samples} samples into {}", folder.display());
    }
    outln!(
        "{} shard folders, {:.1} MB of images in {seconds:.2} s ({:.1} MB/s)",
        shards.len(),
        summary.zip_bytes as f64 / 1e6,
        summary.zip_bytes as f64 / 1e6 / seconds.max(1e-9)
    );
    if summary.downloaded_bytes > 0 || summary.copied_bytes > 0 {
        outln!(
            "{:.1} MB ({} bytes) downloaded from object storage to merge",
            summary.downloaded_bytes as f64 / 1e6,
            summary.downloaded_bytes
        );
    }
    if summary.copied_bytes > 0 {
        outln!(
            "{:.1} MB of images copied by the store itself; {:.1} MB read to hash the merged zip",
            summary.copied_bytes as f64 / 1e6,
            summary.hashed_bytes as f64 / 1e6
        );
    }
    Ok(())
}
