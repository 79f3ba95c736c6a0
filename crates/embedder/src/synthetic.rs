//! Seeded random ResNet18 weights with realistic BatchNorm statistics, for the parity test and
//! the benchmark: the real weights cannot be downloaded on CI machines, and committing 46 MB
//! is not an option. The same seed gives the same bytes (pinned rand, rand_chacha, rand_distr).

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use drift_core::{ImageSize, RgbImage8};

use crate::EmbedderError;
use crate::weights::{StateDict, WeightTensor, resnet18_layout};

/// A ResNet18 state dict drawn from `seed`: convolutions He-normal over fan-in, BatchNorm scale
/// in [0.5, 1.0], shift and running mean N(0, 0.1), running variance in [0.5, 2.0].
pub fn synthetic_state_dict(seed: u64) -> StateDict {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let small = Normal::new(0.0f32, 0.1).expect("valid normal");
    let gamma = Uniform::new(0.5f32, 1.0).expect("valid range");
    let var = Uniform::new(0.5f32, 2.0).expect("valid range");
    let tensors = resnet18_layout().into_iter().map(|(name, shape)| {
        let count = shape.iter().product();
        let values: Vec<f32> = if name.ends_with(".running_var") {
            (0..count).map(|_| var.sample(&mut rng)).collect()
        } else if shape.len() == 4 {
            let fan_in = (shape[1] * shape[2] * shape[3]) as f32;
            let he = Normal::new(0.0f32, (2.0 / fan_in).sqrt()).expect("valid normal");
            (0..count).map(|_| he.sample(&mut rng)).collect()
        } else if name.ends_with(".weight") {
            (0..count).map(|_| gamma.sample(&mut rng)).collect()
        } else {
            (0..count).map(|_| small.sample(&mut rng)).collect()
        };
        (name, WeightTensor { shape, values })
    });
    StateDict::from_tensors(Path::new("<synthetic>"), tensors)
        .expect("the synthetic layout is ResNet18's")
}

/// Writes [`synthetic_state_dict`] as a safetensors file.
pub fn write_synthetic_weights(seed: u64, path: &Path) -> Result<(), EmbedderError> {
    synthetic_state_dict(seed).write_safetensors(path)
}

/// `count` images of `size` with hashed pixels (image `i` differs from the others), for the
/// speed examples: the embedder's speed does not depend on what the pixels show.
pub fn synthetic_images(count: u32, size: ImageSize) -> Vec<RgbImage8> {
    (0..count)
        .map(|i| {
            let pixels = (0..size.pixel_count() as u32 * 3)
                .map(|p| (p.wrapping_mul(2_654_435_761).wrapping_add(i * 97) >> 24) as u8)
                .collect();
            RgbImage8::from_pixels(size, pixels).expect("a full buffer")
        })
        .collect()
}
