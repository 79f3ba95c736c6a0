//! The Kolmogorov-Smirnov detector as alibi-detect's `KSDrift` runs it: a two-sample test per
//! feature (scipy's `ks_2samp(method='asymp')`), p-values kept as f32 as alibi keeps them, and
//! one decision for the window by Bonferroni or Benjamini-Hochberg (FDR) correction. The
//! per-feature frame (`feature_tests`, `correct`) serves CvM (`cvm.rs`) too.

use crate::kolmogorov::kolmogorov_sf;

/// How the per-feature p-values become one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Drift iff some p < alpha / features (alibi's default).
    Bonferroni,
    /// Benjamini-Hochberg: drift iff some sorted p_(i) < alpha i / features.
    Fdr,
}

/// The two-sample statistic D = sup |F_a - F_b| of two sorted samples, evaluated as scipy's
/// `ks_2samp` does (the empirical CDFs as `count / size` at every observed value, ties merged),
/// so that D is the same f64.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut max, mut min) = (f64::NEG_INFINITY, f64::INFINITY);
    while i < a.len() || j < b.len() {
        let value = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        while i < a.len() && a[i] <= value {
            i += 1;
        }
        while j < b.len() && b[j] <= value {
            j += 1;
        }
        let difference = i as f64 / na - j as f64 / nb;
        max = max.max(difference);
        min = min.min(difference);
    }
    let min = (-min).clamp(0.0, 1.0);
    if min > max { min } else { max }
}

/// The asymptotic two-sided p-value of `ks_2samp` for samples of sizes `m` and `n`:
/// `kstwo.sf(D, round(m n / (m + n)))`, rounding half to even as numpy does.
pub fn ks_p_value(statistic: f64, m: usize, n: usize) -> f64 {
    let (large, small) = if m >= n { (m, n) } else { (n, m) };
    let (large, small) = (large as f64, small as f64);
    let effective = (large * small / (large + small)).round_ties_even();
    kolmogorov_sf(effective as u64, statistic)
}

/// One window's outcome over all features of a per-feature test (KS, CvM).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureOutcome {
    /// The statistic per feature (KS: D; CvM: T).
    pub statistics: Vec<f64>,
    /// p per feature, as f32 (alibi's storage).
    pub p_values: Vec<f32>,
    /// The threshold the p-values were compared with (alibi's returned `threshold`).
    pub threshold: f64,
    /// Whether the window is flagged.
    pub alarm: bool,
    /// Features whose p-value is below the threshold.
    pub features_drifted: usize,
}

/// Applies `correction` at level `alpha` to per-feature p-values, as alibi's `predict` does:
/// Bonferroni compares in f32 (numpy 1.x casts the threshold to the array's type), FDR compares
/// the f32 p-values with f64 thresholds `alpha i / n`.
pub fn correct(p_values: &[f32], alpha: f64, correction: Correction) -> (bool, f64, usize) {
    let n = p_values.len();
    match correction {
        Correction::Bonferroni => {
            let threshold = alpha / n as f64;
            let below = p_values.iter().filter(|&&p| p < threshold as f32).count();
            (below > 0, threshold, below)
        }
        Correction::Fdr => {
            let mut sorted = p_values.to_vec();
            sorted.sort_by(f32::total_cmp);
            let q = |i: usize| alpha * (i + 1) as f64 / n as f64;
            let last_below = (0..n).rev().find(|&i| f64::from(sorted[i]) < q(i));
            match last_below {
                Some(i) => {
                    let threshold = q(i);
                    let below = p_values
                        .iter()
                        .filter(|&&p| f64::from(p) <= threshold)
                        .count();
                    (true, threshold, below)
                }
                None => (false, q(0), 0),
            }
        }
    }
}

/// Rows of `features` values (row-major) as one vector per feature.
pub fn feature_columns(rows: &[f64], features: usize) -> Vec<Vec<f64>> {
    (0..features)
        .map(|f| rows.iter().skip(f).step_by(features).copied().collect())
        .collect()
}

/// A two-sample test of one feature: (statistic, p-value) of two sorted samples.
pub type FeatureTest = fn(&[f64], &[f64]) -> (f64, f64);

/// The two-sample KS test of one feature (scipy's asymptotic method), as a [`FeatureTest`].
pub fn ks_test(reference: &[f64], window: &[f64]) -> (f64, f64) {
    let d = ks_statistic(reference, window);
    (d, ks_p_value(d, reference.len(), window.len()))
}

/// `test` on every feature of a window against the reference's sorted columns, the p-values
/// stored as f32 and corrected as alibi's univariate detectors (KSDrift, CVMDrift) do.
///
/// `reference_sorted[f]` is feature f of the reference, sorted; `window[f]` feature f of the
/// window (any order; sorted here).
pub fn feature_tests(
    reference_sorted: &[Vec<f64>],
    window: &[Vec<f64>],
    alpha: f64,
    correction: Correction,
    test: FeatureTest,
) -> FeatureOutcome {
    let mut statistics = Vec::with_capacity(window.len());
    let mut p_values = Vec::with_capacity(window.len());
    for (reference, column) in reference_sorted.iter().zip(window) {
        let mut column = column.clone();
        column.sort_by(f64::total_cmp);
        let (statistic, p) = test(reference, &column);
        statistics.push(statistic);
        p_values.push(p as f32);
    }
    let (alarm, threshold, features_drifted) = correct(&p_values, alpha, correction);
    FeatureOutcome {
        statistics,
        p_values,
        threshold,
        alarm,
        features_drifted,
    }
}

/// KS of every feature of a window: [`feature_tests`] with [`ks_test`].
pub fn ks_window(
    reference_sorted: &[Vec<f64>],
    window: &[Vec<f64>],
    alpha: f64,
    correction: Correction,
) -> FeatureOutcome {
    feature_tests(reference_sorted, window, alpha, correction, ks_test)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistic_merges_ties_as_scipy_does() {
        // scipy.stats.ks_2samp([0, 0, 1, 2], [0, 1, 1, 3]).statistic == 0.25
        assert_eq!(
            ks_statistic(&[0.0, 0.0, 1.0, 2.0], &[0.0, 1.0, 1.0, 3.0]),
            0.25
        );
        assert_eq!(ks_statistic(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
        assert_eq!(ks_statistic(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn corrections_follow_alibi() {
        let p = [0.001f32, 0.02, 0.5, 0.9];
        let (alarm, threshold, below) = correct(&p, 0.05, Correction::Bonferroni);
        assert!(alarm);
        assert_eq!(threshold, 0.0125);
        assert_eq!(below, 1);
        // BH: q = 0.0125, 0.025, 0.0375, 0.05; p_(2) = 0.02 < 0.025 is the last below.
        let (alarm, threshold, below) = correct(&p, 0.05, Correction::Fdr);
        assert!(alarm);
        assert_eq!(threshold, 0.025);
        assert_eq!(below, 2);
        let (alarm, threshold, _) = correct(&[0.5, 0.9], 0.05, Correction::Fdr);
        assert!(!alarm);
        assert_eq!(threshold, 0.025);
    }
}
