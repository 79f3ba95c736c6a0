//! The transforms against torchvision.transforms.v2.functional on float32 tensors, for fixed
//! parameters (fixtures from tools/golden/make_transform_golden.py), and the noise statistically.

use std::path::Path;

use drift_core::{ImageSize, Purpose, RgbImage8, sample_rng};
use drift_transformer::{
    PlanarImage, brightness, contrast, gaussian_blur, gaussian_noise, hue, rotate, saturation,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn load(path: &Path) -> RgbImage8 {
    let image = image::open(path).unwrap().into_rgb8();
    let size = ImageSize::new(image.width(), image.height()).unwrap();
    RgbImage8::from_pixels(size, image.into_raw()).unwrap()
}

#[test]
fn every_transform_matches_torchvision_within_one_level() {
    let golden = Path::new(ROOT).join("tests/fixtures/golden/transforms");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden.join("manifest.json")).unwrap())
            .unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 54);
    for case in cases {
        let source = load(&Path::new(ROOT).join(case["source"].as_str().unwrap()));
        let transform = case["transform"].as_str().unwrap();
        let value = case["value"].as_f64().unwrap();
        let mut ours = PlanarImage::from_rgb8(&source);
        match transform {
            "rotate" => rotate(&mut ours, value),
            "brightness" => brightness(&mut ours, value as f32),
            "contrast" => contrast(&mut ours, value as f32),
            "saturation" => saturation(&mut ours, value as f32),
            "hue" => hue(&mut ours, value as f32),
            "gaussian_blur" => gaussian_blur(&mut ours, value as f32),
            other => panic!("unknown transform {other} in manifest"),
        }
        let bytes = std::fs::read(golden.join(case["file"].as_str().unwrap())).unwrap();
        let reference: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(reference.len(), ours.data().len(), "{case}");
        let max = ours
            .data()
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        // One 8-bit level, plus float noise from a different summation order.
        assert!(
            max <= 1.0 / 255.0 + 1e-6,
            "{transform}({value}): max difference {max} ({} levels)",
            max * 255.0
        );
    }
}

/// Mean and standard deviation of clamp(x + N(mu, sigma^2), 0, 1), by numerical integration.
fn clamped_normal_moments(x: f64, mu: f64, sigma: f64) -> (f64, f64) {
    let steps = 20_000;
    let (mut mass, mut first, mut second) = (0.0, 0.0, 0.0);
    for i in 0..steps {
        let z = -8.0 + 16.0 * (i as f64 + 0.5) / steps as f64;
        let density =
            (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt() * 16.0 / steps as f64;
        let out = (x + mu + sigma * z).clamp(0.0, 1.0);
        mass += density;
        first += density * out;
        second += density * out * out;
    }
    let mean = first / mass;
    (mean, (second / mass - mean * mean).sqrt())
}

#[test]
fn noise_has_the_specified_mean_and_spread() {
    let size = ImageSize::new(64, 64).unwrap();
    let n = 3 * size.pixel_count();
    for sigma in [0.02f64, 0.05, 0.1, 0.25, 0.5] {
        let mut image = PlanarImage::from_planes(size, vec![0.4; n]).unwrap();
        let mut rng = sample_rng(3, 9, Purpose::TransformNoise(0));
        gaussian_noise(&mut image, 0.1, sigma as f32, &mut rng);
        let values: Vec<f64> = image.data().iter().map(|&v| f64::from(v)).collect();
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        let (want_mean, want_sd) = clamped_normal_moments(0.4, 0.1, sigma);
        let se = want_sd / (n as f64).sqrt();
        assert!(
            (mean - want_mean).abs() < 5.0 * se,
            "sigma {sigma}: mean {mean} vs {want_mean}"
        );
        assert!(
            (sd - want_sd).abs() < 0.03 * want_sd,
            "sigma {sigma}: sd {sd} vs {want_sd}"
        );
    }
}
