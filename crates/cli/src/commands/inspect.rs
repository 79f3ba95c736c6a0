//! `drift-pipeline inspect`: a dataset's classes, counts, ignored files and transparency.

use std::path::Path;

use anyhow::{Context, Result};
use drift_pipeline::{Dataset, ImageSize};

use crate::StdoutClosed;

pub(crate) fn inspect(dir: &Path, all: bool) -> Result<()> {
    let dataset =
        Dataset::scan(dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    let counts = dataset.counts_per_class();
    let width = dataset
        .classes()
        .names()
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(5)
        .max(5);
    outln!("dataset {}", dir.display());
    outln!("{:>5}  {:<width$}  {:>8}", "label", "class", "images");
    for (label, name) in dataset.classes().names().iter().enumerate() {
        outln!("{label:>5}  {name:<width$}  {:>8}", counts[label]);
    }
    outln!(
        "{} classes, {} images, {} files or folders ignored",
        dataset.classes().len(),
        dataset.images().len(),
        dataset.ignored_count()
    );
    report_ignored(&dataset, all)?;
    report_transparency(&dataset)?;
    Ok(())
}

/// The ignored paths by kind, then the first 20 (or all) of them.
pub(crate) fn report_ignored(dataset: &Dataset, all: bool) -> Result<(), StdoutClosed> {
    if dataset.ignored_count() == 0 {
        return Ok(());
    }
    let kinds: Vec<String> = dataset
        .ignored_by_kind()
        .iter()
        .map(|(kind, count)| format!("{count} {kind}"))
        .collect();
    outln!("  ignored by kind: {}", kinds.join(", "));
    let shown = if all {
        dataset.ignored()
    } else {
        dataset.ignored_examples()
    };
    for path in shown {
        outln!("  ignored {}", path.display());
    }
    if shown.len() < dataset.ignored_count() {
        outln!(
            "  ... and {} more (--all lists them all)",
            dataset.ignored_count() - shown.len()
        );
    }
    Ok(())
}

/// How many images have an alpha channel and how many are fully transparent, with what
/// `generate` does about them.
pub(crate) fn report_transparency(dataset: &Dataset) -> Result<(), StdoutClosed> {
    let decoder = drift_pipeline::Decoder::new(ImageSize::default());
    let (mut with_alpha, mut invisible, mut unreadable) = (0usize, Vec::new(), 0usize);
    for image in dataset.images() {
        match decoder.transparency(&image.path) {
            Ok(drift_pipeline::Transparency::Opaque) => {}
            Ok(drift_pipeline::Transparency::Alpha) => with_alpha += 1,
            Ok(drift_pipeline::Transparency::FullyTransparent) => {
                with_alpha += 1;
                invisible.push(&image.path);
            }
            Err(_) => unreadable += 1,
        }
    }
    if with_alpha == 0 {
        outln!("alpha: no image has an alpha channel");
    } else {
        outln!(
            "alpha: {with_alpha} images have an alpha channel, {} of them fully transparent; \
             generate drops alpha by default (the colours stored under the transparency \
             stay, as torchvision's ImageFolder does), --alpha white, black or #RRGGBB \
             composites them onto a colour",
            invisible.len()
        );
        for path in invisible.iter().take(drift_pipeline::IGNORED_EXAMPLES) {
            outln!("  fully transparent {}", path.display());
        }
    }
    if unreadable > 0 {
        outln!(
            "unreadable: {unreadable} images cannot be read (generate --skip-bad-images skips \
             them)"
        );
    }
    Ok(())
}
