//! MMD for long streams, where a permutation test per window is too slow (a 5,000-sample
//! reference against windows of 500 costs 100 products of a 5,500 x 5,500 kernel per window):
//!
//! - **calibrated null**: the reference is split once into a sub-reference X and a calibration
//!   pool; the null distribution of MMD^2(X, window) is drawn once, from windows of the pool
//!   (each null statistic costs O(W^2) lookups in the reference's kernel), and each stream window
//!   costs one kernel against X: p = (1 + #{null >= statistic}) / (1 + draws). It is the null
//!   conditional on the fixed sub-reference, as alibi-detect's online detectors and TorchDrift's
//!   `fit(x, n_test)` calibrate theirs; drawing null windows from a finite pool understates
//!   their spread when the pool is not much larger than the window, so keep it at ten windows
//!   or more.
//! - **linear-time estimator** (Gretton et al. 2012, section 6): W reference samples drawn per
//!   window are paired with the window's samples, h_i = k(x_2i, x_2i+1) + k(y_2i, y_2i+1) -
//!   k(x_2i, y_2i+1) - k(x_2i+1, y_2i), MMD^2_l = mean h, and p = 1 - Phi(MMD^2_l / (s_h /
//!   sqrt(W / 2))): O(W d) per window, a normal null, less power than the quadratic estimator.

use crate::mmd::{Bandwidth, MmdReference, squared_distances};

/// MMD^2 against a fixed sub-reference, with a null calibrated once.
#[derive(Debug, Clone)]
pub struct CalibratedMmd {
    features: usize,
    bandwidth: Bandwidth,
    sub_reference: Vec<f64>,
    sub_kernel_mean: f64,
    pool: usize,
    /// The null statistics, ascending.
    null: Vec<f64>,
}

/// One window's outcome against a calibrated null.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibratedOutcome {
    /// MMD^2 of the sub-reference and the window.
    pub statistic: f64,
    /// Null statistics at least the window's.
    pub exceed: usize,
    /// Null statistics drawn.
    pub draws: usize,
    /// The null statistics sorted in decreasing order, at index floor(alpha draws) (the
    /// statistic an alarm must reach, as alibi's `distance_threshold`).
    pub threshold: f64,
}

impl CalibratedOutcome {
    /// (1 + b) / (1 + B): a valid p-value for a null of B draws.
    pub fn p_value(&self) -> f64 {
        (1 + self.exceed) as f64 / (1 + self.draws) as f64
    }
}

impl CalibratedMmd {
    /// Splits `reference` by `split` (a permutation of its indices: the first R - `pool` form
    /// the sub-reference, the rest the pool) and draws the null from `draws` (each W distinct
    /// positions in the pool, 0..pool). `threads` share the draws; the null does not depend on
    /// their number.
    pub fn new(
        reference: &MmdReference,
        split: &[usize],
        pool: usize,
        draws: &[Vec<usize>],
        threads: usize,
    ) -> Self {
        let n = reference.len();
        let kernel = reference.kernel_xx();
        let (kept, pooled) = split.split_at(n - pool);
        let sub = kept.len() as f64;
        let sub_pairs: f64 = kept
            .iter()
            .map(|&a| kept.iter().map(|&b| kernel[a * n + b]).sum::<f64>())
            .sum();
        let sub_kernel_mean = sub_pairs / (sub * (sub - 1.0));
        // Each pool sample's kernel sum over the sub-reference.
        let to_sub: Vec<f64> = pooled
            .iter()
            .map(|&q| kept.iter().map(|&x| kernel[x * n + q]).sum())
            .collect();
        let one = |draw: &Vec<usize>| -> f64 {
            let w = draw.len() as f64;
            let pairs: f64 = draw
                .iter()
                .map(|&a| {
                    draw.iter()
                        .map(|&b| kernel[pooled[a] * n + pooled[b]])
                        .sum::<f64>()
                })
                .sum();
            let cross: f64 = draw.iter().map(|&q| to_sub[q]).sum();
            sub_kernel_mean + pairs / (w * (w - 1.0)) - 2.0 * (cross / (sub * w))
        };
        let mut null = crate::map_on_threads(draws, threads, one);
        null.sort_by(f64::total_cmp);
        let sub_reference = kept
            .iter()
            .flat_map(|&i| reference.row(i).iter().copied())
            .collect();
        Self {
            features: reference.features(),
            bandwidth: reference.bandwidth(),
            sub_reference,
            sub_kernel_mean,
            pool,
            null,
        }
    }

