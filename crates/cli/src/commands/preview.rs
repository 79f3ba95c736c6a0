//! `drift-pipeline preview`: a contact sheet of transforms at drift levels (PNG).

use anyhow::{Context, Result};
use drift_evaluate::{PREVIEW_LEVELS, PreviewOptions, PreviewSource};
use drift_pipeline::{DEFAULT_SEED, ImageSize, PngCompression, TransformKind};

use crate::args::PreviewArgs;

pub(crate) fn preview(args: &PreviewArgs) -> Result<()> {
    let output = match args.output.extension().and_then(|e| e.to_str()) {
        None => args.output.with_extension("png"),
        Some("png") => args.output.clone(),
        Some(other) => anyhow::bail!(
            "--output {}: the sheet is a PNG; name it FILE.png or FILE, not .{other}",
            args.output.display()
        ),
    };
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
    // On object storage the sheet is one object, written whole.
    if drift_pipeline::remote::is_url(&output) {
        let png = drift_pipeline::encode_png(&sheet.image, PngCompression::High)?;
        drift_pipeline::remote::write_object(&output, png)
            .with_context(|| format!("cannot write {}", output.display()))?;
    } else {
        drift_evaluate::write_preview(&sheet, &output)?;
    }
    let size = sheet.image.size();
    outln!(
        "wrote {}: {} rows x {} levels and the original, {}x{} px",
        output.display(),
        sheet.rows.len(),
        options.levels.len(),
        size.width,
        size.height
    );
    Ok(())
}
