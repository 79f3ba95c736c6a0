//! The `drift-pipeline` binary on real files: outputs read back and checked pixel by pixel,
//! determinism, and every bad-input case.

mod common;

use std::path::Path;

use common::*;
use drift_core::ImageSize;
use drift_reader::{Dataset, Decoder};
use drift_sampler::{Sampler, StreamClock};

/// Runs a command that must fail cleanly: non-zero exit, no panic, a message containing `needle`.
fn fails(args: &[&str], needle: &str) -> String {
    assert_fails_cleanly(args, &drift_pipeline(args), needle)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn generate_writes_spec_outputs_that_match_the_decoded_sources() {
    let scratch = tempfile::tempdir().unwrap();
    let (input, output) = (scratch.path().join("in"), scratch.path().join("out"));
    mixed_dataset(&input);
    let stdout = succeeds(&[
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--num-samples",
        "16",
        "--seed",
        "7",
    ]);
    assert!(stdout.contains("wrote 16 samples (3 classes"), "{stdout}");
    assert_eq!(
        listing(&output),
        [
            "drift.json",
            "drift_log.parquet",
            "input_mapping.parquet",
            "sampled_images.zip",
            "target.parquet"
        ]
    );

    let mapping = read_input_mapping(&output);
    let target = read_target(&output);
    let zip = read_zip(&output);
    assert_eq!(mapping.len(), 16);
    assert_eq!(zip.len(), 16);

    // The expected stream, rebuilt from the stage crates: permutation, decode, resize.
    let dataset = Dataset::scan(&input).unwrap();
    let draws = Sampler::new(dataset.images().len(), 7, StreamClock::default())
        .take(16)
        .unwrap();
    let decoder = Decoder::new(ImageSize::default());
    for (i, draw) in draws.iter().enumerate() {
        let (sample_id, timestamp, file_name) = &mapping[i];
        assert_eq!(*sample_id, i as i64);
        assert_eq!(*timestamp, 1_717_232_400.0 + 1800.0 * i as f64);
        assert_eq!(
            target[i],
            (
                i as i64,
                *timestamp,
                dataset.images()[draw.dataset_index].label as i64
            )
        );
        let key = drift_sampler::stream_key(7, dataset.fingerprint());
        assert_eq!(file_name, &drift_sampler::file_name(key, i as u64));
        let png = image::load_from_memory(&zip[file_name]).unwrap();
        assert_eq!(png.color(), image::ColorType::Rgb8);
        assert_eq!((png.width(), png.height()), (224, 224));
        let expected = decoder
            .decode(&dataset.images()[draw.dataset_index].path)
            .unwrap();
        assert_eq!(png.into_rgb8().into_raw(), expected.pixels(), "sample {i}");
    }
    // Every image of the dataset used exactly once.
    let mut labels: Vec<i64> = target.iter().map(|r| r.2).collect();
    labels.sort();
    assert_eq!(labels, [[0; 4].as_slice(), &[1; 7], &[2; 5]].concat());
}

/// Runs `generate` with `args` at several thread counts (and twice at the default) and asserts
/// byte-identical output folders; returns them.
fn assert_identical_at_any_thread_count(scratch: &Path, args: &[&str]) -> Vec<(String, Vec<u8>)> {
    let run = |name: &str, threads: &str| {
        let output = scratch.join(name);
        succeeds(
            &[
                &["generate", "--output", s(&output), "--threads", threads],
                args,
            ]
            .concat(),
        );
        bytes_of(&output)
    };
    let first = run("a", "0");
    assert_eq!(first.len(), 5);
    assert_eq!(first, run("b", "0"), "rerun");
    assert_eq!(first, run("c", "1"), "--threads 1");
    assert_eq!(first, run("d", "5"), "--threads 5");
    first
}

#[test]
fn same_seed_gives_identical_bytes_at_any_thread_count() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset(&input, 12, 1).unwrap();
    let args = ["--input", s(&input), "--num-samples", "40"];
    let first = assert_identical_at_any_thread_count(scratch.path(), &args);
    let other_seed = scratch.path().join("e");
    succeeds(
        &[
            &["generate", "--output", s(&other_seed), "--seed", "43"],
            &args[..],
        ]
        .concat(),
    );
    assert_ne!(first, bytes_of(&other_seed));
}

#[test]
fn options_shape_the_output() {
    let scratch = tempfile::tempdir().unwrap();
    let (input, output) = (scratch.path().join("in"), scratch.path().join("out"));
    mixed_dataset(&input);
    let mapping = scratch.path().join("mapping.toml");
    std::fs::write(&mapping, "cats = 10\n\"2\" = 30\n").unwrap();
    succeeds(&[
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--num-samples",
        "9",
        "--organize-by-class",
        "--size",
        "64x32",
        "--start-timestamp",
        "1000",
        "--delta-timestamp",
        "0.5",
        "--class-mapping",
        s(&mapping),
        "--png-compression",
        "high",
        "--quiet",
    ]);
    let mapping_rows = read_input_mapping(&output);
    let target = read_target(&output);
    let zip = read_zip(&output);
    let classes = ["cats", "dogs", "zebras"];
    for (i, ((id, ts, file_name), (_, _, label))) in mapping_rows.iter().zip(&target).enumerate() {
        assert_eq!((*id, *ts), (i as i64, 1000.0 + 0.5 * i as f64));
        let class = match label {
            10 => "cats",
            1 => "dogs",
            30 => "zebras",
            other => panic!("label {other} is not a mapped label"),
        };
        assert!(classes.contains(&class));
        let png = image::load_from_memory(&zip[&format!("{class}/{file_name}")]).unwrap();
        assert_eq!((png.width(), png.height()), (64, 32));
    }
}

