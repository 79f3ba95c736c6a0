//! drift-merge: the shard outputs of one run (`drift-pipeline generate --shard K/N`, or Ray's
//! shards) joined into what one process writes, byte for byte.
//!
//! Every sample is copied as its shard wrote it (the PNG bytes of its zip entry, its row of
//! every table) through the same [`OutputWriter`] a run uses, so the zip and the tables come out
//! as one process writes them; `drift.json` is the first shard's [`DriftRecord`] with the
//! ranges, the skipped images, the last stream call and the file list of the whole segment.
//! Shards are checked before anything is written: all present, none twice, all of one run (the
//! same settings hash), ranges as the shard plan ([`Shard::range`]) gives them. The merged
//! outputs are one transaction.

mod index;
mod on_store;

pub use index::{IndexedSegment, IndexedShard, SHARD_INDEX, ShardIndex, write_index};
pub use on_store::{ShardZip, ZipHash, ZipHashJob, hash_assembled_zip};

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drift_core::ClassTable;
use drift_pipeline::records::{self, DriftRecord, RecordError, ShardRecord};
use drift_pipeline::{Shard, remote};
use drift_writer::{
    FileRecord, OutputFolder, OutputWriter, SampleReader, StagedOutput, WriterError, WriterOptions,
};

/// Why shard outputs could not be merged. Each variant names the folders involved.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No shard folder was given.
    #[error("no shard folders given")]
    NoShards,
    /// A given folder holds neither a shard output nor `segment-N` folders of one.
    #[error("{folder} holds no shard output (segment-N folders, as a sharded run writes)")]
    NoShardOutput {
        /// The folder.
        folder: PathBuf,
    },
    /// A folder that could not be listed.
    #[error("{folder}: {source}")]
    List {
        /// The folder.
        folder: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A shard output that is not complete (a file missing or changed since it was written).
    #[error("{folder} is not a complete output ({source})")]
    Incomplete {
        /// The shard output.
        folder: PathBuf,
        /// What `verify` found.
        source: WriterError,
    },
    /// A `drift.json` that could not be read as this version's record.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A whole output given as a shard.
    #[error("{folder} is a whole output, not a shard (its drift.json has no shard record)")]
    NotAShard {
        /// The output.
        folder: PathBuf,
    },
    /// A shard whose record does not hash to its own settings hash.
    #[error("{folder}/drift.json does not match its own settings hash (edited?)")]
    SettingsHash {
        /// The shard output.
        folder: PathBuf,
    },
    /// A shard whose samples are not the range the shard plan gives it.
    #[error(
        "{folder} holds samples {first} to {last}, not shard {index}/{count}'s {expected_first} \
         to {expected_last}"
    )]
    Range {
        /// The shard output.
        folder: PathBuf,
        /// Its shard.
        index: u64,
        /// Shards of its run.
        count: u64,
        /// The samples it holds.
        first: u64,
        /// The last it holds.
        last: u64,
        /// What the plan gives it.
        expected_first: u64,
        /// The last the plan gives it.
        expected_last: u64,
    },
    /// Shards of runs with different shard or segment counts.
    #[error(
        "{folder} is shard {index}/{count} of a run of {segments} segments, but {other} is of \
         {other_count} shards and {other_segments} segments: not the same run"
    )]
    OtherPlan {
        /// The shard output.
        folder: PathBuf,
        /// Its shard.
        index: u64,
        /// Its shard count.
        count: u64,
        /// Its segment count.
        segments: usize,
        /// The first shard read.
        other: PathBuf,
        /// That one's shard count.
        other_count: u64,
        /// That one's segment count.
        other_segments: usize,
    },
    /// Two folders hold the same shard of the same segment.
    #[error("shard {index}/{count} of segment {segment} is given twice: {first} and {second}")]
    Twice {
        /// The shard.
        index: u64,
        /// Shards of the run.
        count: u64,
        /// The segment, from 1.
        segment: usize,
        /// One folder.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A shard none of the folders holds.
    #[error(
        "shard {index}/{count} (segment {segment}) is missing: none of the given folders holds it"
    )]
    Missing {
        /// The shard.
        index: u64,
        /// Shards of the run.
        count: u64,
        /// The segment, from 1.
        segment: usize,
    },
    /// Two shards of one segment with different settings.
    #[error("{folder} is not of the same run as {first}: they differ in {setting}")]
    OtherRun {
        /// The shard output.
        folder: PathBuf,
        /// The segment's first shard.
        first: PathBuf,
        /// The first setting that differs.
        setting: String,
    },
    /// One shard with embeddings and another without.
    #[error("{folder} has embeddings.parquet where the first shard has not, or the other way")]
    Embeddings {
        /// The shard output.
        folder: PathBuf,
    },
    /// An output folder asked for a run of several segments (each merges into its own).
    #[error(
        "these shards are of a run of {segments} segments, which merge into the segments' own \
         output folders; an output folder applies to a one-segment run only"
    )]
    OutputForSegments {
        /// Segments of the run.
        segments: usize,
    },
    /// A merged output that would land inside a shard folder.
    #[error(
        "output {output} of segment {segment} is inside the shard folder {shard}{}",
        if *recorded { " (it is the segment's folder in the run: give an output folder)" } else { "" }
    )]
    OutputInShard {
        /// The merged output.
        output: PathBuf,
        /// The segment, from 1.
        segment: usize,
        /// The shard folder.
        shard: PathBuf,
        /// The output is the one the shards recorded (none was given).
        recorded: bool,
    },
    /// Reading the shards or writing the merged output failed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// Shards or outputs on object storage could not be read or committed.
    #[error(transparent)]
    Remote(#[from] drift_pipeline::PipelineError),
    /// A shard's zip on object storage whose bytes are not those its record hashed.
    #[error(
        "{url} hashes to {sha256}, but its drift.json records {recorded}: it changed after it \
         was written"
    )]
    ShardZipChanged {
        /// The shard's zip.
        url: String,
        /// What it hashes to.
        sha256: String,
        /// What its record says.
        recorded: String,
    },
    /// The hasher given for an assembled zip failed (a task elsewhere).
    #[error("hashing the merged zip failed: {0}")]
    Hasher(String),
}

