//! Online MMD as alibi-detect's `MMDDriftOnline` (PyTorch backend) runs it: thresholds for each
//! of the first W steps configured once on the reference by bootstrap (each bootstrap splits the
//! reference into a sub-reference and an extended test window of 2W - 1 points; the threshold at
//! step w is the type-7 quantile 1 - 1/ERT of the bootstraps' MMD^2 on window w, and the
//! bootstraps at or above it are dropped before step w + 1), then a split of the reference into
//! the sub-reference the stream is compared with and an initial window (redrawn until that
//! window is below the first threshold), and one statistic per stream sample over the last W.
//!
//! The arithmetic is alibi's with running sums: a bootstrap's window sums move by one point per
//! step (O(W) instead of O(W^2)), and a monitor adds one kernel column per sample instead of
//! recomputing the window's kernel (alibi's cost per step is O(W^2 d)); the window's pair sum is
//! recomputed exactly every W steps so rounding cannot accumulate over a long stream.

use std::collections::VecDeque;

use crate::mmd::{Bandwidth, MmdReference, squared_distances};

/// Why online thresholds or a split could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OnlineError {
    /// Too few bootstraps survive to estimate the 1 - 1/ERT quantile.
    #[error(
        "at step {step} only {survivors} bootstraps are left, fewer than the expected run time {ert}: \
         the 1 - 1/ERT quantile needs at least ERT of them (more bootstraps, ideally ten times the \
         ERT, or a shorter window)"
    )]
    TooFewBootstraps {
        /// The window step (0-based).
        step: usize,
        /// Bootstraps left at that step.
        survivors: usize,
        /// The expected run time.
        ert: f64,
    },
    /// The reference cannot hold a sub-reference and an extended test window.
    #[error(
        "a reference of {reference} samples is too small for windows of {window}: it must hold \
         an extended test window of 2W - 1 samples and at least 2 more"
    )]
    ReferenceTooSmall {
        /// Reference samples.
        reference: usize,
        /// The window.
        window: usize,
    },
    /// No split of the reference gave an initial window below the first threshold.
    #[error("{tries} splits of the reference all start above the first threshold")]
    NoQuietSplit {
        /// Splits tried.
        tries: usize,
    },
}

/// The most reference splits tried before giving up (alibi tries forever; a split starts above
/// the first threshold with probability about 1/ERT).
pub const MAX_SPLITS: usize = 1000;

/// An online MMD detector configured on its reference.
#[derive(Debug, Clone)]
pub struct MmdOnline {
    features: usize,
    window: usize,
    ert: f64,
    bandwidth: Bandwidth,
    thresholds: Vec<f64>,
    /// The sub-reference the stream is compared with, row-major.
    sub_reference: Vec<f64>,
    /// Mean kernel over the sub-reference's distinct pairs.
    sub_kernel_mean: f64,
    /// The initial window's rows, its kernel sums over the sub-reference, its pair kernels
    /// (W x W, zero diagonal).
    initial: Vec<f64>,
    initial_column_sums: Vec<f64>,
    initial_pairs: Vec<f64>,
    splits_tried: usize,
}

/// One step of a monitor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnlineStep {
    /// MMD^2 of the sub-reference against the last W samples.
    pub statistic: f64,
    /// The threshold of this step.
    pub threshold: f64,
    /// statistic > threshold.
    pub alarm: bool,
    /// Steps since the start or the last reset (alibi's `t`), this one included.
    pub t: usize,
}

/// alibi's `quantile(sample, p, type=7)`: h = (N - 1) p + 1, linear between order statistics.
fn quantile_type7(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len() as f64;
    if !(1.0 / n <= p && p <= (n - 1.0) / n) {
        return None;
    }
    let h = (n - 1.0) * p + 1.0;
    let floor = h as usize;
    let mut q = sorted[floor - 1];
    if floor as f64 != h {
        q += (h - floor as f64) * (sorted[floor] - sorted[floor - 1]);
    }
    Some(q)
}

