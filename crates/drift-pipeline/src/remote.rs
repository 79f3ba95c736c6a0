//! Outputs on object storage: a run writes each such segment to a local scratch folder through
//! the local transaction, then publishes it with the remote one (`drift_store::transaction`),
//! whose lock it takes before anything runs. Scratch space: one output's size per remote
//! segment, under `DRIFT_PIPELINE_SCRATCH` (default: the system's temporary folder), removed
//! when the run ends, however it ends.

use std::path::{Path, PathBuf};

use drift_store::RemoteLocation;
pub use drift_store::is_url;
use drift_store::transaction::RemoteOutput;

use crate::PipelineError;

pub use drift_store::SCRATCH_ENV;

/// Takes the remote output's lock (recovering what a dead writer left).
pub fn lock(url: &Path) -> Result<RemoteOutput, PipelineError> {
    let location = RemoteLocation::from_url_path(url)?;
    Ok(RemoteOutput::lock(&location, &drift_writer::OUTPUT_FILES)?)
}

/// Segment `index`'s scratch folder, in the run's scratch directory (made on first use).
pub fn scratch_folder(
    scratch: &mut Option<tempfile::TempDir>,
    index: usize,
) -> Result<PathBuf, PipelineError> {
    if scratch.is_none() {
        *scratch = Some(drift_store::scratch_dir("drift-pipeline-scratch-")?);
    }
    let dir = scratch.as_ref().expect("made above");
    Ok(dir.path().join(format!("segment-{index}")))
}

/// Uploads every committed scratch output (verified against its `drift.json` first) to its
/// prefix's staging area, then commits them all together.
pub fn publish(remotes: Vec<(RemoteOutput, PathBuf)>) -> Result<(), PipelineError> {
    publish_staged(remotes, &[])
}

/// As [`publish`], for outputs whose files named in `staged` are already in their staging
/// area (a zip assembled there): the scratch folder holds every other file and `drift.json`,
/// which records them all.
pub fn publish_staged(
    remotes: Vec<(RemoteOutput, PathBuf)>,
    staged: &[&str],
) -> Result<(), PipelineError> {
    let mut commits = Vec::with_capacity(remotes.len());
    for (mut remote, local) in remotes {
        let records = match staged {
            [] => drift_writer::verify(&local)?,
            _ => listed_files(&local)?,
        };
        for record in records
            .iter()
            .filter(|r| !staged.contains(&r.name.as_str()))
        {
            remote.stage_file(&local.join(&record.name), &record.name)?;
        }
        let marker = drift_writer::DRIFT_JSON;
        remote.stage_file(&local.join(marker), marker)?;
        commits.push((remote, marker.to_owned()));
    }
    Ok(drift_store::transaction::commit_all(commits)?)
}

/// The files the `drift.json` in the local folder `local` lists (written by this process).
fn listed_files(local: &Path) -> Result<Vec<drift_writer::FileRecord>, PipelineError> {
    #[derive(serde::Deserialize)]
    struct Listing {
        files: Vec<drift_writer::FileRecord>,
    }
    let path = local.join(drift_writer::DRIFT_JSON);
    let unverified = |reason: String| drift_writer::WriterError::Unverified {
        path: path.clone(),
        reason,
    };
    let text = drift_core::read_small_text(&path, drift_core::METADATA_LIMIT)
        .map_err(|e| unverified(e.to_string()))?;
    let listing: Listing = serde_json::from_str(&text).map_err(|e| unverified(e.to_string()))?;
    Ok(listing.files)
}

/// Downloads the remote folder `url` (every object below it but this tool's lock and staging)
/// into `local`, keeping relative keys as paths; returns the bytes downloaded.
pub fn download_folder(url: &Path, local: &Path) -> Result<u64, PipelineError> {
    let remote = RemoteLocation::from_url_path(url)?;
    let mut bytes = 0;
    for object in remote.list()? {
        let parts: Vec<&str> = object.key.split('/').collect();
        if parts.iter().any(|p| p.starts_with(".drift-pipeline")) || object.key.ends_with('/') {
            continue;
        }
        // A key is made a path only if each of its parts is a plain name: a planted
        // `../x` cannot reach outside `local`.
        if let Some(part) = parts.iter().find(|p| !drift_core::is_plain_name(p)) {
            return Err(drift_store::StoreError::BadUrl {
                url: format!("{}/{}", remote.url(), object.key),
                reason: format!("holds the path part {part:?}, which names no file"),
            }
            .into());
        }
        let target = parts.iter().fold(local.to_owned(), |p, part| p.join(part));
        let parent = target.parent().unwrap_or(local);
        std::fs::create_dir_all(parent).map_err(|source| drift_writer::WriterError::Io {
            path: parent.to_owned(),
            source,
        })?;
        bytes += remote.download_file(&object.key, &target)?;
    }
    Ok(bytes)
}

/// Whether the folder or object-store prefix `folder` holds the file `name`.
pub fn holds(folder: &Path, name: &str) -> Result<bool, PipelineError> {
    match is_url(folder) {
        false => Ok(folder.join(name).exists()),
        true => Ok(RemoteLocation::from_url_path(folder)?.exists(name)?),
    }
}

/// Deletes the remote folder `url` (every object below it); returns how many objects.
pub fn delete_folder(url: &Path) -> Result<usize, PipelineError> {
    Ok(RemoteLocation::from_url_path(url)?.delete_all()?)
}

/// The bytes of the object at `url` (a file of an output on object storage).
pub fn read_object(url: &Path) -> Result<drift_store::Bytes, PipelineError> {
    let (parent, name) = RemoteLocation::from_url_path(url)?.parent_and_name()?;
    Ok(parent.get(&name)?)
}

pub use drift_store::{LocalCopy, fetch_report_if_remote};

/// Writes `bytes` as the object `url` whole (one request: it appears complete or not at all).
pub fn write_object(url: &Path, bytes: Vec<u8>) -> Result<(), PipelineError> {
    let (parent, name) = RemoteLocation::from_url_path(url)?.parent_and_name()?;
    Ok(parent.put(&name, bytes)?)
}

/// Downloads the output at `url` into a local scratch folder: its `drift.json` and every file
/// it lists but those named in `skip`, each checked against the size and SHA-256 the marker
/// records (see `drift_store::RemoteLocation::fetch_output`).
pub fn fetch_output(url: &Path, skip: &[&str]) -> Result<LocalCopy, PipelineError> {
    let remote = RemoteLocation::from_url_path(url)?;
    Ok(remote.fetch_output(drift_writer::DRIFT_JSON, skip)?)
}
