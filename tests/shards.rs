//! Shards, dataset manifests and merge, through the binary: a run made as shards and merged is
//! the same bytes as one process's, and every way of getting it wrong is refused.

mod common;

use std::path::{Path, PathBuf};

use common::{WeightsSetup, bytes_of, listing};

/// A demo dataset with two unreadable images, seeded weights, and a three-segment scenario
/// (clean; label shift with noise; a gradual blur) that skips bad images and embeds.
struct ShardSetup {
    setup: WeightsSetup,
    scenario: PathBuf,
}

impl ShardSetup {
    fn new() -> Self {
        let setup = WeightsSetup::new(10, 3, 11);
        std::fs::write(setup.input.join("forest/zz_bad.png"), "not a png").unwrap();
        std::fs::write(setup.input.join("sky/aa_bad.jpg"), "not a jpeg").unwrap();
        let scenario = setup.path("scenario.toml");
        let text = format!(
            "input = {input:?}\nseed = 5\nsize = \"32\"\nskip_bad_images = true\n\
             embeddings = true\nweights = {weights:?}\nbatch_size = 3\n\n\
             [[segment]]\nname = \"clean\"\nsamples = 10\noutput = \"out/clean\"\n\n\
             [[segment]]\nname = \"shift\"\nsamples = 9\noutput = \"out/shift\"\n\
             transforms = [\"gaussian_noise=0.5\"]\n\
             class_weights = {{ forest = 3.0, sky = 1.0, city_night = 1.0, sunset = 1.0 }}\n\n\
             [[segment]]\nname = \"blur\"\nsamples = 11\noutput = \"out/blur\"\n\
             transforms = [\"gaussian_blur=0.5\"]\ndrift = \"gradual:width=6\"\n",
            input = setup.input,
            weights = setup.weights,
        );
        std::fs::write(&scenario, text).unwrap();
        Self { setup, scenario }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.setup.path(name)
    }

    /// `index --verify` of the dataset into `manifest.parquet`: the manifest's path.
    fn index(&self) -> PathBuf {
        let manifest = self.path("manifest.parquet");
        let out = self.setup.succeeds(&[
            "index",
            Self::arg(&self.setup.input),
            "--output",
            Self::arg(&manifest),
            "--verify",
        ]);
        assert!(
            out.contains("42 images in 4 classes, 2 do not decode"),
            "{out}"
        );
        manifest
    }

    fn arg(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    /// `run --shard K/N --output DIR --manifest FILE`.
    fn run_shard(&self, shard: &str, folder: &Path, manifest: &Path) -> std::process::Output {
        self.setup.run(&[
            "run",
            Self::arg(&self.scenario),
            "--shard",
            shard,
            "--output",
            Self::arg(folder),
            "--manifest",
            Self::arg(manifest),
            "-q",
        ])
    }
}

/// The unsharded scenario's three segment folders, moved to `whole/`.
fn run_whole(s: &ShardSetup) -> PathBuf {
    s.setup
        .succeeds(&["run", ShardSetup::arg(&s.scenario), "-q"]);
    let whole = s.path("whole");
    std::fs::rename(s.path("out"), &whole).unwrap();
    whole
}

#[test]
fn a_sharded_scenario_merged_is_byte_identical_to_one_process() {
    let s = ShardSetup::new();
    let whole = run_whole(&s);
    let manifest = s.index();
    // The manifest, read by the parquet crate: one row per image, the two bad ones marked.
    let rows = common::read_manifest_rows(&manifest);
    assert_eq!(rows.len(), 42);
    let bad: Vec<&str> = rows
        .iter()
        .filter(|(_, decodes)| !decodes)
        .map(|(path, _)| path.as_str())
        .collect();
    assert_eq!(bad, ["forest/zz_bad.png", "sky/aa_bad.jpg"]);

    // Shards in any order, on their own.
    let shards: Vec<PathBuf> = (0..3).map(|k| s.path(&format!("shard-{k}"))).collect();
    for k in [2, 0, 1] {
        let out = s.run_shard(&format!("{k}/3"), &shards[k], &manifest);
        common::assert_succeeds(&["run", "--shard"], &out);
        assert_eq!(listing(&shards[k]), ["segment-1", "segment-2", "segment-3"]);
    }
    let mut args = vec!["merge", "-q"];
    args.extend(shards.iter().rev().map(|p| ShardSetup::arg(p)));
    let out = s.setup.succeeds(&args);
    assert!(out.contains("merged 9 samples into"), "{out}");
    for segment in ["clean", "shift", "blur"] {
        let merged = s.path("out").join(segment);
        let expected = bytes_of(&whole.join(segment));
        assert_eq!(expected.len(), 6, "embeddings included");
        for ((name, want), (got_name, got)) in expected.iter().zip(bytes_of(&merged)) {
            assert_eq!(*name, got_name);
            assert!(
                *want == got,
                "{segment}/{name} differs from the one-process run"
            );
        }
    }
    // The one bad image the blur segment met is skipped in the merged record as in the whole.
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.path("out").join("blur").join("drift.json")).unwrap(),
    )
    .unwrap();
    assert!(record.get("shard").is_none());
    s.setup
        .succeeds(&["verify", ShardSetup::arg(&s.path("out").join("blur"))]);

    // Shards that say they embedded on another CPU kind: merged all the same, with a warning
    // (the kind is not part of the settings hash; drift.json is the marker, not a listed file).
    let record_path = shards[1].join("segment-1").join("drift.json");
    let text = std::fs::read_to_string(&record_path).unwrap();
    let cpu = format!("\"cpu\": \"{}\"", drift_pipeline::cpu_kind());
    assert!(text.contains(&cpu), "the shard records its CPU kind");
    std::fs::write(
        &record_path,
        text.replace(&cpu, "\"cpu\": \"x86_64 AVX2+FMA (another)\""),
    )
    .unwrap();
    let mut args = vec!["merge", "--overwrite"];
    args.extend(shards.iter().map(|p| ShardSetup::arg(p)));
    let out = s.setup.run(&args);
    let stderr = common::succeeds_with_stderr(&args, &out);
    assert!(
        stderr.contains("shards embedded on different CPU kinds or devices"),
        "{stderr}"
    );

    // A shard's output is not a stream to continue.
    let shard_segment = shards[0].join("segment-1");
    s.setup.fails(
        &[
            "generate",
            "--continue-from",
            ShardSetup::arg(&shard_segment),
            "--output",
            ShardSetup::arg(&s.path("cont")),
            "--num-samples",
            "2",
        ],
        "one shard of a run",
    );
}

