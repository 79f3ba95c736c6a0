//! The reader against PIL: convert("RGB") then antialiased BILINEAR resize, as torchvision's
//! ImageFolder + Resize do. Fixtures come from tools/golden/make_resize_golden.py.

use std::path::Path;

use drift_core::ImageSize;
use drift_reader::Decoder;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

#[test]
fn decode_and_resize_match_pil_within_one_level() {
    let golden_dir = Path::new(FIXTURES).join("golden/resize");
    let mut checked = 0;
    for entry in std::fs::read_dir(&golden_dir).unwrap() {
        let golden_path = entry.unwrap().path();
        let stem = golden_path.file_stem().unwrap().to_str().unwrap();
        let (source, size) = stem.rsplit_once('_').unwrap();
        let size: ImageSize = size.parse().unwrap();
        let source_path = Path::new(FIXTURES)
            .join("images")
            .join(format!("{source}.png"));
        let ours = Decoder::new(size).decode(&source_path).unwrap();
        let pil = image::open(&golden_path).unwrap().into_rgb8();
        assert_eq!((pil.width(), pil.height()), (size.width, size.height));
        let diffs: Vec<u8> = ours
            .pixels()
            .iter()
            .zip(pil.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let max = diffs.iter().copied().max().unwrap();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        assert!(
            max <= 1,
            "{stem}: max difference {max} (mean {mean:.4}) from PIL"
        );
        checked += 1;
    }
    assert_eq!(checked, 18, "six sources x three sizes");
}
