//! drift-detect against its references (tests/fixtures/golden/detectors, made by
//! tools/golden/make_detector_golden.py): scipy 1.14's Kolmogorov distribution, two-sample KS
//! and Cramér-von Mises, alibi-detect 0.13's KSDrift, CVMDrift and MMDDrift (PyTorch, CPU) and
//! frouros 0.9's MMD, the permutations they drew replayed here.

use drift_detect::cvm::cvm_test;
use drift_detect::kolmogorov::kolmogorov_sf;
use drift_detect::ks::{Correction, correct, feature_columns, ks_test};
use drift_detect::mmd::MmdReference;
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/golden/detectors/detectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn matrix(value: &Value) -> (Vec<f64>, usize) {
    let rows = value.as_array().unwrap();
    let features = rows[0].as_array().unwrap().len();
    let flat = rows
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    (flat, features)
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn relative(a: f64, b: f64) -> f64 {
    if a == b { 0.0 } else { (a - b).abs() / b.abs() }
}

#[test]
fn kolmogorov_distribution_equals_scipy() {
    let golden = golden();
    let cases = golden["kolmogorov"].as_array().unwrap();
    let mut worst = (0.0, 0, 0.0);
    for case in cases {
        let n = case[0].as_u64().unwrap();
        let x = case[1].as_f64().unwrap();
        let expected = case[2].as_f64().unwrap();
        let ours = kolmogorov_sf(n, x);
        let error = if expected < 1e-290 {
            (ours - expected).abs() / 1e-290
        } else {
            relative(ours, expected)
        };
        if error > worst.0 {
            worst = (error, n, x);
        }
        // Above n = 10,000 (windows and references of 20,000 samples and more) the f64
        // logarithms of the Smirnov sum's large factors (scipy: double-double) cost a digit.
        let tolerance = if n <= 10_000 { 1e-12 } else { 1e-11 };
        assert!(
            error <= tolerance,
            "kstwo.sf({x}, {n}): ours {ours:e}, scipy {expected:e}, relative error {error:e}"
        );
    }
    eprintln!(
        "{} cases, worst relative error {:e} (n {}, x {})",
        cases.len(),
        worst.0,
        worst.1,
        worst.2
    );
}

/// How close a p-value must come to scipy's.
#[derive(Clone, Copy)]
enum Tolerance {
    Relative(f64),
    Absolute(f64),
}

/// A per-feature test's cases: statistics (within `statistic_tolerance`, relative) and p-values
/// against scipy's, and alibi's f32 p-values and statistics, decisions and thresholds under
/// both corrections.
fn check_per_feature(
    key: &str,
    test: drift_detect::ks::FeatureTest,
    statistic_tolerance: f64,
    p_tolerance: Tolerance,
) {
    for (index, case) in golden()[key].as_array().unwrap().iter().enumerate() {
        let (reference, features) = matrix(&case["reference"]);
        let (window, _) = matrix(&case["window"]);
        let statistics = floats(&case["statistics"]);
        let p_values = floats(&case["p_values"]);
        let mut ours_p = Vec::new();
        let mut ours_statistics = Vec::new();
        let reference_columns = feature_columns(&reference, features);
        let window_columns = feature_columns(&window, features);
        for f in 0..features {
            let mut a = reference_columns[f].clone();
            let mut b = window_columns[f].clone();
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let (statistic, p) = test(&a, &b);
            assert!(
                relative(statistic, statistics[f]) <= statistic_tolerance,
                "{key} case {index} feature {f}: statistic {statistic} against scipy's {}",
                statistics[f]
            );
            let close = match p_tolerance {
                Tolerance::Relative(bound) => relative(p, p_values[f]) <= bound,
                Tolerance::Absolute(bound) => (p - p_values[f]).abs() <= bound,
            };
            assert!(
                close,
                "{key} case {index} feature {f}: p {p:e} against scipy's {:e}",
                p_values[f]
            );
            ours_p.push(p as f32);
            ours_statistics.push(statistic as f32);
        }
        for (name, correction) in [
            ("bonferroni", Correction::Bonferroni),
            ("fdr", Correction::Fdr),
        ] {
            let alibi = &case["alibi"][name];
            let alibi_p: Vec<f32> = floats(&alibi["p_val"]).iter().map(|&p| p as f32).collect();
            match p_tolerance {
                Tolerance::Relative(_) => {
                    assert_eq!(
                        ours_p, alibi_p,
                        "{key} {name}: p-values as alibi stores them"
                    )
                }
                // The absolute difference survives the f32 rounding as at most one f32 step.
                Tolerance::Absolute(bound) => {
                    for (ours, theirs) in ours_p.iter().zip(&alibi_p) {
                        let step = f64::from(*theirs) * f64::from(f32::EPSILON);
                        assert!(
                            f64::from((ours - theirs).abs()) <= bound + step,
                            "{key} {name}: f32 p {ours:e} against alibi's {theirs:e}"
                        );
                    }
                }
            }
            let distances: Vec<f32> = floats(&alibi["distance"])
                .iter()
                .map(|&d| d as f32)
                .collect();
            assert_eq!(ours_statistics, distances, "{key} {name}: statistics");
            let (alarm, threshold, _) = correct(&ours_p, 0.05, correction);
            assert_eq!(
                alarm,
                alibi["is_drift"].as_i64().unwrap() == 1,
                "{key} {name}"
            );
            let expected_threshold = match &alibi["threshold"] {
                Value::Array(all) => all[0].as_f64().unwrap(),
                one => one.as_f64().unwrap(),
            };
            assert_eq!(threshold, expected_threshold, "{key} {name}: threshold");
        }
    }
}

#[test]
fn ks_equals_scipy_and_alibi() {
    // D is the same lattice value as scipy's, bit for bit.
    check_per_feature("ks", ks_test, 0.0, Tolerance::Relative(1e-12));
}

#[test]
fn cvm_equals_scipy_and_alibi() {
    // p = 1 - CDF: scipy's CDF (through AMOS' K_1/4, off by up to 7e-14 relative) and ours
    // differ by about 1e-15, which is 1e-9 relative on a p of 1e-6; held absolutely.
    check_per_feature("cvm", cvm_test, 1e-14, Tolerance::Absolute(1e-13));
}

fn permutations(value: &Value) -> Vec<Vec<usize>> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p.as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize)
                .collect()
        })
        .collect()
}

