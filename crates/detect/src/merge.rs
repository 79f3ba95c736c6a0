//! `drift-pipeline merge` of `detect --shard K/N` reports: each shard tested a contiguous range
//! of the stream's windows with the draws one process makes for them ((seed, window, detector)),
//! so the shards' rows, put back in order, are one process's rows, and the merged report is
//! its report byte for byte.

use std::path::{Path, PathBuf};

use drift_writer::{ReportWriter, read_report_alarms, read_report_windows};

use crate::run::{DETECT_FILES, DetectError, DetectRecord, DetectShardRecord, write_report};

/// A shard report: its folder, record and shard.
struct Part {
    folder: PathBuf,
    local: PathBuf,
    record: DetectRecord,
    shard: DetectShardRecord,
}

/// Reads the shard report `folder` from `local` (the folder, or a local copy of it).
fn read_part(folder: &Path, local: &Path) -> Result<Part, DetectError> {
    let input = |reason: String| DetectError::Input {
        folder: folder.to_owned(),
        reason,
    };
    let path = local.join("detect.json");
    let text = drift_core::read_small_text(&path, drift_core::METADATA_LIMIT).map_err(|e| {
        input(format!(
            "cannot read detect.json ({e}): not a detect report?"
        ))
    })?;
    let record: DetectRecord = serde_json::from_str(&text)
        .map_err(|e| input(format!("detect.json is not a detect record: {e}")))?;
    let shard = record
        .shard
        .clone()
        .ok_or_else(|| input("not a shard report (detect --shard K/N makes one)".into()))?;
    Ok(Part {
        folder: folder.to_owned(),
        local: local.to_owned(),
        record,
        shard,
    })
}

/// The record with what differs between shards of one run blanked: the shard, and each
/// detector's counts.
fn run_identity(record: &DetectRecord) -> serde_json::Value {
    let mut record = record.clone();
    record.shard = None;
    for detector in &mut record.detectors {
        detector.windows = 0;
        detector.alarms = 0;
        if let Some(lsdd) = &mut detector.lsdd {
            lsdd.lambdas.clear();
        }
    }
    serde_json::to_value(record).expect("the record serializes")
}

/// Joins `shards` (the folders of one run's `detect --shard` reports, in any order) into the
/// report `output` one process writes.
pub fn merge_reports(
    shards: &[PathBuf],
    output: &Path,
    overwrite: bool,
) -> Result<DetectRecord, DetectError> {
    if shards.is_empty() {
        return Err(DetectError::Settings("merge: no shard given".into()));
    }
    // Shard reports on object storage are read from local copies; an output there is written
    // by the remote transaction.
    let copies = shards
        .iter()
        .map(|shard| drift_store::fetch_report_if_remote(shard, "detect.json", DETECT_FILES))
        .collect::<Result<Vec<_>, _>>()?;
    let mut parts = shards
        .iter()
        .zip(&copies)
        .map(|(folder, copy)| read_part(folder, copy.as_ref().map_or(folder, |c| c.path())))
        .collect::<Result<Vec<_>, _>>()?;
    drift_store::transaction::write_folder(output, DETECT_FILES, "detect.json", overwrite, |out| {
        merge_parts(&mut parts, out, overwrite)
    })
}

/// Joins the shard reports `parts` into the local folder `output`.
fn merge_parts(
    parts: &mut [Part],
    output: &Path,
    overwrite: bool,
) -> Result<DetectRecord, DetectError> {
    let report = ReportWriter::create(output, DETECT_FILES, "detect.json", overwrite)?;
    parts.sort_by_key(|part| part.shard.index);
    let first = &parts[0];
    let identity = run_identity(&first.record);
    let refuse = |part: &Part, reason: String| DetectError::Input {
        folder: part.folder.clone(),
        reason,
    };
    for (k, part) in parts.iter().enumerate() {
        let shard = &part.shard;
        if shard.count != first.shard.count || run_identity(&part.record) != identity {
            return Err(refuse(
                part,
                format!(
                    "shard {}/{} is not of the same detect run as {}",
                    shard.index,
                    shard.count,
                    first.folder.display()
                ),
            ));
        }
        if k > 0 && parts[k - 1].shard.index == shard.index {
            return Err(refuse(
                part,
                format!("shard {}/{} is given twice", shard.index, shard.count),
            ));
        }
        if shard.index != k as u64 {
            return Err(DetectError::Settings(format!(
                "merge: shard {k}/{} is missing",
                shard.count
            )));
        }
        let expected = if k == 0 {
            0
        } else {
            parts[k - 1].shard.end_window
        };
        if shard.first_window != expected {
            return Err(refuse(
                part,
                format!(
                    "shard {}/{} starts at window {} instead of {expected}",
                    shard.index, shard.count, shard.first_window
                ),
            ));
        }
    }
    let count = first.shard.count as usize;
    if parts.len() != count {
        return Err(DetectError::Settings(format!(
            "merge: shard {}/{count} is missing",
            parts.len()
        )));
    }
    // Each shard's rows are by detector, then window; the report's are too.
    let windows: Vec<_> = parts
        .iter()
        .map(|part| read_report_windows(&part.local.join("windows.parquet")))
        .collect::<Result<_, _>>()?;
    let alarms: Vec<_> = parts
        .iter()
        .map(|part| read_report_alarms(&part.local.join("alarms.parquet")))
        .collect::<Result<_, _>>()?;
    let mut record = first.record.clone();
    record.shard = None;
    let mut all_windows = Vec::new();
    let mut all_alarms = Vec::new();
    for summary in &mut record.detectors {
        let name = summary.detector.clone();
        summary.windows = 0;
        summary.alarms = 0;
        if let Some(lsdd) = &mut summary.lsdd {
            lsdd.lambdas.clear();
        }
        for (k, part) in parts.iter().enumerate() {
            let theirs = part
                .record
                .detectors
                .iter()
                .find(|d| d.detector == name)
                .expect("the same detectors (checked)");
            summary.windows += theirs.windows;
            summary.alarms += theirs.alarms;
            if let (Some(ours), Some(theirs)) = (&mut summary.lsdd, &theirs.lsdd) {
                for (lambda, n) in &theirs.lambdas {
                    *ours.lambdas.entry(lambda.clone()).or_default() += n;
                }
            }
            all_windows.extend(windows[k].iter().filter(|r| r.detector == name).cloned());
            all_alarms.extend(alarms[k].iter().filter(|r| r.detector == name).cloned());
        }
    }
    let expected_windows = first.shard.windows as usize * record.detectors.len();
    if all_windows.len() != expected_windows {
        return Err(DetectError::Settings(format!(
            "merge: the shards hold {} window rows, not the {expected_windows} of their run \
             (a shard's tables were changed?)",
            all_windows.len()
        )));
    }
    write_report(report, output, &all_windows, &[], &all_alarms, &record)?;
    Ok(record)
}
