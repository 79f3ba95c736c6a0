//! Datasets and outputs on object storage, in process against `memory://` stores (the same
//! code paths as `s3://`, whose tests against a real S3 API server are in
//! `python/tests/test_object_storage.py`): a run from and to a store equals a local run byte
//! for byte, a second run refuses to replace the output unless asked, and nothing staged stays.

mod common;

use std::path::Path;

use drift_store::RemoteLocation;

fn generate(input: &str, output: &str, extra: &[&str]) -> u8 {
    let mut args = vec![
        "drift-pipeline",
        "generate",
        "--input",
        input,
        "--output",
        output,
        "--num-samples",
        "14",
        "--seed",
        "5",
        "--size",
        "20",
        "--transform",
        "gaussian_noise=0.7",
        "--drift",
        "gradual:width=8",
        "-q",
    ];
    args.extend_from_slice(extra);
    drift_pipeline_cli::main_with(args)
}

/// Uploads every file below `folder` to `location` with its relative key.
fn upload(folder: &Path, location: &RemoteLocation) {
    for entry in walkdir::WalkDir::new(folder) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let key = entry.path().strip_prefix(folder).unwrap().to_str().unwrap();
            location.upload_file(entry.path(), key).unwrap();
        }
    }
}

fn remote_files(location: &RemoteLocation) -> Vec<(String, Vec<u8>)> {
    location
        .list()
        .unwrap()
        .into_iter()
        .map(|object| {
            let bytes = location.get(&object.key).unwrap().to_vec();
            (object.key, bytes)
        })
        .collect()
}

#[test]
fn a_run_from_and_to_a_store_equals_a_local_run() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 5, 3, (24, 40)).unwrap();
    // A file the scan ignores, so the listing's ignoring is exercised too.
    std::fs::write(input.join("README.txt"), "not an image").unwrap();
    let local = scratch.path().join("local");
    assert_eq!(
        generate(input.to_str().unwrap(), local.to_str().unwrap(), &[]),
        0
    );

    let dataset = RemoteLocation::open("memory://datasets/demo").unwrap();
    upload(&input, &dataset);
    assert_eq!(
        generate("memory://datasets/demo", "memory://outputs/run/", &[]),
        0
    );
    let output = RemoteLocation::open("memory://outputs/run").unwrap();
    let mut remote = remote_files(&output);
    // The lock object stays (set free); nothing staged does.
    let lock = remote
        .iter()
        .position(|(key, _)| key == ".drift-pipeline.lock")
        .unwrap();
    let lock = remote.remove(lock).1;
    let lock: serde_json::Value = serde_json::from_slice(&lock).unwrap();
    assert_eq!(lock["state"], "free");

    let mut local_files = common::bytes_of(&local);
    local_files.retain(|(name, _)| !name.starts_with(".drift-pipeline"));
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&remote), names(&local_files));
    for ((name, remote), (_, local)) in remote.iter().zip(&local_files) {
        if name == "drift.json" {
            // Only the input's spelling differs.
            let text = String::from_utf8(local.clone()).unwrap();
            let text = text.replace(
                &format!("\"{}\"", std::path::absolute(&input).unwrap().display()),
                "\"memory://datasets/demo\"",
            );
            let as_json =
                |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
            assert_eq!(as_json(remote), as_json(text.as_bytes()), "drift.json");
        } else {
            assert!(remote == local, "{name} differs");
        }
    }

    // `inspect` lists a dataset on a store (and reads its images for their alpha); a prefix
    // that holds no class folder is refused.
    let inspect = |dir: &str| drift_pipeline_cli::main_with(["drift-pipeline", "inspect", dir]);
    assert_eq!(inspect("memory://datasets/demo"), 0);
    assert_ne!(inspect("memory://datasets/nothing-here"), 0);

    // Without --overwrite the output is refused and left as it was; with it, replaced.
    assert_ne!(
        generate("memory://datasets/demo", "memory://outputs/run", &[]),
        0
    );
    assert_eq!(remote_files(&output).len(), local_files.len() + 1);
    assert_eq!(
        generate(
            "memory://datasets/demo",
            "memory://outputs/run",
            &["--overwrite"]
        ),
        0
    );
    assert_eq!(remote_files(&output).len(), local_files.len() + 1);

    // A local output from a remote dataset, and the reverse, give the same bytes too.
    let from_remote = scratch.path().join("from-remote");
    assert_eq!(
        generate("memory://datasets/demo", from_remote.to_str().unwrap(), &[]),
        0
    );
    for ((name, a), (_, b)) in common::bytes_of(&from_remote).iter().zip(&local_files) {
        if name != "drift.json" {
            assert!(a == b, "{name} differs");
        }
    }
}

