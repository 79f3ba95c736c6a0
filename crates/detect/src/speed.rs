//! The speed measurement behind `cargo xtask bench`'s detector rows and the `detect_speed`
//! example: one window test per detector at the size, on seeded synthetic rows (the
//! cost does not depend on the values).

use std::time::Instant;

use drift_core::{Purpose, sample_rng};
use rand::RngExt;

use crate::ks::{Correction, feature_columns, ks_window};
use crate::mmd::{MmdReference, draw_permutations};

/// Reference samples, window samples, features and permutations of the measurement.
pub const SIZE: (usize, usize, usize, usize) = (1000, 500, 512, 100);

/// (detector, seconds per window test, the best of `repeats`) for `mmd` and `ks`.
pub fn window_tests(repeats: usize) -> Vec<(&'static str, f64)> {
    let (r, w, d, b) = SIZE;
    let mut rng = sample_rng(0, 0, Purpose::Permutation);
    let mut rows = |count: usize, shift: f64| -> Vec<f64> {
        (0..count * d)
            .map(|_| rng.random::<f64>() + shift)
            .collect()
    };
    let reference = rows(r, 0.0);
    let window = rows(w, 0.05);
    let best = |run: &mut dyn FnMut()| {
        (0..repeats.max(1))
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let mmd = MmdReference::new(reference.clone(), d, None);
    let mmd_seconds = best(&mut || {
        let mut rng = sample_rng(0, 0, Purpose::DetectorPermutations(0));
        let permutations = draw_permutations(&mut rng, r + w, b);
        std::hint::black_box(mmd.test(&window, &permutations, 0.05));
    });
    let mut reference_sorted = feature_columns(&reference, d);
    reference_sorted
        .iter_mut()
        .for_each(|c| c.sort_by(f64::total_cmp));
    let window_columns = feature_columns(&window, d);
    let ks_seconds = best(&mut || {
        std::hint::black_box(ks_window(
            &reference_sorted,
            &window_columns,
            0.05,
            Correction::Bonferroni,
        ));
    });
    vec![("mmd", mmd_seconds), ("ks", ks_seconds)]
}
