//! Alarms matched to drift episodes, and the stream-level metrics of a detector: pure
//! arithmetic on sample positions, with CapyMOA's and river's conventions named where they
//! differ.
//!
//! Episode k (onset s_k, end e_k) accepts the alarms in
//! `[s_k - max_early, min(e_k + max_delay, s_{k+1} - max_early - 1)]`; every alarm in it is a
//! true alarm of the episode, every other alarm (before, between, after all windows) a false
//! one. The windows never overlap, and where CapyMOA's and river's windows do not overlap
//! (`e_k + max_delay < s_{k+1} - max_early`) the matching is theirs.

/// A ground-truth change: onset and the first sample at full strength (equal for an abrupt
/// change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The onset s.
    pub start: i64,
    /// The end e (>= s).
    pub end: i64,
}

/// How far from a change an alarm still counts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    /// Samples after the change's end.
    pub max_delay: i64,
    /// Samples before its onset.
    pub max_early: i64,
}

/// One change as an alarm sequence met it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeOutcome {
    /// The first sample whose alarm counts.
    pub window_first: i64,
    /// The last.
    pub window_last: i64,
    /// The first alarm in the window.
    pub first_alarm: Option<i64>,
    /// Alarms in the window.
    pub alarms_in_window: usize,
}

impl ChangeOutcome {
    /// Whether an alarm fell in the window.
    pub fn detected(&self) -> bool {
        self.first_alarm.is_some()
    }
}

/// Alarms (sample positions, in any order, repeats allowed) matched to `changes` (sorted by
/// onset, onsets distinct): each change's outcome, and the false alarms in order.
pub fn match_alarms(
    changes: &[Change],
    alarms: &[i64],
    tolerance: Tolerance,
) -> (Vec<ChangeOutcome>, Vec<i64>) {
    let mut sorted = alarms.to_vec();
    sorted.sort_unstable();
    let mut outcomes: Vec<ChangeOutcome> = changes
        .iter()
        .enumerate()
        .map(|(k, change)| {
            let mut last = change.end.saturating_add(tolerance.max_delay);
            if let Some(next) = changes.get(k + 1) {
                last = last.min(next.start - tolerance.max_early - 1);
            }
            ChangeOutcome {
                window_first: change.start - tolerance.max_early,
                window_last: last,
                first_alarm: None,
                alarms_in_window: 0,
            }
        })
        .collect();
    let mut false_alarms = Vec::new();
    for alarm in sorted {
        // The last window starting at or before the alarm is the only one that can hold it.
        let k = outcomes.partition_point(|o| o.window_first <= alarm);
        match k.checked_sub(1).map(|k| &mut outcomes[k]) {
            Some(outcome) if alarm <= outcome.window_last => {
                outcome.first_alarm.get_or_insert(alarm);
                outcome.alarms_in_window += 1;
            }
            _ => false_alarms.push(alarm),
        }
    }
    (outcomes, false_alarms)
}

/// A detector's stream-level metrics. Ratios without a denominator are NaN (written as null).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMetrics {
    /// Samples in the stream.
    pub samples: usize,
    /// Ground-truth changes.
    pub episodes: usize,
    /// Changes with an alarm in their window.
    pub detected: usize,
    /// Alarms raised.
    pub alarms: usize,
    /// Alarms inside some change's window.
    pub tp_alarms: usize,
    /// The others.
    pub fp_alarms: usize,
    /// tp_alarms / alarms.
    pub precision: f64,
    /// detected / episodes.
    pub episode_recall: f64,
    /// 1 - episode_recall (missed detection rate).
    pub mdr: f64,
    /// tp_alarms / (tp_alarms + missed changes): the "recall" of CapyMOA and river, which
    /// repeated alarms inflate.
    pub recall_alarms: f64,
    /// Harmonic mean of precision and episode_recall (river #1963's F1).
    pub f1: f64,
    /// Harmonic mean of precision and recall_alarms (CapyMOA's F1).
    pub f1_capymoa: f64,
    /// Mean delay (first alarm - onset) over detected changes, in samples.
    pub mdt: f64,
    /// mdt / max_delay (CapyMOA's and river's normalized detection time).
    pub ndt: f64,
    /// Mean delay over all changes, a miss charged the whole period to the next onset (or the
    /// stream's end) (CD-MOA's detection delay, as float implements it).
    pub mdt_penalised: f64,
    /// fp_alarms / samples x rate_unit.
    pub far: f64,
    /// Mean gap between consecutive false alarms, in samples (NaN below two).
    pub mtfa: f64,
    /// mtfa / mdt x (1 - mdr) (CD-MOA's mean time ratio; +inf when mdt is 0).
    pub mtr: f64,
}

/// Everything a metric needs about the stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamExtent {
    /// The first sample's position.
    pub first: i64,
    /// Samples in the stream.
    pub samples: usize,
    /// The rate unit of `far` (false alarms per this many samples).
    pub rate_unit: f64,
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        f64::NAN
    } else {
        numerator / denominator
    }
}