/// What a merge wrote.
#[derive(Debug, Clone)]
pub struct MergeSummary {
    /// Each merged output folder and its samples.
    pub outputs: Vec<(PathBuf, u64)>,
    /// Bytes of the shards' zips copied.
    pub zip_bytes: u64,
    /// Time taken.
    pub elapsed: Duration,
    /// What is allowed but worth knowing (shards embedded on different CPU kinds).
    pub warnings: Vec<String>,
    /// Bytes downloaded from object storage (shards given as URLs) by this process to merge:
    /// whole shards, or, merging on the store, their tables, records and directories.
    pub downloaded_bytes: u64,
    /// Bytes of shard zips the store copied into the merged zips itself (merging on the store).
    pub copied_bytes: u64,
    /// Bytes this process read to hash the merged zips (merging on the store, when no hasher
    /// elsewhere was given).
    pub hashed_bytes: u64,
}

/// Hashes an assembled zip somewhere else than this process (a Ray task beside the store):
/// given the job, returns the zip's SHA-256 as lowercase hex, or why not.
pub type ZipHasher<'a> = &'a (dyn Fn(&ZipHashJob) -> Result<String, String> + Sync);

/// One segment's shard output, read and checked.
struct ShardOutput {
    /// The shard output as given (a URL on object storage).
    folder: PathBuf,
    /// Where its tables are read: the folder itself, or a local copy of them.
    local: PathBuf,
    record: DriftRecord,
    shard: ShardRecord,
    /// Its zip on object storage, when merging there.
    zip: Option<on_store::StoredZip>,
    local_copy: Option<remote::LocalCopy>,
}