#[test]
fn bad_urls_and_outputs_inside_the_input_are_refused() {
    assert_ne!(
        generate("memory://datasets/none", "memory://outputs/x", &[]),
        0
    );
    let dataset = RemoteLocation::open("memory://inside/data").unwrap();
    dataset.put("a/x.png", vec![1]).unwrap();
    assert_ne!(
        generate("memory://inside/data", "memory://inside/data/out", &[]),
        0
    );
    assert!(!dataset.exists("out/drift.json").unwrap());
    assert_ne!(generate("ftp://host/data", "memory://outputs/y", &[]), 0);
    assert_ne!(
        generate("s3://key:secret@bucket/data", "memory://outputs/y", &[]),
        0
    );
}

/// A sharded run whose manifest, shard folders and merged output are all on a store merges to
/// the one-process bytes (all of them: the dataset is local, so drift.json is equal too).
#[test]
fn shards_on_a_store_merge_to_the_one_process_bytes() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 5, 3, (24, 40)).unwrap();
    let input = input.to_str().unwrap();
    let local = scratch.path().join("local");
    assert_eq!(generate(input, local.to_str().unwrap(), &[]), 0);
    let manifest = "memory://sharded/run/manifest.parquet";
    assert_eq!(
        drift_pipeline_cli::main_with([
            "drift-pipeline",
            "index",
            input,
            "--output",
            manifest,
            "-q"
        ]),
        0
    );
    let shards: Vec<String> = (0..3)
        .map(|k| format!("memory://sharded/run/shard-{k}"))
        .collect();
    for (k, shard) in shards.iter().enumerate() {
        let part = format!("{k}/3");
        let code = generate(input, shard, &["--shard", &part, "--manifest", manifest]);
        assert_eq!(code, 0, "shard {part}");
    }
    let mut args = vec![
        "drift-pipeline",
        "merge",
        "-q",
        "--output",
        "memory://sharded/merged",
    ];
    args.extend(shards.iter().rev().map(String::as_str));
    assert_eq!(drift_pipeline_cli::main_with(args), 0);
    let merged = RemoteLocation::open("memory://sharded/merged").unwrap();
    let mut remote = remote_files(&merged);
    remote.retain(|(key, _)| !key.starts_with(".drift-pipeline"));
    let mut local_files = common::bytes_of(&local);
    local_files.retain(|(name, _)| !name.starts_with(".drift-pipeline"));
    assert_eq!(remote.len(), local_files.len());
    for ((name, got), (want_name, want)) in remote.iter().zip(&local_files) {
        assert_eq!(name, want_name);
        assert!(got == want, "{name} differs from the one-process output");
    }

    // The merged zip was assembled in the store from the shards' zips and hashed once; with a
    // hasher given (as the Ray driver gives a task), this process reads nothing of it.
    let shard_paths: Vec<std::path::PathBuf> = shards.iter().map(Into::into).collect();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let hasher = |job: &drift_merge::ZipHashJob| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(job.shards.len(), 3);
        drift_merge::hash_assembled_zip(job)
            .map(|hash| hash.sha256)
            .map_err(|e| e.to_string())
    };
    let summary = drift_merge::merge_with(
        &shard_paths,
        Some(Path::new("memory://sharded/merged-2")),
        false,
        &|_, _| {},
        Some(&hasher),
    )
    .unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(summary.hashed_bytes, 0);
    // A memory store copies no ranges: the shards' zip sections pass through this process.
    assert_eq!(summary.copied_bytes, 0);
    assert!(summary.downloaded_bytes >= summary.zip_bytes);
    let again = RemoteLocation::open("memory://sharded/merged-2").unwrap();
    for name in ["sampled_images.zip", "drift.json", "drift_log.parquet"] {
        let want = &local_files.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(
            again.get(name).unwrap().as_ref() == want.as_slice(),
            "{name}"
        );
    }

    // The no-merge layout: the shards listed in order, with their records' sizes and hashes,
    // which are those of the objects in the store.
    let mut args = vec!["drift-pipeline", "merge", "--index", "-q", "--output"];
    args.push("memory://sharded/index");
    args.extend(shards.iter().rev().map(String::as_str));
    assert_eq!(drift_pipeline_cli::main_with(args.clone()), 0);
    let index_location = RemoteLocation::open("memory://sharded/index").unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&index_location.get("shard-index.json").unwrap()).unwrap();
    let listed = index["segments"][0]["shards"].as_array().unwrap();
    assert_eq!(index["segments"][0]["samples"], 14);
    let mut next_id = 0;
    for (k, shard) in listed.iter().enumerate() {
        assert_eq!(shard["shard"], format!("{k}/3"));
        let output = shard["output"].as_str().unwrap();
        assert_eq!(output, format!("{}/segment-1", shards[k]));
        assert_eq!(shard["first_sample_id"], next_id);
        next_id = shard["last_sample_id"].as_u64().unwrap() + 1;
        let location = RemoteLocation::open(output).unwrap();
        for file in shard["files"].as_array().unwrap() {
            let bytes = location.get(file["name"].as_str().unwrap()).unwrap();
            let sha: String =
                sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes))
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
            assert_eq!(file["sha256"], sha);
            assert_eq!(file["bytes"], bytes.len());
        }
    }
    assert_eq!(next_id, 14);
    // Written once: a second index refuses to replace it.
    assert_ne!(drift_pipeline_cli::main_with(args), 0);

    // A shard zip edited in the store (same size, one byte changed) is caught by the hash
    // pass, and the output prefix is left with no output and nothing staged.
    let shard = RemoteLocation::open("memory://sharded/run/shard-1/segment-1").unwrap();
    let mut zip = shard.get("sampled_images.zip").unwrap().to_vec();
    zip[100] ^= 0xff;
    shard.put("sampled_images.zip", zip).unwrap();
    let error = drift_merge::merge(
        &shard_paths,
        Some(Path::new("memory://sharded/merged-3")),
        false,
        &|_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(&error, drift_merge::MergeError::ShardZipChanged { url, .. }
            if url.contains("shard-1")),
        "{error}"
    );
    let left = RemoteLocation::open("memory://sharded/merged-3")
        .unwrap()
        .list()
        .unwrap();
    assert!(
        left.iter().all(|o| o.key == ".drift-pipeline.lock"),
        "{left:?}"
    );
}

