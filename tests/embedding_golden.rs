//! The embedder against torchvision's ResNet18 (fc removed) on seeded weights (fixtures from
//! tools/golden/make_embedding_golden.py), and the weights reader on real files.

use std::path::{Path, PathBuf};

use drift_core::{ImageSize, RgbImage8};
use drift_embedder::weights::{StateDict, read_tensors};
use drift_embedder::{
    DeviceChoice, EMBEDDING_DIM, Embedder, EmbedderError, EmbedderOptions, Normalize, Provenance,
    synthetic_state_dict, write_synthetic_weights,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// The seed `cargo xtask test-weights` uses by default, which made the fixtures.
const GOLDEN_SEED: u64 = 18;

fn golden_dir() -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/golden/embeddings")
}

fn manifest() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(golden_dir().join("manifest.json")).unwrap())
        .unwrap()
}

fn load_image(name: &str) -> RgbImage8 {
    let path = Path::new(ROOT)
        .join("tests/fixtures/golden/resize")
        .join(name);
    let image = image::open(path).unwrap().into_rgb8();
    let size = ImageSize::new(image.width(), image.height()).unwrap();
    RgbImage8::from_pixels(size, image.into_raw()).unwrap()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn embedder(normalize: Normalize, threads: usize) -> Embedder {
    let options = EmbedderOptions {
        normalize,
        threads,
        ..EmbedderOptions::default()
    };
    Embedder::new(&synthetic_state_dict(GOLDEN_SEED), options).unwrap()
}

#[test]
fn synthetic_weights_are_the_ones_the_fixtures_were_made_with() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    write_synthetic_weights(GOLDEN_SEED, &path).unwrap();
    let expected = manifest()["weights_sha256"].as_str().unwrap().to_owned();
    let (dict, source) = StateDict::load(&path).unwrap();
    assert_eq!(source.sha256, expected);
    assert_eq!(source.provenance, Provenance::Other);
    assert!(source.describe().contains("not the reference"));
    assert_eq!(dict.tensors(), synthetic_state_dict(GOLDEN_SEED).tensors());
}

/// Embeds the golden images of `normalize` (the three 224x224 ones as one batch, the 500x300
/// one alone; only the first image with `first_only`) and compares with torchvision.
fn assert_matches_torchvision(embedder: &Embedder, normalize: Normalize, first_only: bool) {
    let manifest = manifest();
    let tolerance = manifest["tolerance_abs"].as_f64().unwrap() as f32;
    let mut cases: Vec<&serde_json::Value> = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|case| case["normalize"] == normalize.name())
        .collect();
    assert_eq!(cases.len(), 4);
    let images: Vec<RgbImage8> = cases
        .iter()
        .map(|case| load_image(case["image"].as_str().unwrap()))
        .collect();
    let ours = if first_only {
        cases.truncate(1);
        embedder.embed(&[&images[0]]).unwrap()
    } else {
        let mut ours = embedder
            .embed(&[&images[0], &images[1], &images[2]])
            .unwrap();
        ours.extend(embedder.embed(&[&images[3]]).unwrap());
        assert_ne!(ours[0], ours[1]);
        ours
    };
    for (case, features) in cases.iter().zip(&ours) {
        let reference = read_f32(&golden_dir().join(case["file"].as_str().unwrap()));
        assert_eq!(features.len(), EMBEDDING_DIM);
        assert_eq!(reference.len(), EMBEDDING_DIM);
        let max = features
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max <= tolerance,
            "{case} on {}: max abs difference {max} > {tolerance}",
            embedder.device_description()
        );
        // Not a vacuous match: the features are far from zero.
        assert!(reference.iter().map(|v| v.abs()).fold(0f32, f32::max) > 0.1);
    }
}

#[test]
fn features_match_torchvision_within_1e4() {
    for normalize in [Normalize::None, Normalize::ImageNet] {
        assert_matches_torchvision(&embedder(normalize, 2), normalize, false);
    }
}

/// The GPU path (wgpu), where one exists: a build with the `wgpu` feature (`cargo xtask test`
/// has it) and DRIFT_TEST_GPU=1, which CI sets. Mesa's software Vulkan ("llvmpipe") counts,
/// which is how it runs on machines without a GPU (slowly: one image per normalization).
#[test]
fn features_match_torchvision_on_the_gpu_when_asked() {
    if std::env::var_os("DRIFT_TEST_GPU").is_none() {
        // As the Python check: CI must not pass by skipping it.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the GPU parity test: set DRIFT_TEST_GPU=1 (.ci/run does)"
        );
        eprintln!("DRIFT_TEST_GPU is not set: the GPU parity test did not run");
        return;
    }
    for normalize in [Normalize::None, Normalize::ImageNet] {
        let options = EmbedderOptions {
            device: DeviceChoice::Gpu,
            normalize,
            ..EmbedderOptions::default()
        };
        let embedder = Embedder::new(&synthetic_state_dict(GOLDEN_SEED), options).unwrap();
        assert!(embedder.device_description().starts_with("gpu"));
        assert_matches_torchvision(&embedder, normalize, true);
    }
}