impl MmdOnline {
    /// Configures thresholds from `bootstraps` (permutations of the reference's indices, as
    /// alibi's `torch.randperm(n)` draws them, one per bootstrap) and then the split, drawn by
    /// `split` until one starts below the first threshold. `threads` share the bootstraps; the
    /// result does not depend on their number.
    pub fn configure(
        reference: &MmdReference,
        ert: f64,
        window: usize,
        bootstraps: &[Vec<usize>],
        mut split: impl FnMut() -> Vec<usize>,
        threads: usize,
    ) -> Result<Self, OnlineError> {
        let n = reference.len();
        let extended = 2 * window - 1;
        if n < extended + 2 || window < 2 {
            return Err(OnlineError::ReferenceTooSmall {
                reference: n,
                window,
            });
        }
        let kernel = reference.kernel_xx();
        let column_sums: Vec<f64> = (0..n)
            .map(|j| (0..n).map(|i| kernel[i * n + j]).sum())
            .collect();
        let full: f64 = column_sums.iter().sum();
        let sub = n - extended;
        let statistics =
            bootstrap_statistics(kernel, n, &column_sums, full, window, bootstraps, threads);
        let thresholds = thresholds_from(&statistics, window, ert)?;

        let (rf, wf) = (sub as f64, window as f64);
        let mut splits_tried = 0;
        loop {
            if splits_tried == MAX_SPLITS {
                return Err(OnlineError::NoQuietSplit {
                    tries: splits_tried,
                });
            }
            splits_tried += 1;
            let permutation = split();
            let (kept, rest) = permutation.split_at(sub);
            let initial_indices = &permutation[n - window..];
            // The sub-reference's pair sum from the whole reference's, less the other points.
            let rest_columns: f64 = rest.iter().map(|&c| column_sums[c]).sum();
            let rest_pairs: f64 = rest
                .iter()
                .map(|&a| rest.iter().map(|&b| kernel[a * n + b]).sum::<f64>())
                .sum();
            let sub_kernel_mean = (full - 2.0 * rest_columns + rest_pairs) / (rf * (rf - 1.0));
            let initial_column_sums: Vec<f64> = initial_indices
                .iter()
                .map(|&j| column_sums[j] - rest.iter().map(|&c| kernel[c * n + j]).sum::<f64>())
                .collect();
            let initial_pairs: Vec<f64> = initial_indices
                .iter()
                .flat_map(|&a| initial_indices.iter().map(move |&b| kernel[a * n + b]))
                .collect();
            let statistic = sub_kernel_mean + initial_pairs.iter().sum::<f64>() / (wf * (wf - 1.0))
                - 2.0 * (initial_column_sums.iter().sum::<f64>() / (rf * wf));
            if statistic < thresholds[0] {
                let rows = |indices: &[usize]| -> Vec<f64> {
                    indices
                        .iter()
                        .flat_map(|&i| reference.row(i).iter().copied())
                        .collect()
                };
                return Ok(Self {
                    features: reference.features(),
                    window,
                    ert,
                    bandwidth: reference.bandwidth(),
                    thresholds,
                    sub_reference: rows(kept),
                    sub_kernel_mean,
                    initial: rows(initial_indices),
                    initial_column_sums,
                    initial_pairs,
                    splits_tried,
                });
            }
        }
    }

    /// The thresholds of steps 1..W (alibi's `thresholds`; step t >= W uses the last).
    pub fn thresholds(&self) -> &[f64] {
        &self.thresholds
    }

    /// The threshold of step `t` (alibi's `get_threshold`).
    pub fn threshold(&self, t: usize) -> f64 {
        self.thresholds[t.min(self.window - 1)]
    }

    /// Reference splits drawn before one started below the first threshold.
    pub fn splits_tried(&self) -> usize {
        self.splits_tried
    }

    /// Samples in the sub-reference.
    pub fn sub_reference_len(&self) -> usize {
        self.sub_reference.len() / self.features
    }

    /// The test window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The expected run time the thresholds target.
    pub fn ert(&self) -> f64 {
        self.ert
    }

    /// The bandwidth in use.
    pub fn bandwidth(&self) -> Bandwidth {
        self.bandwidth
    }

    /// A monitor at t = 0 (its window the initial window); with `reset_on_alarm` it goes back
    /// to t = 0 after each alarm, as alibi's `reset_state()`.
    pub fn monitor(&self, reset_on_alarm: bool) -> OnlineMonitor<'_> {
        let mut monitor = OnlineMonitor {
            detector: self,
            reset_on_alarm,
            t: 0,
            members: VecDeque::new(),
            pairs: Vec::new(),
            pair_sum: 0.0,
            since_exact: 0,
            history: VecDeque::new(),
            seen: 0,
        };
        monitor.reset();
        monitor
    }
}