/// A stream continued from an output on a store, into a store, equals the local continuation;
/// `verify` checks an output on a store and finds a file edited there.
#[test]
fn a_stream_continues_from_a_store_and_verify_checks_one() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 5, 3, (24, 40)).unwrap();
    let input = input.to_str().unwrap();
    let run = |output: &str, from: Option<&str>| {
        let mut args = vec![
            "drift-pipeline",
            "generate",
            "--input",
            input,
            "--output",
            output,
            "--num-samples",
            "6",
            "--seed",
            "8",
            "--size",
            "20",
            "-q",
        ];
        if let Some(from) = from {
            args.extend(["--continue-from", from]);
        }
        drift_pipeline_cli::main_with(args)
    };
    let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
    assert_eq!(run(a.to_str().unwrap(), None), 0);
    assert_eq!(run(b.to_str().unwrap(), Some(a.to_str().unwrap())), 0);
    assert_eq!(run("memory://streams/a", None), 0);
    assert_eq!(run("memory://streams/b", Some("memory://streams/a")), 0);
    let store = RemoteLocation::open("memory://streams/b").unwrap();
    let mut remote = remote_files(&store);
    remote.retain(|(key, _)| !key.starts_with(".drift-pipeline"));
    let mut local = common::bytes_of(&b);
    local.retain(|(name, _)| !name.starts_with(".drift-pipeline"));
    assert_eq!(remote.len(), local.len());
    for ((name, got), (_, want)) in remote.iter().zip(&local) {
        if name != "drift.json" {
            assert!(got == want, "{name} differs from the local continuation");
        }
    }
    let as_json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    let remote_record = as_json(&remote.iter().find(|f| f.0 == "drift.json").unwrap().1);
    let local_record = as_json(&local.iter().find(|f| f.0 == "drift.json").unwrap().1);
    assert_eq!(remote_record["sample_id"], local_record["sample_id"]);
    assert_eq!(remote_record["sample_id"]["first"], 6);

    // The timeline of the two remote outputs is the local one's.
    let plot = |dirs: [&str; 2], name: &str| {
        let output = scratch.path().join(name);
        let args = ["drift-pipeline", "timeline", dirs[0], dirs[1], "--output"];
        let mut args = args.map(str::to_owned).to_vec();
        args.extend([
            output.to_str().unwrap().to_owned(),
            "--title".into(),
            "t".into(),
        ]);
        assert_eq!(drift_pipeline_cli::main_with(args), 0);
        std::fs::read(output.with_extension("svg")).unwrap()
    };
    assert_eq!(
        plot(["memory://streams/a", "memory://streams/b"], "remote.png"),
        plot([a.to_str().unwrap(), b.to_str().unwrap()], "local.png")
    );

    let verify = |url: &str| drift_pipeline_cli::main_with(["drift-pipeline", "verify", url]);
    assert_eq!(verify("memory://streams/b"), 0);
    store.put("target.parquet", b"edited".to_vec()).unwrap();
    assert_ne!(verify("memory://streams/b"), 0);
    assert_ne!(verify("memory://streams/none"), 0);
}