/// Merges the shard folders `shards` (each holding a sharded run's `segment-N` folders, or
/// such a `segment-N` folder itself) into `output` (a one-segment run) or each segment's own
/// output folder, committed together. `progress` is told the samples copied so far and the
/// total.
pub fn merge(
    shards: &[PathBuf],
    output: Option<&Path>,
    overwrite: bool,
    progress: &dyn Fn(u64, u64),
) -> Result<MergeSummary, MergeError> {
    merge_with(shards, output, overwrite, progress, None)
}

/// [`merge`], with the merged zips' hashing sent to `zip_hasher` when shards and outputs are
/// all on object storage (see `on_store`); without one, this process reads them.
pub fn merge_with(
    shards: &[PathBuf],
    output: Option<&Path>,
    overwrite: bool,
    progress: &dyn Fn(u64, u64),
    zip_hasher: Option<ZipHasher<'_>>,
) -> Result<MergeSummary, MergeError> {
    let started = Instant::now();
    // Shards on object storage are read where they are: their records and tables downloaded,
    // their zips read at the end only. Whole shards are downloaded only for a local output.
    let on_store = !shards.is_empty() && shards.iter().all(|s| remote::is_url(s));
    let mut scratch = None;
    let (mut downloaded_bytes, mut fetched) = (0, 0);
    let mut segments = read_shards(shards, &mut |shard| match on_store {
        true => {
            let (parts, bytes) = on_store::read_shard_folder(shard)?;
            downloaded_bytes += bytes;
            Ok(parts)
        }
        false if remote::is_url(shard) => {
            let local = remote::scratch_folder(&mut scratch, fetched)?;
            fetched += 1;
            downloaded_bytes += remote::download_folder(shard, &local)?;
            let mut parts = read_local_shard_folder(&local)?;
            for part in &mut parts {
                part.folder = PathBuf::from(shard)
                    .join(part.local.strip_prefix(&local).unwrap_or(Path::new("")));
            }
            Ok(parts)
        }
        false => read_local_shard_folder(shard),
    })?;
    let outputs = output_folders(&segments, output, shards)?;
    let warnings = warnings(&segments);
    let total: u64 = segments.iter().map(|s| s[0].shard.segment_samples).sum();
    let assemble = on_store && outputs.iter().all(|o| remote::is_url(o));
    if on_store && !assemble {
        // A local output needs the images: the shards' zips come down after all.
        for part in segments.iter_mut().flatten() {
            downloaded_bytes += on_store::download_zip(part)?;
        }
    }
    let mut folders = Vec::with_capacity(outputs.len());
    let mut remotes = Vec::new();
    for (index, output) in outputs.iter().enumerate() {
        let output = match remote::is_url(output) {
            false => output.clone(),
            true => {
                let remote = on_store::lock_output(output, overwrite)?;
                let local = remote::scratch_folder(&mut scratch, shards.len() + index)?;
                remotes.push((remote, local.clone()));
                local
            }
        };
        let folder = OutputFolder::lock(&output, &drift_writer::OUTPUT_FILES)?;
        if !overwrite && let Some(path) = folder.existing_output() {
            return Err(WriterError::OutputExists { path }.into());
        }
        folders.push(folder);
    }
    let mut staged = Vec::with_capacity(outputs.len());
    let (mut copied, mut zip_bytes, mut copied_bytes) = (0u64, 0u64, 0u64);
    let hashed_bytes = Cell::new(0u64);
    let hash_here = |job: &ZipHashJob| {
        let hash = hash_assembled_zip(job)?;
        hashed_bytes.set(hashed_bytes.get() + hash.read_bytes);
        Ok(hash.sha256)
    };
    let hash_elsewhere =
        |job: &ZipHashJob| zip_hasher.expect("checked below")(job).map_err(MergeError::Hasher);
    let hasher: &dyn Fn(&ZipHashJob) -> Result<String, MergeError> = match zip_hasher {
        Some(_) => &hash_elsewhere,
        None => &hash_here,
    };
    for (index, (parts, folder)) in segments.iter().zip(folders).enumerate() {
        let mut count = |n| {
            copied += n;
            progress(copied, total);
        };
        let zip = match assemble {
            false => None,
            true => {
                let remote = &mut remotes[index].0;
                let assembled = on_store::assemble_zip(parts, remote, hasher)?;
                downloaded_bytes += assembled.stats.downloaded_bytes;
                copied_bytes += assembled.stats.copied_bytes;
                Some(assembled.zip)
            }
        };
        let (output, bytes) = merge_segment(parts, folder, overwrite, zip, &mut count)?;
        zip_bytes += bytes;
        staged.push(output);
    }
    let summaries = drift_writer::commit_outputs(staged)?;
    match assemble {
        true => remote::publish_staged(remotes, &[drift_writer::SAMPLED_IMAGES])?,
        false => remote::publish(remotes)?,
    }
    Ok(MergeSummary {
        outputs: summaries
            .into_iter()
            .zip(&outputs)
            .map(|(s, output)| (output.clone(), s.samples))
            .collect(),
        zip_bytes,
        elapsed: started.elapsed(),
        warnings,
        downloaded_bytes,
        copied_bytes,
        hashed_bytes: hashed_bytes.get(),
    })
}

