//! `drift-pipeline merge`: shard outputs joined into what one process writes, byte for byte.
//!
//! Every sample is copied as its shard wrote it (the PNG bytes of its zip entry, its row of
//! every table) through the same [`OutputWriter`] a run uses, so the zip and the tables come out
//! as one process writes them; `drift.json` is the first shard's with the ranges, the skipped
//! images, the last stream call and the file list of the whole segment. Shards are checked
//! before anything is written: all present, none twice, all of one run (the same settings
//! hash), ranges as the shard plan gives them. The merged outputs are one transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drift_core::ClassTable;
use drift_writer::{OutputFolder, OutputWriter, SampleReader, StagedOutput, WriterOptions};
use serde_json::Value;

use crate::PipelineError;
use crate::shard::{Shard, ShardRecord, settings_sha256, settings_view};

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
}

/// One segment's shard output, read and checked.
struct ShardOutput {
    folder: PathBuf,
    record: Value,
    shard: ShardRecord,
}

fn refuse(reason: String) -> PipelineError {
    PipelineError::Merge(reason)
}

/// Merges the shard folders `shards` (each made by `--shard K/N`, holding `segment-N` folders,
/// or such a `segment-N` folder itself)
/// into `output` (a one-segment run) or each segment's own output folder, committed together.
/// `progress` is told the samples copied so far and the total.
pub fn merge(
    shards: &[PathBuf],
    output: Option<&Path>,
    overwrite: bool,
    progress: &dyn Fn(u64, u64),
) -> Result<MergeSummary, PipelineError> {
    let started = Instant::now();
    let segments = read_shards(shards)?;
    let outputs = output_folders(&segments, output, shards)?;
    let warnings = warnings(&segments);
    let total: u64 = segments.iter().map(|s| s[0].shard.segment_samples).sum();
    let mut folders = Vec::with_capacity(outputs.len());
    for output in &outputs {
        let folder = OutputFolder::lock(output, &drift_writer::OUTPUT_FILES)?;
        if !overwrite && let Some(existing) = folder.existing_output() {
            return Err(refuse(format!(
                "{} already exists, and replacing it was not asked for (use --overwrite)",
                existing.display()
            )));
        }
        folders.push(folder);
    }
    let mut staged = Vec::with_capacity(outputs.len());
    let (mut copied, mut zip_bytes) = (0u64, 0u64);
    for (parts, folder) in segments.iter().zip(folders) {
        let (output, bytes) = merge_segment(parts, folder, overwrite, &mut |n| {
            copied += n;
            progress(copied, total);
        })?;
        zip_bytes += bytes;
        staged.push(output);
    }
    let summaries = drift_writer::commit_outputs(staged)?;
    Ok(MergeSummary {
        outputs: summaries
            .into_iter()
            .map(|s| (s.folder, s.samples))
            .collect(),
        zip_bytes,
        elapsed: started.elapsed(),
        warnings,
    })
}

