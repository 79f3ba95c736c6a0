//! Window-level scoring of a batch detector: each tested window's ground truth (no drift,
//! drifted, mixed), the size and the power per transform and level with Clopper-Pearson
//! intervals, the minimum detectable level, and the calibration of p-values on clean windows.

use std::collections::BTreeMap;

use drift_writer::{PowerRow, ScoredWindowRow};
use serde::Serialize;

use crate::kolmogorov::kolmogorov_sf;

/// The ground truth of one window: what its samples were.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowTruth {
    /// The share of drifted samples.
    pub drifted_fraction: f64,
    /// Whether every sample was drawn under label shift.
    pub label_shift: bool,
    /// Whether some sample was.
    pub any_label_shift: bool,
    /// The transforms of the drifted samples, in order of first appearance, joined by `+`.
    pub transforms: String,
    /// The mean over drifted samples of each one's largest transform level.
    pub level: Option<f64>,
}

/// `h0`, `h1` or `mixed`, and the key its power is counted under.
pub fn classify(truth: &WindowTruth, drifted_min: f64) -> (&'static str, String) {
    let mut key = truth.transforms.clone();
    if truth.label_shift {
        if !key.is_empty() {
            key.push('+');
        }
        key.push_str("label_shift");
    }
    let class = if truth.drifted_fraction == 0.0 && !truth.any_label_shift {
        "h0"
    } else if (truth.drifted_fraction > 0.0 && truth.drifted_fraction >= drifted_min)
        || (truth.drifted_fraction == 0.0 && truth.label_shift)
    {
        "h1"
    } else {
        "mixed"
    };
    (class, key)
}

/// The two-sided Clopper-Pearson interval of `successes` in `trials` at `confidence`: the
/// beta quantiles (scipy's `binomtest(k, n).proportion_ci(method="exact")`).
pub fn clopper_pearson(successes: u64, trials: u64, confidence: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let tail = (1.0 - confidence) / 2.0;
    let (k, n) = (successes as f64, trials as f64);
    let low = if successes == 0 {
        0.0
    } else {
        beta_quantile(k, n - k + 1.0, tail)
    };
    let high = if successes == trials {
        1.0
    } else {
        beta_quantile(k + 1.0, n - k, 1.0 - tail)
    };
    (low, high)
}

/// The `p` quantile of Beta(a, b). statrs' inverse is a few parts in a million off in the
/// tails (n = 100,000: 3e-6 relative); Newton steps on statrs' regularized incomplete beta
/// bring it to within the accuracy of that function (tests/detect_golden.rs states how close
/// to the definition, and to scipy).
fn beta_quantile(a: f64, b: f64, p: f64) -> f64 {
    use statrs::function::beta::{beta_reg, inv_beta_reg, ln_beta};
    // Closed forms where a shape is 1 (no success, one success, all, all but one).
    if a == 1.0 {
        return -((-p).ln_1p() / b).exp_m1();
    }
    if b == 1.0 {
        return (p.ln() / a).exp();
    }
    let ln_norm = ln_beta(a, b);
    let mut x = inv_beta_reg(a, b, p);
    for _ in 0..4 {
        if !(x > 0.0 && x < 1.0) {
            break;
        }
        let density = ((a - 1.0) * x.ln() + (b - 1.0) * (-x).ln_1p() - ln_norm).exp();
        if !(density.is_finite() && density > 0.0) {
            break;
        }
        let next = x - (beta_reg(a, b, x) - p) / density;
        if !(next > 0.0 && next < 1.0) {
            break;
        }
        let done = (next - x).abs() <= 4.0 * f64::EPSILON * x;
        x = next;
        if done {
            break;
        }
    }
    x
}

/// How levels are grouped into bins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LevelBins {
    /// Each distinct level (rounded to 1e-6) is a bin: abrupt sweeps.
    Distinct,
    /// `n` equal bins over [0, 1], each named by its centre: incremental drift.
    Equal(usize),
}

impl LevelBins {
    fn bin(self, level: f64) -> f64 {
        match self {
            LevelBins::Distinct => (level * 1e6).round() / 1e6,
            LevelBins::Equal(n) => {
                let n = n as f64;
                let index = (level * n).floor().clamp(0.0, n - 1.0);
                (index + 0.5) / n
            }
        }
    }
}

