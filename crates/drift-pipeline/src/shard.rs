//! Shards: a run split into `N` parts that any engine (Ray, SLURM, Kubernetes) can run apart.
//!
//! Shard `K` of `N` makes, of every segment of `n` samples, the contiguous sample ids
//! `first + floor(K n / N) .. first + floor((K + 1) n / N)`. Every random draw comes from
//! (seed, sample_id, purpose), so a shard needs no other shard: it replays the sampler to its
//! first sample without decoding (under `--skip-bad-images`, a verified dataset manifest says
//! which earlier candidates were skipped), and its drift shapes run over the whole segment.
//! Each segment's shard is a complete output with a `shard` record in its `drift.json`;
//! `drift-merge` joins them into what one process writes, byte for byte.

use serde::{Deserialize, Serialize};

pub use drift_core::Shard;

/// The folder a run's segment `index` (from 0) gets inside a shard's folder.
pub fn segment_folder(index: usize) -> String {
    format!("segment-{}", index + 1)
}

/// A shard that cannot be made as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShardError {
    /// A segment with fewer samples than shards.
    #[error(
        "shard {shard}: the segment has {samples} samples, fewer than the {} shards: every shard \
         needs one",
        shard.count
    )]
    TooFewSamples {
        /// The shard.
        shard: Shard,
        /// The segment's samples.
        samples: u64,
    },
    /// Skipping unreadable images without knowing, undecoded, which earlier ones are skipped.
    #[error(
        "shard {shard}: skipping unreadable images, a shard must know which earlier images are \
         skipped without decoding them: give a dataset manifest made with verification"
    )]
    NeedsVerifiedManifest {
        /// The shard.
        shard: Shard,
    },
    /// The dataset decodes differently than its manifest recorded.
    #[error(
        "shard {shard}: its samples took {used} candidates where the manifest said {manifest}: \
         the dataset's images decode differently than when it was indexed"
    )]
    DecodesChanged {
        /// The shard.
        shard: Shard,
        /// Candidates the samples took.
        used: usize,
        /// Candidates the manifest gave.
        manifest: usize,
    },
}

/// `drift.json`'s `shard`: which part of which run this output is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRecord {
    /// Candidates this shard's samples consumed (skipped images included).
    pub candidates: usize,
    /// Shards of the run.
    pub count: u64,
    /// The CPU kind that embedded (SIMD kernels sum in different orders on different kinds).
    pub cpu: String,
    /// This shard, from 0.
    pub index: u64,
    /// The segment's output folder in the run (absolute), where `merge` puts it by default
    /// (for `generate --shard`, the shard's own folder: merge then needs `--output`).
    pub output: String,
    /// The segment's first sample id and its samples (all shards together).
    pub segment_first_sample_id: u64,
    /// The segment's index in the run, from 0.
    pub segment_index: usize,
    /// The segment's samples, all shards together.
    pub segment_samples: u64,
    /// Segments of the run.
    pub segments: usize,
    /// SHA-256 of this `drift.json` without what differs between shards
    /// ([`crate::records::DriftRecord::settings_view`]): shards of one run have the same.
    pub settings_sha256: String,
}

/// The CPU kind, as far as it decides float results: the widest SIMD the embedder's kernels
/// pick at run time.
pub fn cpu_kind() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let kind = if std::arch::is_x86_feature_detected!("avx512f") {
            "AVX-512F"
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            "AVX2+FMA"
        } else {
            "SSE2"
        };
        format!("x86_64 {kind}")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_a_segment_into_contiguous_ranges_that_cover_it() {
        for samples in [1u64, 7, 100, 1001] {
            for count in 1..=8u64.min(samples) {
                let ranges: Vec<_> = (0..count)
                    .map(|index| Shard { index, count }.range(samples))
                    .collect();
                assert_eq!(ranges[0].0, 0);
                assert_eq!(ranges.last().unwrap().1, samples);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].1, pair[1].0);
                    assert!(pair[0].1 > pair[0].0, "no empty shard");
                }
            }
        }
    }

    #[test]
    fn shard_syntax_is_k_of_n_from_zero() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert!("4/4".parse::<Shard>().unwrap_err().contains("from 0 to 3"));
        assert!("0/0".parse::<Shard>().unwrap_err().contains("at least 1"));
        assert!("3".parse::<Shard>().unwrap_err().contains("expected K/N"));
    }
}
