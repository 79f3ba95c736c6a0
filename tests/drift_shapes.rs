//! Drift over time on real files: gradual, incremental and recurring segments of one scenario,
//! `drift_log.parquet` read back and checked against the shapes' definitions and against the
//! images themselves, determinism across threads, and the `--drift` shorthand of `generate`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

/// A scenario over a demo dataset at 24x24: a clean reference, then gradual, incremental and
/// recurring drift. `transforms` false writes the same segments clean.
fn scenario(dir: &Path, input: &Path, name: &str, transforms: bool) -> PathBuf {
    let list = |t: &str| {
        if transforms {
            t.to_owned()
        } else {
            "[]".to_owned()
        }
    };
    let shape = |s: &str| {
        if transforms {
            format!("drift = \"{s}\"")
        } else {
            String::new()
        }
    };
    let text = format!(
        r#"
input = "{input}"
seed = 9
size = "24"
overwrite = true

[[segment]]
name = "reference"
samples = 30
output = "{name}/reference"

[[segment]]
name = "gradual"
samples = 200
output = "{name}/gradual"
transforms = {gradual}
{gradual_shape}

[[segment]]
name = "incremental"
samples = 21
output = "{name}/incremental"
transforms = {incremental}
{incremental_shape}

[[segment]]
name = "recurring"
samples = 40
output = "{name}/recurring"
transforms = {recurring}
{recurring_shape}
"#,
        input = input.display(),
        gradual = list(r#"["gaussian_noise=0.8"]"#),
        gradual_shape = shape("gradual:width=120"),
        incremental = list(r#"["rotate=0.8", "brightness=0.5"]"#),
        incremental_shape = shape("incremental:from=0.25,to=1"),
        recurring = list(r#"["hue=0.6"]"#),
        recurring_shape = shape("recurring:period=8,duty=0.25"),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Zip entries of one output by file name.
fn images(folder: &Path) -> BTreeMap<String, Vec<u8>> {
    read_zip(folder)
}

#[test]
fn shapes_follow_their_definitions_and_the_log_matches_the_images() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 80, 4, (32, 64)).unwrap();
    let drifted = scenario(scratch.path(), &input, "drifted", true);
    let clean = scenario(scratch.path(), &input, "clean", false);
    succeeds(&["run", drifted.to_str().unwrap(), "--quiet"]);
    succeeds(&["run", clean.to_str().unwrap(), "--quiet"]);
    let out = |run: &str, segment: &str| scratch.path().join(run).join(segment);

    // Reference: nothing drifted, every parameter null, the segment named.
    let reference = read_drift_log(&out("drifted", "reference"));
    assert_eq!(reference.len(), 30);
    for row in &reference {
        assert_eq!(
            (row.segment.as_str(), row.drifted, row.probability),
            ("reference", false, 0.0)
        );
        assert!(row.levels.is_empty() && row.parameters.is_empty());
    }

    // Gradual: p(k) is MOA's sigmoid across the window [40, 160), rescaled to 0..1, and the
    // drifted fraction per window of 20 follows it within binomial tolerance.
    let gradual = read_drift_log(&out("drifted", "gradual"));
    assert_eq!(gradual.len(), 200);
    assert_eq!(gradual[0].sample_id, 30, "ids continue across segments");
    let sigmoid = |x: f64| 1.0 / (1.0 + (-4.0 * (x - 0.5)).exp());
    for (k, row) in gradual.iter().enumerate() {
        let x = ((k as f64 - (99.5 - 60.0)) / 120.0).clamp(0.0, 1.0);
        let p = (sigmoid(x) - sigmoid(0.0)) / (sigmoid(1.0) - sigmoid(0.0));
        assert!(
            (row.probability - p).abs() < 1e-12,
            "k {k}: {} vs {p}",
            row.probability
        );
        assert_eq!(row.level("gaussian_noise").is_some(), row.drifted);
        if row.drifted {
            assert_eq!(row.level("gaussian_noise"), Some(0.8));
            assert!(row.parameter("gaussian_noise.sigma").unwrap() > 0.0);
        }
    }
    assert!(
        gradual[..40].iter().all(|r| !r.drifted),
        "clean before the window"
    );
    assert!(gradual[160..].iter().all(|r| r.drifted), "drifted after it");
    for window in gradual.chunks(20) {
        let n = window.len() as f64;
        let expected: f64 = window.iter().map(|r| r.probability).sum::<f64>() / n;
        let observed = window.iter().filter(|r| r.drifted).count() as f64 / n;
        let tolerance = 3.0 * (expected * (1.0 - expected) / n).sqrt() + 1e-9;
        assert!(
            (observed - expected).abs() <= tolerance,
            "window at {}: {observed} drifted, expected {expected}",
            window[0].sample_id
        );
    }
    let inside = gradual[40..160].iter().filter(|r| r.drifted).count();
    assert!(
        (30..=90).contains(&inside),
        "{inside} of 120 drifted in the window"
    );

    // Incremental: every sample drifted, levels scaled linearly from 0.25 to 1 of the list's.
    let incremental = read_drift_log(&out("drifted", "incremental"));
    assert!(
        incremental
            .iter()
            .all(|r| r.drifted && r.probability == 1.0)
    );
    let rotate: Vec<f64> = incremental
        .iter()
        .map(|r| r.level("rotate").unwrap())
        .collect();
    assert!((rotate[0] - 0.8 * 0.25).abs() < 1e-12 && (rotate[20] - 0.8).abs() < 1e-12);
    assert!((rotate[10] - 0.8 * 0.625).abs() < 1e-12);
    assert!(rotate.windows(2).all(|w| w[0] < w[1]), "{rotate:?}");
    let brightness_last = incremental[20].level("brightness").unwrap();
    assert!((brightness_last - 0.5).abs() < 1e-12);
    for row in &incremental {
        let angle = row.parameter("rotate.angle").unwrap();
        assert!(angle.abs() <= 90.0 * row.level("rotate").unwrap() + 1e-9);
    }

    // Recurring: on for the first 2 of every 8 samples, exactly.
    let recurring = read_drift_log(&out("drifted", "recurring"));
    for (k, row) in recurring.iter().enumerate() {
        assert_eq!(row.drifted, k % 8 < 2, "k {k}");
        assert_eq!(row.probability, if k % 8 < 2 { 1.0 } else { 0.0 });
    }

    // The log agrees with the images: a sample logged as clean is the clean run's PNG, byte
    // for byte; a drifted one differs.
    for segment in ["reference", "gradual", "incremental", "recurring"] {
        let log = read_drift_log(&out("drifted", segment));
        let names = read_input_mapping(&out("drifted", segment));
        let drifted_images = images(&out("drifted", segment));
        let clean_images = images(&out("clean", segment));
        assert_eq!(
            read_input_mapping(&out("clean", segment)),
            names,
            "same ids and names"
        );
        for (row, (_, _, name)) in log.iter().zip(&names) {
            let same = drifted_images[name] == clean_images[name];
            assert_eq!(same, !row.drifted, "{segment} sample {}", row.sample_id);
        }
        assert!(
            read_drift_log(&out("clean", segment))
                .iter()
                .all(|r| !r.drifted)
        );
    }

    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out("drifted", "gradual").join("drift.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["drift"], "gradual:width=120");
    assert_eq!(record["segment"], "gradual");

    // Same scenario on one thread: every file of every segment byte-identical.
    let again_path = scenario(scratch.path(), &input, "again", true);
    succeeds(&[
        "run",
        again_path.to_str().unwrap(),
        "--quiet",
        "--threads",
        "1",
    ]);
    for segment in ["reference", "gradual", "incremental", "recurring"] {
        assert_eq!(
            bytes_of(&out("drifted", segment)),
            bytes_of(&out("again", segment)),
            "{segment}"
        );
    }
}

#[test]
fn generate_takes_a_drift_shape() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 5, 4, (32, 48)).unwrap();
    let output = scratch.path().join("out");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let base = [
        "generate",
        "--input",
        i,
        "--output",
        o,
        "--num-samples",
        "12",
        "--size",
        "16",
    ];
    let stdout = succeeds(
        &[
            &base[..],
            &[
                "--transform",
                "rotate=0.5",
                "--drift",
                "recurring:period=4,duty=0.5",
            ],
        ]
        .concat(),
    );
    assert!(stdout.contains("recurring:period=4,duty=0.5"), "{stdout}");
    let log = read_drift_log(&output);
    let pattern: Vec<bool> = log.iter().map(|r| r.drifted).collect();
    assert_eq!(pattern, (0..12).map(|k| k % 4 < 2).collect::<Vec<_>>());
    assert!(
        log.iter().all(|r| r.segment == "segment 1"),
        "the default name"
    );

    // Plain generate logs every sample as drifted (abrupt) or clean.
    succeeds(
        &[
            &base[..],
            &[
                "--overwrite",
                "--transform",
                "hue=0.2",
                "--segment",
                "production",
            ],
        ]
        .concat(),
    );
    let log = read_drift_log(&output);
    assert!(
        log.iter()
            .all(|r| r.drifted && r.probability == 1.0 && r.segment == "production")
    );
    succeeds(&[&base[..], &["--overwrite"]].concat());
    assert!(read_drift_log(&output).iter().all(|r| !r.drifted));

    for (extra, needle) in [
        (&["--drift", "gradual:width=4"][..], "needs --transform"),
        (
            &["--transform", "hue=0.2", "--drift", "gradual"][..],
            "width is required",
        ),
        (
            &["--transform", "hue=0.2", "--drift", "wavy"][..],
            "unknown drift shape 'wavy'",
        ),
        (
            &["--transform", "hue=0.2", "--transform", "hue=0.4"][..],
            "hue appears twice",
        ),
    ] {
        let args = [&base[..], &["--overwrite"], extra].concat();
        assert_fails_cleanly(&args, &drift_pipeline(&args), needle);
    }
}

#[test]
fn scenario_shapes_are_validated_before_anything_is_written() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 3, 4, (32, 48)).unwrap();
    for (segment, needle) in [
        (
            "transforms = [\"hue=0.2\"]\ndrift = \"gradual:width=0\"",
            "segment 2 (late), key 'drift': gradual: width must be at least 1",
        ),
        (
            "drift = \"recurring:period=4,duty=0.5\"",
            "key 'drift': recurring:period=4,duty=0.5 needs key 'transforms'",
        ),
        (
            "transforms = [\"hue=0.2\", \"hue=0.3\"]",
            "key 'transforms': transform hue appears twice",
        ),
    ] {
        let path = scratch.path().join("s.toml");
        std::fs::write(
            &path,
            format!(
                "input = \"{}\"\n[[segment]]\nsamples = 2\noutput = \"a\"\n\
                 [[segment]]\nname = \"late\"\nsamples = 2\noutput = \"b\"\n{segment}\n",
                input.display()
            ),
        )
        .unwrap();
        let args = ["run", path.to_str().unwrap()];
        assert_fails_cleanly(&args, &drift_pipeline(&args), needle);
        assert!(!scratch.path().join("a").exists(), "nothing written");
    }
}