/// Copies one segment's shards, in order, into `folder`'s staging area.
fn merge_segment(
    parts: &[ShardOutput],
    folder: OutputFolder,
    overwrite: bool,
    copied: &mut dyn FnMut(u64),
) -> Result<(StagedOutput, u64), PipelineError> {
    let columns = drift_transformer::log_columns();
    let embeddings = parts[0]
        .record
        .get("embeddings")
        .is_some_and(|e| !e.is_null());
    let options = WriterOptions {
        overwrite,
        embeddings,
        drift_log_columns: columns,
        ..WriterOptions::default()
    };
    let mut writer = OutputWriter::create(folder, options, ClassTable::default())?;
    let mut zip_bytes = 0;
    for part in parts {
        let reader = SampleReader::open(&part.folder, columns)?;
        if reader.has_embeddings() != embeddings {
            return Err(refuse(format!(
                "{} has embeddings.parquet where the first shard has not, or the other way",
                part.folder.display()
            )));
        }
        zip_bytes += std::fs::metadata(part.folder.join(drift_writer::SAMPLED_IMAGES))
            .map(|m| m.len())
            .unwrap_or(0);
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
    let staged = writer.finish(|files| merged_record(parts, files))?;
    Ok((staged, zip_bytes))
}

/// `drift.json` as one process writes it: the first shard's, over the whole segment.
fn merged_record(parts: &[ShardOutput], files: &[drift_writer::FileRecord]) -> String {
    let first = &parts[0];
    let last = &parts[parts.len() - 1];
    let mut record = first.record.clone();
    let map = record.as_object_mut().expect("checked to be an object");
    map.remove("shard");
    // A JSON value sorts its keys, but a file record's are in declared order: the list is
    // printed from the records themselves and put in place of a marker.
    const FILES_MARKER: &str = "\u{0}files\u{0}";
    map.insert("files".into(), Value::from(FILES_MARKER));
    map.insert("samples".into(), Value::from(first.shard.segment_samples));
    for span in ["sample_id", "timestamp"] {
        map[span]["last"] = last.record[span]["last"].clone();
    }
    let skipped: Vec<Value> = parts
        .iter()
        .flat_map(|p| {
            p.record["skipped_images"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    map.insert("skipped_images".into(), Value::Array(skipped));
    let candidates: usize = parts.iter().map(|p| p.shard.candidates).sum();
    if let Some(call) = map
        .get_mut("stream")
        .and_then(|s| s.get_mut("calls"))
        .and_then(Value::as_array_mut)
        .and_then(|calls| calls.last_mut())
    {
        call["candidates"] = Value::from(candidates);
        call["samples"] = Value::from(first.shard.segment_samples);
    }
    let text = crate::records::to_json(&record);
    // The list sits one level in: every line after its first is indented two more spaces.
    let list = serde_json::to_string_pretty(files)
        .expect("file records serialize")
        .replace('\n', "\n  ");
    let marker = serde_json::to_string(FILES_MARKER).expect("a string serializes");
    text.replacen(&marker, &list, 1)
}

/// Reads every shard folder's segment outputs and checks them: the result has one entry per
/// segment of the run, each its shards in order.
fn read_shards(shards: &[PathBuf]) -> Result<Vec<Vec<ShardOutput>>, PipelineError> {
    if shards.is_empty() {
        return Err(refuse("no shard folders given".into()));
    }
    let mut found: BTreeMap<(usize, u64), ShardOutput> = BTreeMap::new();
    let mut plan: Option<(usize, u64, PathBuf)> = None;
    for shard_folder in shards {
        for folder in segment_folders(shard_folder)? {
            let part = read_shard_output(&folder)?;
            let (segments, count) = (part.shard.segments, part.shard.count);
            match &plan {
                None => plan = Some((segments, count, folder.clone())),
                Some((s, c, other)) if (*s, *c) != (segments, count) => {
                    return Err(refuse(format!(
                        "{} is shard {}/{count} of a run of {segments} segments, but {} is of \
                         {c} shards and {s} segments: not the same run",
                        folder.display(),
                        part.shard.index,
                        other.display()
                    )));
                }
                Some(_) => {}
            }
            let key = (part.shard.segment_index, part.shard.index);
            if let Some(twin) = found.get(&key) {
                return Err(refuse(format!(
                    "shard {}/{count} of segment {} is given twice: {} and {}",
                    part.shard.index,
                    key.0 + 1,
                    twin.folder.display(),
                    folder.display()
                )));
            }
            found.insert(key, part);
        }
    }
    let (segments, count, _) = plan.expect("at least one shard folder was read");
    let mut result: Vec<Vec<ShardOutput>> = (0..segments).map(|_| Vec::new()).collect();
    for (segment, parts) in result.iter_mut().enumerate() {
        for index in 0..count {
            let part = found.remove(&(segment, index)).ok_or_else(|| {
                refuse(format!(
                    "shard {index}/{count} (segment {}) is missing: none of the given folders \
                     holds it",
                    segment + 1
                ))
            })?;
            check_same_run(parts, &part)?;
            parts.push(part);
        }
    }
    Ok(result)
}

/// The `segment-N` folders of a shard folder, in order; a segment's shard output given itself
/// is taken as it is.
fn segment_folders(shard_folder: &Path) -> Result<Vec<PathBuf>, PipelineError> {
    if shard_folder.join(drift_writer::DRIFT_JSON).exists() {
        return Ok(vec![shard_folder.to_owned()]);
    }
    let entries = std::fs::read_dir(shard_folder)
        .map_err(|e| refuse(format!("{}: {e}", shard_folder.display())))?;
    let mut numbered = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| refuse(format!("{}: {e}", shard_folder.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("segment-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            numbered.push((n, entry.path()));
        }
    }
    if numbered.is_empty() {
        return Err(refuse(format!(
            "{} holds no shard output (segment-N folders, as --shard K/N writes)",
            shard_folder.display()
        )));
    }
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, path)| path).collect())
}

fn read_shard_output(folder: &Path) -> Result<ShardOutput, PipelineError> {
    let name = || folder.display().to_string();
    drift_writer::verify(folder)
        .map_err(|e| refuse(format!("{} is not a complete output ({e})", name())))?;
    let text = std::fs::read_to_string(folder.join(drift_writer::DRIFT_JSON))
        .map_err(|e| refuse(format!("{}/drift.json: {e}", name())))?;
    let record: Value =
        serde_json::from_str(&text).map_err(|e| refuse(format!("{}/drift.json: {e}", name())))?;
    let shard: ShardRecord = match record.get("shard") {
        Some(shard) if record.is_object() => serde_json::from_value(shard.clone())
            .map_err(|e| refuse(format!("{}/drift.json: shard: {e}", name())))?,
        _ => {
            return Err(refuse(format!(
                "{} is a whole output, not a shard (its drift.json has no shard record)",
                name()
            )));
        }
    };
    if settings_sha256(&record) != shard.settings_sha256 {
        return Err(refuse(format!(
            "{}/drift.json does not match its own settings hash (edited?)",
            name()
        )));
    }
    let (start, end) = Shard {
        index: shard.index,
        count: shard.count,
    }
    .range(shard.segment_samples);
    let span = (
        record["sample_id"]["first"].as_u64(),
        record["sample_id"]["last"].as_u64(),
    );
    let first = shard.segment_first_sample_id;
    if span != (Some(first + start), Some(first + end - 1)) {
        return Err(refuse(format!(
            "{} holds samples {:?} to {:?}, not shard {}/{}'s {} to {}",
            name(),
            span.0,
            span.1,
            shard.index,
            shard.count,
            first + start,
            first + end - 1
        )));
    }
    Ok(ShardOutput {
        folder: folder.to_owned(),
        record,
        shard,
    })
}

/// Refuses `part` unless it has the settings of the segment's shards before it, naming the
/// first setting that differs.
fn check_same_run(before: &[ShardOutput], part: &ShardOutput) -> Result<(), PipelineError> {
    let Some(first) = before.first() else {
        return Ok(());
    };
    if first.shard.settings_sha256 == part.shard.settings_sha256 {
        return Ok(());
    }
    let (a, b) = (settings_view(&first.record), settings_view(&part.record));
    let differing = a
        .as_object()
        .into_iter()
        .flatten()
        .find(|(key, value)| b.get(key.as_str()) != Some(value))
        .map_or_else(|| "settings".to_owned(), |(key, _)| key.clone());
    Err(refuse(format!(
        "{} is not of the same run as {}: they differ in {differing}",
        part.folder.display(),
        first.folder.display()
    )))
}

/// Where each segment goes: `output` for a one-segment run, else each segment's recorded
/// folder; never a shard folder or a folder inside one.
fn output_folders(
    segments: &[Vec<ShardOutput>],
    output: Option<&Path>,
    shards: &[PathBuf],
) -> Result<Vec<PathBuf>, PipelineError> {
    let given = output.is_some();
    let outputs: Vec<PathBuf> = match output {
        Some(output) if segments.len() == 1 => vec![output.to_owned()],
        Some(_) => {
            return Err(refuse(format!(
                "these shards are of a run of {} segments, which merge into the segments' own \
                 output folders: leave out --output",
                segments.len()
            )));
        }
        None => segments
            .iter()
            .map(|parts| PathBuf::from(&parts[0].shard.output))
            .collect(),
    };
    for (index, output) in outputs.iter().enumerate() {
        let resolved = drift_writer::resolve_path(output)
            .map_err(|e| refuse(format!("{}: {e}", output.display())))?;
        for shard in shards {
            let shard_resolved = drift_writer::resolve_path(shard)
                .map_err(|e| refuse(format!("{}: {e}", shard.display())))?;
            if resolved.starts_with(&shard_resolved) {
                let hint = match given {
                    true => "",
                    false => " (it is the segment's folder in the run: give --output)",
                };
                return Err(refuse(format!(
                    "output {} of segment {} is inside the shard folder {}{hint}",
                    output.display(),
                    index + 1,
                    shard.display()
                )));
            }
        }
    }
    Ok(outputs)
}

/// Shards that embedded on different CPU kinds or devices: their embeddings may differ in the
/// last bits from what one process writes.
fn warnings(segments: &[Vec<ShardOutput>]) -> Vec<String> {
    let parts = segments.iter().flatten();
    let embeds = segments[0][0]
        .record
        .get("embeddings")
        .is_some_and(|e| !e.is_null());
    if !embeds {
        return Vec::new();
    }
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for part in parts {
        let device = part.record["embeddings"]["device"].as_str().unwrap_or("?");
        kinds
            .entry(format!("{} on {}", device, part.shard.cpu))
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
