//! The no-merge layout: a run's shards stay where they are and one committed index object,
//! `shard-index.json`, lists them in order with their files' sizes and hashes, for loaders that
//! read shards (polars, DuckDB, a PyTorch dataset over the zips). The shards are checked as a
//! merge checks them (all present, none twice, one run, ranges as the shard plan gives them).

use std::path::{Path, PathBuf};

use drift_pipeline::remote;
use drift_writer::{DRIFT_JSON, FileRecord, OUTPUT_FILES, ReportWriter, WriterError};

use crate::{MergeError, ShardOutput, check_shard_output, read_local_shard_folder, read_shards};

/// The index object's name.
pub const SHARD_INDEX: &str = "shard-index.json";

/// `shard-index.json`: the shards of a run, segment by segment, in sample order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardIndex {
    /// `"drift-pipeline shard index"`.
    pub layout: String,
    /// This layout's version (1).
    pub version: u32,
    /// The SHA-256 of the settings every shard of the run shares.
    pub settings_sha256: String,
    /// Each segment of the run, in order.
    pub segments: Vec<IndexedSegment>,
}

/// One segment's shards.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexedSegment {
    /// The segment, from 1.
    pub segment: usize,
    /// Its samples (all shards).
    pub samples: u64,
    /// Its shards, in sample order.
    pub shards: Vec<IndexedShard>,
}

/// One shard output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexedShard {
    /// The shard, `K/N`.
    pub shard: String,
    /// Where its output is (a path or URL, as given).
    pub output: String,
    /// Its first and last sample ids.
    pub first_sample_id: u64,
    /// Its last sample id.
    pub last_sample_id: u64,
    /// SHA-256 of its `drift.json`.
    pub drift_json_sha256: String,
    /// Its files as its `drift.json` records them.
    pub files: Vec<FileRecord>,
}

/// Checks the shard folders `shards` as a merge would and commits `shard-index.json` listing
/// them into `output` (a folder or an object-store prefix). Shards on object storage are read
/// by their records and a listing (sizes); local ones are verified whole.
pub fn write_index(
    shards: &[PathBuf],
    output: &Path,
    overwrite: bool,
) -> Result<ShardIndex, MergeError> {
    let mut hashes = Vec::new();
    let segments = read_shards(shards, &mut |shard| {
        let parts = match remote::is_url(shard) {
            true => read_remote_records(shard)?,
            false => read_local_shard_folder(shard)?,
        };
        for part in &parts {
            let path = part.local.join(DRIFT_JSON);
            let file = std::fs::File::open(&path).map_err(|source| WriterError::Io {
                path: path.clone(),
                source,
            })?;
            let sha = drift_core::sha256_hex(file).map_err(|source| WriterError::Io {
                path: path.clone(),
                source,
            })?;
            hashes.push((part.folder.clone(), sha));
        }
        Ok(parts)
    })?;
    let hash_of = |folder: &Path| {
        hashes
            .iter()
            .find(|(f, _)| f == folder)
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    };
    let index = ShardIndex {
        layout: "drift-pipeline shard index".into(),
        version: 1,
        settings_sha256: segments[0][0].shard.settings_sha256.clone(),
        segments: segments
            .iter()
            .enumerate()
            .map(|(segment, parts)| IndexedSegment {
                segment: segment + 1,
                samples: parts[0].shard.segment_samples,
                shards: parts
                    .iter()
                    .map(|part| IndexedShard {
                        shard: format!("{}/{}", part.shard.index, part.shard.count),
                        output: part.folder.display().to_string(),
                        first_sample_id: part.record.sample_id.first,
                        last_sample_id: part.record.sample_id.last,
                        drift_json_sha256: hash_of(&part.folder),
                        files: part.record.files.clone(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&index).expect("an index serialises");
    text.push('\n');
    const FILES: &[&str] = &[SHARD_INDEX];
    drift_store::transaction::write_folder(output, FILES, SHARD_INDEX, overwrite, |folder| {
        let mut writer = ReportWriter::create(folder, FILES, SHARD_INDEX, overwrite)?;
        writer.add(SHARD_INDEX, text.as_bytes())?;
        writer.finish().map_err(MergeError::from)
    })?;
    Ok(index)
}

/// The shard outputs below the URL `shard` from their records, each listed file checked to be
/// there with its recorded size (a listing; the hashes are the records').
fn read_remote_records(shard: &Path) -> Result<Vec<ShardOutput>, MergeError> {
    let (segments, listing) = crate::on_store::remote_segments(shard)?;
    let mut parts = Vec::with_capacity(segments.len());
    for (keys, prefix) in segments {
        let copy = prefix.fetch_output(DRIFT_JSON, &OUTPUT_FILES)?;
        let folder = PathBuf::from(prefix.url());
        let mut part = check_shard_output(&folder, copy.path())?;
        for file in &part.record.files {
            let key = format!("{keys}{}", file.name);
            let found = listing.iter().find(|o| o.key == key).map(|o| o.bytes);
            if found != Some(file.bytes) {
                return Err(MergeError::Incomplete {
                    folder: folder.clone(),
                    source: WriterError::Unverified {
                        path: folder.join(&file.name),
                        reason: match found {
                            None => "missing".into(),
                            Some(bytes) => {
                                format!("{bytes} bytes where its drift.json records {}", file.bytes)
                            }
                        },
                    },
                });
            }
        }
        part.local = copy.path().to_owned();
        part.local_copy = Some(copy);
        parts.push(part);
    }
    Ok(parts)
}

impl From<drift_store::StoreError> for MergeError {
    fn from(error: drift_store::StoreError) -> Self {
        MergeError::Remote(error.into())
    }
}

impl From<drift_store::transaction::TransactionError> for MergeError {
    fn from(error: drift_store::transaction::TransactionError) -> Self {
        MergeError::Remote(error.into())
    }
}