#[test]
fn the_documented_drift_over_time_scenario_runs() {
    let scratch = tempfile::tempdir().unwrap();
    drift_pipeline_cli::demo::write_dataset_sized(
        &scratch.path().join("out/dataset"),
        100,
        7,
        (32, 48),
    )
    .unwrap();
    let docs = scratch.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/drift-over-time.toml");
    std::fs::copy(example, docs.join("drift-over-time.toml")).unwrap();
    succeeds(&[
        "run",
        docs.join("drift-over-time.toml").to_str().unwrap(),
        "--quiet",
    ]);
    let mut next_id = 0;
    for (segment, shape) in [
        ("reference", "none"),
        ("gradual", "gradual:width=40"),
        ("incremental", "incremental:from=0.2,to=1"),
        ("recurring", "recurring:period=10,duty=0.3"),
        ("label-shift", "none"),
    ] {
        let folder = scratch.path().join("out/over-time").join(segment);
        let log = read_drift_log(&folder);
        assert!(log.iter().all(|r| r.segment == segment.replace('-', " ")));
        assert_eq!(log[0].sample_id, next_id, "{segment} continues the stream");
        next_id += log.len() as i64;
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("drift.json")).unwrap())
                .unwrap();
        assert_eq!(record["drift"], shape);
    }
    assert_eq!(next_id, 220);
    let shifted = read_target(&scratch.path().join("out/over-time/label-shift"));
    assert!(
        shifted.iter().all(|(_, _, label)| *label >= 2),
        "sky and sunset only"
    );
}