/// The minimum level a detector detects with the target power on one transform list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectableLevel {
    /// The detector.
    pub detector: String,
    /// The transform list.
    pub transforms: String,
    /// The target power.
    pub target: f64,
    /// The smallest level bin whose power reaches the target and stays there at every higher
    /// bin (null: none does).
    pub level: Option<f64>,
    /// Where the line through the bins' powers (from the clean windows' size at level 0)
    /// crosses the target just below that bin.
    pub level_interpolated: Option<f64>,
}

/// How p-values behave on clean windows, where they should be uniform.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Clean windows with a p-value.
    pub windows: usize,
    /// The share of those with p <= 0.01, 0.05 and 0.1.
    pub share_below: [f64; 3],
    /// The Kolmogorov-Smirnov distance of the p-values to U(0, 1).
    pub ks_distance: f64,
    /// Its exact p-value (Kolmogorov's distribution for n).
    pub ks_p_value: f64,
}

/// The p-values' calibration (None without any).
pub fn calibration(p_values: &[f64]) -> Option<Calibration> {
    if p_values.is_empty() {
        return None;
    }
    let mut sorted = p_values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let share = |level: f64| sorted.iter().filter(|&&p| p <= level).count() as f64 / n;
    let ks_distance = sorted
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let p = p.clamp(0.0, 1.0);
            ((i + 1) as f64 / n - p).max(p - i as f64 / n)
        })
        .fold(0.0, f64::max);
    Some(Calibration {
        windows: sorted.len(),
        share_below: [share(0.01), share(0.05), share(0.1)],
        ks_distance,
        ks_p_value: kolmogorov_sf(sorted.len() as u64, ks_distance),
    })
}

/// The power table of scored windows: per detector, one row for the clean windows
/// (`transforms` = `none`, level 0: the size) and one per transform list and level bin of the
/// drifted ones, in detector order, then by transform list and level.
pub fn power_rows(
    detectors: &[String],
    windows: &[ScoredWindowRow],
    bins: LevelBins,
    confidence: f64,
) -> Vec<PowerRow> {
    let mut rows = Vec::new();
    for detector in detectors {
        // (transform list, level bits) -> (windows, alarms); clean windows under "none".
        let mut counts: BTreeMap<(String, Option<u64>), (u64, u64)> = BTreeMap::new();
        for window in windows.iter().filter(|w| &w.detector == detector) {
            let key = match window.truth.as_str() {
                "h0" => ("none".to_owned(), Some(0f64.to_bits())),
                "h1" => (
                    window.transforms.clone(),
                    window.level.map(|l| bins.bin(l).to_bits()),
                ),
                _ => continue,
            };
            let entry = counts.entry(key).or_default();
            entry.0 += 1;
            entry.1 += u64::from(window.alarm);
        }
        let mut ordered: Vec<_> = counts.into_iter().collect();
        // Levels in numeric order (bits of non-negative floats order as the floats do, but
        // say it plainly), "none" first.
        ordered.sort_by(|((ta, la), _), ((tb, lb), _)| {
            (ta != "none", ta, la.map(f64::from_bits))
                .partial_cmp(&(tb != "none", tb, lb.map(f64::from_bits)))
                .expect("levels are finite")
        });
        for ((transforms, level), (n, alarms)) in ordered {
            let (ci_low, ci_high) = clopper_pearson(alarms, n, confidence);
            rows.push(PowerRow {
                detector: detector.clone(),
                transforms,
                level: level.map(f64::from_bits),
                n_windows: n as i64,
                n_alarms: alarms as i64,
                power: alarms as f64 / n as f64,
                ci_low,
                ci_high,
            });
        }
    }
    rows
}