#[test]
fn mmd_equals_alibi_given_its_permutations() {
    for (index, case) in golden()["mmd"].as_array().unwrap().iter().enumerate() {
        let (reference, features) = matrix(&case["reference"]);
        let (window, _) = matrix(&case["window"]);
        let alibi = &case["alibi"];
        let detector = MmdReference::new(reference, features, None);
        let bandwidth = detector.bandwidth();
        assert_eq!(
            f64::from(bandwidth.gamma),
            alibi["gamma"].as_f64().unwrap(),
            "case {index}: gamma"
        );
        let outcome = detector.test(&window, &permutations(&alibi["permutations"]), 0.05);
        let mmd2 = alibi["mmd2"].as_f64().unwrap();
        assert!(
            relative(outcome.statistic, mmd2) <= 1e-10,
            "case {index}: MMD^2 {} against alibi's {mmd2}",
            outcome.statistic
        );
        assert_eq!(
            outcome.p_value() as f32,
            alibi["p_val"].as_f64().unwrap() as f32,
            "case {index}: p-value"
        );
        assert_eq!(
            f64::from(outcome.threshold),
            alibi["distance_threshold"].as_f64().unwrap(),
            "case {index}: distance threshold"
        );
    }
}

#[test]
fn mmd_equals_frouros_given_its_permutations() {
    for (index, case) in golden()["mmd"].as_array().unwrap().iter().enumerate() {
        let (reference, features) = matrix(&case["reference"]);
        let (window, _) = matrix(&case["window"]);
        let frouros = &case["frouros"];
        let detector = MmdReference::new(reference, features, frouros["sigma"].as_f64());
        let outcome = detector.test(&window, &permutations(&frouros["permutations"]), 0.05);
        let mmd2 = frouros["mmd2"].as_f64().unwrap();
        assert!(
            relative(outcome.statistic, mmd2) <= 1e-10,
            "case {index}: MMD^2 {} against frouros' {mmd2}",
            outcome.statistic
        );
        assert_eq!(
            outcome.p_value(),
            frouros["p_value"].as_f64().unwrap(),
            "case {index}: p-value"
        );
    }
}