#[test]
fn a_segment_class_mapping_changes_labels_from_then_on() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 6, 4, (32, 48)).unwrap();
    // demo classes, by label: city_night, forest, sky, sunset.
    std::fs::write(
        scratch.path().join("swap.toml"),
        "city_night = 1\nforest = 0\n",
    )
    .unwrap();
    let path = scratch.path().join("concept.toml");
    std::fs::write(
        &path,
        format!(
            "input = \"{}\"\nsize = \"16\"\norganize_by_class = true\n\
             [[segment]]\nname = \"before\"\nsamples = 8\noutput = \"before\"\n\
             [[segment]]\nname = \"change\"\nsamples = 8\noutput = \"change\"\nclass_mapping = \"swap.toml\"\n\
             [[segment]]\nname = \"after\"\nsamples = 8\noutput = \"after\"\n",
            input.display()
        ),
    )
    .unwrap();
    succeeds(&["run", path.to_str().unwrap(), "--quiet"]);
    let classes = ["city_night", "forest", "sky", "sunset"];
    for (segment, swapped) in [("before", false), ("change", true), ("after", true)] {
        let folder = scratch.path().join(segment);
        let names = read_input_mapping(&folder);
        let labels = read_target(&folder);
        let zip = read_zip(&folder);
        for ((_, _, name), (_, _, label)) in names.iter().zip(&labels) {
            let entry = zip.keys().find(|k| k.ends_with(name.as_str())).unwrap();
            let class = classes
                .iter()
                .position(|c| entry.starts_with(&format!("{c}/")))
                .unwrap();
            let expected = match (swapped, class) {
                (true, 0) => 1,
                (true, 1) => 0,
                (_, c) => c as i64,
            };
            assert_eq!(*label, expected, "{segment}: {entry}");
        }
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("drift.json")).unwrap())
                .unwrap();
        assert_eq!(record["labels"]["forest"], if swapped { 0 } else { 1 });
    }

    // A mapping naming no class of the dataset is refused before anything is written.
    std::fs::write(scratch.path().join("bad.toml"), "cats = 1\n").unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("swap.toml", "bad.toml");
    std::fs::write(&path, text.replace("output = \"", "output = \"bad-")).unwrap();
    let args = ["run", path.to_str().unwrap()];
    assert_fails_cleanly(
        &args,
        &drift_pipeline(&args),
        "segment 2 (change), key 'class_mapping'",
    );
    assert!(!scratch.path().join("bad-before").exists());
}