#[test]
fn overwrite_is_refused_then_allowed() {
    let scratch = tempfile::tempdir().unwrap();
    let (input, output) = (scratch.path().join("in"), scratch.path().join("out"));
    mixed_dataset(&input);
    let args = [
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--num-samples",
        "3",
    ];
    succeeds(&args);
    let before = bytes_of(&output);
    fails(
        &args,
        "already exists, and replacing it was not asked for (use --overwrite",
    );
    assert_eq!(bytes_of(&output), before, "a refused run changes nothing");
    succeeds(&[&args[..], &["--overwrite", "--seed", "9"]].concat());
    assert_ne!(bytes_of(&output), before);
    assert_eq!(listing(&output).len(), 5);
}

#[test]
fn bad_images_fail_naming_the_file_or_are_skipped_and_counted() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    mixed_dataset(&input);
    std::fs::write(input.join("dogs/corrupt.png"), b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let jpeg = std::fs::read(input.join("cats/b.jpg")).unwrap();
    std::fs::write(input.join("cats/truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    let output = scratch.path().join("out");
    let all = [
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--num-samples",
        "18",
    ];
    let stderr = fails(&all, "cannot decode image");
    assert!(
        stderr.contains("corrupt.png") || stderr.contains("truncated.jpg"),
        "{stderr}"
    );
    assert!(stderr.contains("(--skip-bad-images skips"), "{stderr}");
    assert!(
        listing(&output).is_empty(),
        "a failed run leaves nothing: {:?}",
        listing(&output)
    );

    fails(
        &[&all[..], &["--skip-bad-images"]].concat(),
        "only 16 could be made",
    );
    assert!(listing(&output).is_empty());
    let sixteen = [
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--num-samples",
        "16",
    ];
    let stdout = succeeds(&[&sixteen[..], &["--skip-bad-images"]].concat());
    assert!(
        stdout.contains("wrote 16 samples") && stdout.contains("skipped 2 unreadable images"),
        "{stdout}"
    );
    assert_eq!(read_target(&output).len(), 16);
    // Sample ids stay contiguous around skipped images.
    let ids: Vec<i64> = read_target(&output).iter().map(|r| r.0).collect();
    assert_eq!(ids, (0..16).collect::<Vec<_>>());
}

#[test]
fn a_decompression_bomb_is_refused_by_its_header() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    // A valid PNG header that declares 100000 x 100000 pixels, with no pixel data behind it.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    // A tiny valid zlib stream as image data, then the end: small file, huge declared size.
    for (kind, data) in [
        (
            &b"IDAT"[..],
            &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01][..],
        ),
        (b"IEND", &[]),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend(data);
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(&chunk);
        png.extend(crc32(&chunk).to_be_bytes());
    }
    std::fs::create_dir_all(input.join("a")).unwrap();
    std::fs::write(input.join("a/bomb.png"), png).unwrap();
    let output = scratch.path().join("out");
    let stderr = fails(
        &[
            "generate",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--num-samples",
            "1",
        ],
        "100000x100000",
    );
    assert!(stderr.contains("bomb.png"), "{stderr}");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn bad_arguments_and_inputs_get_clear_errors() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    mixed_dataset(&input);
    let out = scratch.path().join("out");
    let generate = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["generate", "--output", s(&out)].map(String::from).to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let check = |extra: &[&str], needle: &str| {
        let args = generate(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&refs, needle);
    };
    let missing = scratch.path().join("missing");
    check(
        &["--input", s(&missing), "--num-samples", "1"],
        "missing does not exist",
    );
    let empty = scratch.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    check(
        &["--input", s(&empty), "--num-samples", "1"],
        "has no class sub-folders",
    );
    let no_images = scratch.path().join("no_images");
    std::fs::create_dir_all(no_images.join("a")).unwrap();
    std::fs::write(no_images.join("a/x.txt"), "").unwrap();
    check(
        &["--input", s(&no_images), "--num-samples", "1"],
        "has no images",
    );
    check(
        &["--input", s(&input), "--num-samples", "17"],
        "only 16 of 16 images remain",
    );
    check(
        &["--input", s(&input), "--num-samples", "0"],
        "--num-samples",
    );
    check(
        &["--input", s(&input), "--num-samples", "1", "--size", "0x10"],
        "--size",
    );
    check(
        &["--input", s(&input), "--num-samples", "1", "--size", "big"],
        "not a size",
    );
    check(
        &[
            "--input",
            s(&input),
            "--num-samples",
            "1",
            "--delta-timestamp",
            "-1",
        ],
        "must be greater than 0",
    );
    check(
        &[
            "--input",
            s(&input),
            "--num-samples",
            "1",
            "--start-timestamp",
            "soon",
        ],
        "--start-timestamp",
    );
    let bad_mapping = scratch.path().join("m.json");
    std::fs::write(&bad_mapping, r#"{"horses": 3}"#).unwrap();
    check(
        &[
            "--input",
            s(&input),
            "--num-samples",
            "1",
            "--class-mapping",
            s(&bad_mapping),
        ],
        "'horses'",
    );
    let not_json = scratch.path().join("n.json");
    std::fs::write(&not_json, "cats = 1").unwrap();
    check(
        &[
            "--input",
            s(&input),
            "--num-samples",
            "1",
            "--class-mapping",
            s(&not_json),
        ],
        "n.json",
    );
    assert!(listing(&out).is_empty());

    // An output folder that cannot be created: a path under a regular file.
    let blocker = scratch.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let under_file = blocker.join("out");
    fails(
        &[
            "generate",
            "--input",
            s(&input),
            "--output",
            s(&under_file),
            "--num-samples",
            "1",
        ],
        "file/out",
    );
}

#[test]
fn inspect_lists_classes_counts_and_ignored_files() {
    let scratch = tempfile::tempdir().unwrap();
    mixed_dataset(scratch.path());
    // A fully transparent stamp beside the half-transparent one mixed_dataset has.
    write_png(
        &scratch.path().join("cats/clear.png"),
        8,
        8,
        image::ExtendedColorType::Rgba8,
        &[0u8; 8 * 8 * 4],
    );
    for i in 0..25 {
        std::fs::write(scratch.path().join(format!("zebras/call{i:02}.ogg")), "ogg").unwrap();
    }
    let stdout = succeeds(&["inspect", s(scratch.path())]);
    for line in [
        "    0  cats",
        "    1  dogs",
        "    2  zebras",
        "3 classes, 17 images, 29 files or folders ignored",
        "ignored by kind: 25 .ogg, 1 .md, 1 .svg, 1 .txt, 1 hidden",
        "... and 9 more (--all lists them all)",
        "alpha: 2 images have an alpha channel, 1 of them fully transparent",
        "--alpha white, black or #RRGGBB",
        "fully transparent ",
    ] {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
    assert!(stdout.contains("clear.png"), "{stdout}");
    let all = succeeds(&["inspect", s(scratch.path()), "--all"]);
    assert_eq!(all.matches("  ignored /").count(), 29, "{all}");
    assert!(
        all.contains("notes.txt") && all.contains("README.md") && all.contains("call24.ogg"),
        "{all}"
    );
    assert!(!all.contains("more (--all"), "{all}");
}

#[test]
fn demo_runs_with_no_input() {
    let scratch = tempfile::tempdir().unwrap();
    let stdout = succeeds(&["demo", s(scratch.path()), "--quiet"]);
    assert!(
        stdout.contains("wrote 100 samples (4 classes, sample_id 0..=99, no drift)"),
        "{stdout}"
    );
    assert!(stdout.contains("drift default=0.3"), "{stdout}");
    assert!(stdout.contains("sample_id 100..=199"), "{stdout}");
    assert_eq!(read_target(&scratch.path().join("production")).len(), 100);
}

#[test]
fn python_readers_agree_on_the_schema() {
    // polars, pyarrow, DuckDB and zipfile read a real output; `cargo xtask test` (and so CI)
    // provides the interpreter with pinned packages.
    let Some(python) = check_python() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let (input, output) = (scratch.path().join("in"), scratch.path().join("out"));
    mixed_dataset(&input);
    succeeds(&[
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--num-samples",
        "16",
        "--organize-by-class",
    ]);
    run_python_check(
        &python,
        &output,
        &["--samples", "16", "--organize-by-class"],
    );
    // A drift that reaches some samples and not others: the drift log's maps, read by polars
    // and DuckDB with the README's one-expression filters.
    let drifted = scratch.path().join("drifted");
    succeeds(&[
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&drifted),
        "--num-samples",
        "16",
        "--transform",
        "rotate=0.5",
        "--transform",
        "imagenet_c:motion_blur@3",
        "--transform",
        "shot_noise=0.5",
        "--drift",
        "gradual:width=8",
    ]);
    run_python_check(&python, &drifted, &["--samples", "16"]);
}

/// Sum of squared differences between horizontal and vertical neighbours: high-frequency energy.
fn high_frequency_energy(png: &[u8]) -> f64 {
    let image = image::load_from_memory(png).unwrap().into_rgb8();
    let (w, h) = image.dimensions();
    let mut energy = 0.0;
    for y in 0..h - 1 {
        for x in 0..w - 1 {
            for c in 0..3 {
                let p = f64::from(image.get_pixel(x, y)[c]);
                energy += (p - f64::from(image.get_pixel(x + 1, y)[c])).powi(2);
                energy += (p - f64::from(image.get_pixel(x, y + 1)[c])).powi(2);
            }
        }
    }
    energy
}

#[test]
fn a_drifted_run_pairs_with_the_clean_run_by_sample_id() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset(&input, 4, 2).unwrap();
    let (clean, blurred) = (scratch.path().join("clean"), scratch.path().join("blurred"));
    let base = [
        "generate",
        "--input",
        s(&input),
        "--num-samples",
        "12",
        "--size",
        "96x64",
    ];
    succeeds(&[&base[..], &["--output", s(&clean)]].concat());
    let stdout = succeeds(
        &[
            &base[..],
            &["--output", s(&blurred), "--transform", "gaussian_blur=0.5"],
        ]
        .concat(),
    );
    assert!(stdout.contains("drift gaussian_blur=0.5"), "{stdout}");
    assert_eq!(read_input_mapping(&clean), read_input_mapping(&blurred));
    assert_eq!(read_target(&clean), read_target(&blurred));
    let (clean_zip, blurred_zip) = (read_zip(&clean), read_zip(&blurred));
    let (mut total_before, mut total_after) = (0.0, 0.0);
    for (name, clean_png) in &clean_zip {
        let (before, after) = (
            high_frequency_energy(clean_png),
            high_frequency_energy(&blurred_zip[name]),
        );
        assert!(
            after < 0.9 * before,
            "{name}: blur kept {after} of {before}"
        );
        total_before += before;
        total_after += after;
    }
    assert!(
        total_after < 0.75 * total_before,
        "blur kept {total_after} of {total_before}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(blurred.join("drift.json")).unwrap())
            .unwrap();
    assert_eq!(record["transforms"][0]["name"], "gaussian_blur");
    assert_eq!(record["transforms"][0]["drift_level"], 0.5);
    assert_eq!(record["seed"], 42);
    assert_eq!(record["sample_id"]["last"], 11);
    assert_eq!(record["timestamp"]["first"], 1_717_232_400.0);
    let clean_record = std::fs::read_to_string(clean.join("drift.json")).unwrap();
    assert!(
        clean_record.contains("\"drift\": \"none\""),
        "{clean_record}"
    );
}

#[test]
fn transforms_are_deterministic_at_any_thread_count() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset(&input, 6, 4).unwrap();
    #[rustfmt::skip]
    let args = [
        "--input", s(&input), "--num-samples", "24", "--size", "80x60",
        "--transform", "rotate=0.7", "--transform", "hue=0.4", "--transform", "gaussian_noise=0.3",
    ];
    assert_identical_at_any_thread_count(scratch.path(), &args);
}

