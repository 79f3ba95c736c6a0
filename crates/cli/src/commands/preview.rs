//! `drift-pipeline preview`: a contact sheet of transforms at drift levels (PNG and SVG).

use anyhow::{Context, Result};
use drift_evaluate::{PREVIEW_LEVELS, PreviewOptions, PreviewSource};
use drift_pipeline::{DEFAULT_SEED, ImageSize, PngCompression, TransformKind};

use crate::args::PreviewArgs;

pub(crate) fn preview(args: &PreviewArgs) -> Result<()> {
    let stem = crate::figure_stem(&args.output).map_err(|e| anyhow::anyhow!("--output {e}"))?;
    let transforms = if args.catalog {
        TransformKind::all().to_vec()
    } else {
        args.transforms
            .iter()
            .map(|name| {
                name.parse::<TransformKind>()
                    .with_context(|| format!("--transform {name}"))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let size = match &args.size {
        Some(text) => text
            .parse::<ImageSize>()
            .with_context(|| format!("--size {text}"))?,
        None => ImageSize::new(224, 224).expect("a valid size"),
    };
    let source = match (&args.image, &args.input) {
        (Some(image), _) => PreviewSource::Image(image.clone()),
        (None, Some(root)) => PreviewSource::Dataset {
            root: root.clone(),
            samples: args.samples as usize,
        },
        (None, None) => anyhow::bail!("name an IMAGE or a dataset with --input"),
    };
    let options = PreviewOptions {
        source,
        transforms,
        levels: match args.levels.is_empty() {
            true => PREVIEW_LEVELS.to_vec(),
            false => args.levels.clone(),
        },
        size,
        seed: args.seed.unwrap_or(DEFAULT_SEED),
    };
    let sheet = drift_evaluate::preview(&options).context("cannot draw the preview")?;
    let (png_path, svg_path) = (stem.with_extension("png"), stem.with_extension("svg"));
    // On object storage each file is one object, written whole.
    if drift_pipeline::remote::is_url(&stem) {
        let png = drift_pipeline::encode_png(&sheet.image, PngCompression::High)?;
        for (path, bytes) in [
            (&png_path, png),
            (&svg_path, sheet.svg.clone().into_bytes()),
        ] {
            drift_pipeline::remote::write_object(path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    } else {
        drift_evaluate::write_preview(&sheet, &stem)?;
    }
    let size = sheet.image.size();
    outln!(
        "wrote {} and {}: {} rows x {} levels and the original, {}x{} px",
        png_path.display(),
        svg_path.display(),
        sheet.rows.len(),
        options.levels.len(),
        size.width,
        size.height
    );
    Ok(())
}