/// Each bootstrap's MMD^2 on its W windows (row b: bootstrap b's windows 0..W).
fn bootstrap_statistics(
    kernel: &[f64],
    n: usize,
    column_sums: &[f64],
    full: f64,
    window: usize,
    bootstraps: &[Vec<usize>],
    threads: usize,
) -> Vec<Vec<f64>> {
    let extended = 2 * window - 1;
    let sub = n - extended;
    let (rf, wf) = (sub as f64, window as f64);
    let one = |permutation: &Vec<usize>| -> Vec<f64> {
        let y = &permutation[n - extended..];
        // The extended window's kernel (zero diagonal: the indices are distinct).
        let pairs: Vec<f64> = y
            .iter()
            .flat_map(|&a| y.iter().map(move |&b| kernel[a * n + b]))
            .collect();
        let row = |i: usize| &pairs[i * extended..(i + 1) * extended];
        let to_sub: Vec<f64> = (0..extended)
            .map(|j| column_sums[y[j]] - (0..extended).map(|i| row(i)[j]).sum::<f64>())
            .collect();
        let sub_mean = (full - pairs.iter().sum::<f64>() - 2.0 * to_sub.iter().sum::<f64>())
            / (rf * (rf - 1.0));
        let mut window_pairs: f64 = (0..window)
            .map(|i| row(i)[..window].iter().sum::<f64>())
            .sum();
        (0..window)
            .map(|w| {
                if w > 0 {
                    // Window w drops point w - 1 and gains point w + W - 1.
                    let (gone, new) = (w - 1, w + window - 1);
                    window_pairs += 2.0
                        * (row(new)[w..new].iter().sum::<f64>()
                            - row(gone)[w..new].iter().sum::<f64>());
                }
                let cross: f64 = to_sub[w..w + window].iter().sum();
                sub_mean + window_pairs / (wf * (wf - 1.0)) - 2.0 * (cross / (rf * wf))
            })
            .collect()
    };
    crate::map_on_threads(bootstraps, threads, one)
}

/// Thresholds step by step, each bootstrap at or above a step's threshold dropped before the
/// next step (thresholds conditional on no earlier detection).
fn thresholds_from(
    statistics: &[Vec<f64>],
    window: usize,
    ert: f64,
) -> Result<Vec<f64>, OnlineError> {
    let p = 1.0 - 1.0 / ert;
    let mut alive: Vec<&Vec<f64>> = statistics.iter().collect();
    let mut thresholds = Vec::with_capacity(window);
    for step in 0..window {
        let mut values: Vec<f64> = alive.iter().map(|b| b[step]).collect();
        values.sort_by(f64::total_cmp);
        let threshold = quantile_type7(&values, p).ok_or(OnlineError::TooFewBootstraps {
            step,
            survivors: values.len(),
            ert,
        })?;
        alive.retain(|b| b[step] < threshold);
        thresholds.push(threshold);
    }
    Ok(thresholds)
}

/// A window member: one of the initial window's rows or a stream sample (by position).
#[derive(Debug, Clone, Copy)]
enum Member {
    Initial(usize),
    Stream(usize),
}

/// A member of the window with its slot in the pair matrix and its kernel sum over the
/// sub-reference.
#[derive(Debug, Clone, Copy)]
struct Slot {
    member: Member,
    slot: usize,
    to_sub: f64,
}

/// A running online detector: feed it the stream in blocks.
#[derive(Debug, Clone)]
pub struct OnlineMonitor<'a> {
    detector: &'a MmdOnline,
    reset_on_alarm: bool,
    t: usize,
    /// The window, oldest first.
    members: VecDeque<Slot>,
    /// Kernel between the members in slots i and j (W x W).
    pairs: Vec<f64>,
    pair_sum: f64,
    since_exact: usize,
    /// The last W - 1 stream rows, with their positions.
    history: VecDeque<(usize, Vec<f64>)>,
    seen: usize,
}

