//! What a run shows while and after it runs: an indicatif bar per output (hidden off a
//! terminal or with `--quiet`), and the one-line summary of each output written.

use std::io::IsTerminal;
use std::path::Path;

use drift_pipeline::{
    Dataset, DriftGenerator, DriftShape, Progress, Recovery, SampleSummary, Segment, TransformSpec,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::StdoutClosed;

pub(crate) fn report(
    summary: &SampleSummary,
    generator: &DriftGenerator,
    quiet: bool,
) -> Result<(), StdoutClosed> {
    let drift = drift_description(
        generator.drift().chain().specs(),
        &generator.drift().shape(),
    );
    report_summary(
        summary,
        &generator.dataset().classes().len().to_string(),
        &drift,
        quiet,
    )
}

fn drift_description(specs: &[TransformSpec], shape: &DriftShape) -> String {
    match specs {
        [] => "no drift".to_owned(),
        specs => {
            let list: Vec<String> = specs.iter().map(ToString::to_string).collect();
            format!("drift {} ({shape})", list.join(", "))
        }
    }
}

/// Prints each segment's warnings (allowed, probably not meant) before anything runs.
pub(crate) fn warn_about(segments: &[drift_pipeline::Segment]) {
    for warning in segments.iter().flat_map(drift_pipeline::Segment::warnings) {
        eprintln!("warning: {warning}");
    }
}

/// The classes a segment draws from, in words: all of them, or under label shift with weights
/// "2 of 17" (classes not named are not drawn).
fn classes_drawn(segment: &drift_pipeline::Segment, dataset: &Dataset) -> String {
    let all = dataset.classes().len();
    match &segment.label_shift.priors {
        drift_pipeline::ClassPriors::Weights(weights) => {
            let drawn = weights.iter().filter(|(_, w)| *w > 0.0).count();
            format!("{drawn} of {all}")
        }
        _ => all.to_string(),
    }
}

fn report_summary(
    summary: &SampleSummary,
    classes: &str,
    drift: &str,
    quiet: bool,
) -> Result<(), StdoutClosed> {
    let skipped = match summary.skipped.len() {
        0 => String::new(),
        1 => "; skipped 1 unreadable image (listed in drift.json)".to_owned(),
        n => format!("; skipped {n} unreadable images (listed in drift.json)"),
    };
    outln!(
        "wrote {} samples ({} classes, sample_id {}..={}, {drift}) to {} in {:.2} s, {:.0} images/s{skipped}",
        summary.samples,
        classes,
        summary.first_sample_id,
        summary.first_sample_id + summary.samples - 1,
        summary.output.display(),
        summary.elapsed.as_secs_f64(),
        summary.images_per_second(),
    );
    // Warnings, so --quiet (which hides progress) does not hide them.
    for image in &summary.skipped {
        eprintln!("skipped {}: {}", image.path.display(), image.reason);
    }
    if !quiet {
        // Where the time went, so a slow run says which stage to look at.
        let per_sample =
            |time: std::time::Duration| 1e3 * time.as_secs_f64() / summary.samples.max(1) as f64;
        let stages: Vec<String> = summary
            .stage_times
            .stages()
            .iter()
            .filter(|(_, time)| !time.is_zero())
            .map(|&(name, time)| format!("{name} {:.2}", per_sample(time)))
            .collect();
        outln!(
            "thread time per sample, ms: {} (busiest: {})",
            stages.join(", "),
            summary.stage_times.busiest().0
        );
    }
    Ok(())
}

/// Prints each segment's summary as a run commits it (from the run's `finished` callback,
/// which cannot fail): the first closed-stdout error is kept for [`SegmentSummaries::finish`],
/// and nothing more is printed after it.
pub(crate) struct SegmentSummaries {
    quiet: bool,
    printed: Result<(), StdoutClosed>,
}

impl SegmentSummaries {
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            quiet,
            printed: Ok(()),
        }
    }

    pub(crate) fn print(&mut self, segment: &Segment, summary: &SampleSummary, dataset: &Dataset) {
        if self.printed.is_ok() {
            let drift = drift_description(&segment.transforms, &segment.shape);
            let classes = classes_drawn(segment, dataset);
            self.printed = report_summary(summary, &classes, &drift, self.quiet);
        }
    }

    pub(crate) fn finish(self) -> Result<(), StdoutClosed> {
        self.printed
    }
}

/// An indicatif bar on a terminal; hidden when stderr is not a terminal or with --quiet.
pub(crate) struct ProgressReport {
    pub(crate) bar: ProgressBar,
    pub(crate) quiet: bool,
}

impl ProgressReport {
    /// A bar of `total` `unit`s, named `name` (a scenario's segment) when given.
    pub(crate) fn new(total: u64, quiet: bool, unit: &str, name: Option<&str>) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self {
                bar: ProgressBar::hidden(),
                quiet,
            };
        }
        let bar = ProgressBar::new(total);
        let prefix = if name.is_some() { "{prefix:>12} " } else { "" };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{prefix}{{bar:40}} {{pos}}/{{len}} {unit}, {{rate}}, eta {{settled_eta}}"
            ))
            .expect("the template is valid")
            // At most one decimal: "37.5/s", not indicatif's "37.5213/s".
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1}/s", state.per_sec());
                },
            )
            // The first estimates come from a handful of items and a cold start (a 12 s job
            // showed 7 min): no ETA until 5% is done and a second has passed.
            .with_key(
                "settled_eta",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let settled = state.elapsed().as_secs_f64() >= 1.0
                        && state.len().is_some_and(|len| state.pos() * 20 >= len);
                    let _ = if settled {
                        write!(w, "{:#}", indicatif::HumanDuration(state.eta()))
                    } else {
                        write!(w, "-")
                    };
                },
            ),
        );
        if let Some(name) = name {
            bar.set_prefix(name.to_owned());
        }
        Self { bar, quiet }
    }
}

impl Progress for ProgressReport {
    fn samples_written(&self, written: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(written);
        // Drawn at 100% when done: a bar left at its last throttled redraw (196/200) reads as
        // dropped samples.
        if written >= total {
            self.bar.finish();
        }
    }

    /// A note, not progress: shown with --quiet too.
    fn recovered(&self, folder: &Path, recovery: &Recovery) {
        self.bar
            .suspend(|| eprintln!("note: {}: {recovery}", folder.display()));
    }

    fn embedding(&self, description: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("embedding on {description}"));
        }
    }
}