#[test]
fn bad_transforms_get_clear_errors() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    mixed_dataset(&input);
    let out = scratch.path().join("out");
    let base = [
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&out),
        "--num-samples",
        "2",
        "--transform",
    ];
    let stderr = fails(
        &[&base[..], &["blurr=0.3"]].concat(),
        "unknown transform 'blurr'",
    );
    assert!(
        stderr.contains("gaussian_blur") && stderr.contains("saturation"),
        "{stderr}"
    );
    fails(
        &[&base[..], &["rotate=1.5"]].concat(),
        "drift_level of rotate must be a number in [0, 1]",
    );
    fails(&[&base[..], &["rotate=lots"]].concat(), "'lots'");
    fails(&[&base[..], &["rotate"]].concat(), "expected NAME=LEVEL");
    // The severity shorthand is ImageNet-C's, and a severity is in [0, 5].
    fails(
        &[&base[..], &["rotate@3"]].concat(),
        "only ImageNet-C corruptions take a severity (NAME@k); give rotate a level",
    );
    fails(
        &[&base[..], &["motion_blur@7"]].concat(),
        "severity of imagenet_c:motion_blur must be a number in [0, 5]",
    );
    assert!(listing(&out).is_empty());
    // --help names each transform's family, and the bare names that work too.
    let help = succeeds(&["generate", "--help"]);
    assert!(
        help.contains("imagenet_c:motion_blur (motion_blur) [imagenet_c]")
            && help.contains("imagenet_c:brightness [imagenet_c]")
            && help.contains("rotate [torchvision]"),
        "{help}"
    );
    fails(
        &[
            "evaluate",
            "--input",
            s(&input),
            "--output",
            s(&out),
            "--transform",
            "rotate=0.5",
        ],
        "evaluate measures every level of --levels; give --transform rotate --levels 0.5",
    );
    // Allowed but probably not meant: warned, then run.
    let wide = scratch.path().join("wide");
    let args = [
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&wide),
        "--num-samples",
        "10",
        "--size",
        "16",
        "--transform",
        "rotate=0.5",
        "--drift",
        "gradual:width=50",
        "--quiet",
    ];
    let run = drift_pipeline(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: segment 1: gradual width 50 is more than its 10 samples"),
        "{stderr}"
    );
}

