//! `drift-pipeline score` on real outputs: a scenario with every drift shape (episodes derived
//! from the drift logs, read back here with the parquet crate), users' alarm files in CSV and
//! Parquet, a `detect` report's windows scored for power, and every refusal leaving no report.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use common::{DriftLogRecord, WeightsSetup, read_drift_log, read_parquet, succeeds};

/// A stream of every shape, without embeddings (scoring needs none).
struct Shapes {
    scratch: tempfile::TempDir,
    folders: Vec<PathBuf>,
}

const SEGMENTS: [&str; 7] = [
    "clean",
    "gradual",
    "recurring",
    "shift",
    "rot-a",
    "rot-b",
    "concept",
];

impl Shapes {
    fn new() -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let input = scratch.path().join("in");
        drift_pipeline_cli::demo::write_dataset_sized(&input, 60, 4, (32, 48)).unwrap();
        std::fs::write(
            scratch.path().join("swap.toml"),
            "city_night = 1\nforest = 0\n",
        )
        .unwrap();
        let scenario = scratch.path().join("shapes.toml");
        std::fs::write(
            &scenario,
            format!(
                "input = {:?}\nsize = \"16\"\nseed = 3\n\
                 [[segment]]\nname = \"clean\"\nsamples = 30\noutput = \"clean\"\n\
                 [[segment]]\nname = \"gradual\"\nsamples = 40\noutput = \"gradual\"\n\
                 transforms = [\"rotate=0.5\"]\ndrift = \"gradual:width=10\"\n\
                 [[segment]]\nname = \"recurring\"\nsamples = 30\noutput = \"recurring\"\n\
                 transforms = [\"hue=0.6\"]\ndrift = \"recurring:period=10,duty=0.3\"\n\
                 [[segment]]\nname = \"shift\"\nsamples = 20\noutput = \"shift\"\n\
                 class_weights = {{ sky = 1 }}\n\
                 [[segment]]\nname = \"rot-a\"\nsamples = 20\noutput = \"rot-a\"\n\
                 transforms = [\"rotate=0.7\"]\n\
                 [[segment]]\nname = \"rot-b\"\nsamples = 20\noutput = \"rot-b\"\n\
                 transforms = [\"rotate=0.7\"]\n\
                 [[segment]]\nname = \"concept\"\nsamples = 20\noutput = \"concept\"\n\
                 transforms = [\"rotate=0.7\"]\nclass_mapping = \"swap.toml\"\n",
                input
            ),
        )
        .unwrap();
        succeeds(&["run", scenario.to_str().unwrap(), "--quiet"]);
        let folders = SEGMENTS.iter().map(|s| scratch.path().join(s)).collect();
        Self { scratch, folders }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    fn log(&self) -> Vec<DriftLogRecord> {
        self.folders
            .iter()
            .flat_map(|f| read_drift_log(f))
            .collect()
    }

    fn args<'a>(&'a self, stream: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["score", "--stream"];
        args.extend(stream.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args
    }

    fn stream(&self) -> Vec<String> {
        self.folders
            .iter()
            .map(|f| f.to_str().unwrap().to_owned())
            .collect()
    }
}

/// A row of episodes.parquet.
#[derive(Debug, Clone, PartialEq)]
struct EpisodeRecord {
    detector: String,
    kind: String,
    transforms: String,
    level: Option<f64>,
    start: i64,
    end: i64,
    window: (i64, i64),
    first_alarm: Option<i64>,
    delay: Option<i64>,
    delay_seconds: Option<f64>,
    alarms_in_window: i64,
}

