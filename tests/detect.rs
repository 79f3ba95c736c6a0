//! `drift-pipeline detect` on real outputs: a scenario's clean first segment as the reference,
//! a clean and a noisy segment as the stream. The report's tables are read back with the
//! parquet crate (not the writer's code) and each window's statistic is recomputed from the
//! embeddings file; every refusal leaves no report behind.

mod common;

use std::path::{Path, PathBuf};

use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use common::{WeightsSetup, read_embeddings, read_parquet};
use drift_core::{Purpose, sample_rng};
use drift_detect::cvm::cvm_test;
use drift_detect::ks::{Correction, FeatureTest, feature_tests, ks_test};
use drift_detect::lsdd::LsddReference;
use drift_detect::mmd::{MmdReference, draw_permutations};

struct Streams {
    setup: WeightsSetup,
}

impl Streams {
    /// A scenario of four segments with embeddings: ref (40 clean), clean (40), noisy (40),
    /// tail (5, clean).
    fn new() -> Self {
        let setup = WeightsSetup::new(40, 5, 11);
        let scenario = setup.path("scenario.toml");
        std::fs::write(
            &scenario,
            format!(
                "input = {:?}\nseed = 9\nembeddings = true\nweights = {:?}\n\n\
                 [[segment]]\nname = \"ref\"\noutput = {:?}\nsamples = 40\n\n\
                 [[segment]]\nname = \"clean\"\noutput = {:?}\nsamples = 40\n\n\
                 [[segment]]\nname = \"noisy\"\noutput = {:?}\nsamples = 40\n\
                 transforms = [\"gaussian_noise=0.8\"]\n\n\
                 [[segment]]\nname = \"tail\"\noutput = {:?}\nsamples = 5\n",
                setup.input,
                setup.weights,
                setup.path("ref"),
                setup.path("clean"),
                setup.path("noisy"),
                setup.path("tail")
            ),
        )
        .unwrap();
        setup.succeeds(&["run", scenario.to_str().unwrap(), "--quiet"]);
        Self { setup }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.setup.path(name)
    }

    fn detect(&self, output: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(output);
        let (reference, clean, noisy) = (self.path("ref"), self.path("clean"), self.path("noisy"));
        let args = [
            &[
                "detect",
                "--reference",
                reference.to_str().unwrap(),
                "--stream",
                clean.to_str().unwrap(),
                noisy.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--window",
                "10",
            ],
            extra,
        ]
        .concat();
        self.setup.succeeds(&args);
        out
    }
}

/// A row of windows.parquet, read with the parquet crate.
#[derive(Debug)]
struct Window {
    detector: String,
    window: i64,
    first: i64,
    last: i64,
    statistic: f64,
    p_value: Option<f64>,
    exceed: Option<i64>,
    alarm: bool,
}