#[test]
fn the_documented_scenario_runs_as_one_stream() {
    let scratch = tempfile::tempdir().unwrap();
    drift_pipeline_cli::demo::write_dataset(&scratch.path().join("out/dataset"), 40, 7).unwrap();
    let docs = scratch.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scenario.toml");
    std::fs::copy(example, docs.join("scenario.toml")).unwrap();
    let stdout = succeeds(&["run", s(&docs.join("scenario.toml")), "--quiet"]);
    assert!(stdout.contains("drift default=0.8, hue=0.3"), "{stdout}");

    let out = scratch.path().join("out/scenario");
    let mut next_id = 0;
    let mut names = std::collections::BTreeSet::new();
    for (segment, count, transforms) in [
        ("reference", 80, vec![]),
        ("production-1", 40, vec!["default"]),
        ("production-2", 40, vec!["default", "hue"]),
    ] {
        let folder = out.join(segment);
        let rows = read_input_mapping(&folder);
        assert_eq!(rows.len(), count);
        for (id, ts, name) in rows {
            assert_eq!(id, next_id);
            assert_eq!(ts, 1_717_232_400.0 + 1800.0 * id as f64);
            assert!(names.insert(name), "file names are unique across segments");
            next_id += 1;
        }
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("drift.json")).unwrap())
                .unwrap();
        let applied: Vec<&str> = record["transforms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(applied, transforms, "{segment}");
    }
}

