//! The library API: a generator that continues across `sample` calls, and that is left unchanged
//! by a failed call.

mod common;

use common::*;
use drift_pipeline::{DriftGenerator, GeneratorOptions, PipelineError};

#[test]
fn two_calls_of_5_and_7_equal_one_call_of_12() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset(&input, 5, 3).unwrap();
    let options = GeneratorOptions {
        threads: 2,
        ..GeneratorOptions::default()
    };

    let mut split = DriftGenerator::new(11, &input, options.clone()).unwrap();
    let first = split.sample(5, &scratch.path().join("first")).unwrap();
    let second = split.sample(7, &scratch.path().join("second")).unwrap();
    assert_eq!((first.first_sample_id, second.first_sample_id), (0, 5));
    assert_eq!(
        second.timestamps,
        (
            1_717_232_400.0 + 5.0 * 1800.0,
            1_717_232_400.0 + 11.0 * 1800.0
        )
    );
    assert_eq!(split.remaining(), 8);
    assert_eq!(split.next_sample_id(), 12);

    let mut whole = DriftGenerator::new(11, &input, options).unwrap();
    whole.sample(12, &scratch.path().join("whole")).unwrap();

    let rows = |name: &str| {
        let folder = scratch.path().join(name);
        let zip = read_zip(&folder);
        read_input_mapping(&folder)
            .into_iter()
            .zip(read_target(&folder))
            .map(|((id, ts, file), (_, _, label))| (id, ts, label, zip[&file].clone(), file))
            .collect::<Vec<_>>()
    };
    let mut split_rows = rows("first");
    split_rows.extend(rows("second"));
    let whole_rows = rows("whole");
    assert_eq!(split_rows.len(), 12);
    assert_eq!(split_rows, whole_rows);

    // No image twice: the 20 demo images are all different, so 12 distinct pixel sets.
    let mut pixels: Vec<Vec<u8>> = whole_rows
        .iter()
        .map(|row| {
            image::load_from_memory(&row.3)
                .unwrap()
                .into_rgb8()
                .into_raw()
        })
        .collect();
    pixels.sort();
    pixels.dedup();
    assert_eq!(pixels.len(), 12);
}

#[test]
fn a_failed_call_leaves_the_generator_and_the_output_untouched() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    mixed_dataset(&input);
    std::fs::write(input.join("zebras/broken.jpg"), b"\xff\xd8\xff not really").unwrap();
    let mut generator = DriftGenerator::new(5, &input, GeneratorOptions::default()).unwrap();

    let err = generator
        .sample(18, &scratch.path().join("too_many"))
        .unwrap_err();
    assert!(matches!(err, PipelineError::Sampler(_)), "{err}");
    assert!(
        err.to_string().contains("only 17 of 17 images remain"),
        "{err}"
    );

    let failed = scratch.path().join("failed");
    let err = generator.sample(17, &failed).unwrap_err();
    assert!(err.to_string().contains("broken.jpg"), "{err}");
    assert!(listing(&failed).is_empty(), "{:?}", listing(&failed));
    assert_eq!((generator.remaining(), generator.next_sample_id()), (17, 0));

    // Samples before the broken image in the permutation still work, and the cursor moves.
    let mut generator = DriftGenerator::new(
        5,
        &input,
        GeneratorOptions {
            skip_bad_images: true,
            ..GeneratorOptions::default()
        },
    )
    .unwrap();
    let summary = generator
        .sample(16, &scratch.path().join("skipping"))
        .unwrap();
    assert_eq!(summary.skipped.len(), 1);
    assert!(summary.skipped[0].path.ends_with("zebras/broken.jpg"));
    assert_eq!(generator.next_sample_id(), 16);
    let err = generator
        .sample(1, &scratch.path().join("empty"))
        .unwrap_err();
    assert!(
        err.to_string().contains("remain") || err.to_string().contains("ran out"),
        "{err}"
    );
}

#[test]
fn drift_parameters_are_drawn_per_image() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    // Two byte-identical images: under a random transform they must still come out different.
    let pixels = pattern(90, 70, 3);
    for name in ["a", "b"] {
        let path = input.join(format!("only/{name}.png"));
        write_png(&path, 90, 70, image::ExtendedColorType::Rgb8, &pixels);
    }
    // One thread per parallel stage, so that each stage's time is one thread's work.
    let one_thread = GeneratorOptions {
        threads: 1,
        ..GeneratorOptions::default()
    };
    let mut generator = DriftGenerator::new(1, &input, one_thread).unwrap();
    assert!(generator.add_abrupt_drift(vec![]).is_err());
    generator
        .add_abrupt_drift(vec![
            "rotate=1".parse().unwrap(),
            "brightness=0.3".parse().unwrap(),
        ])
        .unwrap();
    let out = scratch.path().join("out");
    let drifted = generator.sample(2, &out).unwrap();
    // Every stage that ran reports time, embedding (off) none; with one thread per stage, a
    // stage's time is one thread's work within the call, so it cannot exceed the call's wall
    // time (time counted twice, or summed across calls, would).
    let times = drifted.stage_times;
    for (stage, time) in times.stages() {
        assert_eq!(time.is_zero(), stage == "embed", "{stage}: {time:?}");
        assert!(
            time <= drifted.elapsed,
            "{stage}: {time:?} > {:?}",
            drifted.elapsed
        );
    }
    let zip = read_zip(&out);
    let images: Vec<&Vec<u8>> = zip.values().collect();
    assert_ne!(images[0], images[1]);

    // reset: a fresh generator with the same seed, clean, gives the two images unchanged.
    let mut clean = DriftGenerator::new(1, &input, GeneratorOptions::default()).unwrap();
    clean
        .add_abrupt_drift(vec!["hue=0.5".parse().unwrap()])
        .unwrap();
    clean.reset();
    assert!(clean.drift().chain().specs().is_empty());
    let clean_out = scratch.path().join("clean");
    clean.sample(2, &clean_out).unwrap();
    for png in read_zip(&clean_out).values() {
        let decoded = image::load_from_memory(png).unwrap().into_rgb8();
        assert_eq!(decoded.dimensions(), (224, 224));
    }
    let clean_pngs: Vec<Vec<u8>> = read_zip(&clean_out).into_values().collect();
    assert_eq!(
        clean_pngs[0], clean_pngs[1],
        "identical sources, no drift: identical samples"
    );
}

#[test]
fn a_cancelled_call_leaves_no_output() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset(&input, 3, 1).unwrap();
    let options = GeneratorOptions {
        // As the binary's Ctrl-C handler would have set it.
        cancel: Some(Arc::new(AtomicBool::new(true))),
        ..GeneratorOptions::default()
    };
    let mut generator = DriftGenerator::new(1, &input, options).unwrap();
    let out = scratch.path().join("out");
    let err = generator.sample(10, &out).unwrap_err();
    assert!(matches!(err, PipelineError::Cancelled), "{err}");
    assert!(listing(&out).is_empty(), "{:?}", listing(&out));
    assert_eq!(generator.next_sample_id(), 0);
}