fn read_windows(folder: &Path) -> Vec<Window> {
    let schema = [
        ("detector", DataType::Utf8),
        ("window", DataType::Int64),
        ("first_sample_id", DataType::Int64),
        ("last_sample_id", DataType::Int64),
        ("first_timestamp", DataType::Float64),
        ("last_timestamp", DataType::Float64),
        ("n_reference", DataType::Int64),
        ("n_test", DataType::Int64),
        ("statistic", DataType::Float64),
        ("p_value", DataType::Float64),
        ("perm_exceed", DataType::Int64),
        ("n_permutations", DataType::Int64),
        ("threshold", DataType::Float64),
        ("alarm", DataType::Boolean),
        ("features_drifted", DataType::Int64),
        ("min_feature_p", DataType::Float64),
        ("lambda", DataType::Float64),
    ];
    let mut rows = Vec::new();
    for batch in read_parquet(&folder.join("windows.parquet"), &schema) {
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        let detector = column("detector");
        let detector = detector.as_any().downcast_ref::<StringArray>().unwrap();
        let int = |name: &str| {
            column(name)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        let float = |name: &str| {
            column(name)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone()
        };
        let (window, first, last, exceed) = (
            int("window"),
            int("first_sample_id"),
            int("last_sample_id"),
            int("perm_exceed"),
        );
        let (statistic, p_value) = (float("statistic"), float("p_value"));
        let alarm = column("alarm");
        let alarm = alarm.as_any().downcast_ref::<BooleanArray>().unwrap();
        for i in 0..batch.num_rows() {
            rows.push(Window {
                detector: detector.value(i).to_owned(),
                window: window.value(i),
                first: first.value(i),
                last: last.value(i),
                statistic: statistic.value(i),
                p_value: p_value.is_valid(i).then(|| p_value.value(i)),
                exceed: exceed.is_valid(i).then(|| exceed.value(i)),
                alarm: alarm.value(i),
            });
        }
    }
    rows
}

fn read_alarms(folder: &Path) -> Vec<(String, i64)> {
    let schema = [
        ("detector", DataType::Utf8),
        ("sample_id", DataType::Int64),
        ("timestamp", DataType::Float64),
    ];
    let mut rows = Vec::new();
    for batch in read_parquet(&folder.join("alarms.parquet"), &schema) {
        let detectors = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let ids = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for i in 0..batch.num_rows() {
            rows.push((detectors.value(i).to_owned(), ids.value(i)));
        }
    }
    rows
}

#[test]
fn detectors_flag_the_noisy_segment_and_their_tables_read_back() {
    let streams = Streams::new();
    let out = streams.detect(
        "report",
        &[
            "--detector",
            "mmd",
            "--detector",
            "ks:correction=fdr",
            "--detector",
            "cvm",
            "--detector",
            "lsdd",
            "--seed",
            "4",
            "--threads",
            "1",
        ],
    );
    let windows = read_windows(&out);
    // 80 stream samples in windows of 10: 8 windows per detector, ids 40..=119.
    assert_eq!(windows.len(), 32);
    let reference = read_embeddings(&streams.path("ref"));
    let stream: Vec<_> = [streams.path("clean"), streams.path("noisy")]
        .iter()
        .flat_map(|f| read_embeddings(f))
        .collect();
    let reference_rows: Vec<f64> = reference.iter().flat_map(|r| r.2.clone()).collect();
    let mmd = MmdReference::new(reference_rows.clone(), 512, None);
    // LSDD's draws, as detect.json says they are made: the centres' split from (seed, 0,
    // setup of detector 3), each window's permutations from (seed, window, detector 3).
    let split =
        draw_permutations(&mut sample_rng(4, 0, Purpose::DetectorSetup(3)), 40, 1).remove(0);
    let lsdd = LsddReference::new(&reference_rows, 512, None, &split, 2, 0.2);
    let reference_sorted: Vec<Vec<f64>> = (0..512)
        .map(|f| {
            let mut c: Vec<f64> = reference.iter().map(|r| r.2[f]).collect();
            c.sort_by(f64::total_cmp);
            c
        })
        .collect();
    for w in &windows {
        let start = (w.window * 10) as usize;
        let rows = &stream[start..start + 10];
        assert_eq!((w.first, w.last), (rows[0].0, rows[9].0), "{w:?}");
        let values: Vec<f64> = rows.iter().flat_map(|r| r.2.clone()).collect();
        let noisy = w.first >= 80;
        match w.detector.as_str() {
            "mmd" => {
                // The statistic does not depend on the permutations: recompute it (to the
                // rounding of the matrix product, whose blocking follows its width).
                let outcome = mmd.test(&values, &[], 0.05);
                let error = (outcome.statistic - w.statistic).abs();
                assert!(error <= 1e-12 * w.statistic.abs().max(1e-6), "{w:?}");
                let b = w.exceed.unwrap();
                assert_eq!(w.p_value, Some(b as f64 / 100.0));
                if noisy {
                    assert!(w.alarm && b == 0, "noise at 0.8 is caught: {w:?}");
                }
            }
            "ks:correction=fdr" | "cvm" => {
                let columns: Vec<Vec<f64>> = (0..512)
                    .map(|f| rows.iter().map(|r| r.2[f]).collect())
                    .collect();
                let (test, correction): (FeatureTest, _) = if w.detector == "cvm" {
                    (cvm_test, Correction::Bonferroni)
                } else {
                    (ks_test, Correction::Fdr)
                };
                let outcome = feature_tests(&reference_sorted, &columns, 0.05, correction, test);
                let largest = outcome
                    .statistics
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max);
                assert_eq!(largest, w.statistic);
                assert_eq!(outcome.alarm, w.alarm);
                if noisy {
                    assert!(w.alarm, "{w:?}");
                }
            }
            "lsdd" => {
                let mut rng = sample_rng(4, w.window as u64, Purpose::DetectorPermutations(3));
                let drawn = draw_permutations(&mut rng, 38 + 10, 100);
                let outcome = lsdd.test(&values, &drawn, 0.05).unwrap();
                assert_eq!(outcome.statistic, w.statistic, "{w:?}");
                assert_eq!(Some(outcome.exceed as i64), w.exceed, "{w:?}");
                assert_eq!(w.p_value, Some(outcome.exceed as f64 / 100.0));
            }
            other => panic!("unexpected detector {other}"),
        }
    }
    let clean_alarms = windows
        .iter()
        .filter(|w| {
            w.first < 80 && w.alarm && (w.detector == "mmd" || w.detector.starts_with("ks"))
        })
        .count();
    assert!(
        clean_alarms <= 2,
        "{clean_alarms} false alarms of mmd and ks in 8 clean windows"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("detect.json")).unwrap()).unwrap();
    // The seeded test weights leave some features at 0 for every image. scipy's (and alibi's)
    // Cramér-von Mises ranks those ties as if ordered and calls the feature drifted in every
    // window: reproduced, counted in detect.json.
    let constant = record["detectors"][2]["constant_features"]
        .as_u64()
        .unwrap();
    assert!(constant > 0);
    assert!(
        windows
            .iter()
            .filter(|w| w.detector == "cvm")
            .all(|w| w.alarm)
    );
    // alarms.parquet lists each alarm at its window's last sample.
    let expected: Vec<(String, i64)> = windows
        .iter()
        .filter(|w| w.alarm)
        .map(|w| (w.detector.clone(), w.last))
        .collect();
    assert_eq!(read_alarms(&out), expected);
    assert_eq!(record["detectors"][0]["detector"], "mmd");
    let lsdd_record = &record["detectors"][3]["lsdd"];
    assert_eq!(lsdd_record["centers"], 2);
    assert_eq!(lsdd_record["effective_reference"], 38);
    let lambdas: u64 = lsdd_record["lambdas"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(lambdas, 8);
    assert_eq!(
        record["detectors"][0]["bandwidth"]["gamma"]
            .as_f64()
            .unwrap() as f32,
        mmd.bandwidth().gamma
    );
    assert_eq!(record["stream"].as_array().unwrap().len(), 2);

    // The same inputs and seed give the same bytes at any thread count; another seed other
    // permutations.
    let again = streams.detect(
        "again",
        &[
            "--detector",
            "mmd",
            "--detector",
            "ks:correction=fdr",
            "--detector",
            "cvm",
            "--detector",
            "lsdd",
            "--seed",
            "4",
            "--threads",
            "3",
        ],
    );
    for name in ["windows.parquet", "alarms.parquet"] {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(again.join(name)).unwrap(),
            "{name}"
        );
    }
    let other = read_windows(&streams.detect("other", &["--seed", "5"]));
    let exceed = |rows: &[Window]| -> Vec<Option<i64>> {
        rows.iter()
            .filter(|w| w.detector == "mmd" && w.first < 80)
            .map(|w| w.exceed)
            .collect()
    };
    assert_ne!(
        exceed(&windows),
        exceed(&other),
        "the seed draws the permutations"
    );
}