/// Copies one segment's shards, in order, into `folder`'s staging area: every sample's rows and
/// zip entry, or, when the merged zip was assembled on object storage (`zip`, its record), the
/// rows only. Returns the staged output and the zip bytes.
fn merge_segment(
    parts: &[ShardOutput],
    folder: OutputFolder,
    overwrite: bool,
    zip: Option<FileRecord>,
    copied: &mut dyn FnMut(u64),
) -> Result<(StagedOutput, u64), MergeError> {
    let embeddings = parts[0].record.embeddings.is_some();
    let options = WriterOptions {
        overwrite,
        embeddings,
        ..WriterOptions::default()
    };
    let mut writer = match zip {
        None => OutputWriter::create(folder, options, ClassTable::default())?,
        Some(_) => OutputWriter::create_rows_only(folder, options)?,
    };
    let mut zip_bytes = 0;
    for part in parts {
        let reader = match &part.zip {
            Some(stored) if zip.is_some() => {
                SampleReader::open_rows_only(&part.local, stored.names())?
            }
            _ => {
                zip_bytes += std::fs::metadata(part.local.join(drift_writer::SAMPLED_IMAGES))
                    .map(|m| m.len())
                    .unwrap_or(0);
                SampleReader::open(&part.local)?
            }
        };
        if reader.has_embeddings() != embeddings {
            return Err(MergeError::Embeddings {
                folder: part.folder.clone(),
            });
        }
        let mut samples = 0u64;
        for sample in reader {
            writer.append(&sample?)?;
            samples += 1;
            if samples.is_multiple_of(256) {
                copied(256);
            }
        }
        copied(samples % 256);
    }
    let staged = match zip {
        None => writer.finish(|files| merged_record(parts, files))?,
        Some(zip) => {
            zip_bytes = zip.bytes;
            writer.finish_with_zip(zip, |files| merged_record(parts, files))?
        }
    };
    Ok((staged, zip_bytes))
}

/// `drift.json` as one process writes it: the first shard's, over the whole segment.
fn merged_record(parts: &[ShardOutput], files: &[FileRecord]) -> String {
    let (first, last) = (&parts[0], &parts[parts.len() - 1]);
    let mut record = DriftRecord {
        files: files.to_vec(),
        samples: first.shard.segment_samples,
        shard: None,
        skipped_images: parts
            .iter()
            .flat_map(|p| p.record.skipped_images.iter().cloned())
            .collect(),
        ..first.record.clone()
    };
    record.sample_id.last = last.record.sample_id.last;
    record.timestamp.last = last.record.timestamp.last;
    if let Some(call) = record.stream.calls.last_mut() {
        call.candidates = parts.iter().map(|p| p.shard.candidates).sum();
        call.samples = first.shard.segment_samples;
    }
    record.to_json()
}