/// The minimum detectable level of every detector and transform list with levels.
pub fn detectable_levels(rows: &[PowerRow], target: f64) -> Vec<DetectableLevel> {
    let mut out = Vec::new();
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for row in rows {
        let key = (row.detector.as_str(), row.transforms.as_str());
        if row.transforms != "none" && row.level.is_some() && !groups.contains(&key) {
            groups.push(key);
        }
    }
    for (detector, transforms) in groups {
        let size = rows
            .iter()
            .find(|r| r.detector == detector && r.transforms == "none")
            .map(|r| (0.0, r.power));
        let bins: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.detector == detector && r.transforms == transforms)
            .filter_map(|r| r.level.map(|l| (l, r.power)))
            .collect();
        // The first bin from which every bin reaches the target.
        let first = (0..bins.len())
            .rev()
            .take_while(|&i| bins[i].1 >= target)
            .last();
        let (level, level_interpolated) = match first {
            None => (None, None),
            Some(i) => {
                let (level, power) = bins[i];
                let below = if i > 0 { Some(bins[i - 1]) } else { size };
                let crossing = match below {
                    Some((l0, p0)) if p0 < target && power > p0 => {
                        l0 + (target - p0) / (power - p0) * (level - l0)
                    }
                    _ => level,
                };
                (Some(level), Some(crossing))
            }
        };
        out.push(DetectableLevel {
            detector: detector.to_owned(),
            transforms: transforms.to_owned(),
            target,
            level,
            level_interpolated,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(transforms: &str, level: f64, n: i64, alarms: i64) -> PowerRow {
        PowerRow {
            detector: "mmd".into(),
            transforms: transforms.into(),
            level: Some(level),
            n_windows: n,
            n_alarms: alarms,
            power: alarms as f64 / n as f64,
            ci_low: 0.0,
            ci_high: 1.0,
        }
    }

    #[test]
    fn minimum_detectable_level_needs_every_higher_bin() {
        let rows = [
            row("none", 0.0, 20, 1),
            row("rotate", 0.1, 20, 2),
            row("rotate", 0.2, 20, 17),
            row("rotate", 0.3, 20, 15),
            row("rotate", 0.4, 20, 18),
            row("rotate", 0.5, 20, 20),
        ];
        let found = detectable_levels(&rows, 0.8);
        assert_eq!(found.len(), 1);
        // 0.2 reaches 0.85 but 0.3 falls to 0.75: the level is 0.4, crossed between 0.3 and 0.4.
        assert_eq!(found[0].level, Some(0.4));
        let crossing = 0.3 + (0.8 - 0.75) / (0.9 - 0.75) * 0.1;
        assert!((found[0].level_interpolated.unwrap() - crossing).abs() < 1e-15);
        let never = detectable_levels(&rows[..2], 0.8);
        assert_eq!(never[0].level, None);
        // From the size at level 0 when the first bin already reaches the target.
        let first = detectable_levels(&[row("none", 0.0, 20, 1), row("blur", 0.5, 20, 20)], 0.8);
        let crossing = (0.8 - 0.05) / 0.95 * 0.5;
        assert!((first[0].level_interpolated.unwrap() - crossing).abs() < 1e-15);
    }

    #[test]
    fn calibration_of_uniform_grid() {
        let p: Vec<f64> = (0..100).map(|i| (i as f64 + 0.5) / 100.0).collect();
        let c = calibration(&p).unwrap();
        assert_eq!(c.share_below, [0.01, 0.05, 0.1]);
        assert!((c.ks_distance - 0.005).abs() < 1e-12);
        assert!(c.ks_p_value > 0.99);
        let all_zero = calibration(&[0.0; 50]).unwrap();
        assert_eq!(all_zero.ks_distance, 1.0);
        assert!(all_zero.ks_p_value < 1e-10);
    }

    #[test]
    fn windows_are_classified_by_their_samples() {
        let truth =
            |drifted_fraction, label_shift, any_label_shift, transforms: &str| WindowTruth {
                drifted_fraction,
                label_shift,
                any_label_shift,
                transforms: transforms.into(),
                level: None,
            };
        assert_eq!(classify(&truth(0.0, false, false, ""), 1.0).0, "h0");
        assert_eq!(
            classify(&truth(1.0, false, false, "blur"), 1.0),
            ("h1", "blur".into())
        );
        assert_eq!(classify(&truth(0.5, false, false, "blur"), 1.0).0, "mixed");
        assert_eq!(classify(&truth(0.5, false, false, "blur"), 0.5).0, "h1");
        assert_eq!(
            classify(&truth(0.0, true, true, ""), 1.0),
            ("h1", "label_shift".into())
        );
        assert_eq!(classify(&truth(0.0, false, true, ""), 1.0).0, "mixed");
    }
}
