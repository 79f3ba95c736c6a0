//! `drift-pipeline score`: detectors graded against the stream's ground truth (drift-detect's
//! `score`), each detector's headline numbers printed.

use anyhow::{Context, Result};
use drift_detect::{ScoreInputs, ScoreOptions};

use crate::args::ScoreArgs;

pub(crate) fn score(args: &ScoreArgs) -> Result<()> {
    let options = ScoreOptions {
        max_delay: args.max_delay,
        max_early: args.max_early,
        rate_unit: args.rate_unit,
        drifted_min: args.drifted_min,
        power_target: args.power_target,
        confidence: args.confidence,
        level_bins: args.level_bins.map(|n| n as usize),
        baselines: (!args.baselines.is_empty()).then(|| args.baselines.clone()),
        window: args.window,
        alpha: args.alpha,
        overwrite: args.overwrite,
    };
    let inputs = ScoreInputs {
        detections: args.detections.clone(),
        alarms: args.alarms.clone(),
        windows: args.windows.clone(),
    };
    let record = drift_detect::score(&args.stream, &inputs, &args.output, &options)
        .with_context(|| format!("cannot score into {}", args.output.display()))?;
    for warning in &record.warnings {
        eprintln!("warning: {warning}");
    }
    outln!(
        "stream of {} folders ({} samples), {} drift episodes; max delay {}, max early {}",
        record.stream.len(),
        record.stream.iter().map(|s| s.samples).sum::<usize>(),
        record.episodes,
        args.max_delay,
        args.max_early
    );
    let number = |v: f64| {
        if v.is_nan() {
            "-".to_owned()
        } else {
            format!("{v:.3}")
        }
    };
    outln!(
        "{:<28} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "detector",
        "alarms",
        "detected",
        "precision",
        "mdt",
        "far",
        "fpr",
        "power"
    );
    for detector in &record.detectors {
        let m = &detector.metrics;
        outln!(
            "{:<28} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            detector.detector,
            m.alarms,
            format!("{}/{}", m.detected, m.episodes),
            number(m.precision),
            number(m.mdt),
            number(m.far),
            detector.fpr.map_or("-".into(), |f| number(f.0)),
            detector.power.map_or("-".into(), number)
        );
    }
    for level in &record.minimum_detectable_levels {
        outln!(
            "{} on {}: power {} from level {}",
            level.detector,
            level.transforms,
            level.target,
            level
                .level
                .map_or("(never reached)".into(), |l| format!("{l}"))
        );
    }
    outln!(
        "wrote episodes.parquet, windows_scored.parquet, power.parquet, summary.csv, \
         power_by_level.png/.svg, pvalue_calibration.png/.svg, delay_by_level.png/.svg, \
         delay_vs_far.png/.svg and score.json to {}",
        args.output.display()
    );
    Ok(())
}