fn harmonic(a: f64, b: f64) -> f64 {
    if a + b == 0.0 {
        0.0
    } else {
        2.0 * a * b / (a + b)
    }
}

/// The mean of `values`, NaN without any.
pub(crate) fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    ratio(sum, count as f64)
}

/// The metrics of `alarms` against `changes`.
pub fn stream_metrics(
    changes: &[Change],
    alarms: &[i64],
    tolerance: Tolerance,
    extent: StreamExtent,
) -> (StreamMetrics, Vec<ChangeOutcome>, Vec<i64>) {
    let (outcomes, false_alarms) = match_alarms(changes, alarms, tolerance);
    let detected = outcomes.iter().filter(|o| o.detected()).count();
    let tp_alarms: usize = outcomes.iter().map(|o| o.alarms_in_window).sum();
    let fp_alarms = false_alarms.len();
    let episodes = changes.len();
    let precision = ratio(tp_alarms as f64, alarms.len() as f64);
    let episode_recall = ratio(detected as f64, episodes as f64);
    let recall_alarms = ratio(tp_alarms as f64, (tp_alarms + episodes - detected) as f64);
    let delays = || {
        changes
            .iter()
            .zip(&outcomes)
            .filter_map(|(c, o)| o.first_alarm.map(|a| (a - c.start) as f64))
    };
    let mdt = mean(delays());
    let stream_end = extent.first + extent.samples as i64;
    let mdt_penalised = mean(
        changes
            .iter()
            .zip(&outcomes)
            .enumerate()
            .map(|(k, (c, o))| match o.first_alarm {
                Some(alarm) => (alarm - c.start) as f64,
                None => {
                    let next = changes.get(k + 1).map_or(stream_end, |n| n.start);
                    (next - c.start) as f64
                }
            }),
    );
    let mtfa = if false_alarms.len() < 2 {
        f64::NAN
    } else {
        mean(false_alarms.windows(2).map(|w| (w[1] - w[0]) as f64))
    };
    // Counted, not 1 - episode_recall, so that 2 misses of 10 read 0.2, not 0.19999999999999996.
    let mdr = ratio((episodes - detected) as f64, episodes as f64);
    let mtr = if mdt == 0.0 {
        f64::INFINITY
    } else {
        mtfa / mdt * episode_recall
    };
    let metrics = StreamMetrics {
        samples: extent.samples,
        episodes,
        detected,
        alarms: alarms.len(),
        tp_alarms,
        fp_alarms,
        precision,
        episode_recall,
        mdr,
        recall_alarms,
        f1: harmonic(precision, episode_recall),
        f1_capymoa: harmonic(precision, recall_alarms),
        mdt,
        ndt: ratio(mdt, tolerance.max_delay as f64),
        mdt_penalised,
        far: fp_alarms as f64 / extent.samples as f64 * extent.rate_unit,
        mtfa,
        mtr,
    };
    (metrics, outcomes, false_alarms)
}

