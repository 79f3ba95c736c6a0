//! `drift-pipeline timeline`: drift logs plotted over time (PNG and SVG).

use anyhow::{Context, Result};
use drift_pipeline::PngCompression;

use crate::args::TimelineArgs;

pub(crate) fn timeline(args: &TimelineArgs) -> Result<()> {
    let stem = match args.output.extension().and_then(|e| e.to_str()) {
        None => args.output.clone(),
        Some("png" | "svg") => args.output.with_extension(""),
        Some(other) => anyhow::bail!(
            "--output {}: the plot is written as PNG and SVG; name it FILE.png, FILE.svg or \
             FILE, not .{other}",
            args.output.display()
        ),
    };
    let mut points = Vec::new();
    let mut ranges = Vec::new();
    let mut label_shift = false;
    for dir in &args.dirs {
        let samples = drift_pipeline::read_drift_log(dir)
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
    let plot = drift_measure::timeline_plot(
        &title,
        &points,
        args.window as usize,
        label_shift || args.class_mix,
    )
    .context("cannot draw the timeline")?;
    let png = drift_pipeline::encode_png(&plot.rgb, PngCompression::High)?;
    let (png_path, svg_path) = (stem.with_extension("png"), stem.with_extension("svg"));
    std::fs::write(&png_path, png)
        .with_context(|| format!("cannot write {}", png_path.display()))?;
    std::fs::write(&svg_path, plot.svg)
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