    /// The bandwidth in use.
    pub fn bandwidth(&self) -> Bandwidth {
        self.bandwidth
    }

    /// Samples in the sub-reference.
    pub fn sub_reference_len(&self) -> usize {
        self.sub_reference.len() / self.features
    }

    /// Samples in the calibration pool.
    pub fn pool(&self) -> usize {
        self.pool
    }

    /// The null statistics, ascending.
    pub fn null(&self) -> &[f64] {
        &self.null
    }

    /// The unbiased MMD^2 of the sub-reference and `window`.
    pub fn statistic(&self, window: &[f64]) -> f64 {
        let d = self.features;
        let w = window.len() / d;
        let kernel = |dist: &f64| self.bandwidth.kernel(*dist);
        let cross: f64 = squared_distances(&self.sub_reference, window, d)
            .iter()
            .map(kernel)
            .sum();
        let within = squared_distances(window, window, d);
        let pairs: f64 = within
            .chunks_exact(w)
            .enumerate()
            .map(|(i, row)| {
                row.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, dist)| kernel(dist))
                    .sum::<f64>()
            })
            .sum();
        let (sub, wf) = (self.sub_reference_len() as f64, w as f64);
        self.sub_kernel_mean + pairs / (wf * (wf - 1.0)) - 2.0 * (cross / (sub * wf))
    }

    /// The window's statistic against the null.
    pub fn test(&self, window: &[f64], alpha: f64) -> CalibratedOutcome {
        let statistic = self.statistic(window);
        let below = self.null.partition_point(|&s| s < statistic);
        let draws = self.null.len();
        let index = ((alpha * draws as f64) as usize).min(draws.saturating_sub(1));
        CalibratedOutcome {
            statistic,
            exceed: draws - below,
            draws,
            threshold: self
                .null
                .get(draws.wrapping_sub(1 + index))
                .copied()
                .unwrap_or(f64::NAN),
        }
    }
}

/// One window's linear-time MMD outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearOutcome {
    /// MMD^2_l, the mean of the h_i.
    pub statistic: f64,
    /// 1 - Phi(MMD^2_l / (s_h / sqrt(pairs))).
    pub p_value: f64,
    /// The MMD^2_l at which p = alpha: Phi^-1(1 - alpha) s_h / sqrt(pairs).
    pub threshold: f64,
}