#[test]
fn label_shift_draws_classes_in_proportion_without_repeating_images() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    // 4 classes x 80 images: city_night, forest, sky, sunset.
    drift_pipeline_cli::demo::write_dataset_sized(&input, 80, 4, (24, 40)).unwrap();
    let write = |name: &str, body: &str| {
        let path = scratch.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "input = \"{}\"\nsize = \"16\"\noverwrite = true\n{body}",
                input.display()
            ),
        )
        .unwrap();
        path
    };
    let body = |prefix: &str| {
        format!(
            "[[segment]]\nname = \"reference\"\nsamples = 40\noutput = \"{prefix}/reference\"\n\
             [[segment]]\nname = \"shifted\"\nsamples = 60\noutput = \"{prefix}/shifted\"\n\
             class_weights = {{ city_night = 3, forest = 1 }}\n\
             [[segment]]\nname = \"dirichlet\"\nsamples = 30\noutput = \"{prefix}/dirichlet\"\n\
             class_dirichlet = 0.3\n"
        )
    };
    let path = write("shift", &body("a"));
    succeeds(&["run", path.to_str().unwrap(), "--quiet"]);
    let out = |p: &str, s: &str| scratch.path().join(p).join(s);

    let shifted = read_target(&out("a", "shifted"));
    assert!(
        shifted.iter().all(|(_, _, label)| *label < 2),
        "only the weighted classes"
    );
    let city = shifted.iter().filter(|(_, _, label)| *label == 0).count() as f64 / 60.0;
    assert!(
        (city - 0.75).abs() <= 3.0 * (0.75f64 * 0.25 / 60.0).sqrt(),
        "{city}"
    );

    // No image twice across the stream while images remain.
    let mut pngs = std::collections::BTreeSet::new();
    for segment in ["reference", "shifted", "dirichlet"] {
        for png in read_zip(&out("a", segment)).into_values() {
            assert!(pngs.insert(png), "an image was sampled twice");
        }
    }
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out("a", "dirichlet").join("drift.json")).unwrap(),
    )
    .unwrap();
    let priors = record["class_priors"]["priors"].as_object().unwrap();
    let sum: f64 = priors.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-12 && priors.len() == 4, "{priors:?}");
    let shifted_record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out("a", "shifted").join("drift.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(shifted_record["class_priors"]["priors"]["city_night"], 0.75);

    // Byte-identical on one thread.
    let again = write("again", &body("b"));
    succeeds(&["run", again.to_str().unwrap(), "--quiet", "--threads", "1"]);
    for segment in ["reference", "shifted", "dirichlet"] {
        assert_eq!(
            bytes_of(&out("a", segment)),
            bytes_of(&out("b", segment)),
            "{segment}"
        );
    }

    // A class that runs out is refused before anything is written, naming class and segment...
    let too_many = write(
        "out-of-sky",
        "[[segment]]\nsamples = 5\noutput = \"c/first\"\n\
         [[segment]]\nname = \"sky only\"\nsamples = 90\noutput = \"c/sky\"\n\
         class_weights = { sky = 1 }\n",
    );
    let args = ["run", too_many.to_str().unwrap()];
    let stderr = assert_fails_cleanly(&args, &drift_pipeline(&args), "segment 2 (sky only)");
    assert!(stderr.contains("class sky ran out"), "{stderr}");
    assert!(!scratch.path().join("c").exists(), "nothing written");
    // ...and with replacement, sky images are reused only once all 80 are used.
    let reuse = write(
        "reuse",
        "[[segment]]\nname = \"sky only\"\nsamples = 90\noutput = \"d/sky\"\n\
         class_weights = { sky = 1 }\nwith_replacement = true\n",
    );
    succeeds(&["run", reuse.to_str().unwrap(), "--quiet"]);
    let labels = read_target(&out("d", "sky"));
    assert!(labels.iter().all(|(_, _, label)| *label == 2));
    let zip = read_zip(&out("d", "sky"));
    let names = read_input_mapping(&out("d", "sky"));
    let first_80: std::collections::BTreeSet<&Vec<u8>> =
        names[..80].iter().map(|(_, _, n)| &zip[n]).collect();
    assert_eq!(first_80.len(), 80, "all 80 sky images before any repeat");
    let all: std::collections::BTreeSet<&Vec<u8>> = zip.values().collect();
    assert_eq!(all.len(), 80, "then repeats");

    for (body, needle) in [
        (
            "[[segment]]\nsamples = 2\noutput = \"e\"\nclass_weights = { cats = 1 }\n",
            "'cats' is not a class",
        ),
        (
            "[[segment]]\nsamples = 2\noutput = \"e\"\nclass_dirichlet = 0.0\n",
            "concentration must be above 0",
        ),
        (
            "[[segment]]\nsamples = 2\noutput = \"e\"\nwith_replacement = true\n",
            "key 'with_replacement'",
        ),
    ] {
        let path = write("bad", body);
        let args = ["run", path.to_str().unwrap()];
        assert_fails_cleanly(&args, &drift_pipeline(&args), needle);
    }
}