/// A row of online.parquet, read with the parquet crate.
#[derive(Debug)]
struct Step {
    detector: String,
    sample_id: i64,
    t: i64,
    statistic: f64,
    threshold: f64,
    alarm: bool,
}

fn read_online(folder: &Path) -> Vec<Step> {
    let schema = [
        ("detector", DataType::Utf8),
        ("sample_id", DataType::Int64),
        ("timestamp", DataType::Float64),
        ("t", DataType::Int64),
        ("statistic", DataType::Float64),
        ("threshold", DataType::Float64),
        ("alarm", DataType::Boolean),
    ];
    let mut rows = Vec::new();
    for batch in read_parquet(&folder.join("online.parquet"), &schema) {
        let column = |i: usize| batch.column(i).clone();
        let (detector, ids, t, statistic, threshold, alarm) = (
            column(0),
            column(1),
            column(3),
            column(4),
            column(5),
            column(6),
        );
        let detector = detector.as_any().downcast_ref::<StringArray>().unwrap();
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let t = t.as_any().downcast_ref::<Int64Array>().unwrap();
        let statistic = statistic.as_any().downcast_ref::<Float64Array>().unwrap();
        let threshold = threshold.as_any().downcast_ref::<Float64Array>().unwrap();
        let alarm = alarm.as_any().downcast_ref::<BooleanArray>().unwrap();
        for i in 0..batch.num_rows() {
            rows.push(Step {
                detector: detector.value(i).to_owned(),
                sample_id: ids.value(i),
                t: t.value(i),
                statistic: statistic.value(i),
                threshold: threshold.value(i),
                alarm: alarm.value(i),
            });
        }
    }
    rows
}

