//! `drift-pipeline evaluate`: a sweep of a transform list over drift levels (drift-evaluate),
//! its per-level table printed.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use drift_evaluate::{EvaluateError, EvaluateOptions, TargetKl};

use crate::args::EvaluateArgs;
use crate::report::ProgressReport;

pub(crate) fn evaluate(args: EvaluateArgs, cancel: Arc<AtomicBool>) -> Result<()> {
    let options = EvaluateOptions {
        transforms: args.transforms,
        levels: args.levels,
        num_samples: args.num_samples,
        seed: args.seed,
        size: args.size,
        embedding: args.network.options()?,
        threads: args.threads,
        overwrite: args.overwrite,
        cancel: Some(cancel),
        shard: args.shard,
        target_kl: args.target_kl.map(|target| TargetKl {
            target,
            tolerance: args.target_tolerance,
        }),
        ..EvaluateOptions::default()
    };
    let bar = ProgressReport::new(0, args.quiet, "embeddings", None);
    let result = drift_evaluate::evaluate(&args.input, &args.output, &options, &bar);
    bar.bar.finish_and_clear();
    let evaluation = result.map_err(|error| match error {
        EvaluateError::Reader(_) => {
            anyhow::Error::new(error).context(format!("cannot use input {}", args.input.display()))
        }
        other => anyhow::Error::new(other)
            .context(format!("cannot evaluate into {}", args.output.display())),
    })?;
    outln!(
        "{}: {} levels x {} batches of up to {} images ({} images); {}",
        evaluation.transforms,
        evaluation.summaries.len(),
        evaluation.batches,
        options.embedding.batch_size,
        evaluation.images,
        evaluation.embedding_description
    );
    outln!(
        "{:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "level",
        "batches",
        "median",
        "p25",
        "p75",
        "mean",
        "sd"
    );
    // Four decimals for KLs of pretrained weights (0.01..1); small ones keep their digits.
    let kl = |value: f64| {
        if value == 0.0 || value >= 0.01 {
            format!("{value:.4}")
        } else {
            format!("{value:.3e}")
        }
    };
    for s in &evaluation.summaries {
        outln!(
            "{:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
            format!("{:?}", s.drift_level),
            s.batches,
            kl(s.median),
            kl(s.p25),
            kl(s.p75),
            kl(s.mean),
            s.sd.map_or("-".to_owned(), kl)
        );
    }
    if let Some(found) = &evaluation.target_kl {
        outln!(
            "level {} reaches a median KL of {} ({}); at {} it is {} (tolerance {})",
            found.level,
            found.target,
            kl(found.median),
            found.below,
            kl(found.below_median),
            found.tolerance
        );
    }
    outln!(
        "wrote kl.parquet, summary.csv, kl_by_batch.png/.svg, kl_by_level.png/.svg and \
         evaluation.json to {} in {:.1} s, {:.1} images/s (each image at each level)",
        evaluation.output.display(),
        evaluation.elapsed.as_secs_f64(),
        evaluation.images_per_second()
    );
    Ok(())
}
