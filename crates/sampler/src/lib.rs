//! Sampler stage: which image comes next, and when.
//!
//! A [`Sampler`] holds one seeded permutation of the whole dataset, drawn once when it is built,
//! and a cursor into it: successive calls never repeat an image. It hands out sample ids (from 0,
//! one per sample, across calls) and timestamps (`start + sample_id * delta`).
//!
//! Every random draw about one sample comes from [`sample_rng`]`(seed, sample_id, purpose)`: an
//! independent ChaCha20 stream per (seed, sample, purpose), so results never depend on which thread
//! handled a sample or in which order.
//!
//! ```
//! use drift_sampler::{Sampler, StreamClock};
//! let mut sampler = Sampler::new(10, 42, StreamClock::default());
//! let first = sampler.take(4).unwrap();
//! let second = sampler.take(6).unwrap();
//! assert_eq!(second[0].sample_id, 4);
//! assert!(sampler.take(1).is_err()); // all ten are used
//! let mut all: Vec<usize> = first.iter().chain(&second).map(|d| d.dataset_index).collect();
//! all.sort();
//! assert_eq!(all, (0..10).collect::<Vec<_>>());
//! ```

pub use drift_core::{Purpose, SampleRng, sample_rng};
use rand::seq::SliceRandom;

/// The output file name of a sample: a UUID-v4-shaped string from (seed, sample_id), plus `.png`.
pub fn file_name(seed: u64, sample_id: u64) -> String {
    let mut bytes = [0u8; 16];
    rand::Rng::fill_bytes(
        &mut sample_rng(seed, sample_id, Purpose::FileName),
        &mut bytes,
    );
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    format!("{}.png", uuid.hyphenated())
}

/// When samples happen: `timestamp = start + sample_id * delta` (seconds since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamClock {
    /// Timestamp of sample 0.
    pub start: f64,
    /// Seconds between consecutive samples.
    pub delta: f64,
}

impl StreamClock {
    /// 2024-06-01 09:00:00 UTC, as the Python tool used.
    pub const DEFAULT_START: f64 = 1_717_232_400.0;
    /// Half an hour.
    pub const DEFAULT_DELTA: f64 = 1800.0;

    /// The timestamp of `sample_id`. Multiplied, not accumulated, so that it does not drift.
    pub fn timestamp(&self, sample_id: u64) -> f64 {
        self.start + sample_id as f64 * self.delta
    }
}

impl Default for StreamClock {
    fn default() -> Self {
        Self {
            start: Self::DEFAULT_START,
            delta: Self::DEFAULT_DELTA,
        }
    }
}

/// One planned sample: which dataset image becomes which sample id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// Index into the dataset's file list.
    pub dataset_index: usize,
    /// The sample's id.
    pub sample_id: u64,
    /// The sample's timestamp.
    pub timestamp: f64,
}

/// Why the sampler refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplerError {
    /// A request for zero samples.
    #[error("the number of samples must be at least 1")]
    ZeroSamples,
    /// A request for more images than the permutation has left.
    #[error(
        "asked for {requested} samples but only {remaining} of {total} images remain unsampled"
    )]
    NotEnough {
        /// Asked for.
        requested: u64,
        /// Left in the permutation.
        remaining: usize,
        /// Dataset size.
        total: usize,
    },
}

/// The seeded permutation, its cursor, and the sample-id counter.
#[derive(Debug, Clone)]
pub struct Sampler {
    seed: u64,
    clock: StreamClock,
    permutation: Vec<u32>,
    cursor: usize,
    next_sample_id: u64,
}

impl Sampler {
    /// Draws the permutation of `dataset_len` images from `seed`.
    ///
    /// # Panics
    /// If `dataset_len` exceeds `u32::MAX` (the permutation stores 4-byte indices to keep memory
    /// small on huge datasets).
    pub fn new(dataset_len: usize, seed: u64, clock: StreamClock) -> Self {
        let len = u32::try_from(dataset_len).expect("datasets are limited to u32::MAX images");
        let mut permutation: Vec<u32> = (0..len).collect();
        permutation.shuffle(&mut sample_rng(seed, 0, Purpose::Permutation));
        Self {
            seed,
            clock,
            permutation,
            cursor: 0,
            next_sample_id: 0,
        }
    }

    /// The seed everything derives from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The clock timestamps come from.
    pub fn clock(&self) -> StreamClock {
        self.clock
    }

