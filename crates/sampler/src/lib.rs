//! Sampler stage: which image comes next, and when.
//!
//! A [`Sampler`] holds one seeded permutation of the whole dataset, drawn once when it is built,
//! and which images it has used: successive calls never repeat an image. A call takes images in
//! permutation order, or, under label shift ([`ClassPlan::Weighted`]), draws each candidate's
//! class and takes that class's next unused image in permutation order. It hands out sample ids (from 0,
//! one per sample, across calls) and timestamps (`start + sample_id * delta`).
//!
//! Every random draw it makes comes from `drift_core`'s [`sample_rng`]`(seed, sample_id,
//! purpose)` (re-exported here): an independent ChaCha20 stream per (seed, sample, purpose), so
//! results never depend on which thread handled a sample or in which order.
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

/// The key file names derive from: the seed and the dataset's fingerprint, hashed. Two streams
/// that share a seed but not a dataset get different names, so their outputs never collide.
pub fn stream_key(seed: u64, dataset_fingerprint: &str) -> u64 {
    let digest = drift_core::sha256_hex(format!("{seed}\n{dataset_fingerprint}").as_bytes())
        .expect("hashing bytes in memory cannot fail");
    u64::from_str_radix(&digest[..16], 16).expect("sha256_hex gives hex digits")
}

/// The output file name of a sample: a UUID-v4-shaped string from ([`stream_key`], sample_id),
/// plus `.png`.
pub fn file_name(stream_key: u64, sample_id: u64) -> String {
    let mut bytes = [0u8; 16];
    rand::Rng::fill_bytes(
        &mut sample_rng(stream_key, sample_id, Purpose::FileName),
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
    /// Label shift drew a class that has no unused image left.
    #[error(
        "class with label {label} ran out: all its {images} images are used (sampling \
         with replacement reuses them; or lower its weight)"
    )]
    ClassRanOut {
        /// The class.
        label: usize,
        /// Its images in the dataset.
        images: usize,
    },
    /// Class weights that cannot be used.
    #[error("class weights: {reason}")]
    BadWeights {
        /// What is wrong.
        reason: String,
    },
}

/// Which classes a call's samples come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ClassPlan {
    /// The permutation order: classes in the proportions the unused images have.
    #[default]
    AsInDataset,
    /// Label shift: each candidate's class is drawn with these weights (one per label, not
    /// negative, some positive), then the class's next unused image in permutation order is
    /// taken. Without replacement a class that runs out is an error; with it, an exhausted class
    /// gives a random image of its own again.
    Weighted {
        /// One weight per label.
        weights: Vec<f64>,
        /// Reuse images of a class once it has none left.
        with_replacement: bool,
    },
}

