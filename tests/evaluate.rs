//! `evaluate` on real files: the report's tables and plots read back, KL equal to what the
//! embeddings of two `generate` runs give, determinism across threads, `default`'s KL rising
//! with the level on both of its sides, and bad input refused before anything is written.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use drift_measure::{LevelSummary, batch_kl};

const SIZE: &str = "48";
const BATCH: usize = 8;
const IMAGES: usize = 32;

type Setup = WeightsSetup;

fn setup() -> Setup {
    WeightsSetup::new(10, 5, 18)
}

impl WeightsSetup {
    /// `evaluate` of IMAGES images in batches of BATCH at SIZE px, plus `extra`.
    fn evaluate(&self, name: &str, extra: &[&str]) -> (PathBuf, String) {
        let (output, args) = self.evaluate_args(name, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stdout = self.succeeds(&args);
        (output, stdout)
    }

    /// The report folder and arguments of [`WeightsSetup::evaluate`].
    fn evaluate_args(&self, name: &str, extra: &[&str]) -> (PathBuf, Vec<String>) {
        let output = self.path(name);
        let images = IMAGES.to_string();
        let batch = BATCH.to_string();
        let args = [
            &[
                "evaluate",
                "--input",
                self.input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--weights",
                self.weights.to_str().unwrap(),
                "--size",
                SIZE,
                "--batch-size",
                &batch,
                "--num-samples",
                &images,
                "--seed",
                "11",
                "--quiet",
            ],
            extra,
        ]
        .concat()
        .into_iter()
        .map(str::to_owned)
        .collect();
        (output, args)
    }
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (info.width, info.height)
}

#[test]
fn sweep_writes_a_complete_report_and_default_rises_on_both_sides() {
    let setup = setup();
    let (report, stdout) = setup.evaluate("report", &["--transform", "default"]);
    let mut files = listing(&report);
    files.sort();
    assert_eq!(
        files,
        [
            "evaluation.json",
            "kl.parquet",
            "kl_by_batch.png",
            "kl_by_batch.svg",
            "kl_by_level.png",
            "kl_by_level.svg",
            "summary.csv"
        ]
    );

    // kl.parquet: one row per level and batch, by level then batch.
    let rows = read_kl(&report);
    let batches = IMAGES / BATCH;
    assert_eq!(rows.len(), 10 * batches);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.transforms, "default");
        assert_eq!(row.drift_level, ((i / batches) + 1) as f64 / 10.0);
        assert_eq!(row.batch, (i % batches) as i64);
        assert_eq!(row.images, BATCH as i64);
        assert!(row.kl.is_finite() && row.kl >= 0.0, "{row:?}");
    }

    // summary.csv agrees with the table, and the printed table lists every level.
    let csv = std::fs::read_to_string(report.join("summary.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "drift_level,batches,median,p25,p75,mean,sd");
    assert_eq!(lines.len(), 11);
    let mut medians = Vec::new();
    for (level_index, line) in lines[1..].iter().enumerate() {
        let level_rows = &rows[level_index * batches..(level_index + 1) * batches];
        let kls: Vec<f64> = level_rows.iter().map(|r| r.kl).collect();
        let expected = LevelSummary::new(level_rows[0].drift_level, &kls).unwrap();
        let fields: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
        assert_eq!(fields[0], expected.drift_level);
        assert_eq!(fields[1], batches as f64);
        assert_eq!(
            &fields[2..6],
            &[expected.median, expected.p25, expected.p75, expected.mean]
        );
        assert_eq!(fields[6], expected.sd.unwrap());
        medians.push(expected.median);
        assert!(
            stdout.contains(&format!("{:?}", expected.drift_level)),
            "{stdout}"
        );
    }
    // default blurs up to 0.5 and adds noise above: KL rises with the level on each side.
    for side in [&medians[..5], &medians[5..]] {
        assert!(
            side.windows(2).all(|pair| pair[0] <= pair[1]),
            "medians not rising: {medians:?}"
        );
    }
    assert!(
        medians[0] < medians[4] && medians[5] < medians[9],
        "{medians:?}"
    );

    // The plots: decodable PNGs of the documented size and well-formed SVGs with their titles.
    for stem in ["kl_by_batch", "kl_by_level"] {
        assert_eq!(
            png_size(&report.join(format!("{stem}.png"))),
            drift_measure::PLOT_SIZE
        );
        let svg = std::fs::read_to_string(report.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("KL divergence") && svg.contains("default"));
        assert!(
            svg.contains("(not the reference), normalize none"),
            "the title names the weights and the normalization"
        );
    }

    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("evaluation.json")).unwrap())
            .unwrap();
    assert_eq!(record["transforms"], serde_json::json!(["default"]));
    assert_eq!(record["images"], IMAGES);
    assert_eq!(record["batch_size"], BATCH);
    assert_eq!(record["seed"], 11);
    assert_eq!(record["embeddings"]["reference_weights"], false);

    // Same seed and settings on one thread: byte-identical report.
    let (again, _) = setup.evaluate("again", &["--transform", "default", "--threads", "1"]);
    assert_eq!(bytes_of(&report), bytes_of(&again));

    if let Some(python) = check_python() {
        let batches = batches.to_string();
        run_python_script(
            &python,
            "check_report.py",
            &report,
            &["--levels", "10", "--batches", &batches],
        );
    }
}

