//! Per-level statistics of batch KLs, with the conventions of pandas' `describe`: percentiles by
//! linear interpolation between order statistics (numpy's default) and the sample standard
//! deviation (n - 1).

use std::fmt::Write as _;

/// What the batches of one drift level measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelSummary {
    /// The drift level.
    pub drift_level: f64,
    /// Number of batches.
    pub batches: usize,
    /// Median batch KL.
    pub median: f64,
    /// 25th percentile.
    pub p25: f64,
    /// 75th percentile.
    pub p75: f64,
    /// Mean batch KL.
    pub mean: f64,
    /// Sample standard deviation; `None` for a single batch.
    pub sd: Option<f64>,
}

/// The `q`-quantile (0..=1) of sorted values, interpolating linearly between order statistics.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of no values");
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = (low + 1).min(sorted.len() - 1);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

impl LevelSummary {
    /// Summarizes the batch KLs of one level; `None` when there are none.
    pub fn new(drift_level: f64, kls: &[f64]) -> Option<Self> {
        if kls.is_empty() {
            return None;
        }
        let mut sorted = kls.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = kls.len() as f64;
        let mean = kls.iter().sum::<f64>() / n;
        let sd = (kls.len() > 1)
            .then(|| (kls.iter().map(|k| (k - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        Some(Self {
            drift_level,
            batches: kls.len(),
            median: quantile_sorted(&sorted, 0.5),
            p25: quantile_sorted(&sorted, 0.25),
            p75: quantile_sorted(&sorted, 0.75),
            mean,
            sd,
        })
    }
}

/// `summary.csv`: a header and one row per level; an undefined sd is an empty field.
pub fn summary_csv(summaries: &[LevelSummary]) -> String {
    let mut csv = String::from("drift_level,batches,median,p25,p75,mean,sd\n");
    for s in summaries {
        let sd = s.sd.map(|sd| sd.to_string()).unwrap_or_default();
        writeln!(
            csv,
            "{},{},{},{},{},{},{sd}",
            s.drift_level, s.batches, s.median, s.p25, s.p75, s.mean
        )
        .expect("writing to a String cannot fail");
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_conventions() {
        // numpy.percentile([1, 2, 3, 4], [25, 50, 75]) == [1.75, 2.5, 3.25];
        // numpy.std([1, 2, 3, 4], ddof=1) == 1.2909944487358056.
        let s = LevelSummary::new(0.3, &[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.p25, s.median, s.p75, s.mean), (1.75, 2.5, 3.25, 2.5));
        assert!((s.sd.unwrap() - 1.290_994_448_735_805_6).abs() < 1e-15);
        assert_eq!(s.batches, 4);
        let one = LevelSummary::new(1.0, &[0.5]).unwrap();
        assert_eq!(
            (one.median, one.p25, one.p75, one.sd),
            (0.5, 0.5, 0.5, None)
        );
        assert!(LevelSummary::new(1.0, &[]).is_none());
    }

    #[test]
    fn csv_has_a_row_per_level() {
        let rows = [
            LevelSummary::new(0.1, &[1.0, 3.0]).unwrap(),
            LevelSummary::new(0.2, &[2.0]).unwrap(),
        ];
        let csv = summary_csv(&rows);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "drift_level,batches,median,p25,p75,mean,sd");
        assert_eq!(lines[1], "0.1,2,2,1.5,2.5,2,1.4142135623730951");
        assert_eq!(lines[2], "0.2,1,2,2,2,2,");
        assert_eq!(lines.len(), 3);
    }
}