/// The seeded permutation, which images it has used, and the sample-id counter.
#[derive(Debug, Clone)]
pub struct Sampler {
    seed: u64,
    clock: StreamClock,
    permutation: Vec<u32>,
    /// By permutation position.
    used: Vec<bool>,
    /// Every position before it is used.
    cursor: usize,
    unused: usize,
    next_sample_id: u64,
    /// Class draws made so far: the stream number of the next ClassChoice draw.
    class_draws: u64,
    /// Per label, the permutation positions of its images, in order (see [`Sampler::with_labels`]).
    class_positions: Vec<Vec<u32>>,
    /// Per label, every position of `class_positions` before it is used.
    class_cursors: Vec<usize>,
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
            used: vec![false; permutation.len()],
            unused: permutation.len(),
            permutation,
            cursor: 0,
            next_sample_id: 0,
            class_draws: 0,
            class_positions: Vec::new(),
            class_cursors: Vec::new(),
        }
    }

    /// Tells the sampler each dataset image's label (`labels[dataset_index]`), which
    /// [`ClassPlan::Weighted`] needs.
    ///
    /// # Panics
    /// If `labels` does not have one entry per image.
    pub fn with_labels(mut self, labels: &[usize]) -> Self {
        assert_eq!(labels.len(), self.permutation.len(), "one label per image");
        let classes = labels.iter().max().map_or(0, |&l| l + 1);
        let mut positions = vec![Vec::new(); classes];
        for (position, &index) in self.permutation.iter().enumerate() {
            positions[labels[index as usize]].push(position as u32);
        }
        self.class_cursors = vec![0; classes];
        self.class_positions = positions;
        self
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
        self.unused
    }

    /// The id the next sample will get.
    pub fn next_sample_id(&self) -> u64 {
        self.next_sample_id
    }

    /// Unused dataset indices in permutation order.
    pub fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        self.candidates(&ClassPlan::AsInDataset)
            .map_while(Result::ok)
    }

    /// The candidates of the next call under `plan`, in order (dataset indices). Nothing is
    /// marked used: [`Sampler::advance`] does that for as many as were consumed, so some can be
    /// rejected (unreadable images that are skipped). An `Err` ends the sequence: a class ran
    /// out.
    pub fn candidates<'a>(&'a self, plan: &'a ClassPlan) -> Candidates<'a> {
        Candidates {
            sampler: self,
            plan,
            cursor: self.cursor,
            class_cursors: self.class_cursors.clone(),
            class_draws: self.class_draws,
            failed: false,
        }
    }

    /// Marks the first `candidates` candidates of `plan` as used, of which `samples` became
    /// samples.
    ///
    /// # Panics
    /// If there are not that many candidates, or `samples > candidates`.
    pub fn advance(&mut self, plan: &ClassPlan, candidates: usize, samples: u64) {
        assert!(samples <= candidates as u64);
        let mut iter = self.candidates(plan);
        let mut positions = Vec::with_capacity(candidates);
        for _ in 0..candidates {
            let (position, _) = iter
                .next_position()
                .and_then(Result::ok)
                .expect("advance stays within the candidates");
            positions.push(position);
        }
        let (class_cursors, class_draws) = (iter.class_cursors, iter.class_draws);
        for position in positions {
            if !self.used[position] {
                self.used[position] = true;
                self.unused -= 1;
            }
        }
        self.class_cursors = class_cursors;
        self.class_draws = class_draws;
        while self.cursor < self.used.len() && self.used[self.cursor] {
            self.cursor += 1;
        }
        self.next_sample_id += samples;
    }

    /// Checks that `n` samples can be taken under `plan`.
    pub fn check(&self, n: u64, plan: &ClassPlan) -> Result<(), SamplerError> {
        if n == 0 {
            return Err(SamplerError::ZeroSamples);
        }
        match plan {
            ClassPlan::AsInDataset if n > self.remaining() as u64 => Err(SamplerError::NotEnough {
                requested: n,
                remaining: self.remaining(),
                total: self.permutation.len(),
            }),
            ClassPlan::AsInDataset => Ok(()),
            ClassPlan::Weighted { weights, .. } => {
                if self.class_positions.is_empty() {
                    return Err(SamplerError::BadWeights {
                        reason: "the sampler was built without labels".into(),
                    });
                }
                if weights.len() != self.class_positions.len()
                    || weights.iter().any(|w| !w.is_finite() || *w < 0.0)
                    || weights.iter().sum::<f64>() <= 0.0
                {
                    return Err(SamplerError::BadWeights {
                        reason: format!(
                            "{} weights for {} classes; they must be finite, not negative, and \
                             not all zero",
                            weights.len(),
                            self.class_positions.len()
                        ),
                    });
                }
                self.candidates(plan)
                    .take(n as usize)
                    .try_for_each(|candidate| candidate.map(drop))
            }
        }
    }

    /// The next `n` samples, all of which are taken to succeed.
    pub fn take(&mut self, n: u64) -> Result<Vec<Draw>, SamplerError> {
        self.check(n, &ClassPlan::AsInDataset)?;
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
        self.advance(&ClassPlan::AsInDataset, n as usize, n);
        Ok(draws)
    }
}

/// The candidates of one call: see [`Sampler::candidates`].
pub struct Candidates<'a> {
    sampler: &'a Sampler,
    plan: &'a ClassPlan,
    cursor: usize,
    class_cursors: Vec<usize>,
    class_draws: u64,
    failed: bool,
}

