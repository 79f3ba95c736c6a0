//! `drift-pipeline generate`: a one-segment run; its flags fill the raw run a scenario file
//! fills, and the run spec checks them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use drift_pipeline::{RawRun, RawSegment, RunSpec};

use crate::COMMAND_LINE;
use crate::args::GenerateArgs;
use crate::report::{ProgressReport, SegmentSummaries, warn_about};

/// `generate` is a one-segment run: its flags fill the same raw run a scenario file does, and
/// the run spec checks them.
pub(crate) fn generate(args: GenerateArgs, cancel: Arc<AtomicBool>) -> Result<()> {
    let mut raw = RawRun {
        input: args.input,
        continue_from: args.continue_from,
        seed: args.seed,
        size: args.size,
        start_timestamp: args.start_timestamp,
        delta_timestamp: args.delta_timestamp,
        organize_by_class: args.organize_by_class,
        class_mapping: args.class_mapping,
        skip_bad_images: args.skip_bad_images,
        alpha: args.alpha,
        overwrite: args.overwrite,
        png_compression: Some(args.run.png_compression.name().to_owned()),
        threads: Some(args.run.threads),
        shard_output: args.shard.shard.as_ref().map(|_| args.output.clone()),
        shard: args.shard.shard,
        manifest: args.shard.manifest,
        segments: vec![RawSegment {
            name: args.segment,
            samples: args.num_samples,
            output: args.output,
            transforms: args.transforms,
            drift: args.drift,
            ..RawSegment::default()
        }],
        ..RawRun::default()
    };
    args.embedding
        .network
        .fill(&mut raw, args.embedding.embeddings);
    let mut spec = RunSpec::build(raw, COMMAND_LINE, Path::new(""))?;
    warn_about(&spec.segments);
    spec.set_cancel(Some(cancel));
    let quiet = args.run.quiet;
    let mut summaries = SegmentSummaries::new(quiet);
    spec.run(
        |segment| Box::new(ProgressReport::new(segment.samples, quiet, "samples", None)),
        |segment, summary, dataset| summaries.print(segment, summary, dataset),
    )?;
    Ok(summaries.finish()?)
}