impl OnlineMonitor<'_> {
    /// Back to t = 0: the window is the initial window again.
    pub fn reset(&mut self) {
        let w = self.detector.window;
        self.t = 0;
        self.members = (0..w)
            .map(|j| Slot {
                member: Member::Initial(j),
                slot: j,
                to_sub: self.detector.initial_column_sums[j],
            })
            .collect();
        self.pairs.clone_from(&self.detector.initial_pairs);
        self.pair_sum = self.pairs.iter().sum();
        self.since_exact = 0;
    }

    /// One step per row of `rows` (row-major, the detector's features), in order.
    pub fn observe(&mut self, rows: &[f64]) -> Vec<OnlineStep> {
        let detector = self.detector;
        let (d, w) = (detector.features, detector.window);
        let block = rows.len() / d;
        if block == 0 {
            return Vec::new();
        }
        let kernel = |dist: f64| detector.bandwidth.kernel(dist);
        // Each new sample's kernel sum over the sub-reference.
        let sub_len = detector.sub_reference_len();
        let to_sub_dist = squared_distances(&detector.sub_reference, rows, d);
        let mut to_sub = vec![0.0; block];
        for row in to_sub_dist.chunks_exact(block) {
            for (sum, &dist) in to_sub.iter_mut().zip(row) {
                *sum += kernel(dist);
            }
        }
        debug_assert_eq!(to_sub_dist.len(), sub_len * block);
        // Distances of the new samples to the stream samples before them (history, then block).
        let first_history = self.history.front().map_or(self.seen, |(p, _)| *p);
        let mut recent: Vec<f64> = self
            .history
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        recent.extend_from_slice(rows);
        let recent_dist = squared_distances(&recent, rows, d);
        let (rf, wf) = (sub_len as f64, w as f64);
        let mut steps = Vec::with_capacity(block);
        for (p, y) in rows.chunks_exact(d).enumerate() {
            let position = self.seen + p;
            let initial_dist = self
                .members
                .iter()
                .any(|m| matches!(m.member, Member::Initial(_)))
                .then(|| squared_distances(&detector.initial, y, d));
            let oldest = self.members.pop_front().expect("a window is never empty");
            let slot = oldest.slot;
            let mut gained = 0.0;
            let mut lost = 0.0;
            for m in &self.members {
                let k = kernel(match m.member {
                    Member::Initial(j) => initial_dist.as_ref().expect("initial members")[j],
                    Member::Stream(q) => recent_dist[(q - first_history) * block + p],
                });
                lost += self.pairs[slot * w + m.slot];
                gained += k;
                self.pairs[slot * w + m.slot] = k;
                self.pairs[m.slot * w + slot] = k;
            }
            self.pairs[slot * w + slot] = 0.0;
            self.members.push_back(Slot {
                member: Member::Stream(position),
                slot,
                to_sub: to_sub[p],
            });
            self.since_exact += 1;
            if self.since_exact == w {
                self.since_exact = 0;
                self.pair_sum = self.exact_pair_sum();
            } else {
                self.pair_sum += 2.0 * (gained - lost);
            }
            self.t += 1;
            let cross: f64 = self.members.iter().map(|m| m.to_sub).sum();
            let statistic = detector.sub_kernel_mean + self.pair_sum / (wf * (wf - 1.0))
                - 2.0 * (cross / (rf * wf));
            let threshold = detector.threshold(self.t);
            let alarm = statistic > threshold;
            steps.push(OnlineStep {
                statistic,
                threshold,
                alarm,
                t: self.t,
            });
            if alarm && self.reset_on_alarm {
                self.reset();
            }
        }
        self.seen += block;
        for (p, y) in rows.chunks_exact(d).enumerate() {
            self.history.push_back((self.seen - block + p, y.to_vec()));
        }
        while self.history.len() > w - 1 {
            self.history.pop_front();
        }
        steps
    }

    /// The window's pair sum in member order.
    fn exact_pair_sum(&self) -> f64 {
        let w = self.detector.window;
        self.members
            .iter()
            .map(|a| {
                self.members
                    .iter()
                    .map(|b| self.pairs[a.slot * w + b.slot])
                    .sum::<f64>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type7_quantiles_match_numpys_linear_method() {
        let sorted = [1.0, 2.0, 4.0, 8.0, 16.0];
        // numpy.quantile([1, 2, 4, 8, 16], q) for q = 0.5, 0.8, 0.3.
        assert_eq!(quantile_type7(&sorted, 0.5), Some(4.0));
        assert!((quantile_type7(&sorted, 0.8).unwrap() - 9.6).abs() < 1e-14);
        assert!((quantile_type7(&sorted, 0.3).unwrap() - 2.4).abs() < 1e-15);
        // alibi refuses p outside [1/N, (N-1)/N].
        assert_eq!(quantile_type7(&sorted, 0.9), None);
        assert_eq!(quantile_type7(&sorted, 0.1), None);
    }
}