    /// Images not yet sampled.
    pub fn remaining(&self) -> usize {
        self.permutation.len() - self.cursor
    }

    /// The id the next sample will get.
    pub fn next_sample_id(&self) -> u64 {
        self.next_sample_id
    }

    /// Dataset indices not yet sampled, in permutation order. Use with [`Sampler::advance`] when
    /// some candidates may be rejected (unreadable images that are skipped).
    pub fn pending(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.permutation[self.cursor..].iter().map(|&i| i as usize)
    }

    /// Marks `positions` pending images as used, of which `samples` became samples.
    ///
    /// # Panics
    /// If `positions` exceeds [`Sampler::remaining`] or `samples > positions`.
    pub fn advance(&mut self, positions: usize, samples: u64) {
        assert!(positions <= self.remaining() && samples <= positions as u64);
        self.cursor += positions;
        self.next_sample_id += samples;
    }

    /// Checks that `n` samples can be taken.
    pub fn check(&self, n: u64) -> Result<(), SamplerError> {
        if n == 0 {
            return Err(SamplerError::ZeroSamples);
        }
        if n > self.remaining() as u64 {
            return Err(SamplerError::NotEnough {
                requested: n,
                remaining: self.remaining(),
                total: self.permutation.len(),
            });
        }
        Ok(())
    }

    /// The next `n` samples, all of which are taken to succeed.
    pub fn take(&mut self, n: u64) -> Result<Vec<Draw>, SamplerError> {
        self.check(n)?;
        let first = self.next_sample_id;
        let draws = self
            .pending()
            .take(n as usize)
            .enumerate()
            .map(|(offset, dataset_index)| {
                let sample_id = first + offset as u64;
                Draw {
                    dataset_index,
                    sample_id,
                    timestamp: self.clock.timestamp(sample_id),
                }
            })
            .collect();
        self.advance(n as usize, n);
        Ok(draws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn permutation_is_a_permutation_and_depends_on_seed() {
        let a: Vec<usize> = Sampler::new(1000, 1, StreamClock::default())
            .pending()
            .collect();
        let b: Vec<usize> = Sampler::new(1000, 2, StreamClock::default())
            .pending()
            .collect();
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(a, b);
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn successive_takes_continue_ids_timestamps_and_never_repeat() {
        let clock = StreamClock {
            start: 100.0,
            delta: 2.5,
        };
        let mut split = Sampler::new(50, 9, clock);
        let mut draws = split.take(5).unwrap();
        draws.extend(split.take(7).unwrap());
        let whole = Sampler::new(50, 9, clock).take(12).unwrap();
        assert_eq!(draws, whole);
        assert_eq!(whole[11].sample_id, 11);
        assert_eq!(whole[11].timestamp, 100.0 + 11.0 * 2.5);
        let mut seen: Vec<usize> = whole.iter().map(|d| d.dataset_index).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 12);
    }

    #[test]
    fn refuses_zero_and_too_many() {
        let mut sampler = Sampler::new(3, 0, StreamClock::default());
        assert_eq!(sampler.take(0), Err(SamplerError::ZeroSamples));
        sampler.take(2).unwrap();
        assert_eq!(
            sampler.take(2),
            Err(SamplerError::NotEnough {
                requested: 2,
                remaining: 1,
                total: 3
            })
        );
        assert!(sampler.take(1).is_ok());
    }

    #[test]
    fn sample_rngs_are_independent_per_sample_and_purpose() {
        let draw = |seed, id, purpose| sample_rng(seed, id, purpose).random::<u64>();
        let base = draw(42, 7, Purpose::FileName);
        assert_eq!(base, draw(42, 7, Purpose::FileName));
        assert_ne!(base, draw(43, 7, Purpose::FileName));
        assert_ne!(base, draw(42, 8, Purpose::FileName));
        assert_ne!(base, draw(42, 7, Purpose::TransformParams(0)));
        assert_ne!(
            draw(42, 7, Purpose::TransformParams(0)),
            draw(42, 7, Purpose::TransformParams(1))
        );
    }

    #[test]
    fn file_names_are_uuid_v4_shaped_and_stable() {
        let name = file_name(42, 0);
        assert_eq!(name, file_name(42, 0));
        assert_ne!(name, file_name(42, 1));
        let stem = name.strip_suffix(".png").unwrap();
        let parsed = uuid::Uuid::parse_str(stem).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(stem.len(), 36);
    }
}
