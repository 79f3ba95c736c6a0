//! `drift-pipeline inspect`: a dataset's classes, counts, ignored files and transparency.

use std::path::Path;

use anyhow::{Context, Result};
use drift_pipeline::{Dataset, ImageSize};

use crate::StdoutClosed;

pub(crate) fn inspect(dir: &Path, all: bool) -> Result<()> {
    // A dataset on object storage is listed once; its images are read whole for their alpha.
    let (dataset, remote) = drift_pipeline::open_dataset(dir)
        .with_context(|| format!("cannot inspect {}", dir.display()))?;
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
    report_transparency(&dataset, remote.as_ref())?;
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
pub(crate) fn report_transparency(
    dataset: &Dataset,
    remote: Option<&drift_pipeline::RemoteImages>,
) -> Result<(), StdoutClosed> {
    let decoder = drift_pipeline::Decoder::new(ImageSize::default());
    let (mut with_alpha, mut invisible, mut unreadable) = (0usize, Vec::new(), 0usize);
    let images = dataset.images();
    let indices: Vec<usize> = (0..images.len()).collect();
    for chunk in indices.chunks(256) {
        let fetched = remote.map(|remote| remote.read_many(chunk));
        for (k, &index) in chunk.iter().enumerate() {
            let image = &images[index];
            let found = match &fetched {
                None => decoder.transparency(&image.path),
                Some(fetched) => match &fetched[k] {
                    Ok(bytes) => decoder.transparency_bytes(bytes, &image.path),
                    Err(_) => {
                        unreadable += 1;
                        continue;
                    }
                },
            };
            tally(
                found,
                &image.path,
                &mut with_alpha,
                &mut invisible,
                &mut unreadable,
            );
        }
    }
    summarize_transparency(with_alpha, &invisible, unreadable)
}

/// Counts one image's transparency.
fn tally<'a>(
    found: Result<drift_pipeline::Transparency, drift_pipeline::ReaderError>,
    path: &'a Path,
    with_alpha: &mut usize,
    invisible: &mut Vec<&'a Path>,
    unreadable: &mut usize,
) {
    match found {
        Ok(drift_pipeline::Transparency::Opaque) => {}
        Ok(drift_pipeline::Transparency::Alpha) => *with_alpha += 1,
        Ok(drift_pipeline::Transparency::FullyTransparent) => {
            *with_alpha += 1;
            invisible.push(path);
        }
        Err(_) => *unreadable += 1,
    }
}

fn summarize_transparency(
    with_alpha: usize,
    invisible: &[&Path],
    unreadable: usize,
) -> Result<(), StdoutClosed> {
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
