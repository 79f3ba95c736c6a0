//! `cargo xtask drift-timeline OUT DIR...`: the drift logs of output folders, concatenated in
//! sample_id order, plotted over time (drift probability, drifted fraction, level).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use drift_measure::TimelinePoint;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn read_log(folder: &Path) -> Result<Vec<TimelinePoint>> {
    let path = folder.join("drift_log.parquet");
    let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let level_columns: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name().ends_with("_level"))
        .map(|(i, _)| i)
        .collect();
    let mut points = Vec::new();
    for batch in builder.build()? {
        let batch = batch?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .with_context(|| format!("{}: no column {name}", path.display()))
        };
        let ids = column("sample_id")?
            .as_any()
            .downcast_ref::<Int64Array>()
            .context("sample_id")?;
        let segments = column("segment")?
            .as_any()
            .downcast_ref::<StringArray>()
            .context("segment")?;
        let drifted = column("drifted")?
            .as_any()
            .downcast_ref::<BooleanArray>()
            .context("drifted")?;
        let probabilities = column("drift_probability")?
            .as_any()
            .downcast_ref::<Float64Array>()
            .context("drift_probability")?;
        let levels: Vec<&Float64Array> = level_columns
            .iter()
            .map(|&i| {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .context("a level")
            })
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let level = levels
                .iter()
                .filter(|c| c.is_valid(row))
                .map(|c| c.value(row))
                .reduce(f64::max);
            points.push(TimelinePoint {
                sample_id: u64::try_from(ids.value(row))?,
                segment: segments.value(row).to_owned(),
                drifted: drifted.value(row),
                probability: probabilities.value(row),
                level,
            });
        }
    }
    Ok(points)
}

pub fn run(args: &[String]) -> Result<()> {
    ensure!(
        args.len() >= 2,
        "usage: cargo xtask drift-timeline OUT DIR..."
    );
    let out = PathBuf::from(&args[0]);
    let mut points = Vec::new();
    for dir in &args[1..] {
        points.extend(read_log(Path::new(dir))?);
    }
    points.sort_by_key(|p| p.sample_id);
    let plot = drift_measure::timeline_plot("Drift over time (drift_log.parquet)", &points, 25)?;
    let png = drift_writer::encode_png(&plot.rgb, drift_writer::PngCompression::High)?;
    std::fs::write(out.with_extension("png"), png)?;
    std::fs::write(out.with_extension("svg"), plot.svg)?;
    println!(
        "wrote {} and .svg ({} samples)",
        out.with_extension("png").display(),
        points.len()
    );
    Ok(())
}