/// The linear-time MMD of `reference_rows` (W rows, drawn for the window) against `window`
/// (W rows): floor(W / 2) pairs of each.
pub fn linear_mmd(
    reference_rows: &[f64],
    window: &[f64],
    features: usize,
    bandwidth: Bandwidth,
    alpha: f64,
) -> LinearOutcome {
    use statrs::distribution::{ContinuousCDF, Normal};
    let d = features;
    let row = |rows: &[f64], i: usize| -> Vec<f64> { rows[i * d..(i + 1) * d].to_vec() };
    let k = |a: &[f64], b: &[f64]| -> f64 {
        let dist: f64 = a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum();
        bandwidth.kernel(dist)
    };
    let pairs = (window.len() / d).min(reference_rows.len() / d) / 2;
    let h: Vec<f64> = (0..pairs)
        .map(|i| {
            let (x1, x2) = (row(reference_rows, 2 * i), row(reference_rows, 2 * i + 1));
            let (y1, y2) = (row(window, 2 * i), row(window, 2 * i + 1));
            k(&x1, &x2) + k(&y1, &y2) - k(&x1, &y2) - k(&x2, &y1)
        })
        .collect();
    let m = pairs as f64;
    let mean = h.iter().sum::<f64>() / m;
    let variance = h.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (m - 1.0);
    let scale = (variance / m).sqrt();
    let normal = Normal::standard();
    let (p_value, threshold) = if scale > 0.0 {
        (
            1.0 - normal.cdf(mean / scale),
            normal.inverse_cdf(1.0 - alpha) * scale,
        )
    } else {
        // Every h_i equal: no spread to test against.
        (if mean > 0.0 { 0.0 } else { 1.0 }, 0.0)
    };
    LinearOutcome {
        statistic: mean,
        p_value,
        threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rows(rng: &mut rand_chacha::ChaCha20Rng, count: usize, d: usize, shift: f64) -> Vec<f64> {
        (0..count * d)
            .map(|_| rand::RngExt::random::<f64>(rng) + shift)
            .collect()
    }

    #[test]
    fn the_calibrated_statistic_is_the_unbiased_mmd_of_the_sub_reference() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let d = 4;
        let reference = MmdReference::new(rows(&mut rng, 40, d, 0.0), d, None);
        let split: Vec<usize> = (0..40).rev().collect();
        // Null draws that are pool windows: their statistic equals the window's computed from
        // its rows, the kernel matrix's bookkeeping against the direct one.
        let draws = vec![vec![0, 3, 5, 7, 9], vec![1, 2, 4, 6, 8]];
        let calibrated = CalibratedMmd::new(&reference, &split, 20, &draws, 2);
        assert_eq!(calibrated.sub_reference_len(), 20);
        let pooled = &split[20..];
        for draw in &draws {
            let window: Vec<f64> = draw
                .iter()
                .flat_map(|&q| reference.row(pooled[q]).to_vec())
                .collect();
            let direct = calibrated.statistic(&window);
            assert!(
                calibrated.null().iter().any(|s| (s - direct).abs() < 1e-14),
                "{direct} not in {:?}",
                calibrated.null()
            );
        }
        // The sub-reference's statistic via MmdReference (no permutations): the same.
        let sub: Vec<f64> = split[..20]
            .iter()
            .flat_map(|&i| reference.row(i).to_vec())
            .collect();
        let window = rows(&mut rng, 6, d, 0.3);
        let own = MmdReference::new(sub, d, Some(reference.bandwidth().sigma));
        let expected = own.test(&window, &[], 0.05).statistic;
        assert!((calibrated.statistic(&window) - expected).abs() < 1e-14);
        let outcome = calibrated.test(&window, 0.05);
        assert_eq!(outcome.draws, 2);
        assert!(outcome.p_value() >= 1.0 / 3.0);
    }

    #[test]
    fn linear_mmd_is_the_mean_of_its_pair_terms() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let d = 3;
        let x = rows(&mut rng, 6, d, 0.0);
        let y = rows(&mut rng, 6, d, 2.0);
        let bandwidth = Bandwidth::from_sigma(1.0);
        let outcome = linear_mmd(&x, &y, d, bandwidth, 0.05);
        let g = f64::from(bandwidth.gamma);
        let k = |a: &[f64], b: &[f64]| {
            (-g * a.iter().zip(b).map(|(u, v)| (u - v).powi(2)).sum::<f64>()).exp()
        };
        let r = |v: &[f64], i: usize| v[i * d..(i + 1) * d].to_vec();
        let h: Vec<f64> = (0..3)
            .map(|i| {
                k(&r(&x, 2 * i), &r(&x, 2 * i + 1)) + k(&r(&y, 2 * i), &r(&y, 2 * i + 1))
                    - k(&r(&x, 2 * i), &r(&y, 2 * i + 1))
                    - k(&r(&x, 2 * i + 1), &r(&y, 2 * i))
            })
            .collect();
        let mean = h.iter().sum::<f64>() / 3.0;
        assert!((outcome.statistic - mean).abs() < 1e-15);
        // A shift of 2 in every feature: far apart, p near 0.
        assert!(outcome.p_value < 0.05, "{outcome:?}");
    }
}