/// The power table's Clopper-Pearson bands against their definition (binomial sums at 60
/// digits in mpmath) and against scipy's `binomtest(k, n).proportion_ci(method="exact")`
/// (tools/golden/make_score_golden.py).
#[test]
fn clopper_pearson_equals_its_definition_and_scipy() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/golden/detectors/clopper_pearson.json"
    );
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut worst_exact, mut worst_scipy, mut exact_cases) = (0f64, 0f64, 0);
    for case in golden["cases"].as_array().unwrap() {
        let case = case.as_array().unwrap();
        let number = |i: usize| case[i].as_f64();
        let (k, n, confidence) = (
            number(0).unwrap() as u64,
            number(1).unwrap() as u64,
            number(2).unwrap(),
        );
        let (low, high) = drift_detect::score::power::clopper_pearson(k, n, confidence);
        for (ours, scipy, exact) in [(low, number(3), number(5)), (high, number(4), number(6))] {
            let scipy = scipy.unwrap();
            // scipy's beta quantiles are themselves off in the far tails: k 1, n 100,000 at
            // 0.95 gives a low end 1.5e-6 (relative) from 1 - 0.975^(1/n), where ours is 1e-16.
            worst_scipy = worst_scipy.max(relative(ours, scipy));
            assert!(
                relative(ours, scipy) < 1e-5,
                "k {k}, n {n}, {confidence}: {ours} against scipy's {scipy}"
            );
            if let Some(exact) = exact {
                exact_cases += 1;
                worst_exact = worst_exact.max(relative(ours, exact));
                assert!(
                    relative(ours, exact) < 1e-10,
                    "k {k}, n {n}, {confidence}: {ours} against {exact}"
                );
            }
        }
    }
    assert!(exact_cases > 400);
    eprintln!(
        "Clopper-Pearson: largest relative difference {worst_exact:e} from the definition \
         ({exact_cases} ends), {worst_scipy:e} from scipy"
    );
}

/// LSDD against alibi-detect's LSDDDrift (PyTorch, CPU) given the kernel centres' split and
/// the permutations it drew (tools/golden/make_lsdd_golden.py): H, the statistic and threshold
/// within 1e-8, the p-value (an f32 mean in alibi) and the decision equal.
#[test]
fn lsdd_equals_alibi_given_its_permutations() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/golden/detectors/lsdd.json"
    );
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut worst: f64 = 0.0;
    for case in golden["cases"].as_array().unwrap() {
        let (x_ref, d) = matrix(&case["x_ref"]);
        let (x, _) = matrix(&case["x"]);
        let split: Vec<usize> =
            permutations(&Value::Array(vec![case["center_permutation"].clone()])).remove(0);
        let drawn = permutations(&case["permutations"]);
        let centers = case["centers"].as_u64().unwrap() as usize;
        let reference = drift_detect::lsdd::LsddReference::new(
            &x_ref,
            d,
            case["sigma_given"].as_f64(),
            &split,
            centers,
            0.2,
        );
        if case["sigma_given"].is_null() {
            assert_eq!(
                f64::from(reference.bandwidth().gamma),
                case["gamma"].as_f64().unwrap()
            );
        }
        let (h, _) = matrix(&case["H"]);
        for (ours, theirs) in reference.h_matrix().iter().zip(&h) {
            assert!(
                relative(*ours, *theirs) < 1e-12,
                "H: {ours} against {theirs}"
            );
        }
        let outcome = reference.test(&x, &drawn, 0.05).unwrap();
        let lsdd = case["lsdd"].as_f64().unwrap();
        worst = worst.max(relative(outcome.statistic, lsdd));
        assert!(
            relative(outcome.statistic, lsdd) < 1e-8,
            "LSDD {} against {lsdd}",
            outcome.statistic
        );
        let threshold = case["distance_threshold"].as_f64().unwrap();
        assert!(relative(outcome.threshold, threshold) < 1e-8);
        let p = case["p_val"].as_f64().unwrap() as f32;
        assert_eq!(outcome.exceed as f32 / outcome.permutations as f32, p);
        assert_eq!(
            i64::from((outcome.p_value() as f32) < 0.05),
            case["is_drift"].as_i64().unwrap()
        );
    }
    eprintln!("LSDD: largest relative difference from alibi {worst:e}");
}

