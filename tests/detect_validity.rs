//! Validity under no drift: with both samples from one distribution, each test's p-values are
//! uniform, checked by a Kolmogorov-Smirnov test against U(0, 1) at the 1% level over 500
//! seeded replicates (the p-value of that check from Kolmogorov's exact distribution, ported
//! from scipy and itself tested against it in detect_golden.rs).

use drift_detect::cvm::cvm_test;
use drift_detect::kolmogorov::kolmogorov_sf;
use drift_detect::ks::ks_test;
use drift_detect::lsdd::LsddReference;
use drift_detect::mmd::{MmdReference, draw_permutations};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const REPLICATES: usize = 500;

/// The KS distance of `p` to U(0, 1) and its p-value.
fn uniformity(mut p: Vec<f64>) -> (f64, f64) {
    p.sort_by(f64::total_cmp);
    let n = p.len() as f64;
    let distance = p
        .iter()
        .enumerate()
        .map(|(i, &v)| ((i + 1) as f64 / n - v).max(v - i as f64 / n))
        .fold(0.0, f64::max);
    (distance, kolmogorov_sf(p.len() as u64, distance))
}

fn normal(rng: &mut ChaCha8Rng, count: usize) -> Vec<f64> {
    (0..count).map(|_| StandardNormal.sample(rng)).collect()
}

fn check(name: &str, p: Vec<f64>) {
    assert_eq!(p.len(), REPLICATES);
    let (distance, p_uniform) = uniformity(p);
    eprintln!("{name}: KS distance {distance:.4} to U(0,1), p = {p_uniform:.3}");
    assert!(
        p_uniform > 0.01,
        "{name}: p-values not uniform (D {distance}, p {p_uniform})"
    );
}

#[test]
fn mmd_permutation_p_values_are_uniform_under_no_drift() {
    // p = b/B with B = 100 lies on a grid of 101 values, uniform on it under no drift: its
    // distance to U(0, 1) is at most 1/101, far below the 1% critical value for 500 (0.073).
    let (features, reference, window) = (4, 40, 30);
    let p: Vec<f64> = (0..REPLICATES as u64)
        .map(|replicate| {
            let mut rng = ChaCha8Rng::seed_from_u64(replicate);
            let mmd = MmdReference::new(normal(&mut rng, reference * features), features, None);
            let test = normal(&mut rng, window * features);
            let permutations = draw_permutations(&mut rng, reference + window, 100);
            mmd.test(&test, &permutations, 0.05).p_value()
        })
        .collect();
    check("mmd", p);
}

#[test]
fn lsdd_permutation_p_values_are_uniform_under_no_drift() {
    // As MMD's: b/B on a grid of 101 values. Reference 60 (3 kernel centres, alibi's R/20).
    let (features, reference, window) = (4, 60, 30);
    let p: Vec<f64> = (0..REPLICATES as u64)
        .map(|replicate| {
            let mut rng = ChaCha8Rng::seed_from_u64(3_000 + replicate);
            let rows = normal(&mut rng, reference * features);
            let split = draw_permutations(&mut rng, reference, 1).remove(0);
            let lsdd = LsddReference::new(&rows, features, None, &split, 3, 0.2);
            let test = normal(&mut rng, window * features);
            let permutations = draw_permutations(&mut rng, reference - 3 + window, 100);
            lsdd.test(&test, &permutations, 0.05).unwrap().p_value()
        })
        .collect();
    check("lsdd", p);
}

#[test]
fn ks_and_cvm_p_values_are_uniform_under_no_drift() {
    // One feature, continuous: no ties. KS's asymptotic p lies on the lattice of D (steps of
    // 1/2000 here, fine enough for the check); CvM's statistic is finer.
    let (ks, cvm): (Vec<f64>, Vec<f64>) = (0..REPLICATES as u64)
        .map(|replicate| {
            let mut rng = ChaCha8Rng::seed_from_u64(1_000 + replicate);
            let sorted = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v
            };
            let (a, b) = (normal(&mut rng, 2000), normal(&mut rng, 2000));
            let cvm = cvm_test(&sorted(a[..300].to_vec()), &sorted(b[..200].to_vec())).1;
            (ks_test(&sorted(a), &sorted(b)).1, cvm)
        })
        .unzip();
    check("ks", ks);
    check("cvm", cvm);
}