#[test]
fn scenario_errors_point_to_the_segment_and_key_and_write_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    mixed_dataset(&input);
    let write = |name: &str, body: &str| {
        let path = scratch.path().join(name);
        std::fs::write(&path, format!("input = \"in\"\n{body}")).unwrap();
        path
    };
    let segment = |name: &str, samples: u32, transforms: &str| {
        format!(
            "[[segment]]\nname = \"{name}\"\nsamples = {samples}\noutput = \"out/{name}\"\ntransforms = [{transforms}]\n"
        )
    };
    let cases = [
        (
            write(
                "a.toml",
                &(segment("clean", 4, "") + &segment("drifted", 4, "\"blurr=0.3\"")),
            ),
            "segment 2 (drifted), key 'transforms': unknown transform 'blurr'",
        ),
        (
            write(
                "b.toml",
                &(segment("clean", 4, "") + &segment("drifted", 4, "\"rotate=2\"")),
            ),
            "drift_level of rotate must be a number in [0, 1]",
        ),
        (
            write(
                "c.toml",
                &(segment("clean", 10, "") + &segment("more", 10, "")),
            ),
            "ask for 20 samples",
        ),
        (
            write("d.toml", &format!("sed = 3\n{}", segment("x", 1, ""))),
            "sed",
        ),
        (write("e.toml", ""), "at least one segment"),
        (
            write(
                "f.toml",
                &format!("size = \"0x3\"\n{}", segment("x", 1, "")),
            ),
            "key 'size'",
        ),
        (
            write("g.toml", &(segment("x", 1, "") + &segment("x", 1, ""))),
            "is also the output of",
        ),
        (
            write(
                "h.toml",
                &format!(
                    "embeddings = true\nnormalize = \"zscore\"\n{}",
                    segment("x", 1, "")
                ),
            ),
            "key 'normalize': unknown normalization 'zscore'",
        ),
        (
            write(
                "i.toml",
                &format!("normalize = \"imagenet\"\n{}", segment("x", 1, "")),
            ),
            "key 'normalize': only applies with embeddings = true",
        ),
        (
            write(
                "j.toml",
                &format!(
                    "embeddings = true\nweights = \"missing.pth\"\n{}",
                    segment("x", 1, "")
                ),
            ),
            "missing.pth",
        ),
    ];
    for (path, needle) in cases {
        fails(&["run", s(&path)], needle);
        assert!(
            !scratch.path().join("out").exists(),
            "{}: nothing is written",
            path.display()
        );
    }
}

/// One check, spelled per front end: the same out-of-range value is refused by the run spec
/// with the key as each front end's user wrote it, and by the library with the option's name.
#[test]
fn the_run_spec_names_keys_as_each_front_end_spells_them() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    mixed_dataset(&input);
    let out = scratch.path().join("out");
    let base = [
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&out),
        "--num-samples",
        "2",
    ];
    fails(
        &[&base[..], &["--embeddings", "--batch-size", "0"]].concat(),
        "--batch-size: must be 1 to 4096, got 0",
    );
    fails(
        &[&base[..], &["--delta-timestamp", "-5"]].concat(),
        "--delta-timestamp: must be greater than 0",
    );
    fails(
        &[&base[..], &["--normalize", "imagenet"]].concat(),
        "--normalize: only applies with --embeddings",
    );
    let scenario = scratch.path().join("s.toml");
    std::fs::write(
        &scenario,
        "input = \"in\"\nembeddings = true\nbatch_size = 0\ndelta_timestamp = 3.0\n\
         [[segment]]\nsamples = 2\noutput = \"out\"\n",
    )
    .unwrap();
    fails(
        &["run", s(&scenario)],
        "key 'batch_size': must be 1 to 4096, got 0",
    );
    let options = drift_pipeline::GeneratorOptions {
        embeddings: Some(drift_pipeline::EmbeddingOptions {
            batch_size: 0,
            ..Default::default()
        }),
        ..Default::default()
    };
    let error = drift_pipeline::DriftGenerator::new(1, &input, options)
        .err()
        .expect("refused");
    assert_eq!(
        error.to_string(),
        "option 'batch_size': must be 1 to 4096, got 0"
    );
    assert!(!out.exists(), "nothing is written");
}

/// Every sample traces to its source: the drift log's provenance columns name the source file
/// (relative to the input), its class and original label (before the class mapping) and the
/// exact zip entry, and decoding that source file gives exactly the zipped image.
#[test]
fn the_drift_log_traces_every_sample_to_its_source() {
    let scratch = tempfile::tempdir().unwrap();
    let (input, output) = (scratch.path().join("in"), scratch.path().join("out"));
    mixed_dataset(&input);
    let mapping = scratch.path().join("mapping.toml");
    std::fs::write(&mapping, "cats = 10\ndogs = 20\nzebras = 30\n").unwrap();
    let size = ImageSize::new(40, 30).unwrap();
    succeeds(&[
        "generate",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--num-samples",
        "16",
        "--organize-by-class",
        "--size",
        "40x30",
        "--class-mapping",
        s(&mapping),
        "--quiet",
    ]);
    let dataset = Dataset::scan(&input).unwrap();
    let decoder = Decoder::new(size);
    let log = read_drift_log(&output);
    let names = read_input_mapping(&output);
    let target = read_target(&output);
    let zip = read_zip(&output);
    assert_eq!(log.len(), 16);
    let mut sources = std::collections::BTreeSet::new();
    for ((row, (_, _, file_name)), (_, _, label)) in log.iter().zip(&names).zip(&target) {
        let source = input.join(&row.source_path);
        assert!(source.is_file(), "{}", row.source_path);
        assert!(sources.insert(row.source_path.clone()), "each image once");
        assert_eq!(
            row.source_path.split('/').next(),
            Some(row.class_name.as_str())
        );
        let original = dataset.classes().label(&row.class_name).unwrap() as i64;
        assert_eq!(row.original_label, original);
        assert_eq!(*label, 10 * (original + 1), "target holds the mapped label");
        assert_eq!(row.zip_entry, format!("{}/{file_name}", row.class_name));
        assert_eq!(row.class_prior, None, "no label shift");
        let zipped = image::load_from_memory(&zip[&row.zip_entry])
            .unwrap()
            .into_rgb8();
        let decoded = decoder.decode(&source).unwrap();
        assert_eq!(zipped.as_raw(), decoded.pixels(), "{}", row.source_path);
    }

    // Under label shift the log says what the sampler did: the prior of the sample's class.
    let scenario = scratch.path().join("shift.toml");
    std::fs::write(
        &scenario,
        "input = \"in\"\nsize = \"16\"\n[[segment]]\nsamples = 6\noutput = \"shifted\"\n\
         class_weights = { cats = 3.0, zebras = 1.0 }\nwith_replacement = true\n",
    )
    .unwrap();
    succeeds(&["run", s(&scenario), "--quiet"]);
    for row in read_drift_log(&scratch.path().join("shifted")) {
        let want = if row.class_name == "cats" { 0.75 } else { 0.25 };
        assert_ne!(row.class_name, "dogs", "weight 0: never drawn");
        assert_eq!(row.class_prior, Some(want), "{row:?}");
    }
}

