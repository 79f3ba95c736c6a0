//! SPEC's KL against PyTorch's `KLDivLoss(reduction='batchmean')`, on seeded batches shaped like
//! ResNet18 features (tests/fixtures/golden/kl, made by tools/golden/make_kl_golden.py).

use std::path::Path;

use drift_measure::{batch_kl, kl_divergence};

fn rows(value: &serde_json::Value) -> Vec<Vec<f32>> {
    value
        .as_array()
        .expect("a list of rows")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("a row")
                .iter()
                .map(|x| x.as_f64().expect("a number") as f32)
                .collect()
        })
        .collect()
}

#[test]
fn batch_kl_matches_pytorch_kldivloss_batchmean() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/golden/kl/kl_golden.json");
    let text = std::fs::read_to_string(&path).expect("the KL golden fixture");
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expected = case["kl"].as_f64().unwrap();
        let clean = rows(&case["clean"]);
        let drifted = rows(&case["drifted"]);
        assert!(clean.iter().all(|row| row.len() == 512), "{name}");
        let kl = batch_kl(&drifted, &clean).unwrap();
        // Both sides compute in f64 from the same f32 inputs; only summation order differs.
        let tolerance = 1e-9 * expected.abs().max(1.0);
        assert!(
            (kl - expected).abs() <= tolerance,
            "{name}: ours {kl}, PyTorch {expected}"
        );
        if name == "identical" {
            assert_eq!(kl, 0.0);
        }
        // The batch KL is the mean of the per-image KLs.
        let mean = drifted
            .iter()
            .zip(&clean)
            .map(|(d, c)| kl_divergence(d, c).unwrap())
            .sum::<f64>()
            / clean.len() as f64;
        assert!((mean - kl).abs() <= 1e-12 * kl.max(1.0), "{name}");
    }
}