/// Online MMD against alibi-detect 0.13's MMDDriftOnline (PyTorch, CPU) given the permutations
/// it drew (tools/golden/make_online_golden.py): every threshold, each step's threshold and
/// statistic within 1e-10 relative, each step's decision equal (alibi's detector is not
/// reset after an alarm, so neither is the monitor here).
#[test]
fn mmd_online_equals_alibi_given_its_permutations() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/golden/detectors/mmd_online.json"
    );
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut worst: f64 = 0.0;
    for (index, case) in golden["cases"].as_array().unwrap().iter().enumerate() {
        let (x_ref, d) = matrix(&case["x_ref"]);
        let (stream, _) = matrix(&case["stream"]);
        let reference = MmdReference::new(x_ref, d, case["sigma_given"].as_f64());
        assert_eq!(
            f64::from(reference.bandwidth().gamma),
            case["gamma"].as_f64().unwrap(),
            "case {index}: gamma"
        );
        let mut splits = permutations(&case["split_permutations"]).into_iter();
        let detector = drift_detect::mmd_online::MmdOnline::configure(
            &reference,
            case["ert"].as_f64().unwrap(),
            case["window"].as_u64().unwrap() as usize,
            &permutations(&case["bootstrap_permutations"]),
            || splits.next().expect("alibi's splits suffice"),
            3,
        )
        .unwrap();
        assert_eq!(
            detector.splits_tried(),
            case["split_permutations"].as_array().unwrap().len()
        );
        let thresholds = floats(&case["thresholds"]);
        assert_eq!(detector.thresholds().len(), thresholds.len());
        for (step, (ours, theirs)) in detector.thresholds().iter().zip(&thresholds).enumerate() {
            worst = worst.max(relative(*ours, *theirs));
            assert!(
                relative(*ours, *theirs) <= 1e-10,
                "case {index}: threshold {step}: {ours} against alibi's {theirs}"
            );
        }
        // Fed in uneven blocks: the steps do not depend on how the stream is cut.
        let mut monitor = detector.monitor(false);
        let mut steps = Vec::new();
        for block in stream.chunks(7 * d) {
            steps.extend(monitor.observe(block));
        }
        let statistics = floats(&case["statistics"]);
        let step_thresholds = floats(&case["step_thresholds"]);
        let alarms: Vec<bool> = case["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_i64().unwrap() == 1)
            .collect();
        assert_eq!(steps.len(), statistics.len());
        for (t, step) in steps.iter().enumerate() {
            worst = worst.max(relative(step.statistic, statistics[t]));
            assert!(
                relative(step.statistic, statistics[t]) <= 1e-10,
                "case {index}: step {t}: {} against alibi's {}",
                step.statistic,
                statistics[t]
            );
            assert!(
                relative(step.threshold, step_thresholds[t]) <= 1e-10,
                "case {index}: step {t}: threshold {} against alibi's {}",
                step.threshold,
                step_thresholds[t]
            );
            assert_eq!(step.alarm, alarms[t], "case {index}: step {t}");
        }
        assert!(alarms.contains(&true), "case {index}: the fixture drifts");
    }
    eprintln!("online MMD: largest relative difference from alibi {worst:e}");
}