/// `--alpha white` through the binary: an RGBA stamp comes out composited as PIL would (the
/// same fixture as the reader's golden), the default drops alpha, and drift.json says which.
#[test]
fn alpha_is_dropped_by_default_and_composited_on_request() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::create_dir_all(input.join("stamps")).unwrap();
    std::fs::copy(
        root.join("tests/fixtures/images/sunset_rgba.png"),
        input.join("stamps/s.png"),
    )
    .unwrap();
    let golden = image::open(root.join("tests/fixtures/golden/alpha/sunset_rgba_on_white.png"))
        .unwrap()
        .into_rgb8();
    let generate = |output: &Path, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--input",
            s(&input),
            "--output",
            s(output),
            "--num-samples",
            "1",
            "--size",
            "201x186",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        succeeds(&args);
        let zip = read_zip(output);
        let png = zip.values().next().unwrap();
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(output.join("drift.json")).unwrap())
                .unwrap();
        (image::load_from_memory(png).unwrap().into_rgb8(), record)
    };
    let (white, record) = generate(&scratch.path().join("white"), &["--alpha", "white"]);
    assert_eq!(white.as_raw(), golden.as_raw());
    assert_eq!(record["alpha"], "#ffffff");
    let (dropped, record) = generate(&scratch.path().join("dropped"), &[]);
    assert_ne!(dropped.as_raw(), golden.as_raw());
    assert!(
        record.get("alpha").is_none(),
        "the default leaves drift.json as it was"
    );
    fails(
        &[
            "generate",
            "--input",
            s(&input),
            "--output",
            s(&scratch.path().join("bad")),
            "--num-samples",
            "1",
            "--alpha",
            "grey",
        ],
        "--alpha: 'grey' is not an alpha mode",
    );
}