#[test]
fn kl_equals_the_kl_of_generated_embeddings() {
    // Image i of evaluate's order is sample i of `generate` with the same seed: the KL of the
    // clean and drifted runs' embeddings.parquet must be exactly evaluate's. With an ImageNet-C
    // corruption that draws a field (its noise streams are evaluate's too), by its full name.
    let setup = setup();
    let (report, _) = setup.evaluate(
        "report",
        &[
            "--transform",
            "rotate",
            "--transform",
            "imagenet_c:glass_blur",
            "--levels",
            "0.7,0",
        ],
    );
    let rows = read_kl(&report);
    assert_eq!(rows.len(), 2 * IMAGES / BATCH);
    assert!(
        rows.iter()
            .all(|r| r.transforms == "rotate+imagenet_c:glass_blur")
    );
    let (zero, seven) = rows.split_at(IMAGES / BATCH);
    assert!(
        zero.iter().all(|r| r.drift_level == 0.0 && r.kl == 0.0),
        "{zero:?}"
    );

    let generate = |name: &str, extra: &[&str]| {
        let output = setup.path(name);
        let images = IMAGES.to_string();
        let args = [
            &[
                "generate",
                "--input",
                setup.input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--num-samples",
                &images,
                "--seed",
                "11",
                "--size",
                SIZE,
                "--embeddings",
                "--weights",
                setup.weights.to_str().unwrap(),
                "--quiet",
            ],
            extra,
        ]
        .concat();
        setup.succeeds(&args);
        read_embeddings(&output)
            .into_iter()
            .map(|(_, _, e)| e.iter().map(|&v| v as f32).collect::<Vec<f32>>())
            .collect::<Vec<_>>()
    };
    let clean = generate("clean", &[]);
    let drifted = generate(
        "drifted",
        // The bare name works too, where SPEC's transforms leave it free.
        &["--transform", "rotate=0.7", "--transform", "glass_blur=0.7"],
    );
    for (batch, row) in seven.iter().enumerate() {
        let range = batch * BATCH..(batch + 1) * BATCH;
        let expected = batch_kl(&drifted[range.clone()], &clean[range]).unwrap();
        assert_eq!(row.drift_level, 0.7);
        assert_eq!(row.kl, expected, "batch {batch}");
        assert!(row.kl > 0.0);
    }
}

#[test]
fn bad_sweeps_are_refused_before_anything_is_written() {
    let setup = setup();
    let output = setup.path("report");
    let out = output.to_str().unwrap();
    let input = setup.input.to_str().unwrap();
    let weights = setup.weights.to_str().unwrap();
    let base = [
        "evaluate",
        "--input",
        input,
        "--output",
        out,
        "--weights",
        weights,
    ];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }

    setup.fails(&with(&base, &["--transform", "blurr"]), "gaussian_blur");
    setup.fails(&with(&base, &[]), "--transform");
    setup.fails(
        &with(&base, &["--transform", "rotate", "--levels", "0.2,1.5"]),
        "outside [0, 1]",
    );
    setup.fails(
        &with(&base, &["--transform", "rotate", "--levels", "0.2,x"]),
        "'x' is not a finite number",
    );
    setup.fails(
        &with(&base, &["--transform", "rotate", "--levels", "0.2,0.2"]),
        "0.2 is given twice",
    );
    setup.fails(
        &with(&base, &["--transform", "rotate", "--num-samples", "41"]),
        "41",
    );
    setup.fails(
        &[
            "evaluate",
            "--input",
            input,
            "--output",
            out,
            "--transform",
            "rotate",
        ],
        "weights fetch",
    );
    assert!(
        !output.exists() || listing(&output).is_empty(),
        "nothing written"
    );

    // An existing report is kept unless --overwrite, and named in the error.
    let (report, _) = setup.evaluate("report", &["--transform", "rotate", "--levels", "0.5"]);
    let before = bytes_of(&report);
    setup.fails(
        &with(&base, &["--transform", "rotate", "--levels", "0.5"]),
        "kl.parquet already exists",
    );
    assert_eq!(bytes_of(&report), before);
}