/// `detect` and `score` read their reference and stream outputs from a store (records, drift
/// logs and embeddings fetched and checked; no images): the same windows, alarms and scores as
/// from local copies of those outputs.
#[test]
fn detect_and_score_read_outputs_on_a_store() {
    let setup = common::WeightsSetup::new(12, 5, 11);
    let scenario = |root: &str, name: &str| {
        let path = setup.path(name);
        std::fs::write(
            &path,
            format!(
                "input = {:?}\nseed = 9\nembeddings = true\nweights = {:?}\nsize = \"32\"\n\n\
                 [[segment]]\nname = \"ref\"\noutput = \"{root}/ref\"\nsamples = 16\n\n\
                 [[segment]]\nname = \"noisy\"\noutput = \"{root}/noisy\"\nsamples = 16\n\
                 transforms = [\"gaussian_noise=0.8\"]\n",
                setup.input, setup.weights,
            ),
        )
        .unwrap();
        let args = ["drift-pipeline", "run", path.to_str().unwrap(), "--quiet"];
        assert_eq!(drift_pipeline_cli::main_with(args), 0);
    };
    let local = setup.path("local");
    scenario(local.to_str().unwrap(), "local.toml");
    scenario("memory://detect/outputs", "remote.toml");
    let detect = |root: &str, report: &Path| {
        let stream = format!("{root}/noisy");
        let args = args_of_detect(root, report.to_str().unwrap());
        assert_eq!(drift_pipeline_cli::main_with(args), 0, "detect from {root}");
        let score = report.with_file_name(format!(
            "{}-score",
            report.file_name().unwrap().to_str().unwrap()
        ));
        let args = [
            "drift-pipeline",
            "score",
            "--detections",
            report.to_str().unwrap(),
            "--output",
            score.to_str().unwrap(),
            "--stream",
            &stream,
        ];
        assert_eq!(drift_pipeline_cli::main_with(args), 0, "score from {root}");
        (report.to_owned(), score)
    };
    let (local_report, local_score) = detect(local.to_str().unwrap(), &setup.path("local-report"));
    let (remote_report, remote_score) =
        detect("memory://detect/outputs", &setup.path("remote-report"));
    // Every table and plot is the same; the JSON records differ in the folders' names only.
    for (a, b) in [
        (&local_report, &remote_report),
        (&local_score, &remote_score),
    ] {
        let mut compared = 0;
        for (name, bytes) in common::bytes_of(a) {
            if !name.starts_with('.') && !name.ends_with(".json") {
                assert!(
                    std::fs::read(b.join(&name)).unwrap() == bytes,
                    "{name} differs"
                );
                compared += 1;
            }
        }
        assert!(compared >= 2, "{} holds the tables", a.display());
    }
    let record = std::fs::read_to_string(remote_report.join("detect.json")).unwrap();
    assert!(
        record.contains("memory://detect/outputs/ref"),
        "the reference is named by its URL"
    );

    // The reports themselves written to a store: the same files, committed as a transaction.
    let args = args_of_detect("memory://detect/outputs", "memory://detect/report");
    assert_eq!(drift_pipeline_cli::main_with(args.clone()), 0);
    assert_ne!(
        drift_pipeline_cli::main_with(args),
        0,
        "an existing report is not replaced"
    );
    let stored = RemoteLocation::open("memory://detect/report").unwrap();
    let mut files = remote_files(&stored);
    files.retain(|(key, _)| !key.starts_with(".drift-pipeline"));
    let local_files: Vec<(String, Vec<u8>)> = common::bytes_of(&remote_report)
        .into_iter()
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    assert_eq!(files, local_files);

    // `score --detections` reads a report on a store: the tables of the local score.
    let args = [
        "drift-pipeline",
        "score",
        "--detections",
        "memory://detect/report",
        "--output",
        "memory://detect/score",
        "--stream",
        "memory://detect/outputs/noisy",
    ];
    assert_eq!(drift_pipeline_cli::main_with(args), 0);
    let scored: std::collections::BTreeMap<String, Vec<u8>> =
        remote_files(&RemoteLocation::open("memory://detect/score").unwrap())
            .into_iter()
            .collect();
    for (name, bytes) in common::bytes_of(&remote_score) {
        if name.ends_with(".parquet") {
            assert!(scored[&name] == bytes, "{name} differs");
        }
    }
    let record = String::from_utf8(scored["score.json"].clone()).unwrap();
    assert!(record.contains("memory://detect/report"), "{record}");

    // A user's alarm file on a store scores as the same file read locally.
    let files_location = RemoteLocation::open("memory://detect/files").unwrap();
    files_location
        .upload_file(&local_report.join("alarms.parquet"), "alarms.parquet")
        .unwrap();
    let score_alarms = |alarms: &str, output: &str| {
        let args = [
            "drift-pipeline",
            "score",
            "--alarms",
            alarms,
            "--output",
            output,
            "--stream",
            "memory://detect/outputs/noisy",
        ];
        assert_eq!(
            drift_pipeline_cli::main_with(args),
            0,
            "score --alarms {alarms}"
        );
    };
    let from_file = setup.path("score-from-file");
    score_alarms(
        local_report.join("alarms.parquet").to_str().unwrap(),
        from_file.to_str().unwrap(),
    );
    let from_store = setup.path("score-from-store");
    score_alarms(
        "memory://detect/files/alarms.parquet",
        from_store.to_str().unwrap(),
    );
    for (name, bytes) in common::bytes_of(&from_file) {
        if name.ends_with(".parquet") {
            assert!(
                std::fs::read(from_store.join(&name)).unwrap() == bytes,
                "{name}"
            );
        }
    }

    // `timeline` of outputs and a detect report on a store, plotted to a store: the plots of
    // the local outputs and report.
    let plot = |root: &str, report: &str, output: &str| {
        let (reference, stream) = (format!("{root}/ref"), format!("{root}/noisy"));
        let args = [
            "drift-pipeline",
            "timeline",
            &reference,
            &stream,
            "--detections",
            report,
            "--output",
            output,
        ];
        assert_eq!(drift_pipeline_cli::main_with(args), 0, "timeline of {root}");
    };
    let local_plot = setup.path("timeline");
    plot(
        local.to_str().unwrap(),
        local_report.to_str().unwrap(),
        local_plot.to_str().unwrap(),
    );
    plot(
        "memory://detect/outputs",
        "memory://detect/report",
        "memory://detect/plots/timeline",
    );
    let plots = RemoteLocation::open("memory://detect/plots").unwrap();
    for extension in ["png", "svg"] {
        let stored = plots.get(&format!("timeline.{extension}")).unwrap();
        let want = std::fs::read(local_plot.with_extension(extension)).unwrap();
        assert!(stored.as_ref() == want.as_slice(), "timeline.{extension}");
    }

    // Shard reports on a store merge into the one-process report, on the store.
    let mut shards = Vec::new();
    for k in 0..2 {
        let shard = format!("memory://detect/shards/{k}");
        let part = format!("{k}/2");
        let mut args = args_of_detect("memory://detect/outputs", &shard);
        args.extend(["--shard".to_owned(), part]);
        assert_eq!(drift_pipeline_cli::main_with(args), 0);
        shards.push(shard);
    }
    let mut args = vec![
        "drift-pipeline",
        "merge",
        "--output",
        "memory://detect/merged",
    ];
    args.extend(shards.iter().rev().map(String::as_str));
    assert_eq!(drift_pipeline_cli::main_with(args), 0);
    let mut merged = remote_files(&RemoteLocation::open("memory://detect/merged").unwrap());
    merged.retain(|(key, _)| !key.starts_with(".drift-pipeline"));
    assert!(
        merged == files,
        "the merged report is the one-process report"
    );
}

