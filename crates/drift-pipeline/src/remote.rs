//! Outputs on object storage: a run writes each such segment to a local scratch folder through
//! the local transaction, then publishes it with the remote one (`drift_store::transaction`),
//! whose lock it takes before anything runs. Scratch space: one output's size per remote
//! segment, under `DRIFT_PIPELINE_SCRATCH` (default: the system's temporary folder), removed
//! when the run ends, however it ends.

use std::path::{Path, PathBuf};

use drift_store::transaction::RemoteOutput;

use crate::PipelineError;

/// Where scratch folders go when set (default: the system's temporary folder).
pub const SCRATCH_ENV: &str = "DRIFT_PIPELINE_SCRATCH";

/// Takes the remote output's lock (recovering what a dead writer left).
pub(crate) fn lock(url: &Path) -> Result<RemoteOutput, PipelineError> {
    let location = match drift_store::Location::from_path(url)? {
        drift_store::Location::Remote(location) => location,
        drift_store::Location::Local(_) => unreachable!("only URLs are locked remotely"),
    };
    Ok(RemoteOutput::lock(&location, &drift_writer::OUTPUT_FILES)?)
}

/// Segment `index`'s scratch folder, in the run's scratch directory (made on first use).
pub(crate) fn scratch_folder(
    scratch: &mut Option<tempfile::TempDir>,
    index: usize,
) -> Result<PathBuf, PipelineError> {
    if scratch.is_none() {
        let parent = std::env::var_os(SCRATCH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("drift-pipeline-scratch-")
            .tempdir_in(&parent)
            .map_err(|source| drift_writer::WriterError::Io {
                path: parent.clone(),
                source,
            })?;
        *scratch = Some(dir);
    }
    let dir = scratch.as_ref().expect("made above");
    Ok(dir.path().join(format!("segment-{index}")))
}

/// Uploads every committed scratch output (verified against its `drift.json` first) to its
/// prefix's staging area, then commits them all together.
pub(crate) fn publish(remotes: Vec<(usize, RemoteOutput, PathBuf)>) -> Result<(), PipelineError> {
    let mut commits = Vec::with_capacity(remotes.len());
    for (_, mut remote, local) in remotes {
        let records = drift_writer::verify(&local)?;
        for record in &records {
            remote.stage_file(&local.join(&record.name), &record.name)?;
        }
        let marker = drift_writer::DRIFT_JSON;
        remote.stage_file(&local.join(marker), marker)?;
        commits.push((remote, marker.to_owned()));
    }
    Ok(drift_store::transaction::commit_all(commits)?)
}
