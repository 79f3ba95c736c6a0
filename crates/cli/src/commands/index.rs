//! `drift-pipeline index`: a dataset manifest, optionally with every image decoded.

use std::path::Path;

use anyhow::{Context, Result};
use drift_pipeline::ImageSize;

use crate::report::ProgressReport;

pub(crate) fn index(
    dir: &Path,
    output: &Path,
    verify: bool,
    threads: usize,
    quiet: bool,
) -> Result<()> {
    let (dataset, remote) = drift_pipeline::open_dataset(dir)
        .with_context(|| format!("cannot index {}", dir.display()))?;
    let decoder = drift_pipeline::Decoder::new(ImageSize::default());
    let bar = ProgressReport::new(
        dataset.images().len() as u64,
        quiet || !verify,
        "images",
        None,
    );
    let (manifest, undecodable) = drift_pipeline::DatasetManifest::index(
        &dataset,
        remote.as_ref(),
        verify.then_some(&decoder),
        drift_pipeline::worker_threads(threads),
        &|done| bar.bar.set_position(done as u64),
    );
    bar.bar.finish_and_clear();
    manifest
        .write(output)
        .with_context(|| format!("cannot write the manifest {}", output.display()))?;
    let checked = match verify {
        true => format!(", {} do not decode", undecodable.len()),
        false => " (not decoded: --verify checks which decode)".to_owned(),
    };
    outln!(
        "{}: {} images in {} classes{checked}; fingerprint {}",
        output.display(),
        manifest.images(),
        dataset.classes().len(),
        &manifest.fingerprint()[..16]
    );
    for image in undecodable.iter().take(drift_pipeline::IGNORED_EXAMPLES) {
        outln!("  {}: {}", image.path, image.reason);
    }
    if undecodable.len() > drift_pipeline::IGNORED_EXAMPLES {
        outln!(
            "  ... and {} more",
            undecodable.len() - drift_pipeline::IGNORED_EXAMPLES
        );
    }
    Ok(())
}