/// One stream cut into runs: a scenario's first two segments (the second under label shift),
/// then `generate --continue-from` the last of them, gives byte for byte the files one
/// scenario of all three segments gives, so no image repeats and ids and time go on.
#[test]
fn a_stream_continues_across_runs_as_if_it_were_one() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 8, 3, (40, 90)).unwrap();
    let segment = |name: &str, dir: &str, samples: u64, extra: &str| {
        format!(
            "[[segment]]\nname = \"{name}\"\nsamples = {samples}\noutput = \"{dir}/{name}\"\n{extra}\n"
        )
    };
    let shifted = "class_weights = { forest = 3.0, sky = 1.0 }";
    let production = "transforms = [\"gaussian_blur=0.3\"]";
    let head = "input = \"in\"\nseed = 7\nsize = \"32\"\ndelta_timestamp = 60.0\n";
    let write = |name: &str, body: String| {
        let path = scratch.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let whole = write(
        "whole.toml",
        format!(
            "{head}{}{}{}",
            segment("reference", "whole", 10, ""),
            segment("shifted", "whole", 6, shifted),
            segment("production", "whole", 10, production)
        ),
    );
    let first = write(
        "first.toml",
        format!(
            "{head}{}{}",
            segment("reference", "split", 10, ""),
            segment("shifted", "split", 6, shifted)
        ),
    );
    succeeds(&["run", s(&whole), "--quiet"]);
    succeeds(&["run", s(&first), "--quiet"]);
    let split = scratch.path().join("split");
    let (split_shifted, split_production) = (split.join("shifted"), split.join("production"));
    let continued = [
        "generate",
        "--continue-from",
        s(&split_shifted),
        "--output",
        s(&split_production),
        "--num-samples",
        "10",
        "--segment",
        "production",
        "--transform",
        "gaussian_blur=0.3",
        "--quiet",
    ];
    succeeds(&continued);
    for name in ["reference", "shifted", "production"] {
        assert_eq!(
            bytes_of(&split.join(name)),
            bytes_of(&scratch.path().join("whole").join(name)),
            "{name}"
        );
    }
    let production = read_input_mapping(&split.join("production"));
    assert_eq!(production[0].0, 16);
    assert_eq!(production[0].1, 1_717_232_400.0 + 60.0 * 16.0);
    let mut sources = std::collections::BTreeSet::new();
    for name in ["reference", "shifted", "production"] {
        for row in read_drift_log(&split.join(name)) {
            assert!(
                sources.insert(row.source_path.clone()),
                "{} repeats",
                row.source_path
            );
        }
    }
    assert_eq!(sources.len(), 26);

    // What a continuation refuses, before writing anything.
    let out = scratch.path().join("refused");
    let base = [
        "generate",
        "--continue-from",
        s(&split_production),
        "--output",
        s(&out),
        "--num-samples",
        "2",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> { [&base[..], extra].concat() };
    fails(
        &with(&["--seed", "8"]),
        "--seed: 8 differs from the seed of the stream",
    );
    fails(
        &with(&["--size", "64"]),
        "--size: 64x64 differs from the image size",
    );
    fails(
        &with(&["--delta-timestamp", "61"]),
        "--delta-timestamp: 61 differs",
    );
    let changed = scratch.path().join("changed");
    drift_pipeline_cli::demo::write_dataset_sized(&changed, 8, 3, (40, 90)).unwrap();
    std::fs::remove_file(changed.join("sky/sky_0003.png")).unwrap();
    fails(
        &[&base[..], &["--input", s(&changed)]].concat(),
        "is not the one the stream sampled (32 images then, 31 now)",
    );
    let tampered = scratch.path().join("tampered");
    std::fs::create_dir(&tampered).unwrap();
    for (name, mut bytes) in bytes_of(&split.join("production")) {
        if name == "target.parquet" {
            bytes[10] ^= 1;
        }
        std::fs::write(tampered.join(name), bytes).unwrap();
    }
    let mut args = with(&[]);
    args[2] = s(&tampered);
    fails(&args, "is not a complete output");
    args[2] = s(&input);
    fails(&args, "is not a complete output");
    let mut args = with(&[]);
    args[4] = s(&split_production);
    fails(&args, "is the output whose stream this run continues");
    assert!(!out.exists());
    // The same dataset with the same seed is the same stream: a continuation may name it.
    let mut args = [&base[..], &["--input", s(&input), "--seed", "7", "--quiet"]].concat();
    args[6] = "3";
    succeeds(&args);
    assert_eq!(read_input_mapping(&out)[0].0, 26);
}

/// Two datasets sampled with the same seed get different file names: names derive from the
/// seed and the dataset's fingerprint.
#[test]
fn streams_of_different_datasets_do_not_share_file_names() {
    let scratch = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for dataset_seed in [1, 2] {
        let input = scratch.path().join(format!("in{dataset_seed}"));
        let output = scratch.path().join(format!("out{dataset_seed}"));
        drift_pipeline_cli::demo::write_dataset_sized(&input, 3, dataset_seed, (40, 60)).unwrap();
        succeeds(&[
            "generate",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--num-samples",
            "12",
            "--size",
            "16",
            "--quiet",
        ]);
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(output.join("drift.json")).unwrap())
                .unwrap();
        assert_eq!(record["stream"]["dataset_images"], 12);
        let set: std::collections::BTreeSet<String> = read_zip(&output).into_keys().collect();
        names.push(set);
    }
    assert_eq!(names[0].len(), 12);
    assert!(names[0].is_disjoint(&names[1]));
}

/// `timeline` through the binary: PNG and SVG of a scenario's drift logs, a line per transform
/// level, the class panel under label shift, and clear refusals and warnings.
#[test]
fn timeline_plots_drift_logs_with_levels_classes_and_segments() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 20, 5, (40, 60)).unwrap();
    let scenario = scratch.path().join("s.toml");
    std::fs::write(
        &scenario,
        "input = \"in\"\nsize = \"16\"\n\
         [[segment]]\nname = \"reference\"\nsamples = 10\noutput = \"out/reference\"\n\
         [[segment]]\nname = \"label shift\"\nsamples = 10\noutput = \"out/shift\"\n\
         class_weights = { forest = 4.0, sky = 1.0 }\n\
         [[segment]]\nname = \"drifted\"\nsamples = 10\noutput = \"out/drifted\"\n\
         transforms = [\"gaussian_blur=0.6\", \"hue=0.3\"]\ndrift = \"gradual:width=6\"\n",
    )
    .unwrap();
    let summary = succeeds(&["run", s(&scenario), "--quiet"]);
    assert!(
        summary.contains("wrote 10 samples (2 of 4 classes, sample_id 10..=19"),
        "{summary}"
    );
    let out = scratch.path().join("out");
    let (reference, shift, drifted) = (
        out.join("reference"),
        out.join("shift"),
        out.join("drifted"),
    );
    let plot = scratch.path().join("plots/timeline.png");
    std::fs::create_dir_all(plot.parent().unwrap()).unwrap();
    let stdout = succeeds(&[
        "timeline",
        s(&reference),
        s(&shift),
        s(&drifted),
        "--output",
        s(&plot),
    ]);
    assert!(stdout.contains("30 samples from 3 folders"), "{stdout}");
    let png = image::open(&plot).unwrap();
    assert_eq!((png.width(), png.height()), drift_measure::PLOT_SIZE);
    let svg = std::fs::read_to_string(plot.with_extension("svg")).unwrap();
    for text in [
        "gaussian_blur level",
        "hue level",
        "class share",
        "label shift",
        "forest",
        "Drift over time: reference, shift, drifted",
    ] {
        assert!(svg.contains(text), "the SVG lacks '{text}'");
    }
    // Without label shift there is no class panel.
    let clean = scratch.path().join("clean");
    succeeds(&["timeline", s(&reference), "--output", s(&clean)]);
    let svg = std::fs::read_to_string(clean.with_extension("svg")).unwrap();
    assert!(!svg.contains("class share"));
    assert!(clean.with_extension("png").exists());
    // Two folders of different streams overlap in sample_id: warned, still drawn.
    let out = drift_pipeline(&[
        "timeline",
        s(&reference),
        s(&reference),
        "--output",
        s(&clean),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("overlap in sample_id (0..=9)"), "{stderr}");
    fails(
        &["timeline", s(&input), "--output", s(&clean)],
        "no drift log here (not an output folder?)",
    );
    fails(
        &["timeline", s(&reference), "--output", "plot.jpg"],
        "name it FILE.png, FILE.svg or FILE, not .jpg",
    );
    let help = succeeds(&["timeline", "--help"]);
    assert!(
        help.contains("--window") && help.contains("label shift"),
        "{help}"
    );
}

