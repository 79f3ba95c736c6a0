//! Shards: a run split into `N` parts that any engine (Ray, SLURM, Kubernetes) can run apart
//! (`generate --shard`, `evaluate --shard`, `detect --shard`), each part a contiguous range of
//! what the run makes, and `merge` joins them into what one process writes.

use std::fmt;
use std::str::FromStr;

/// Shard `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl Shard {
    /// This shard's part of `samples` items (a segment's samples, a sweep's batches, a
    /// stream's windows), as offsets from the first: `start..end`.
    pub fn range(&self, samples: u64) -> (u64, u64) {
        let at = |k: u64| (u128::from(k) * u128::from(samples) / u128::from(self.count)) as u64;
        (at(self.index), at(self.index + 1))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "expected K/N, shard K (from 0) of N, e.g. 0/4 to 3/4 (SLURM: \
                 $SLURM_ARRAY_TASK_ID/N with --array=0-(N-1)); got '{text}'"
            )
        };
        let (k, n) = text.split_once('/').ok_or_else(usage)?;
        let index: u64 = k.trim().parse().map_err(|_| usage())?;
        let count: u64 = n.trim().parse().map_err(|_| usage())?;
        if count == 0 {
            return Err(format!("the shard count must be at least 1, got '{text}'"));
        }
        if index >= count {
            return Err(format!(
                "shard {index} does not exist among {count} (shards count from 0 to {})",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }
}
