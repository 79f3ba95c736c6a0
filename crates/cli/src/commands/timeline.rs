//! `drift-pipeline timeline`: drift logs plotted over time (PNG and SVG).

use anyhow::{Context, Result};
use drift_pipeline::PngCompression;

use crate::args::TimelineArgs;

pub(crate) fn timeline(args: &TimelineArgs) -> Result<()> {
    let stem = crate::figure_stem(&args.output).map_err(|e| anyhow::anyhow!("--output {e}"))?;
    let mut points = Vec::new();
    let mut ranges = Vec::new();
    let mut label_shift = false;
    for dir in &args.dirs {
        // An output on object storage: its drift log (and record) fetched and checked.
        let copy = match drift_pipeline::remote::is_url(dir) {
            true => Some(
                drift_pipeline::remote::fetch_output(
                    dir,
                    &[drift_pipeline::SAMPLED_IMAGES, "embeddings.parquet"],
                )
                .with_context(|| format!("cannot plot {}", dir.display()))?,
            ),
            false => None,
        };
        let local = copy.as_ref().map_or(dir.as_path(), |c| c.path());
        let samples = drift_pipeline::read_drift_log(local)
            .with_context(|| format!("cannot plot {}", dir.display()))?;
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            ranges.push((first.sample_id, last.sample_id, dir));
        }
        label_shift |= samples.iter().any(|s| s.class_prior.is_some());
        points.extend(samples);
    }
    ranges.sort();
    for pair in ranges.windows(2) {
        let ((_, last, a), (first, _, b)) = (pair[0], pair[1]);
        if first <= last {
            eprintln!(
                "warning: {} and {} overlap in sample_id ({first}..={last}): they are not one \
                 stream (generate --continue-from continues one)",
                a.display(),
                b.display()
            );
        }
    }
    points.sort_by_key(|p| p.sample_id);
    let title = args.title.clone().unwrap_or_else(|| {
        let names: Vec<String> = args
            .dirs
            .iter()
            .map(|d| {
                d.file_name().map_or_else(
                    || d.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            })
            .collect();
        format!("Drift over time: {}", names.join(", "))
    });
    let traces = match &args.detections {
        Some(report) => detector_traces(report)
            .with_context(|| format!("cannot plot the detections in {}", report.display()))?,
        None => Vec::new(),
    };
    let plot = drift_measure::timeline_plot(
        &title,
        &points,
        args.window as usize,
        label_shift || args.class_mix,
        &traces,
    )
    .context("cannot draw the timeline")?;
    let png = drift_pipeline::encode_png(&plot.rgb, PngCompression::High)?;
    let (png_path, svg_path) = (stem.with_extension("png"), stem.with_extension("svg"));
    // On object storage each plot is one object, written whole.
    let write = |path: &std::path::Path, bytes: Vec<u8>| -> Result<()> {
        match drift_pipeline::remote::is_url(path) {
            true => drift_pipeline::remote::write_object(path, bytes)?,
            false => std::fs::write(path, bytes)?,
        }
        Ok(())
    };
    write(&png_path, png).with_context(|| format!("cannot write {}", png_path.display()))?;
    write(&svg_path, plot.svg.into_bytes())
        .with_context(|| format!("cannot write {}", svg_path.display()))?;
    outln!(
        "wrote {} and {}: {} samples from {} folders",
        png_path.display(),
        svg_path.display(),
        points.len(),
        args.dirs.len()
    );
    Ok(())
}

/// Each detector of a detect report, in its order, as a timeline panel: window detectors at each
/// window's last sample, online detectors at every sample.
fn detector_traces(report: &std::path::Path) -> Result<Vec<drift_measure::DetectorTrace>> {
    // A report on object storage is read from a local copy.
    let copy = drift_pipeline::remote::fetch_report_if_remote(
        report,
        "detect.json",
        drift_detect::DETECT_FILES,
    )?;
    let report = copy.as_ref().map_or(report, |c| c.path());
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("detect.json"))
            .context("cannot read detect.json: not a detect report?")?,
    )
    .context("detect.json is not JSON")?;
    let windows = drift_writer::read_report_windows(&report.join("windows.parquet"))?;
    let online = drift_writer::read_report_online(&report.join("online.parquet"))?;
    let names: Vec<String> = record["detectors"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|d| d["detector"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let id = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(names
        .into_iter()
        .map(|name| {
            let mut decisions = Vec::new();
            let mut alarms = Vec::new();
            for w in windows.iter().filter(|w| w.detector == name) {
                // KS and CvM compare p-values with a corrected level, not the statistic.
                let threshold = w.features_drifted.is_none().then_some(w.threshold);
                decisions.push((id(w.last_sample_id), w.statistic, threshold));
                if w.alarm {
                    alarms.push(id(w.last_sample_id));
                }
            }
            for step in online.iter().filter(|s| s.detector == name) {
                decisions.push((id(step.sample_id), step.statistic, Some(step.threshold)));
                if step.alarm {
                    alarms.push(id(step.sample_id));
                }
            }
            drift_measure::DetectorTrace {
                name,
                decisions,
                alarms,
            }
        })
        .collect())
}