/// Reads every shard folder's segment outputs and checks them: the result has one entry per
/// segment of the run, each its shards in order.
fn read_shards(
    shards: &[PathBuf],
    read: &mut dyn FnMut(&Path) -> Result<Vec<ShardOutput>, MergeError>,
) -> Result<Vec<Vec<ShardOutput>>, MergeError> {
    if shards.is_empty() {
        return Err(MergeError::NoShards);
    }
    let mut found: BTreeMap<(usize, u64), ShardOutput> = BTreeMap::new();
    let mut plan: Option<(usize, u64, PathBuf)> = None;
    for shard_folder in shards {
        for part in read(shard_folder)? {
            let folder = part.folder.clone();
            let (segments, count) = (part.shard.segments, part.shard.count);
            match &plan {
                None => plan = Some((segments, count, folder.clone())),
                Some((s, c, other)) if (*s, *c) != (segments, count) => {
                    return Err(MergeError::OtherPlan {
                        folder,
                        index: part.shard.index,
                        count,
                        segments,
                        other: other.clone(),
                        other_count: *c,
                        other_segments: *s,
                    });
                }
                Some(_) => {}
            }
            let key = (part.shard.segment_index, part.shard.index);
            if let Some(twin) = found.get(&key) {
                return Err(MergeError::Twice {
                    index: part.shard.index,
                    count,
                    segment: key.0 + 1,
                    first: twin.folder.clone(),
                    second: folder,
                });
            }
            found.insert(key, part);
        }
    }
    let (segments, count, _) = plan.expect("at least one shard folder was read");
    let mut result: Vec<Vec<ShardOutput>> = (0..segments).map(|_| Vec::new()).collect();
    for (segment, parts) in result.iter_mut().enumerate() {
        for index in 0..count {
            let part = found.remove(&(segment, index)).ok_or(MergeError::Missing {
                index,
                count,
                segment: segment + 1,
            })?;
            check_same_run(parts, &part)?;
            parts.push(part);
        }
    }
    Ok(result)
}

/// The `segment-N` folders of a shard folder, in order; a segment's shard output given itself
/// is taken as it is.
fn segment_folders(shard_folder: &Path) -> Result<Vec<PathBuf>, MergeError> {
    if shard_folder.join(drift_writer::DRIFT_JSON).exists() {
        return Ok(vec![shard_folder.to_owned()]);
    }
    let list = |source| MergeError::List {
        folder: shard_folder.to_owned(),
        source,
    };
    let mut numbered = Vec::new();
    for entry in std::fs::read_dir(shard_folder).map_err(list)? {
        let entry = entry.map_err(list)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("segment-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            numbered.push((n, entry.path()));
        }
    }
    if numbered.is_empty() {
        return Err(MergeError::NoShardOutput {
            folder: shard_folder.to_owned(),
        });
    }
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, path)| path).collect())
}

/// The shard outputs of a local shard folder, each verified.
fn read_local_shard_folder(shard_folder: &Path) -> Result<Vec<ShardOutput>, MergeError> {
    segment_folders(shard_folder)?
        .iter()
        .map(|folder| read_shard_output(folder))
        .collect()
}

fn read_shard_output(folder: &Path) -> Result<ShardOutput, MergeError> {
    drift_writer::verify(folder).map_err(|source| MergeError::Incomplete {
        folder: folder.to_owned(),
        source,
    })?;
    check_shard_output(folder, folder)
}