#[test]
fn online_mmd_steps_once_per_sample_resets_after_alarms_and_reads_back() {
    let streams = Streams::new();
    let spec = "mmd-online:ert=20,window=5,bootstraps=400";
    let run = |name: &str, threads: &str| {
        streams.detect(
            name,
            &[
                "--detector",
                spec,
                "--detector",
                "mmd",
                "--seed",
                "4",
                "--threads",
                threads,
            ],
        )
    };
    let out = run("online", "1");
    let steps = read_online(&out);
    // One step per stream sample (ids 40..=119), in order.
    assert_eq!(
        steps.iter().map(|s| s.sample_id).collect::<Vec<_>>(),
        (40..120).collect::<Vec<_>>()
    );
    assert!(steps.iter().all(|s| s.detector == spec));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("detect.json")).unwrap()).unwrap();
    let online = &record["detectors"][0]["online"];
    assert_eq!(online["sub_reference"], 40 - 9);
    assert_eq!(online["steps"], 80);
    let thresholds: Vec<f64> = online["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    assert_eq!(thresholds.len(), 5);
    // t counts from the last reset; each step's threshold is thresholds[min(t, W - 1)], its
    // alarm statistic > threshold, and an alarm resets t.
    let mut t = 0;
    for step in &steps {
        t += 1;
        assert_eq!(step.t, t, "{step:?}");
        assert_eq!(step.threshold, thresholds[(t as usize).min(4)], "{step:?}");
        assert_eq!(step.alarm, step.statistic > step.threshold, "{step:?}");
        if step.alarm {
            t = 0;
        }
    }
    // The noise is caught within a window of its start; the clean stream raises few alarms.
    let first_noisy_alarm = steps
        .iter()
        .find(|s| s.alarm && s.sample_id >= 80)
        .unwrap()
        .sample_id;
    assert!(first_noisy_alarm < 85, "first alarm at {first_noisy_alarm}");
    let clean_alarms = steps.iter().filter(|s| s.alarm && s.sample_id < 80).count();
    assert!(
        clean_alarms <= 8,
        "{clean_alarms} alarms in 40 clean samples"
    );
    // The steps recomputed sample by sample from the draws detect.json names: the bootstraps
    // and then the splits from (seed, 0, setup of detector 0).
    let reference: Vec<f64> = read_embeddings(&streams.path("ref"))
        .into_iter()
        .flat_map(|r| r.2)
        .collect();
    let stream: Vec<f64> = [streams.path("clean"), streams.path("noisy")]
        .iter()
        .flat_map(|f| read_embeddings(f))
        .flat_map(|r| r.2)
        .collect();
    let mmd = MmdReference::new(reference, 512, None);
    let mut rng = sample_rng(4, 0, Purpose::DetectorSetup(0));
    let drawn = draw_permutations(&mut rng, 40, 400);
    let detector = drift_detect::mmd_online::MmdOnline::configure(
        &mmd,
        20.0,
        5,
        &drawn,
        || draw_permutations(&mut rng, 40, 1).remove(0),
        1,
    )
    .unwrap();
    assert_eq!(detector.thresholds(), &thresholds[..]);
    let mut monitor = detector.monitor(true);
    for (step, row) in steps.iter().zip(stream.chunks(512)) {
        let ours = monitor.observe(row)[0];
        // MMD^2 is a difference of kernel means of order 1: to the rounding of those (the
        // matrix products' blocking follows their shapes, here one sample at a time).
        assert!(
            (ours.statistic - step.statistic).abs() <= 1e-12,
            "{step:?} against {ours:?}"
        );
        assert_eq!(ours.alarm, step.alarm, "{step:?}");
    }
    // alarms.parquet: the online alarms at their samples, then mmd's windows.
    let alarms = read_alarms(&out);
    let online_alarms: Vec<(String, i64)> = steps
        .iter()
        .filter(|s| s.alarm)
        .map(|s| (spec.to_owned(), s.sample_id))
        .collect();
    assert_eq!(alarms[..online_alarms.len()], online_alarms[..]);
    assert!(alarms[online_alarms.len()..].iter().all(|a| a.0 == "mmd"));
    assert_eq!(record["detectors"][0]["windows"], 0);
    assert_eq!(read_windows(&out).len(), 8, "mmd's windows only");
    // The timeline with the report: a panel per detector under the drift, named with its
    // alarm count.
    let plot = streams.path("timeline");
    streams.setup.succeeds(&[
        "timeline",
        streams.path("clean").to_str().unwrap(),
        streams.path("noisy").to_str().unwrap(),
        "--detections",
        out.to_str().unwrap(),
        "--output",
        plot.to_str().unwrap(),
    ]);
    let png = image::open(plot.with_extension("png")).unwrap();
    assert_eq!((png.width(), png.height()), (1100, 650 + 2 * 190));
    let svg = std::fs::read_to_string(plot.with_extension("svg")).unwrap();
    let mmd_alarms = alarms.len() - online_alarms.len();
    assert!(svg.contains(&format!("{spec} ({} alarms)", online_alarms.len())));
    assert!(svg.contains(&format!("mmd ({mmd_alarms} alarms)")));
    // The same bytes at any thread count.
    let again = run("online-again", "3");
    for name in ["online.parquet", "windows.parquet", "alarms.parquet"] {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(again.join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn long_stream_modes_of_mmd_recompute_from_their_draws() {
    let streams = Streams::new();
    let calibrated_spec = "mmd:null=calibrated,draws=200";
    let linear_spec = "mmd:estimator=linear";
    let out = streams.detect(
        "long",
        &[
            "--detector",
            calibrated_spec,
            "--detector",
            linear_spec,
            "--seed",
            "4",
        ],
    );
    let windows = read_windows(&out);
    assert_eq!(windows.len(), 16);
    let reference: Vec<f64> = read_embeddings(&streams.path("ref"))
        .into_iter()
        .flat_map(|r| r.2)
        .collect();
    let stream: Vec<f64> = [streams.path("clean"), streams.path("noisy")]
        .iter()
        .flat_map(|f| read_embeddings(f))
        .flat_map(|r| r.2)
        .collect();
    let mmd = MmdReference::new(reference.clone(), 512, None);
    // The calibrated null's draws as detect.json says: the split, then 200 windows of the
    // pool (half the reference), from (seed, 0, setup of detector 0).
    let mut rng = sample_rng(4, 0, Purpose::DetectorSetup(0));
    let split = draw_permutations(&mut rng, 40, 1).remove(0);
    let null_windows: Vec<Vec<usize>> = (0..200)
        .map(|_| rand::seq::index::sample(&mut rng, 20, 10).into_vec())
        .collect();
    let calibrated = drift_detect::mmd_long::CalibratedMmd::new(&mmd, &split, 20, &null_windows, 1);
    for w in &windows {
        let start = (w.window * 10) as usize;
        let values = &stream[start * 512..(start + 10) * 512];
        let noisy = w.first >= 80;
        if w.detector == calibrated_spec {
            let outcome = calibrated.test(values, 0.05);
            assert!((outcome.statistic - w.statistic).abs() <= 1e-12, "{w:?}");
            assert_eq!(Some(outcome.exceed as i64), w.exceed, "{w:?}");
            assert_eq!(w.p_value, Some((1 + outcome.exceed) as f64 / 201.0));
            if noisy {
                assert!(w.alarm && w.exceed == Some(0), "{w:?}");
            }
        } else {
            assert_eq!(w.detector, linear_spec);
            let mut rng = sample_rng(4, w.window as u64, Purpose::DetectorPermutations(1));
            let drawn = rand::seq::index::sample(&mut rng, 40, 10);
            let rows: Vec<f64> = drawn
                .iter()
                .flat_map(|i| reference[i * 512..(i + 1) * 512].to_vec())
                .collect();
            let outcome =
                drift_detect::mmd_long::linear_mmd(&rows, values, 512, mmd.bandwidth(), 0.05);
            assert_eq!(outcome.statistic, w.statistic, "{w:?}");
            assert_eq!(Some(outcome.p_value), w.p_value, "{w:?}");
            assert_eq!(w.exceed, None);
        }
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("detect.json")).unwrap()).unwrap();
    let calibration = &record["detectors"][0]["calibration"];
    assert_eq!(calibration["sub_reference"], 20);
    assert_eq!(calibration["pool"], 20);
    assert_eq!(calibration["draws"], 200);
    // A pool of two windows: the command warns that the null is too narrow.
    let warned = streams.setup.run(&[
        "detect",
        "--reference",
        streams.path("ref").to_str().unwrap(),
        "--stream",
        streams.path("clean").to_str().unwrap(),
        "--output",
        streams.path("warned").to_str().unwrap(),
        "--window",
        "10",
        "--detector",
        calibrated_spec,
    ]);
    assert!(warned.status.success());
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(stderr.contains("2.0 windows of 10"), "{stderr}");
    // A pool that cannot hold two windows is refused.
    let refused = streams.path("refused");
    streams.setup.fails(
        &[
            "detect",
            "--reference",
            streams.path("ref").to_str().unwrap(),
            "--stream",
            streams.path("clean").to_str().unwrap(),
            "--output",
            refused.to_str().unwrap(),
            "--window",
            "10",
            "--detector",
            "mmd:null=calibrated,pool=15",
        ],
        "must hold at least two windows (20)",
    );
    assert!(!refused.join("detect.json").exists());
}

#[test]
fn shard_reports_merge_into_the_single_process_report() {
    let streams = Streams::new();
    let detectors = [
        "--detector",
        "mmd",
        "--detector",
        "ks",
        "--detector",
        "lsdd",
        "--detector",
        "mmd:null=calibrated,draws=100",
        "--detector",
        "mmd:estimator=linear",
        "--seed",
        "3",
    ];
    let one = streams.detect("one", &detectors);
    // 8 windows in 3 shards: 2, 3 and 3 windows.
    let shards: Vec<PathBuf> = (0..3)
        .map(|k| {
            let shard = format!("{k}/3");
            let args = [&detectors[..], &["--shard", shard.as_str()]].concat();
            streams.detect(&format!("shard-{k}"), &args)
        })
        .collect();
    let first = read_windows(&shards[0]);
    assert_eq!(first.len(), 5 * 2);
    assert!(first.iter().all(|w| w.window < 2));
    let merged = streams.path("merged");
    let merge = |output: &Path, shards: &[&PathBuf]| -> Vec<String> {
        let mut args = vec!["merge".to_owned()];
        args.extend(shards.iter().map(|s| s.to_str().unwrap().to_owned()));
        args.extend(["--output".to_owned(), output.to_str().unwrap().to_owned()]);
        args
    };
    let args = merge(&merged, &[&shards[2], &shards[0], &shards[1]]);
    streams
        .setup
        .succeeds(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for name in drift_detect::run::DETECT_FILES {
        assert_eq!(
            std::fs::read(one.join(name)).unwrap(),
            std::fs::read(merged.join(name)).unwrap(),
            "{name}"
        );
    }
    // A missing shard, a shard twice, a report of another run: refused, nothing written.
    let refused = streams.path("refused");
    let fails = |shards: &[&PathBuf], needle: &str| {
        let args = merge(&refused, shards);
        streams
            .setup
            .fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle);
        assert!(!refused.join("detect.json").exists());
    };
    fails(&[&shards[0], &shards[2]], "shard 1/3 is missing");
    fails(
        &[&shards[0], &shards[1], &shards[1], &shards[2]],
        "given twice",
    );
    let other = streams.detect("other", &["--seed", "9", "--shard", "1/3"]);
    fails(
        &[&shards[0], &other, &shards[2]],
        "not of the same detect run",
    );
    fails(&[&shards[0], &one, &shards[2]], "not a shard report");
    // Online detectors read the stream in order; more shards than windows.
    let reference = streams.path("ref");
    let clean = streams.path("clean");
    let base = [
        "detect",
        "--reference",
        reference.to_str().unwrap(),
        "--stream",
        clean.to_str().unwrap(),
        "--output",
        refused.to_str().unwrap(),
        "--window",
        "10",
    ];
    streams.setup.fails(
        &[
            &base[..],
            &[
                "--detector",
                "mmd-online:ert=20,window=5,bootstraps=400",
                "--shard",
                "0/2",
            ],
        ]
        .concat(),
        "online detector",
    );
    streams.setup.fails(
        &[&base[..], &["--shard", "0/5"]].concat(),
        "4 windows, fewer than the 5 shards",
    );
}

#[test]
fn bad_inputs_are_refused_by_name_and_leave_no_report() {
    let streams = Streams::new();
    let p = |name: &str| streams.path(name).to_str().unwrap().to_owned();
    let report = streams.path("report");
    let without_window = |reference: &str, stream: &[&str]| -> Vec<String> {
        let mut args = vec![
            "detect".to_owned(),
            "--reference".to_owned(),
            p(reference),
            "--stream".to_owned(),
        ];
        args.extend(stream.iter().map(|s| p(s)));
        args.extend(["--output".to_owned(), report.to_str().unwrap().to_owned()]);
        args
    };
    let fails = |args: Vec<String>, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        streams.setup.fails(&args, needle);
        assert!(
            !report.join("windows.parquet").exists() && !report.join("detect.json").exists(),
            "{args:?} left a report"
        );
    };
    // A drifted reference.
    let base = |reference: &str, stream: &[&str]| {
        let mut args = without_window(reference, stream);
        args.extend(["--window".to_owned(), "10".to_owned()]);
        args
    };
    fails(base("noisy", &["clean"]), "is not a clean output");
    // A reference that shares images with the stream.
    fails(base("clean", &["clean"]), "shares the image");
    // Folders out of stream order.
    fails(base("ref", &["noisy", "clean"]), "consecutive");
    // A window larger than the stream (5 samples), or than the reference (40).
    fails(base("ref", &["tail"]), "fewer than one window");
    let mut args = without_window("ref", &["clean", "noisy"]);
    args.extend(["--window".to_owned(), "50".to_owned()]);
    fails(args, "fewer than a window of 50");
    // An unknown detector or setting.
    let mut args = base("ref", &["clean"]);
    args.extend(["--detector".to_owned(), "wasserstein".to_owned()]);
    fails(args, "unknown detector");
    let mut args = base("ref", &["clean"]);
    args.extend(["--detector".to_owned(), "ks:correction=holm".to_owned()]);
    fails(args, "holm");
    // Online MMD without its ERT, with too few bootstraps for it, and with a window whose
    // extended test window (2W - 1 = 39) leaves too little of the 40-sample reference.
    for (spec, needle) in [
        (
            "mmd-online:window=5",
            "needs its expected run time and window",
        ),
        (
            "mmd-online:ert=500,window=5,bootstraps=400",
            "400 bootstraps cannot estimate",
        ),
        (
            "mmd-online:ert=20,window=20,bootstraps=400",
            "too small for windows of 20",
        ),
    ] {
        let mut args = base("ref", &["clean"]);
        args.extend(["--detector".to_owned(), spec.to_owned()]);
        fails(args, needle);
    }
    // Not an output folder at all.
    fails(base("in", &["clean"]), "drift.json");
    // An output without embeddings, and one with other weights (continuing the scenario's
    // stream, so that it shares no image with the reference).
    let generate = |name: &str, extra: &[&str]| {
        let output = streams.path(name);
        let args = [
            &[
                "generate",
                "--input",
                streams.setup.input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--num-samples",
                "20",
                "--quiet",
            ],
            extra,
        ]
        .concat();
        streams.setup.succeeds(&args);
    };
    generate("plain", &["--seed", "123"]);
    fails(base("ref", &["plain"]), "has no embeddings");
    // Embeddings of other weights.
    let other_weights = streams.path("other.safetensors");
    drift_embedder::write_synthetic_weights(99, &other_weights).unwrap();
    let noisy = streams.path("noisy");
    generate(
        "other",
        &[
            "--embeddings",
            "--weights",
            other_weights.to_str().unwrap(),
            "--continue-from",
            noisy.to_str().unwrap(),
        ],
    );
    fails(base("ref", &["other"]), "other weights");
}
