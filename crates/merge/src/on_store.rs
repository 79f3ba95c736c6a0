//! Merging shards on object storage into an output there without downloading the images.
//!
//! A shard's zip is read only at its end (the central directory, [`ZipDirectory::read`]); the
//! merged zip is assembled in the output's staging area from each shard zip's local sections,
//! copied by the store (S3 `UploadPartCopy`), plus the joined central directory
//! ([`zip_directory::join`]), so it is the zip one process writes, byte for byte. The tables are
//! downloaded (verified against the shards' records) and re-encoded locally, as the local merge
//! does. `drift.json` must record the merged zip's SHA-256, which no store computes for an
//! assembled object and which cannot be composed from the shards' hashes: a [`ZipHashJob`]
//! reads the assembled zip once, checking every shard's zip against its own record on the way.
//! It runs here by default ([`hash_assembled_zip`]), or wherever the caller sends it (the Ray
//! driver runs it as a task on a worker, next to the store), while this process holds the
//! output's lock.

use std::path::{Path, PathBuf};

use drift_pipeline::{PipelineError, remote};
use drift_store::transaction::RemoteOutput;
use drift_store::{Piece, RemoteLocation};
use drift_writer::zip_directory::{self, ZipDirectory};
use drift_writer::{FileRecord, SAMPLED_IMAGES, WriterError};
use sha2::Digest as _;

use crate::{MergeError, ShardOutput};

/// The zip of a shard on object storage: where it is, what its record says, its directory.
pub(crate) struct StoredZip {
    location: RemoteLocation,
    record: FileRecord,
    directory: ZipDirectory,
}

impl StoredZip {
    /// Its entries' names, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.directory.names().collect()
    }
}

/// Downloads the zip of `part` (a shard on object storage) into its local copy, checked
/// against its record; returns the bytes downloaded.
pub(crate) fn download_zip(part: &mut ShardOutput) -> Result<u64, MergeError> {
    let zip = part
        .zip
        .as_ref()
        .expect("shards on object storage have their zip");
    let target = part.local.join(SAMPLED_IMAGES);
    let bytes = zip
        .location
        .download_file(SAMPLED_IMAGES, &target)
        .map_err(PipelineError::from)?;
    let file = std::fs::File::open(&target).map_err(|source| WriterError::Io {
        path: target.clone(),
        source,
    })?;
    let sha256 = drift_core::sha256_hex(file).map_err(|source| WriterError::Io {
        path: target.clone(),
        source,
    })?;
    if sha256 != zip.record.sha256 {
        return Err(MergeError::ShardZipChanged {
            url: zip.location.join(SAMPLED_IMAGES).url().to_owned(),
            sha256,
            recorded: zip.record.sha256.clone(),
        });
    }
    Ok(bytes)
}

/// What reading one assembled zip must do: hash it whole, and check each shard's zip (its local
/// sections in the assembled zip, followed by its own directory) against its record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZipHashJob {
    /// URL of the assembled zip (in the output's staging area).
    pub zip: String,
    /// Its size.
    pub bytes: u64,
    /// The shards' zips, in order.
    pub shards: Vec<ShardZip>,
}

/// One shard's zip, as a [`ZipHashJob`] checks it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardZip {
    /// Its URL.
    pub url: String,
    /// Bytes of its local sections (where its central directory starts).
    pub local_bytes: u64,
    /// Its size, as its record says.
    pub bytes: u64,
    /// Its SHA-256, as its record says.
    pub sha256: String,
}

/// What a [`ZipHashJob`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipHash {
    /// The assembled zip's SHA-256 (lowercase hex).
    pub sha256: String,
    /// Bytes read from the store.
    pub read_bytes: u64,
}

fn object(url: &str) -> Result<(RemoteLocation, String), MergeError> {
    let location = RemoteLocation::open(url).map_err(PipelineError::from)?;
    Ok(location.parent_and_name().map_err(PipelineError::from)?)
}