impl Candidates<'_> {
    /// The next candidate's permutation position and dataset index.
    fn next_position(&mut self) -> Option<Result<(usize, usize), SamplerError>> {
        if self.failed {
            return None;
        }
        let sampler = self.sampler;
        let position = match self.plan {
            ClassPlan::AsInDataset => {
                while self.cursor < sampler.used.len() && sampler.used[self.cursor] {
                    self.cursor += 1;
                }
                if self.cursor == sampler.used.len() {
                    return None;
                }
                self.cursor += 1;
                self.cursor - 1
            }
            ClassPlan::Weighted {
                weights,
                with_replacement,
            } => {
                let mut rng = sample_rng(sampler.seed, self.class_draws, Purpose::ClassChoice);
                self.class_draws += 1;
                let total: f64 = weights.iter().sum();
                let mut u = rand::RngExt::random::<f64>(&mut rng) * total;
                let mut class = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
                for (label, &w) in weights.iter().enumerate() {
                    if u < w {
                        class = label;
                        break;
                    }
                    u -= w;
                }
                let positions = &sampler.class_positions[class];
                let cursor = &mut self.class_cursors[class];
                while *cursor < positions.len() && sampler.used[positions[*cursor] as usize] {
                    *cursor += 1;
                }
                if *cursor < positions.len() {
                    *cursor += 1;
                    positions[*cursor - 1] as usize
                } else if *with_replacement && !positions.is_empty() {
                    let pick = rand::RngExt::random_range(&mut rng, 0..positions.len());
                    positions[pick] as usize
                } else {
                    self.failed = true;
                    return Some(Err(SamplerError::ClassRanOut {
                        label: class,
                        images: positions.len(),
                    }));
                }
            }
        };
        Some(Ok((position, sampler.permutation[position] as usize)))
    }
}

impl Iterator for Candidates<'_> {
    type Item = Result<usize, SamplerError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_position()
            .map(|candidate| candidate.map(|(_, index)| index))
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
        assert_eq!(sampler.remaining(), 3);
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
    fn label_shift_follows_the_weights_without_repeats_until_a_class_runs_out() {
        // 400 images, labels 0..4 in turn: 100 per class.
        let labels: Vec<usize> = (0..400).map(|i| i % 4).collect();
        let mut sampler = Sampler::new(400, 3, StreamClock::default()).with_labels(&labels);
        let plan = ClassPlan::Weighted {
            weights: vec![3.0, 1.0, 0.0, 0.0],
            with_replacement: false,
        };
        sampler.check(120, &plan).unwrap();
        let picks: Vec<usize> = sampler
            .candidates(&plan)
            .take(120)
            .map(Result::unwrap)
            .collect();
        sampler.advance(&plan, 120, 120);
        let class0 = picks.iter().filter(|&&i| labels[i] == 0).count();
        assert!(
            picks.iter().all(|&i| labels[i] < 2),
            "weight 0 is never drawn"
        );
        // 3:1 of 120 is 90; binomial sd is about 4.7.
        assert!((76..=104).contains(&class0), "{class0} of class 0");
        let mut unique = picks.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 120, "no repeats");
        assert_eq!(sampler.remaining(), 280);
        // The next plain call skips what label shift used.
        let rest: Vec<usize> = sampler.pending().collect();
        assert_eq!(rest.len(), 280);
        assert!(rest.iter().all(|i| !picks.contains(i)));
        // Class 0 has 100 images: asking for 150 more mostly-class-0 samples runs out...
        let err = sampler.check(150, &plan).unwrap_err();
        assert!(
            matches!(
                err,
                SamplerError::ClassRanOut {
                    label: 0,
                    images: 100
                }
            ),
            "{err}"
        );
        // ...unless images may be reused once a class is exhausted.
        let reuse = ClassPlan::Weighted {
            weights: vec![3.0, 1.0, 0.0, 0.0],
            with_replacement: true,
        };
        sampler.check(150, &reuse).unwrap();
        let again: Vec<usize> = sampler
            .candidates(&reuse)
            .take(150)
            .map(Result::unwrap)
            .collect();
        assert!(again.iter().all(|&i| labels[i] < 2));
    }

    #[test]
    fn weights_are_checked() {
        let sampler = Sampler::new(4, 3, StreamClock::default()).with_labels(&[0, 1, 0, 1]);
        for weights in [
            vec![1.0],
            vec![0.0, 0.0],
            vec![-1.0, 2.0],
            vec![f64::NAN, 1.0],
        ] {
            let plan = ClassPlan::Weighted {
                weights,
                with_replacement: false,
            };
            assert!(matches!(
                sampler.check(1, &plan),
                Err(SamplerError::BadWeights { .. })
            ));
        }
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
        // Same seed, another dataset: another key, other names.
        assert_ne!(stream_key(42, "aa"), stream_key(42, "ab"));
        assert_ne!(stream_key(42, "aa"), stream_key(43, "aa"));
        assert_ne!(
            file_name(stream_key(42, "aa"), 0),
            file_name(stream_key(42, "ab"), 0)
        );
        let stem = name.strip_suffix(".png").unwrap();
        let parsed = uuid::Uuid::parse_str(stem).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(stem.len(), 36);
    }
}