fn read_episodes(folder: &Path) -> Vec<EpisodeRecord> {
    let schema = [
        ("detector", DataType::Utf8),
        ("episode", DataType::Int64),
        ("segment", DataType::Utf8),
        ("kind", DataType::Utf8),
        ("transforms", DataType::Utf8),
        ("level", DataType::Float64),
        ("start_sample_id", DataType::Int64),
        ("end_sample_id", DataType::Int64),
        ("start_timestamp", DataType::Float64),
        ("window_first_sample_id", DataType::Int64),
        ("window_last_sample_id", DataType::Int64),
        ("detected", DataType::Boolean),
        ("first_alarm_sample_id", DataType::Int64),
        ("delay", DataType::Int64),
        ("delay_seconds", DataType::Float64),
        ("alarms_in_window", DataType::Int64),
    ];
    let mut rows = Vec::new();
    for batch in read_parquet(&folder.join("episodes.parquet"), &schema) {
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let int = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        let float = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone()
        };
        let detected = batch
            .column_by_name("detected")
            .unwrap()
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .clone();
        let optional_int = |a: &Int64Array, i: usize| a.is_valid(i).then(|| a.value(i));
        let optional_float = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
        let (detector, kind, transforms) = (text("detector"), text("kind"), text("transforms"));
        let (start, end, first, last) = (
            int("start_sample_id"),
            int("end_sample_id"),
            int("window_first_sample_id"),
            int("window_last_sample_id"),
        );
        let (alarm, delay, count) = (
            int("first_alarm_sample_id"),
            int("delay"),
            int("alarms_in_window"),
        );
        let (level, delay_seconds) = (float("level"), float("delay_seconds"));
        for i in 0..batch.num_rows() {
            assert_eq!(detected.value(i), alarm.is_valid(i));
            rows.push(EpisodeRecord {
                detector: detector.value(i).to_owned(),
                kind: kind.value(i).to_owned(),
                transforms: transforms.value(i).to_owned(),
                level: optional_float(&level, i),
                start: start.value(i),
                end: end.value(i),
                window: (first.value(i), last.value(i)),
                first_alarm: optional_int(&alarm, i),
                delay: optional_int(&delay, i),
                delay_seconds: optional_float(&delay_seconds, i),
                alarms_in_window: count.value(i),
            });
        }
    }
    rows
}

/// summary.csv as detector -> column -> field.
fn read_summary(folder: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(folder.join("summary.csv")).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header[..3], ["detector", "source", "samples"]);
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            assert_eq!(record.len(), header.len(), "{record:?}");
            (
                record[0].to_owned(),
                header
                    .iter()
                    .zip(record.iter())
                    .map(|(h, f)| (h.clone(), f.to_owned()))
                    .collect(),
            )
        })
        .collect()
}

fn number(
    summary: &BTreeMap<String, BTreeMap<String, String>>,
    detector: &str,
    column: &str,
) -> f64 {
    let field = &summary[detector][column];
    field
        .parse()
        .unwrap_or_else(|_| panic!("{detector} {column}: {field:?}"))
}

/// The episodes the rules give, computed here from the drift log alone.
fn expected_episodes(log: &[DriftLogRecord]) -> Vec<(String, i64, i64)> {
    let segment =
        |name: &str| -> Vec<&DriftLogRecord> { log.iter().filter(|r| r.segment == name).collect() };
    let mut expected = Vec::new();
    let gradual = segment("gradual");
    let onset = gradual.iter().find(|r| r.probability > 0.0).unwrap();
    let full = gradual.iter().find(|r| r.probability >= 1.0).unwrap();
    expected.push(("gradual".to_owned(), onset.sample_id, full.sample_id));
    let recurring = segment("recurring");
    for (i, r) in recurring.iter().enumerate() {
        if r.drifted && (i == 0 || !recurring[i - 1].drifted) {
            expected.push(("recurring".to_owned(), r.sample_id, r.sample_id));
        }
    }
    let first = |name: &str| segment(name)[0].sample_id;
    expected.push(("label_shift".to_owned(), first("shift"), first("shift")));
    expected.push(("abrupt".to_owned(), first("rot-a"), first("rot-a")));
    // rot-b continues rot-a (same transform and level): no episode. The concept segment's
    // rotation continues too, but its labels change.
    expected.push(("concept".to_owned(), first("concept"), first("concept")));
    expected
}