/// `detect`'s arguments for the outputs below `root`, into `output`.
fn args_of_detect(root: &str, output: &str) -> Vec<String> {
    [
        "drift-pipeline",
        "detect",
        "--reference",
        &format!("{root}/ref"),
        "--stream",
        &format!("{root}/noisy"),
        "--output",
        output,
        "--window",
        "8",
        "--detector",
        "mmd",
        "--detector",
        "ks",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `evaluate` sweeps a dataset on a store into a report on a store: the same report as a local
/// sweep of a local copy.
#[test]
fn evaluate_from_and_to_a_store_equals_a_local_sweep() {
    let setup = common::WeightsSetup::new(4, 6, 12);
    let dataset = RemoteLocation::open("memory://evaluate/dataset").unwrap();
    upload(&setup.input, &dataset);
    // The weights too are read from a store in the stored sweep.
    let weights = RemoteLocation::open("memory://evaluate/weights").unwrap();
    weights
        .upload_file(&setup.weights, "test-weights.safetensors")
        .unwrap();
    let weights_url = "memory://evaluate/weights/test-weights.safetensors";
    // A sweep (a shard of one with `shard`); outputs on the store read the weights there too.
    let sweep_shard = |input: &str, output: &str, shard: Option<&str>| {
        let weights = match output.starts_with("memory://") {
            true => weights_url,
            false => setup.weights.to_str().unwrap(),
        };
        let mut args = vec![
            "drift-pipeline",
            "evaluate",
            "--input",
            input,
            "--output",
            output,
            "--weights",
            weights,
            "--size",
            "32",
            "--batch-size",
            "4",
            "--seed",
            "3",
            "--transform",
            "rotate",
            "--levels",
            "0.3,0.9",
            "--quiet",
        ];
        if let Some(shard) = shard {
            args.extend(["--shard", shard]);
        }
        assert_eq!(
            drift_pipeline_cli::main_with(args),
            0,
            "evaluate {input} -> {output}"
        );
    };
    let sweep = |input: &str, output: &str| sweep_shard(input, output, None);
    let local = setup.path("local-report");
    sweep(setup.input.to_str().unwrap(), local.to_str().unwrap());
    sweep("memory://evaluate/dataset", "memory://evaluate/report");
    let stored = RemoteLocation::open("memory://evaluate/report").unwrap();
    let stored: std::collections::BTreeMap<String, Vec<u8>> = remote_files(&stored)
        .into_iter()
        .filter(|(key, _)| !key.starts_with(".drift-pipeline"))
        .collect();
    let mut compared = 0;
    for (name, bytes) in common::bytes_of(&local) {
        if name.starts_with('.')
            || name.ends_with(".json")
            || name.ends_with(".png")
            || name.ends_with(".svg")
        {
            assert!(stored.contains_key(&name), "{name} is in the stored report");
            continue;
        }
        assert!(stored[&name] == bytes, "{name} differs");
        compared += 1;
    }
    assert!(compared >= 2, "kl.parquet and summary.csv compared");
    let record = String::from_utf8(stored["evaluation.json"].clone()).unwrap();
    assert!(record.contains("test-weights.safetensors"), "{record}");

    // A sweep's shard reports on a store merge into the one-process report, on the store.
    let shard_sweep = |k: usize| {
        let output = format!("memory://evaluate/shards/{k}");
        let part = format!("{k}/2");
        sweep_shard("memory://evaluate/dataset", &output, Some(&part));
        output
    };
    let shards = [shard_sweep(0), shard_sweep(1)];
    let args = [
        "drift-pipeline",
        "merge",
        "--output",
        "memory://evaluate/merged",
        &shards[1],
        &shards[0],
    ];
    assert_eq!(drift_pipeline_cli::main_with(args), 0);
    let merged: std::collections::BTreeMap<String, Vec<u8>> =
        remote_files(&RemoteLocation::open("memory://evaluate/merged").unwrap())
            .into_iter()
            .filter(|(key, _)| !key.starts_with(".drift-pipeline"))
            .collect();
    assert_eq!(
        merged.keys().collect::<Vec<_>>(),
        stored.keys().collect::<Vec<_>>()
    );
    for name in ["kl.parquet", "summary.csv", "evaluation.json"] {
        assert!(
            merged[name] == stored[name],
            "{name} differs from one process's"
        );
    }
}