/// Observed in-control run lengths: within each in-control stretch `[first, last]` (no drift,
/// outside every change's window), the samples from its start to its first false alarm and
/// from each false alarm to the next (a detector that keeps running after an alarm, as
/// windowed tests do), counted inclusively; the tail after the last alarm of a stretch is
/// censored. Returns the observed run lengths and the number of censored tails.
pub fn run_lengths(stretches: &[(i64, i64)], false_alarms: &[i64]) -> (Vec<i64>, usize) {
    let mut runs = Vec::new();
    let mut censored = 0;
    for &(first, last) in stretches {
        let mut start = first;
        let from = false_alarms.partition_point(|&a| a < first);
        let to = false_alarms.partition_point(|&a| a <= last);
        for &alarm in &false_alarms[from..to] {
            runs.push(alarm - start + 1);
            start = alarm + 1;
        }
        if start <= last {
            censored += 1;
        }
    }
    (runs, censored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(onsets: &[i64]) -> Vec<Change> {
        onsets
            .iter()
            .map(|&s| Change { start: s, end: s })
            .collect()
    }

    fn extent(samples: usize) -> StreamExtent {
        StreamExtent {
            first: 0,
            samples,
            rate_unit: 1000.0,
        }
    }

    const RIVER: Tolerance = Tolerance {
        max_delay: 50,
        max_early: 0,
    };

    /// CapyMOA's `EvaluateDriftDetector` docstring: preds [500, 1200, 1250, 2100], trues
    /// [1000, 2000], max_delay 200 -> tp 2, fp 2, f1 0.667, mdt 150, ndt 0.75.
    #[test]
    fn capymoa_docstring_case() {
        let tolerance = Tolerance {
            max_delay: 200,
            max_early: 0,
        };
        let (m, outcomes, false_alarms) = stream_metrics(
            &points(&[1000, 2000]),
            &[500, 1200, 1250, 2100],
            tolerance,
            extent(3000),
        );
        assert_eq!((m.tp_alarms, m.fp_alarms), (2, 2));
        assert_eq!(false_alarms, [500, 1250]);
        assert_eq!(outcomes[0].first_alarm, Some(1200));
        assert_eq!(format!("{:.3}", m.f1_capymoa), "0.667");
        assert_eq!(m.mdt, 150.0);
        assert_eq!(m.ndt, 0.75);
        assert_eq!(m.precision, 0.5);
        assert_eq!(m.recall_alarms, 1.0);
    }

    /// CapyMOA #409: alarms after the last change's window are false alarms.
    #[test]
    fn capymoa_trailing_alarms_are_false() {
        let tolerance = Tolerance {
            max_delay: 200,
            max_early: 0,
        };
        let (m, _, false_alarms) = stream_metrics(
            &points(&[1000]),
            &[1100, 1300, 5000],
            tolerance,
            extent(6000),
        );
        assert_eq!(false_alarms, [1300, 5000]);
        assert_eq!((m.tp_alarms, m.fp_alarms), (1, 2));
    }

    /// river #1963's docstring cases, all with delta_max = 50.
    #[test]
    fn river_docstring_cases() {
        // match([110, 900], [100]) -> hits {0: [110]}, false [900]
        let (outcomes, false_alarms) = match_alarms(&points(&[100]), &[110, 900], RIVER);
        assert_eq!(outcomes[0].first_alarm, Some(110));
        assert_eq!(outcomes[0].alarms_in_window, 1);
        assert_eq!(false_alarms, [900]);
        // recall([110, 130], [100, 500]) = 0.666..., episode_recall 0.5
        let (m, _, _) = stream_metrics(&points(&[100, 500]), &[110, 130], RIVER, extent(1000));
        assert_eq!(m.recall_alarms, 2.0 / 3.0);
        assert_eq!(m.episode_recall, 0.5);
        // detection_delay([110, 530], [100, 500, 900]) = 20.0
        let (m, _, _) = stream_metrics(&points(&[100, 500, 900]), &[110, 530], RIVER, extent(1000));
        assert_eq!(m.mdt, 20.0);
        // false_alarm_rate([110, 900], [100], n_samples=1000, unit=1000) = 1.0
        let (m, _, _) = stream_metrics(&points(&[100]), &[110, 900], RIVER, extent(1000));
        assert_eq!(m.far, 1.0);
        // mean_time_between_false_alarms([200, 300, 500], []) = 150.0
        let (m, _, _) = stream_metrics(&[], &[200, 300, 500], RIVER, extent(1000));
        assert_eq!(m.mtfa, 150.0);
        assert!(m.precision == 0.0 && m.episode_recall.is_nan());
        // mean_time_ratio([110, 400, 700], [100, 900]) = 15.0
        let (m, _, _) = stream_metrics(&points(&[100, 900]), &[110, 400, 700], RIVER, extent(1000));
        assert_eq!(m.mtr, 15.0);
        // river's F1 is the harmonic mean of precision (1/3) and episode recall (1/2).
        assert_eq!(m.f1, harmonic(1.0 / 3.0, 0.5));
    }

    #[test]
    fn windows_end_before_the_next_change_and_open_early() {
        let tolerance = Tolerance {
            max_delay: 500,
            max_early: 10,
        };
        let changes = [
            Change {
                start: 100,
                end: 150,
            },
            Change {
                start: 300,
                end: 300,
            },
        ];
        let (outcomes, false_alarms) = match_alarms(&changes, &[89, 90, 289, 290, 295], tolerance);
        assert_eq!(
            (outcomes[0].window_first, outcomes[0].window_last),
            (90, 289)
        );
        assert_eq!(
            (outcomes[1].window_first, outcomes[1].window_last),
            (290, 800)
        );
        assert_eq!(false_alarms, [89]);
        assert_eq!(outcomes[0].first_alarm, Some(90));
        assert_eq!(outcomes[0].alarms_in_window, 2);
        assert_eq!(outcomes[1].alarms_in_window, 2);
        let (m, _, _) = stream_metrics(&changes, &[90, 850], tolerance, extent(1000));
        // The early alarm's delay is negative; the miss costs 1000 - 300 samples.
        assert_eq!(m.mdt, -10.0);
        assert_eq!(m.mdt_penalised, (-10.0 + 700.0) / 2.0);
        assert!(m.mtr.is_nan());
    }

    #[test]
    fn run_lengths_restart_at_each_false_alarm_and_censor_tails() {
        let (runs, censored) = run_lengths(&[(0, 99), (200, 299), (400, 409)], &[9, 49, 250, 299]);
        assert_eq!(runs, [10, 40, 51, 49]);
        assert_eq!(censored, 2);
    }
}