/// Runs `job`: streams the assembled zip once, hashing it and, shard by shard, each shard's
/// zip (its sections there, then its own directory, read from the shard).
pub fn hash_assembled_zip(job: &ZipHashJob) -> Result<ZipHash, MergeError> {
    let (zip, name) = object(&job.zip)?;
    let mut whole = sha2::Sha256::new();
    let mut read_bytes = 0;
    let mut start = 0;
    for shard in &job.shards {
        let (location, shard_name) = object(&shard.url)?;
        let mut own = sha2::Sha256::new();
        read_bytes += zip
            .read_range(&name, start..start + shard.local_bytes, &mut |chunk| {
                whole.update(chunk);
                own.update(chunk);
                Ok(())
            })
            .map_err(PipelineError::from)?;
        let tail = location
            .get_range(&shard_name, shard.local_bytes..shard.bytes)
            .map_err(PipelineError::from)?;
        read_bytes += tail.len() as u64;
        own.update(&tail);
        let sha256 = hex(&own.finalize());
        if sha256 != shard.sha256 {
            return Err(MergeError::ShardZipChanged {
                url: shard.url.clone(),
                sha256,
                recorded: shard.sha256.clone(),
            });
        }
        start += shard.local_bytes;
    }
    read_bytes += zip
        .read_range(&name, start..job.bytes, &mut |chunk| {
            whole.update(chunk);
            Ok(())
        })
        .map_err(PipelineError::from)?;
    Ok(ZipHash {
        sha256: hex(&whole.finalize()),
        read_bytes,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A shard output on object storage, given as `url` (a shard folder holding `segment-N`
/// prefixes, or one segment's output): its records and tables downloaded (checked against
/// the record) into local copies, its zips read at their ends only. Returns the outputs and
/// the bytes downloaded.
pub(crate) fn read_shard_folder(url: &Path) -> Result<(Vec<ShardOutput>, u64), MergeError> {
    let (segments, _) = remote_segments(url)?;
    let mut outputs = Vec::with_capacity(segments.len());
    let mut downloaded = 0;
    for (_, segment) in segments {
        let copy = segment
            .fetch_output(drift_writer::DRIFT_JSON, &[SAMPLED_IMAGES])
            .map_err(|source| MergeError::Incomplete {
                folder: PathBuf::from(segment.url()),
                source: WriterError::Unverified {
                    path: PathBuf::from(segment.url()),
                    reason: source.to_string(),
                },
            })?;
        downloaded += folder_bytes(copy.path());
        let folder = PathBuf::from(segment.url());
        let mut part = crate::check_shard_output(&folder, copy.path())?;
        let record = part
            .record
            .files
            .iter()
            .find(|f| f.name == SAMPLED_IMAGES)
            .cloned()
            .ok_or_else(|| MergeError::Incomplete {
                folder: folder.clone(),
                source: WriterError::Unverified {
                    path: folder.join(drift_writer::DRIFT_JSON),
                    reason: format!("it lists no {SAMPLED_IMAGES}"),
                },
            })?;
        let (directory, read) = read_directory(&segment, &record)?;
        downloaded += read;
        let samples = part.record.sample_id.last - part.record.sample_id.first + 1;
        if directory.len() as u64 != samples {
            return Err(zip_error(
                &segment,
                format!(
                    "holds {} entries where its record has {samples} samples",
                    directory.len()
                ),
            ));
        }
        part.zip = Some(StoredZip {
            location: segment,
            record,
            directory,
        });
        part.local_copy = Some(copy);
        outputs.push(part);
    }
    Ok((outputs, downloaded))
}

/// Segment outputs below a shard URL, with their keys' prefix, and the shard's listing.
pub(crate) type RemoteSegments = (
    Vec<(String, RemoteLocation)>,
    Vec<drift_store::RemoteObject>,
);

/// The segment outputs below the shard URL `url` (itself, when it holds a `drift.json`, else
/// its `segment-N` prefixes in order), each with its keys' prefix in the listing (`""` or
/// `"segment-N/"`), and that listing (one request).
pub(crate) fn remote_segments(url: &Path) -> Result<RemoteSegments, MergeError> {
    let location = RemoteLocation::from_url_path(url).map_err(PipelineError::from)?;
    let listing = location.list().map_err(PipelineError::from)?;
    if listing.iter().any(|o| o.key == drift_writer::DRIFT_JSON) {
        return Ok((vec![(String::new(), location)], listing));
    }
    let mut numbered: Vec<(usize, String)> = listing
        .iter()
        .filter_map(|object| {
            let (segment, name) = object.key.split_once('/')?;
            let n = segment.strip_prefix("segment-")?.parse().ok()?;
            (name == drift_writer::DRIFT_JSON).then(|| (n, segment.to_owned()))
        })
        .collect();
    if numbered.is_empty() {
        return Err(MergeError::NoShardOutput {
            folder: url.to_owned(),
        });
    }
    numbered.sort();
    let segments = numbered
        .into_iter()
        .map(|(_, segment)| (format!("{segment}/"), location.join(&segment)))
        .collect();
    Ok((segments, listing))
}

fn zip_error(segment: &RemoteLocation, reason: String) -> MergeError {
    MergeError::Incomplete {
        folder: PathBuf::from(segment.url()),
        source: WriterError::Unverified {
            path: PathBuf::from(segment.url()).join(SAMPLED_IMAGES),
            reason,
        },
    }
}

/// The central directory of a shard's zip, read by ranges; its size is checked against the
/// record first (the hash is checked when the merged zip is read).
fn read_directory(
    segment: &RemoteLocation,
    record: &FileRecord,
) -> Result<(ZipDirectory, u64), MergeError> {
    let size = segment.size(SAMPLED_IMAGES).map_err(PipelineError::from)?;
    if size != record.bytes {
        return Err(zip_error(
            segment,
            format!(
                "has {size} bytes where its record has {}: it is not the zip of this output",
                record.bytes
            ),
        ));
    }
    let mut read = 0;
    let directory = ZipDirectory::read(size, &mut |range| {
        let bytes = segment.get_range(SAMPLED_IMAGES, range)?;
        read += bytes.len() as u64;
        Ok::<_, drift_store::StoreError>(bytes.to_vec())
    })
    .map_err(PipelineError::from)?
    .map_err(|e| zip_error(segment, e.to_string()))?;
    Ok((directory, read))
}

fn folder_bytes(folder: &Path) -> u64 {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// What assembling one segment's zip moved.
pub(crate) struct Assembled {
    /// The merged zip's record.
    pub zip: FileRecord,
    pub stats: drift_store::AssemblyStats,
}

/// Assembles the merged zip of `parts` in `output`'s staging area and has it hashed by
/// `hasher`.
pub(crate) fn assemble_zip(
    parts: &[ShardOutput],
    output: &mut RemoteOutput,
    hasher: &dyn Fn(&ZipHashJob) -> Result<String, MergeError>,
) -> Result<Assembled, MergeError> {
    let zips: Vec<&StoredZip> = parts
        .iter()
        .map(|p| {
            p.zip
                .as_ref()
                .expect("shards on object storage have their zip")
        })
        .collect();
    let directories: Vec<ZipDirectory> = zips.iter().map(|z| z.directory.clone()).collect();
    let tail = zip_directory::join(&directories);
    let mut pieces: Vec<Piece> = zips
        .iter()
        .map(|zip| Piece::Range {
            source: zip.location.clone(),
            key: SAMPLED_IMAGES.to_owned(),
            range: 0..zip.directory.local_bytes(),
        })
        .collect();
    let local: u64 = zips.iter().map(|z| z.directory.local_bytes()).sum();
    let bytes = local + tail.len() as u64;
    pieces.push(Piece::Bytes(tail.into()));
    let stats = output
        .stage_assembled(SAMPLED_IMAGES, pieces)
        .map_err(PipelineError::from)?;
    let job = ZipHashJob {
        zip: output.staged_url(SAMPLED_IMAGES),
        bytes,
        shards: zips
            .iter()
            .map(|zip| ShardZip {
                url: zip.location.join(SAMPLED_IMAGES).url().to_owned(),
                local_bytes: zip.directory.local_bytes(),
                bytes: zip.record.bytes,
                sha256: zip.record.sha256.clone(),
            })
            .collect(),
    };
    let sha256 = hasher(&job)?;
    Ok(Assembled {
        zip: FileRecord {
            name: SAMPLED_IMAGES.to_owned(),
            bytes,
            sha256,
        },
        stats,
    })
}

/// Locks the remote output `url` for a merge (refusing an existing output unless
/// `overwrite`).
pub(crate) fn lock_output(url: &Path, overwrite: bool) -> Result<RemoteOutput, MergeError> {
    let remote = remote::lock(url)?;
    if !overwrite
        && let Some(existing) = remote
            .existing_output()
            .map_err(|e| MergeError::Remote(e.into()))?
    {
        return Err(WriterError::OutputExists {
            path: existing.into(),
        }
        .into());
    }
    Ok(remote)
}
