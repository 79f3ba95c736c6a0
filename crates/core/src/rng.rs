//! The one source of randomness: a generator per (seed, sample_id, purpose).

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The per-sample generator type.
pub type SampleRng = ChaCha20Rng;

/// What a random draw is for. Each purpose gets its own stream, so adding a new kind of draw never
/// shifts the values of existing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The dataset permutation (drawn once, with sample id 0).
    Permutation,
    /// The output file name.
    FileName,
    /// Parameters of the transform at this position in a transform list.
    TransformParams(u32),
    /// Per-pixel noise of the transform at this position in a transform list.
    TransformNoise(u32),
    /// Whether a sample is drifted at all (drift shapes that draw per sample).
    DriftSelection,
    /// The class of a label-shifted candidate (numbered by class draw, not sample id).
    ClassChoice,
    /// A segment's class priors drawn from a Dirichlet distribution.
    ClassPriors,
    /// The permutations a drift detector draws for a window (numbered by window, not sample
    /// id), for the detector at this position in `detect`'s list.
    DetectorPermutations(u32),
    /// What a drift detector draws once on its reference (LSDD's kernel centres; with sample
    /// id 0), for the detector at this position in `detect`'s list.
    DetectorSetup(u32),
}

impl Purpose {
    fn code(self) -> u64 {
        // Stable numbers: changing one changes every output made with it.
        match self {
            Purpose::Permutation => 1,
            Purpose::FileName => 2,
            Purpose::DriftSelection => 3,
            Purpose::ClassChoice => 4,
            Purpose::ClassPriors => 5,
            Purpose::TransformParams(i) => (1 << 32) | u64::from(i),
            Purpose::TransformNoise(i) => (2 << 32) | u64::from(i),
            Purpose::DetectorPermutations(i) => (3 << 32) | u64::from(i),
            Purpose::DetectorSetup(i) => (4 << 32) | u64::from(i),
        }
    }
}

/// The generator for one (seed, sample_id, purpose): a ChaCha20 key made of the seed and the
/// purpose, on the stream numbered by the sample id.
pub fn sample_rng(seed: u64, sample_id: u64, purpose: Purpose) -> SampleRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&purpose.code().to_le_bytes());
    key[16..].copy_from_slice(b"drift-pipeline\0\0");
    let mut rng = ChaCha20Rng::from_seed(key);
    rng.set_stream(sample_id);
    rng
}