#[test]
fn embeddings_do_not_depend_on_batch_composition_or_threads() {
    let images: Vec<RgbImage8> = [
        "city_224x224.png",
        "forest_224x224.png",
        "sunset_224x224.png",
    ]
    .iter()
    .map(|name| load_image(name))
    .collect();
    let refs: Vec<&RgbImage8> = images.iter().collect();
    let two_threads = embedder(Normalize::None, 2);
    let batch = two_threads.embed(&refs).unwrap();
    for (i, image) in images.iter().enumerate() {
        assert_eq!(
            two_threads.embed(&[image]).unwrap()[0],
            batch[i],
            "image {i} alone"
        );
    }
    let reversed: Vec<&RgbImage8> = refs.iter().rev().copied().collect();
    let mut again = two_threads.embed(&reversed).unwrap();
    again.reverse();
    assert_eq!(again, batch);
    assert_eq!(embedder(Normalize::None, 1).embed(&refs).unwrap(), batch);

    // 19 images run as three groups (7, 6, 6) at once on two threads: every copy of an image,
    // whatever its group and position, gets the features it gets alone.
    let many: Vec<&RgbImage8> = (0..19).map(|i| refs[i % 3]).collect();
    let features = two_threads.embed(&many).unwrap();
    for (i, features) in features.iter().enumerate() {
        assert_eq!(features, &batch[i % 3], "copy {i} of image {}", i % 3);
    }
}

#[test]
fn a_batch_of_mixed_sizes_is_refused() {
    let embedder = embedder(Normalize::None, 1);
    let a = load_image("sunset_224x224.png");
    let b = load_image("sunset_500x300.png");
    let error = embedder.embed(&[&a, &b]).unwrap_err();
    assert!(matches!(error, EmbedderError::MixedSizes { .. }), "{error}");
}

#[test]
fn pth_files_are_read_whatever_their_archive_name() {
    let manifest = manifest();
    let synthetic = synthetic_state_dict(GOLDEN_SEED);
    for file in manifest["pth_files"].as_array().unwrap() {
        let path = golden_dir().join(file.as_str().unwrap());
        let tensors = read_tensors(&path).unwrap();
        let conv1 = tensors
            .iter()
            .find(|(name, _)| name == "conv1.weight")
            .map(|(_, tensor)| tensor)
            .unwrap();
        assert_eq!(conv1, synthetic.get("conv1.weight").unwrap(), "{path:?}");
        assert_eq!(tensors.len(), 5, "conv1 + four bn1 tensors in {path:?}");
        // The stem alone is not a ResNet18: the error names the first missing tensor.
        let error = StateDict::load(&path).unwrap_err();
        assert!(
            matches!(&error, EmbedderError::MissingTensor { tensor, .. } if tensor == "layer1.0.conv1.weight"),
            "{error}"
        );
    }
}

#[test]
fn bad_weight_files_get_errors_that_name_the_tensor_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let synthetic = synthetic_state_dict(GOLDEN_SEED);

    // A wrong shape.
    let mut tensors: Vec<(String, drift_embedder::weights::WeightTensor)> = synthetic
        .tensors()
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor.clone()))
        .collect();
    let bn = tensors
        .iter_mut()
        .find(|(name, _)| name == "layer2.0.bn1.running_var")
        .unwrap();
    bn.1.shape = vec![64];
    bn.1.values.truncate(64);
    let error = StateDict::from_tensors(Path::new("x.pth"), tensors.clone()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("layer2.0.bn1.running_var") && message.contains("[128]"),
        "{message}"
    );

    // A tensor ResNet18 does not have (a ResNet34 has a third block per stage).
    let mut tensors: Vec<_> = synthetic
        .tensors()
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor.clone()))
        .collect();
    tensors.push((
        "layer1.2.conv1.weight".to_owned(),
        synthetic.get("layer1.0.conv1.weight").unwrap().clone(),
    ));
    let message = StateDict::from_tensors(Path::new("x.pth"), tensors)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("unexpected tensor 'layer1.2.conv1.weight'"),
        "{message}"
    );

    // A known file name with the wrong content.
    let fake = dir.path().join("resnet18-f37072fd.pth");
    write_synthetic_weights(GOLDEN_SEED, &fake).unwrap();
    let message = StateDict::load(&fake).unwrap_err().to_string();
    assert!(
        message.contains("resnet18-f37072fd.pth") && message.contains("f37072fd47e89c5e"),
        "{message}"
    );

    // Neither format.
    let junk = dir.path().join("weights.bin");
    std::fs::write(&junk, b"definitely not weights").unwrap();
    let message = StateDict::load(&junk).unwrap_err().to_string();
    assert!(
        message.contains("weights.bin") && message.contains("safetensors"),
        "{message}"
    );

    // DataParallel's `module.` prefix is accepted.
    let prefixed: Vec<_> = synthetic
        .tensors()
        .iter()
        .map(|(name, tensor)| (format!("module.{name}"), tensor.clone()))
        .collect();
    let dict = StateDict::from_tensors(Path::new("dp.pth"), prefixed).unwrap();
    assert_eq!(dict.tensors(), synthetic.tensors());
}