#[test]
fn the_check_rejects_p_values_that_are_not_uniform() {
    // The same check on a drifted window (shift 0.5 sd) must fail: a check that cannot fail
    // proves nothing.
    let p: Vec<f64> = (0..REPLICATES as u64)
        .map(|replicate| {
            let mut rng = ChaCha8Rng::seed_from_u64(2_000 + replicate);
            let mut a = normal(&mut rng, 200);
            let mut b: Vec<f64> = normal(&mut rng, 200).iter().map(|v| v + 0.5).collect();
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            ks_test(&a, &b).1
        })
        .collect();
    let (distance, p_uniform) = uniformity(p);
    assert!(p_uniform < 1e-6, "shifted: D {distance}, p {p_uniform}");
}

/// Online MMD's thresholds target an expected run time (ERT): under no drift, the mean number of
/// steps to a false alarm, counted from t = 0 (a reset after each alarm) as alibi-detect defines
/// it. Over 20 seeded references, 40 run lengths each, the mean run length is within 15% of the
/// ERT (its standard error is about ERT / sqrt(800), 3.5%).
#[test]
fn mmd_online_run_lengths_average_the_expected_run_time() {
    use drift_detect::mmd_online::MmdOnline;
    let (features, reference, window, ert, bootstraps) = (4, 1000, 10, 50.0, 1000);
    let mut run_lengths = Vec::new();
    for replicate in 0..20u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + replicate);
        let mmd = MmdReference::new(normal(&mut rng, reference * features), features, None);
        let drawn = draw_permutations(&mut rng, reference, bootstraps);
        let detector = MmdOnline::configure(
            &mmd,
            ert,
            window,
            &drawn,
            || draw_permutations(&mut rng, reference, 1).remove(0),
            2,
        )
        .unwrap();
        let mut monitor = detector.monitor(true);
        let mut runs = 0;
        while runs < 40 {
            for step in monitor.observe(&normal(&mut rng, 100 * features)) {
                if step.alarm && runs < 40 {
                    run_lengths.push(step.t as f64);
                    runs += 1;
                }
            }
        }
    }
    let mean = run_lengths.iter().sum::<f64>() / run_lengths.len() as f64;
    eprintln!(
        "mmd-online: mean run length {mean:.1} over {} runs, ERT {ert}",
        run_lengths.len()
    );
    assert!(
        (mean - ert).abs() <= 0.15 * ert,
        "mean run length {mean} is not within 15% of the ERT {ert}"
    );
}

/// The calibrated null (`mmd:null=calibrated`): a sub-reference of 200 and a pool of 200 (ten
/// windows of 20), 500 null draws from the pool, and a fresh window per replicate. Its p-values
/// (1 + b) / (1 + B) are uniform when the pool is much larger than the window.
#[test]
fn mmd_calibrated_null_p_values_are_uniform_under_no_drift() {
    use drift_detect::mmd_long::CalibratedMmd;
    let (features, reference, window, pool, draws) = (4, 400, 20, 200, 500);
    let p: Vec<f64> = (0..REPLICATES as u64)
        .map(|replicate| {
            let mut rng = ChaCha8Rng::seed_from_u64(5000 + replicate);
            let mmd = MmdReference::new(normal(&mut rng, reference * features), features, None);
            let split = draw_permutations(&mut rng, reference, 1).remove(0);
            let null_windows: Vec<Vec<usize>> = (0..draws)
                .map(|_| rand::seq::index::sample(&mut rng, pool, window).into_vec())
                .collect();
            let calibrated = CalibratedMmd::new(&mmd, &split, pool, &null_windows, 1);
            let test = normal(&mut rng, window * features);
            calibrated.test(&test, 0.05).p_value()
        })
        .collect();
    check("mmd null=calibrated", p);
}

/// The linear-time estimator (`mmd:estimator=linear`): 50 pairs per window, p from the normal
/// approximation.
#[test]
fn mmd_linear_p_values_are_uniform_under_no_drift() {
    use drift_detect::mmd_long::linear_mmd;
    let (features, reference, window) = (4, 300, 100);
    let p: Vec<f64> = (0..REPLICATES as u64)
        .map(|replicate| {
            let mut rng = ChaCha8Rng::seed_from_u64(7000 + replicate);
            let mmd = MmdReference::new(normal(&mut rng, reference * features), features, None);
            let rows = normal(&mut rng, reference * features);
            let drawn = rand::seq::index::sample(&mut rng, reference, window);
            let x: Vec<f64> = drawn
                .iter()
                .flat_map(|i| rows[i * features..(i + 1) * features].to_vec())
                .collect();
            let test = normal(&mut rng, window * features);
            linear_mmd(&x, &test, features, mmd.bandwidth(), 0.05).p_value
        })
        .collect();
    check("mmd estimator=linear", p);
}