#[test]
fn user_alarms_are_matched_to_every_kind_of_episode() {
    let shapes = Shapes::new();
    let log = shapes.log();
    let expected = expected_episodes(&log);
    assert_eq!(expected.len(), 7, "{expected:?}");
    // Recurring: drifted for 3 of every 10 samples, three runs.
    assert_eq!(expected[1].1 + 10, expected[2].1);
    let gradual_onset = expected[0].1;
    let recurring = expected[1].1;
    let abrupt = expected[5].1;
    let alarms = [
        5,
        gradual_onset + 2,
        recurring + 2,
        recurring + 3,
        recurring + 29,
        abrupt + 1,
        abrupt + 30,
    ];
    let csv: String = std::iter::once("detector,sample_id".to_owned())
        .chain(alarms.iter().map(|a| format!("mine,{a}")))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(shapes.path("mine.csv"), csv + "\n").unwrap();
    // The same alarms by time: each at its sample's timestamp, in a file without a detector
    // column (named by the file).
    let time_of = |id: i64| log.iter().find(|r| r.sample_id == id).unwrap().timestamp;
    let by_clock: String = std::iter::once("timestamp".to_owned())
        .chain(alarms.iter().map(|&a| format!("{:?}", time_of(a))))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(shapes.path("clock.csv"), by_clock).unwrap();

    let stream = shapes.stream();
    let out = shapes.path("score");
    let (mine, clock) = (shapes.path("mine.csv"), shapes.path("clock.csv"));
    let stdout = succeeds(&shapes.args(
        &stream,
        &[
            "--alarms",
            mine.to_str().unwrap(),
            "--alarms",
            clock.to_str().unwrap(),
            "--max-delay",
            "5",
            "--baseline",
            "periodic:50",
            "--output",
            out.to_str().unwrap(),
        ],
    ));
    assert!(stdout.contains("7 drift episodes"), "{stdout}");
    let episodes = read_episodes(&out);
    for detector in ["mine", "clock", "periodic:50"] {
        let own: Vec<&EpisodeRecord> = episodes.iter().filter(|e| e.detector == detector).collect();
        let found: Vec<(String, i64, i64)> = own
            .iter()
            .map(|e| (e.kind.clone(), e.start, e.end))
            .collect();
        assert_eq!(found, expected, "{detector}");
        for (k, e) in own.iter().enumerate() {
            let next = own.get(k + 1).map_or(i64::MAX, |n| n.start - 1);
            assert_eq!(e.window, (e.start, (e.end + 5).min(next)));
        }
    }
    let mine: Vec<&EpisodeRecord> = episodes.iter().filter(|e| e.detector == "mine").collect();
    let clock: Vec<&EpisodeRecord> = episodes.iter().filter(|e| e.detector == "clock").collect();
    assert_eq!(
        mine.iter()
            .map(|e| (&e.first_alarm, e.alarms_in_window))
            .collect::<Vec<_>>(),
        clock
            .iter()
            .map(|e| (&e.first_alarm, e.alarms_in_window))
            .collect::<Vec<_>>()
    );
    assert_eq!(mine[0].first_alarm, Some(gradual_onset + 2));
    assert_eq!(mine[0].delay, Some(2));
    assert_eq!(
        mine[0].delay_seconds,
        Some(time_of(gradual_onset + 2) - time_of(gradual_onset))
    );
    assert_eq!(
        (mine[1].first_alarm, mine[1].alarms_in_window),
        (Some(recurring + 2), 2)
    );
    assert_eq!(mine[5].delay, Some(1));
    assert_eq!(mine[0].transforms, "rotate");
    assert_eq!(mine[0].level, Some(0.5));
    assert_eq!((mine[4].transforms.as_str(), mine[4].level), ("", None));
    let detected = mine.iter().filter(|e| e.first_alarm.is_some()).count();
    assert_eq!(detected, 3);

    let summary = read_summary(&out);
    assert_eq!(
        summary.keys().cloned().collect::<Vec<_>>(),
        ["clock", "mine", "periodic:50"]
    );
    assert_eq!(summary["mine"]["source"], "file");
    assert_eq!(summary["periodic:50"]["source"], "baseline");
    for detector in ["mine", "clock"] {
        // 4 alarms in windows (two in one), 3 false (5, recurring + 29, abrupt + 30).
        assert_eq!(number(&summary, detector, "tp_alarms"), 4.0);
        assert_eq!(number(&summary, detector, "fp_alarms"), 3.0);
        assert_eq!(number(&summary, detector, "precision"), 4.0 / 7.0);
        assert_eq!(number(&summary, detector, "episode_recall"), 3.0 / 7.0);
        assert_eq!(number(&summary, detector, "recall_alarms"), 4.0 / 8.0);
        assert_eq!(number(&summary, detector, "mdt"), 5.0 / 3.0);
        let samples = log.len() as f64;
        assert_eq!(number(&summary, detector, "far"), 3.0 / samples * 1000.0);
        assert_eq!(number(&summary, detector, "samples"), samples);
        // No windows: the window columns are empty.
        assert_eq!(summary[detector]["fpr"], "");
    }
    // periodic:50 alarms at 49, 99, 149: recount its matches from the episodes.
    let periodic: Vec<i64> = (0..)
        .map(|k| 49 + 50 * k)
        .take_while(|&a| a < log.len() as i64)
        .collect();
    let inside = periodic
        .iter()
        .filter(|&&a| {
            episodes
                .iter()
                .filter(|e| e.detector == "periodic:50")
                .any(|e| a >= e.window.0 && a <= e.window.1)
        })
        .count();
    assert_eq!(
        number(&summary, "periodic:50", "n_alarms"),
        periodic.len() as f64
    );
    assert_eq!(number(&summary, "periodic:50", "tp_alarms"), inside as f64);

    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("score.json")).unwrap()).unwrap();
    assert_eq!(record["episodes"], 7);
    assert_eq!(record["stream"].as_array().unwrap().len(), 7);
    assert_eq!(record["files"].as_array().unwrap().len(), 2);
    // The power plot exists and decodes even without windows.
    let png = image::open(out.join("power_by_level.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1100, 650));

    // Bad inputs, each refused before anything is written.
    let refused = shapes.path("refused");
    let refuse = |extra: &[&str], stream: &[String], needle: &str| {
        let mut args = shapes.args(stream, extra);
        args.extend(["--output", refused.to_str().unwrap()]);
        common::assert_fails_cleanly(&args, &common::drift_pipeline(&args), needle);
        assert!(!refused.join("score.json").exists());
    };
    std::fs::write(shapes.path("far.csv"), "sample_id\n10000\n").unwrap();
    let far = shapes.path("far.csv");
    refuse(
        &["--alarms", far.to_str().unwrap()],
        &stream,
        "alarm 0 is at sample 10000",
    );
    std::fs::write(shapes.path("late.csv"), "timestamp\n9e12\n").unwrap();
    let late = shapes.path("late.csv");
    refuse(
        &["--alarms", late.to_str().unwrap()],
        &stream,
        "outside the stream's timestamps",
    );
    std::fs::write(shapes.path("alarms.txt"), "sample_id\n1\n").unwrap();
    let txt = shapes.path("alarms.txt");
    refuse(
        &["--alarms", txt.to_str().unwrap()],
        &stream,
        "neither .parquet nor .csv",
    );
    std::fs::write(shapes.path("none.csv"), "when\n1\n").unwrap();
    let none = shapes.path("none.csv");
    refuse(
        &["--alarms", none.to_str().unwrap()],
        &stream,
        "no column sample_id or timestamp",
    );
    let mine_path = shapes.path("mine.csv");
    refuse(
        &[
            "--alarms",
            mine_path.to_str().unwrap(),
            "--alarms",
            mine_path.to_str().unwrap(),
        ],
        &stream,
        "detector mine comes from two inputs",
    );
    let swapped: Vec<String> = [1, 0].iter().map(|&i| stream[i].clone()).collect();
    refuse(
        &["--alarms", mine_path.to_str().unwrap()],
        &swapped,
        "must be consecutive",
    );
    std::fs::write(
        shapes.path("wide.csv"),
        "first_sample_id,last_sample_id,alarm\n0,9,true\n200,1000,false\n",
    )
    .unwrap();
    let wide = shapes.path("wide.csv");
    refuse(
        &["--windows", wide.to_str().unwrap()],
        &stream,
        "window 200..=1000 is not within the stream",
    );
    refuse(&[], &stream, "nothing to score");
}

/// A row of power.parquet.
#[derive(Debug, Clone, PartialEq)]
struct PowerRecord {
    detector: String,
    transforms: String,
    level: Option<f64>,
    n_windows: i64,
    n_alarms: i64,
    power: f64,
    ci: (f64, f64),
}

fn read_power(folder: &Path) -> Vec<PowerRecord> {
    let schema = [
        ("detector", DataType::Utf8),
        ("transforms", DataType::Utf8),
        ("level", DataType::Float64),
        ("n_windows", DataType::Int64),
        ("n_alarms", DataType::Int64),
        ("power", DataType::Float64),
        ("ci_low", DataType::Float64),
        ("ci_high", DataType::Float64),
    ];
    let mut rows = Vec::new();
    for batch in read_parquet(&folder.join("power.parquet"), &schema) {
        let column = |i: usize| batch.column(i).clone();
        let text = |i: usize| {
            column(i)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let int = |i: usize| {
            column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        let float = |i: usize| {
            column(i)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone()
        };
        let (detector, transforms, level) = (text(0), text(1), float(2));
        let (n, alarms, power, low, high) = (int(3), int(4), float(5), float(6), float(7));
        for i in 0..batch.num_rows() {
            rows.push(PowerRecord {
                detector: detector.value(i).to_owned(),
                transforms: transforms.value(i).to_owned(),
                level: level.is_valid(i).then(|| level.value(i)),
                n_windows: n.value(i),
                n_alarms: alarms.value(i),
                power: power.value(i),
                ci: (low.value(i), high.value(i)),
            });
        }
    }
    rows
}

/// (detector, first, last, alarm, p_value) of every row of a detect report's windows.parquet.
fn detect_windows(folder: &Path) -> Vec<(String, i64, i64, bool, Option<f64>)> {
    let file = std::fs::File::open(folder.join("windows.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader.map(Result::unwrap) {
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        let detector = column("detector");
        let detector = detector.as_any().downcast_ref::<StringArray>().unwrap();
        let first = column("first_sample_id");
        let first = first.as_any().downcast_ref::<Int64Array>().unwrap();
        let last = column("last_sample_id");
        let last = last.as_any().downcast_ref::<Int64Array>().unwrap();
        let alarm = column("alarm");
        let alarm = alarm.as_any().downcast_ref::<BooleanArray>().unwrap();
        let p = column("p_value");
        let p = p.as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..batch.num_rows() {
            rows.push((
                detector.value(i).to_owned(),
                first.value(i),
                last.value(i),
                alarm.value(i),
                p.is_valid(i).then(|| p.value(i)),
            ));
        }
    }
    rows
}

#[test]
fn a_detect_report_is_scored_for_size_and_power() {
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
             [[segment]]\nname = \"softer\"\noutput = {:?}\nsamples = 30\n\
             transforms = [\"gaussian_noise=0.3\"]\n",
            setup.input,
            setup.weights,
            setup.path("ref"),
            setup.path("clean"),
            setup.path("noisy"),
            setup.path("softer"),
        ),
    )
    .unwrap();
    setup.succeeds(&["run", scenario.to_str().unwrap(), "--quiet"]);
    let stream: Vec<String> = ["clean", "noisy", "softer"]
        .iter()
        .map(|s| setup.path(s).to_str().unwrap().to_owned())
        .collect();
    let detections = setup.path("detect");
    let reference = setup.path("ref");
    let mut args = vec![
        "detect",
        "--reference",
        reference.to_str().unwrap(),
        "--output",
        detections.to_str().unwrap(),
        "--window",
        "10",
        "--detector",
        "mmd",
        "--detector",
        "ks",
        "--detector",
        "mmd-online:ert=20,window=5,bootstraps=400",
        "--stream",
    ];
    args.extend(stream.iter().map(String::as_str));
    setup.succeeds(&args);

    let out = setup.path("score");
    let mut args = vec![
        "score",
        "--detections",
        detections.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--max-delay",
        "20",
        "--stream",
    ];
    args.extend(stream.iter().map(String::as_str));
    setup.succeeds(&args);

    // Recount power from the detect report's windows and the drift logs.
    let log: Vec<DriftLogRecord> = ["clean", "noisy", "softer"]
        .iter()
        .flat_map(|s| read_drift_log(&setup.path(s)))
        .collect();
    let windows = detect_windows(&detections);
    let mut expected: BTreeMap<(String, String, u64), (i64, i64)> = BTreeMap::new();
    let mut clean_p: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (detector, first, last, alarm, p) in &windows {
        let samples: Vec<&DriftLogRecord> = log
            .iter()
            .filter(|r| r.sample_id >= *first && r.sample_id <= *last)
            .collect();
        assert_eq!(samples.len(), 10);
        let drifted = samples.iter().filter(|s| s.drifted).count();
        let key = match drifted {
            0 => {
                clean_p.entry(detector.clone()).or_default().extend(*p);
                ("none".to_owned(), 0f64.to_bits())
            }
            10 => {
                let level: f64 = samples
                    .iter()
                    .map(|s| s.level("gaussian_noise").unwrap())
                    .sum::<f64>()
                    / 10.0;
                (
                    "gaussian_noise".to_owned(),
                    ((level * 1e6).round() / 1e6).to_bits(),
                )
            }
            _ => continue,
        };
        let entry = expected
            .entry((detector.clone(), key.0, key.1))
            .or_default();
        entry.0 += 1;
        entry.1 += i64::from(*alarm);
    }
    let power = read_power(&out);
    let found: BTreeMap<(String, String, u64), (i64, i64)> = power
        .iter()
        .map(|r| {
            (
                (
                    r.detector.clone(),
                    r.transforms.clone(),
                    r.level.unwrap().to_bits(),
                ),
                (r.n_windows, r.n_alarms),
            )
        })
        .collect();
    assert_eq!(found, expected);
    // Levels 0 (clean), 0.3 and 0.8 for each detector; 4 clean windows, 4 at 0.8, 3 at 0.3.
    assert_eq!(power.len(), 6);
    for row in &power {
        assert_eq!(row.power, row.n_alarms as f64 / row.n_windows as f64);
        assert!(row.ci.0 <= row.power && row.power <= row.ci.1);
        if row.n_alarms == 0 {
            assert_eq!(row.ci.0, 0.0);
            // Clopper-Pearson with no success: 1 - (alpha/2)^(1/n).
            let n = row.n_windows as f64;
            assert!((row.ci.1 - (1.0 - 0.025f64.powf(1.0 / n))).abs() < 1e-12);
        }
        if row.n_alarms == row.n_windows {
            assert_eq!(row.ci.1, 1.0);
            let n = row.n_windows as f64;
            assert!((row.ci.0 - 0.025f64.powf(1.0 / n)).abs() < 1e-12);
        }
    }
    let summary = read_summary(&out);
    assert_eq!(
        summary.keys().cloned().collect::<Vec<_>>(),
        [
            "always",
            "ks",
            "mmd",
            "mmd-online:ert=20,window=5,bootstraps=400",
            "periodic:100"
        ]
    );
    // The online detector is scored on its alarms (one per step that crossed its threshold);
    // it has no windows, so no power rows.
    let online = "mmd-online:ert=20,window=5,bootstraps=400";
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(detections.join("detect.json")).unwrap())
            .unwrap();
    assert_eq!(
        number(&summary, online, "n_alarms"),
        record["detectors"][2]["alarms"].as_f64().unwrap()
    );
    assert_eq!(number(&summary, online, "windows"), 0.0);
    assert_eq!(number(&summary, online, "episodes"), 2.0);
    assert!(power.iter().all(|r| r.detector != online));
    for detector in ["mmd", "ks"] {
        assert_eq!(summary[detector]["source"], "detect");
        assert_eq!(number(&summary, detector, "windows"), 11.0);
        assert_eq!(number(&summary, detector, "h0_windows"), 4.0);
        assert_eq!(number(&summary, detector, "h1_windows"), 7.0);
        let clean = &expected[&(detector.to_owned(), "none".to_owned(), 0f64.to_bits())];
        assert_eq!(number(&summary, detector, "fpr"), clean.1 as f64 / 4.0);
        let p = &clean_p[detector];
        let share = p.iter().filter(|&&p| p <= 0.05).count() as f64 / p.len() as f64;
        assert_eq!(number(&summary, detector, "p_le_0_05"), share);
        // Two episodes: noisy's onset at 80 and softer's at 120 (other level).
        assert_eq!(number(&summary, detector, "episodes"), 2.0);
    }
    // The calibration plot of the clean windows' p-values decodes, and names each detector.
    // The delay plots decode; the delay plot names each detector that detected an episode
    // with a level, the trade-off plot every detector.
    for name in ["delay_by_level.png", "delay_vs_far.png"] {
        let png = image::open(out.join(name)).unwrap();
        assert_eq!((png.width(), png.height()), (1100, 650), "{name}");
    }
    let svg = std::fs::read_to_string(out.join("delay_vs_far.svg")).unwrap();
    for detector in summary.keys() {
        assert!(svg.contains(detector.as_str()), "{detector}");
    }
    let svg = std::fs::read_to_string(out.join("delay_by_level.svg")).unwrap();
    assert!(svg.contains("gaussian_noise") && svg.contains("max delay = 20"));
    let png = image::open(out.join("pvalue_calibration.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1100, 650));
    let svg = std::fs::read_to_string(out.join("pvalue_calibration.svg")).unwrap();
    assert!(svg.contains("mmd (4 windows)") && svg.contains("ks (4 windows)"));
    // always: an alarm at every window's end, 11 of them; both episodes caught at delay 9.
    assert_eq!(number(&summary, "always", "n_alarms"), 11.0);
    assert_eq!(number(&summary, "always", "detected"), 2.0);
    assert_eq!(number(&summary, "always", "mdt"), 9.0);

    // A report on another stream is refused.
    let refused = setup.path("refused");
    let mut args = vec![
        "score",
        "--detections",
        detections.to_str().unwrap(),
        "--output",
        refused.to_str().unwrap(),
        "--stream",
    ];
    args.extend(stream[..2].iter().map(String::as_str));
    setup.fails(&args, "was run on another stream");
    assert!(!refused.join("score.json").exists());

    // The same windows given as a user's Parquet file (the detect report's own) score the same.
    let again = setup.path("again");
    let windows_file = detections.join("windows.parquet");
    let mut args = vec![
        "score",
        "--windows",
        windows_file.to_str().unwrap(),
        "--output",
        again.to_str().unwrap(),
        "--window",
        "10",
        "--stream",
    ];
    args.extend(stream.iter().map(String::as_str));
    setup.succeeds(&args);
    assert_eq!(
        std::fs::read(again.join("power.parquet")).unwrap(),
        std::fs::read(out.join("power.parquet")).unwrap()
    );
}