/// Reads the record of the shard output `folder` from `local` (the folder, or a verified local
/// copy of its record and tables) and checks it is a shard of a run, as the shard plan says.
fn check_shard_output(folder: &Path, local: &Path) -> Result<ShardOutput, MergeError> {
    let record: DriftRecord = records::read(&local.join(drift_writer::DRIFT_JSON))?;
    let Some(shard) = record.shard.clone() else {
        return Err(MergeError::NotAShard {
            folder: folder.to_owned(),
        });
    };
    if record.settings_sha256() != shard.settings_sha256 {
        return Err(MergeError::SettingsHash {
            folder: folder.to_owned(),
        });
    }
    let (start, end) = Shard {
        index: shard.index,
        count: shard.count,
    }
    .range(shard.segment_samples);
    let first = shard.segment_first_sample_id;
    let (expected_first, expected_last) = (first + start, first + end - 1);
    if (record.sample_id.first, record.sample_id.last) != (expected_first, expected_last) {
        return Err(MergeError::Range {
            folder: folder.to_owned(),
            index: shard.index,
            count: shard.count,
            first: record.sample_id.first,
            last: record.sample_id.last,
            expected_first,
            expected_last,
        });
    }
    Ok(ShardOutput {
        folder: folder.to_owned(),
        local: local.to_owned(),
        record,
        shard,
        zip: None,
        local_copy: None,
    })
}

/// Refuses `part` unless it has the settings of the segment's shards before it, naming the
/// first setting that differs.
fn check_same_run(before: &[ShardOutput], part: &ShardOutput) -> Result<(), MergeError> {
    let Some(first) = before.first() else {
        return Ok(());
    };
    if first.shard.settings_sha256 == part.shard.settings_sha256 {
        return Ok(());
    }
    let (a, b) = (first.record.settings_view(), part.record.settings_view());
    let setting = a
        .iter()
        .find(|(key, value)| b.get(key.as_str()) != Some(value))
        .map_or_else(|| "settings".to_owned(), |(key, _)| key.clone());
    Err(MergeError::OtherRun {
        folder: part.folder.clone(),
        first: first.folder.clone(),
        setting,
    })
}

/// Where each segment goes: `output` for a one-segment run, else each segment's recorded
/// folder; never a shard folder or a folder inside one.
fn output_folders(
    segments: &[Vec<ShardOutput>],
    output: Option<&Path>,
    shards: &[PathBuf],
) -> Result<Vec<PathBuf>, MergeError> {
    let outputs: Vec<PathBuf> = match output {
        Some(output) if segments.len() == 1 => vec![output.to_owned()],
        Some(_) => {
            return Err(MergeError::OutputForSegments {
                segments: segments.len(),
            });
        }
        None => segments
            .iter()
            .map(|parts| PathBuf::from(&parts[0].shard.output))
            .collect(),
    };
    let resolve = |path: &Path| {
        drift_writer::resolve_path(path).map_err(|source| WriterError::Io {
            path: path.to_owned(),
            source,
        })
    };
    for (index, merged) in outputs.iter().enumerate() {
        let resolved = resolve(merged)?;
        for shard in shards {
            if resolved.starts_with(resolve(shard)?) {
                return Err(MergeError::OutputInShard {
                    output: merged.clone(),
                    segment: index + 1,
                    shard: shard.clone(),
                    recorded: output.is_none(),
                });
            }
        }
    }
    Ok(outputs)
}

/// Shards that embedded on different CPU kinds or devices: their embeddings may differ in the
/// last bits from what one process writes.
fn warnings(segments: &[Vec<ShardOutput>]) -> Vec<String> {
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for part in segments.iter().flatten() {
        let Some(embeddings) = &part.record.embeddings else {
            return Vec::new();
        };
        kinds
            .entry(format!("{} on {}", embeddings.device, part.shard.cpu))
            .or_default()
            .push(format!("{}/{}", part.shard.index, part.shard.count));
    }
    if kinds.len() <= 1 {
        return Vec::new();
    }
    let list: Vec<String> = kinds
        .iter()
        .map(|(kind, shards)| format!("{kind} (shards {})", shards.join(", ")))
        .collect();
    vec![format!(
        "shards embedded on different CPU kinds or devices: {}; their embeddings can differ in \
         the last bits from one process's (SIMD kernels sum in different orders), everything \
         else is identical",
        list.join("; ")
    )]
}