#[test]
fn merge_refuses_missing_duplicated_and_foreign_shards_and_writes_nothing() {
    let s = ShardSetup::new();
    let manifest = s.index();
    let shards: Vec<PathBuf> = (0..3).map(|k| s.path(&format!("shard-{k}"))).collect();
    for (k, folder) in shards.iter().enumerate() {
        common::assert_succeeds(
            &["shard"],
            &s.run_shard(&format!("{k}/3"), folder, &manifest),
        );
    }
    let a = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let merge = |folders: &[&PathBuf], needle: &str| {
        let mut args = vec!["merge".to_owned()];
        args.extend(folders.iter().map(|p| a(p)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        s.setup.fails(&args, needle);
        assert!(!s.path("out").exists(), "a refused merge writes nothing");
    };
    merge(
        &[&shards[0], &shards[2]],
        "shard 1/3 (segment 1) is missing",
    );
    merge(
        &[&shards[0], &shards[1], &shards[1], &shards[2]],
        "is given twice",
    );
    // The same shard of another run (another seed) is foreign.
    let text = std::fs::read_to_string(&s.scenario).unwrap();
    std::fs::write(&s.scenario, text.replace("seed = 5", "seed = 6")).unwrap();
    let foreign = s.path("foreign");
    common::assert_succeeds(&["foreign"], &s.run_shard("1/3", &foreign, &manifest));
    merge(
        &[&shards[0], &foreign, &shards[2]],
        "is not of the same run as",
    );
    // A folder that holds no shard.
    merge(&[&s.setup.input], "holds no shard output");
    // One-segment runs merge into --output; a scenario's segments go to their own folders.
    s.setup.fails(
        &[
            "merge",
            &a(&shards[0]),
            &a(&shards[1]),
            &a(&shards[2]),
            "--output",
            &a(&s.path("x")),
        ],
        "leave out --output",
    );
}

#[test]
fn a_shard_refuses_to_start_on_a_changed_dataset_or_without_what_it_needs() {
    let s = ShardSetup::new();
    let manifest = s.index();
    // Skipping bad images needs a verified manifest; one without --verify is not enough.
    let shard = s.path("shard");
    s.setup.fails(
        &[
            "run",
            ShardSetup::arg(&s.scenario),
            "--shard",
            "0/3",
            "--output",
            ShardSetup::arg(&shard),
        ],
        "give a dataset manifest made with verification (`drift-pipeline index --verify` makes one: give it with --manifest)",
    );
    s.setup.fails(
        &[
            "run",
            ShardSetup::arg(&s.scenario),
            "--shard",
            "3/3",
            "--output",
            "x",
        ],
        "shards count from 0 to 2",
    );
    // A manifest that is missing, or a Parquet file that is not one, is named with its flag.
    let missing = s.path("missing.parquet");
    let fails_with_manifest = |manifest: &Path, needle: &str| {
        s.setup.fails(
            &[
                "generate",
                "--input",
                ShardSetup::arg(&s.setup.input),
                "--output",
                ShardSetup::arg(&s.path("m-out")),
                "--num-samples",
                "3",
                "--manifest",
                ShardSetup::arg(manifest),
            ],
            needle,
        );
    };
    fails_with_manifest(&missing, "--manifest: dataset manifest");
    s.setup.succeeds(&[
        "generate",
        "--input",
        ShardSetup::arg(&s.setup.input),
        "--output",
        ShardSetup::arg(&s.path("plain")),
        "--num-samples",
        "3",
        "--skip-bad-images",
    ]);
    fails_with_manifest(
        &s.path("plain").join("target.parquet"),
        "not a dataset manifest",
    );
    // Every image grows by a byte: whichever files the shard reads have changed.
    for class in listing(&s.setup.input) {
        for name in listing(&s.setup.input.join(&class)) {
            let path = s.setup.input.join(&class).join(name);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.push(0);
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let out = s.run_shard("1/3", &shard, &manifest);
    common::assert_fails_cleanly(
        &["run", "--shard"],
        &out,
        "changed since the dataset's manifest",
    );
    let leftovers: Vec<String> = match shard.exists() {
        true => listing(&shard)
            .into_iter()
            .flat_map(|segment| listing(&shard.join(segment)))
            .filter(|name| !name.starts_with('.'))
            .collect(),
        false => Vec::new(),
    };
    assert!(leftovers.is_empty(), "nothing written: {leftovers:?}");
}

#[test]
fn generate_shards_merge_into_output_byte_identical() {
    let setup = WeightsSetup::new(6, 9, 1);
    let input = setup.input.to_str().unwrap().to_owned();
    let base = [
        "generate",
        "--input",
        &input,
        "--num-samples",
        "17",
        "--size",
        "24",
        "--transform",
        "rotate=0.4",
        "--drift",
        "incremental:from=0,to=1",
        "-q",
    ];
    let whole = setup.path("whole");
    let mut args = base.to_vec();
    args.extend(["--output", whole.to_str().unwrap()]);
    setup.succeeds(&args);
    let mut folders = Vec::new();
    for k in 0..4 {
        let folder = setup.path(&format!("s{k}"));
        let shard = format!("{k}/4");
        let mut args = base.to_vec();
        args.extend(["--output", folder.to_str().unwrap(), "--shard", &shard]);
        setup.succeeds(&args);
        folders.push(folder.to_str().unwrap().to_owned());
    }
    let merged = setup.path("merged");
    let mut args = vec!["merge", "-q", "--output", merged.to_str().unwrap()];
    args.extend(folders.iter().map(String::as_str));
    setup.succeeds(&args);
    assert_eq!(bytes_of(&whole), bytes_of(&merged));
    // Without --output the merge would go into the first shard's own folder: refused.
    let mut args = vec!["merge"];
    args.extend(folders.iter().map(String::as_str));
    setup.fails(&args, "give --output");
}

#[test]
fn evaluate_shards_merge_into_the_one_process_report_byte_for_byte() {
    let setup = WeightsSetup::new(6, 4, 2);
    let base = |out: &Path| -> Vec<String> {
        [
            "evaluate",
            "--input",
            setup.input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--weights",
            setup.weights.to_str().unwrap(),
            "--size",
            "32",
            "--batch-size",
            "4",
            "--num-samples",
            "22",
            "--transform",
            "gaussian_blur",
            "--levels",
            "0.2,0.6,1.0",
            "-q",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let whole = setup.path("whole");
    setup.succeeds(&strs(&base(&whole)));
    // 22 images in batches of 4: 6 batches per level (the last of 2), in 3 shards.
    let mut shards = Vec::new();
    for k in [1, 0, 2] {
        let folder = setup.path(&format!("report-{k}"));
        let mut args = base(&folder);
        args.extend(["--shard".to_owned(), format!("{k}/3")]);
        setup.succeeds(&strs(&args));
        assert_eq!(listing(&folder), ["evaluation.json", "kl.parquet"]);
        shards.push(folder.to_str().unwrap().to_owned());
    }
    let merged = setup.path("merged");
    let mut args = vec!["merge", "--output", merged.to_str().unwrap()];
    args.extend(shards.iter().map(String::as_str));
    let out = setup.succeeds(&args);
    assert!(out.contains("3 levels x 6 batches"), "{out}");
    let (want, got) = (bytes_of(&whole), bytes_of(&merged));
    assert_eq!(want.len(), 7);
    for ((name, a), (_, b)) in want.iter().zip(&got) {
        assert!(a == b, "{name} differs from the one-process report");
    }
    // A missing shard report is refused.
    let missing = setup.path("missing");
    setup.fails(
        &[
            "merge",
            "--output",
            missing.to_str().unwrap(),
            &shards[0],
            &shards[1],
        ],
        "is missing",
    );
    assert!(!missing.join("kl.parquet").exists());
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
