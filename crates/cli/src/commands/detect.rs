//! `drift-pipeline detect`: drift detectors over a stream's embeddings (drift-detect), each
//! detector's windows and alarms printed.

use anyhow::{Context, Result};
use drift_detect::DetectOptions;

use crate::args::DetectArgs;

pub(crate) fn detect(args: DetectArgs) -> Result<()> {
    let options = DetectOptions {
        detectors: args.detectors,
        window: args.window as usize,
        stride: args.stride.map(|s| s as usize),
        alpha: args.alpha,
        seed: args.seed,
        overwrite: args.overwrite,
        threads: args
            .threads
            .map_or_else(|| DetectOptions::default().threads, |n| n as usize),
        shard: args
            .shard
            .as_deref()
            .map(str::parse::<drift_core::Shard>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--shard: {e}"))?,
    };
    let started = std::time::Instant::now();
    let record = drift_detect::detect(&args.reference, &args.stream, &args.output, &options)
        .with_context(|| format!("cannot detect into {}", args.output.display()))?;
    outln!(
        "reference {} ({} samples), stream of {} folders ({} samples); windows of {} every {}, alpha {}",
        record.reference.folder,
        record.reference.samples,
        record.stream.len(),
        record.stream.iter().map(|s| s.samples).sum::<usize>(),
        record.window,
        record.stride,
        record.alpha
    );
    for detector in &record.detectors {
        if let Some(constant) = detector.constant_features.filter(|&n| n > 0)
            && detector.detector.starts_with("cvm")
        {
            eprintln!(
                "warning: {constant} of the reference's features hold one value only; \
                 Cramér-von Mises (scipy's and alibi's statistic) treats tied values as ordered \
                 and finds such a feature drifted in every window where it stays constant, so \
                 {} alarms on clean windows too (see detect.json)",
                detector.detector
            );
        }
    }
    for detector in &record.detectors {
        if let Some(calibration) = &detector.calibration
            && calibration.pool < 10 * record.window
        {
            eprintln!(
                "warning: {}: the calibration pool holds {} samples, {:.1} windows of {}; null \
                 windows drawn from fewer than ten understate the null's spread, so clean windows \
                 alarm more often than alpha (7.7% at alpha 0.05 with five, in cargo xtask \
                 long-stream); a larger reference, pool=P or a smaller --window",
                detector.detector,
                calibration.pool,
                calibration.pool as f64 / record.window as f64,
                record.window
            );
        }
    }
    outln!("{:<32} {:>8} {:>8}", "detector", "windows", "alarms");
    for detector in &record.detectors {
        outln!(
            "{:<32} {:>8} {:>8}",
            detector.detector,
            detector.windows,
            detector.alarms
        );
    }
    if let Some(shard) = &record.shard {
        outln!(
            "shard {}/{}: windows {}..{} of {} (drift-pipeline merge joins the shards)",
            shard.index,
            shard.count,
            shard.first_window,
            shard.end_window,
            shard.windows
        );
    }
    outln!(
        "wrote windows.parquet, online.parquet, alarms.parquet and detect.json to {} in {:.1} s",
        args.output.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