#[test]
fn an_overwrite_killed_before_its_commit_keeps_the_old_report() {
    let setup = setup();
    let (report, _) = setup.evaluate("report", &["--transform", "rotate", "--levels", "0.5"]);
    let before = bytes_of(&report);
    let (_, args) = setup.evaluate_args(
        "report",
        &["--transform", "hue", "--levels", "0.9", "--overwrite"],
    );
    let died = std::process::Command::new(env!("CARGO_BIN_EXE_drift-pipeline"))
        .args(&args)
        .env("DRIFT_PIPELINE_CACHE", &setup.cache)
        .env(drift_pipeline::ABORT_AT_ENV, "staged")
        .output()
        .unwrap();
    assert!(died.status.code().is_none(), "aborted");
    let staging = report.join(".drift-pipeline.staging");
    assert!(staging.is_dir(), "the dead run's files are aside");
    let now: Vec<_> = listing(&report)
        .into_iter()
        .filter(|name| name != ".drift-pipeline.staging")
        .map(|name| (name.clone(), std::fs::read(report.join(&name)).unwrap()))
        .collect();
    assert_eq!(now, before, "the old report, whole");
    // The next run into the folder removes them and says so.
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = setup.run(&args);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did not finish"), "{stderr}");
    assert!(!staging.exists());
    assert_ne!(bytes_of(&report), before, "the new report");
}

/// The median KL of each level of a report, from its kl.parquet (read with the parquet crate).
fn medians(report: &Path) -> Vec<(f64, f64)> {
    let rows = read_kl(report);
    let mut levels: Vec<f64> = rows.iter().map(|r| r.drift_level).collect();
    levels.dedup();
    levels
        .iter()
        .map(|&level| {
            let kls: Vec<f64> = rows
                .iter()
                .filter(|r| r.drift_level == level)
                .map(|r| r.kl)
                .collect();
            (level, LevelSummary::new(level, &kls).unwrap().median)
        })
        .collect()
}

#[test]
fn target_kl_finds_the_level_whose_median_reaches_it() {
    let setup = setup();
    // The target: the median KL of gaussian_blur at level 0.53, from a plain sweep.
    let (plain, _) = setup.evaluate(
        "plain",
        &["--transform", "gaussian_blur", "--levels", "0.53"],
    );
    let target = medians(&plain)[0].1;
    assert!(target > 0.0);
    let (report, stdout) = setup.evaluate(
        "search",
        &[
            "--transform",
            "gaussian_blur",
            "--levels",
            "0.25,0.5,0.75,1",
            "--target-kl",
            &format!("{target:?}"),
            "--target-tolerance",
            "0.02",
        ],
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("evaluation.json")).unwrap())
            .unwrap();
    let found = &record["target_kl"];
    let (level, below) = (
        found["level"].as_f64().unwrap(),
        found["below"].as_f64().unwrap(),
    );
    assert!(
        stdout.contains(&format!("level {level} reaches a median KL of")),
        "{stdout}"
    );
    assert!(level - below <= 0.02 + 1e-12 && below < level, "{found}");
    // Every level measured is in the report; the answer and the bracket's lower end among
    // them, with the medians the record states, on either side of the target.
    let measured = medians(&report);
    assert!(measured.len() > 4, "{measured:?}");
    let median_at = |l: f64| measured.iter().find(|m| m.0 == l).unwrap().1;
    assert_eq!(median_at(level), found["median"].as_f64().unwrap());
    assert!(median_at(level) >= target);
    assert!(median_at(below) < target);
    assert_eq!(median_at(below), found["below_median"].as_f64().unwrap());
    // The record's levels list them all, ascending.
    let levels: Vec<f64> = record["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_f64().unwrap())
        .collect();
    assert_eq!(levels, measured.iter().map(|m| m.0).collect::<Vec<_>>());
    // Verified by a sweep of its own at the answer: the same median.
    let (check, _) = setup.evaluate(
        "check",
        &[
            "--transform",
            "gaussian_blur",
            "--levels",
            &format!("{level}"),
        ],
    );
    assert_eq!(medians(&check)[0].1, median_at(level));

    // A target no level reaches, and settings that cannot search, are refused.
    let (_, args) = setup.evaluate_args(
        "unreached",
        &["--transform", "gaussian_blur", "--target-kl", "1e9"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    setup.fails(&args, "no measured level reaches a median KL of 1000000000");
    assert!(!setup.path("unreached").join("evaluation.json").exists());
    let (_, args) = setup.evaluate_args(
        "zero",
        &["--transform", "gaussian_blur", "--target-kl", "0"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    setup.fails(&args, "is not a positive KL");
}