#[test]
fn preview_draws_each_transform_at_each_level_as_generate_would() {
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("photo.png");
    write_png(
        &source,
        50,
        30,
        image::ExtendedColorType::Rgb8,
        &pattern(50, 30, 3),
    );
    let output = scratch.path().join("sheet.png");
    let out = drift_pipeline(&[
        "preview",
        source.to_str().unwrap(),
        "--transform",
        "imagenet_c:frost",
        "--transform",
        "rotate",
        "--transform",
        "spatter",
        "--levels",
        "0.3,0.7,1",
        "--size",
        "40x32",
        "--seed",
        "5",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The sheet read back by another decoder: its size follows from the grid, 3 rows of 4
    // cells of 40x32 (the original, then each level), under a title and the levels' labels.
    let sheet = image::open(&output).unwrap().into_rgb8();
    let (rows, columns, (cell_w, cell_h)) = (3u32, 4u32, (40u32, 32u32));
    let gap = drift_measure::SHEET_GAP;
    assert_eq!(sheet.height(), 60 + rows * (cell_h + gap));
    let label_width = sheet.width() - columns * (cell_w + gap) - gap;
    assert!(
        (80..200).contains(&label_width),
        "a margin for the row labels: {label_width}"
    );
    // Each cell is what the transform gives at its level for sample 0 of seed 5, on the image
    // decoded and resized as generate does.
    let size = ImageSize::new(cell_w, cell_h).unwrap();
    let original = Decoder::new(size).decode(&source).unwrap();
    for (row, name) in ["imagenet_c:frost", "rotate", "imagenet_c:spatter"]
        .iter()
        .enumerate()
    {
        for (column, level) in [None, Some(0.3), Some(0.7), Some(1.0)]
            .into_iter()
            .enumerate()
        {
            let expected = match level {
                None => original.clone(),
                Some(level) => {
                    let chain: drift_transformer::TransformChain =
                        format!("{name}={level}").parse().unwrap();
                    chain.apply(original.clone(), 5, 0).0
                }
            };
            let left = label_width + gap + column as u32 * (cell_w + gap);
            let top = 60 + row as u32 * (cell_h + gap);
            let cell: Vec<u8> = (0..cell_h)
                .flat_map(|y| (0..cell_w).map(move |x| (x, y)))
                .flat_map(|(x, y)| sheet.get_pixel(left + x, top + y).0)
                .collect();
            assert!(
                cell == expected.pixels(),
                "{name} at {level:?}: the cell is not the transform's output"
            );
        }
    }
    // The SVG beside it: each cell an embedded PNG, at the bitmap's place, equal to the
    // bitmap's cell once decoded; the labels as text.
    let svg = std::fs::read_to_string(output.with_extension("svg")).unwrap();
    assert!(
        svg.contains("imagenet_c:spatter") && svg.contains("0.7"),
        "labels as text"
    );
    let cells: Vec<&str> = svg.split("<image ").skip(1).collect();
    assert_eq!(cells.len(), 12);
    let (left, top) = (
        label_width + gap + 3 * (cell_w + gap),
        60 + 2 * (cell_h + gap),
    );
    let last = cells
        .iter()
        .find(|c| c.starts_with(&format!("x=\"{left}\" y=\"{top}\" ")))
        .expect("the last cell at its place");
    let data = last
        .split("href=\"data:image/png;base64,")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    use base64::Engine;
    let png = base64::prelude::BASE64_STANDARD.decode(data).unwrap();
    let embedded = image::load_from_memory(&png).unwrap().into_rgb8();
    let chain: drift_transformer::TransformChain = "imagenet_c:spatter=1".parse().unwrap();
    assert_eq!(
        embedded.as_raw(),
        chain.apply(original.clone(), 5, 0).0.pixels()
    );
    // Text in the margins: the row labels are drawn left of the grid.
    let dark = (0..sheet.height())
        .flat_map(|y| (0..label_width).map(move |x| (x, y)))
        .filter(|&(x, y)| sheet.get_pixel(x, y).0[0] < 100)
        .count();
    assert!(dark > 50, "{dark} dark pixels of labels");
    // Bad input: a clear error naming the flag, nothing written.
    let missing = scratch.path().join("none.png");
    let out = drift_pipeline(&[
        "preview",
        source.to_str().unwrap(),
        "--transform",
        "fog",
        "--levels",
        "0.5,1.5",
        "--output",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1.5"), "{stderr}");
    assert!(!missing.exists());
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        3,
        "the image, the sheet's PNG and SVG: no partial file left"
    );
}
