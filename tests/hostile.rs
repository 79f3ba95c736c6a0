//! Files planted or edited on disk, through the binary: what the tool finds in an output folder,
//! a dataset or a record is trusted only as far as it checks it. Each test plants one hostile
//! file and checks that the run refuses it by name, and that nothing outside the output folder
//! (or inside the input) changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const LOCK: &str = ".drift-pipeline.lock";
const STAGING: &str = ".drift-pipeline.staging";

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A scratch folder with a small demo dataset in `in/`.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    drift_pipeline_cli::demo::write_dataset_sized(&input, 6, 3, (24, 32)).unwrap();
    (scratch, input)
}

fn generate(input: &Path, output: &Path, samples: u64) -> Vec<String> {
    [
        "generate",
        "--input",
        s(input),
        "--output",
        s(output),
        "--num-samples",
        &samples.to_string(),
        "--size",
        "16",
        "-q",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn run(args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    drift_pipeline(&args)
}

fn ok(args: &[String]) -> String {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    succeeds(&refs)
}

fn fails(args: &[String], needle: &str) -> String {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_fails_cleanly(&refs, &run(args), needle)
}

/// Every file under `root` but those under `except`, with a hash of its bytes, to show that
/// nothing changed.
fn snapshot(root: &Path, except: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<_> = walk(root)
        .into_iter()
        .filter(|path| !path.starts_with(except))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let hash = drift_core::sha256_hex(&bytes[..]).unwrap();
            (path, hash)
        })
        .collect();
    files.sort();
    files
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_planted_commit_plan_cannot_reach_outside_the_output_folder() {
    let (scratch, input) = scratch();
    let victim = scratch.path().join("victim.txt");
    std::fs::write(&victim, b"keep me").unwrap();
    let absolute = scratch.path().join("absolute.txt");
    std::fs::write(&absolute, b"keep me too").unwrap();
    for name in ["../victim.txt", s(&absolute)] {
        let output = scratch.path().join("out");
        let _ = std::fs::remove_dir_all(&output);
        let staging = output.join(STAGING);
        std::fs::create_dir_all(&staging).unwrap();
        // A plan that decides a commit: remove (or install) a file outside the folder.
        let plan = serde_json::json!({"install": [name], "marker": "drift.json", "remove": [name]});
        std::fs::write(staging.join("COMMIT"), plan.to_string()).unwrap();
        std::fs::write(staging.join("drift.json"), b"{}").unwrap();
        let before = snapshot(scratch.path(), &output);
        let stderr = fails(&generate(&input, &output, 4), "not a plain file name");
        assert!(stderr.contains(name), "{stderr}");
        assert_eq!(
            snapshot(scratch.path(), &output),
            before,
            "{name}: something outside the output changed"
        );
        // Nothing of the plan was applied: the staged files are where they were.
        assert!(staging.join("COMMIT").exists() && staging.join("drift.json").exists());
        assert!(!output.join("drift.json").exists());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(std::fs::read(&absolute).unwrap(), b"keep me too");
    }
}

#[test]
fn a_symlinked_lock_file_is_refused_and_its_target_untouched() {
    let (scratch, input) = scratch();
    let victim = scratch.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let output = scratch.path().join("out");
    std::fs::create_dir_all(&output).unwrap();
    std::os::unix::fs::symlink(&victim, output.join(LOCK)).unwrap();
    fails(&generate(&input, &output, 4), "symlink");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!output.join("drift.json").exists());
}

#[test]
fn a_class_folder_that_is_a_symlink_keeps_outputs_out_of_the_dataset() {
    let (scratch, input) = scratch();
    // The class folder `linked` is a symlink to a folder outside the dataset root.
    let elsewhere = scratch.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let first_class = walk(&input)[0].parent().unwrap().to_owned();
    for image in walk(&first_class).into_iter().take(3) {
        std::fs::copy(&image, elsewhere.join(image.file_name().unwrap())).unwrap();
    }
    std::os::unix::fs::symlink(&elsewhere, input.join("linked")).unwrap();
    let output = elsewhere.join("out");
    let before = snapshot(&elsewhere, &output);
    fails(&generate(&input, &output, 4), "class folder (a symlink)");
    let weights = scratch.path().join("w.safetensors");
    drift_embedder::write_synthetic_weights(3, &weights).unwrap();
    let evaluate = [
        "evaluate",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--weights",
        s(&weights),
        "--num-samples",
        "4",
        "--size",
        "32",
        "--transform",
        "gaussian_blur",
        "--levels",
        "0.5",
        "-q",
    ]
    .map(str::to_owned);
    fails(&evaluate, "class folder (a symlink)");
    assert_eq!(snapshot(&elsewhere, &output), before, "the dataset changed");
    assert!(!output.exists(), "{} was created", output.display());
}

/// Runs the binary; it must end within `limit`, else it is killed and the test fails.
fn ends_within(args: &[String], limit: Duration) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drift-pipeline"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            eprintln!("{args:?} ended after {:?}", started.elapsed());
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{args:?} still ran after {limit:?} (blocked on a special file?)");
}

#[test]
fn fifos_and_devices_where_metadata_is_expected_are_refused_at_once() {
    let (scratch, input) = scratch();
    let fifo = scratch.path().join("scenario.toml");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|status| status.success()) {
        not_exercised("mkfifo is not available");
        return;
    }
    let second = Duration::from_secs(5);
    let out = ends_within(&["run".into(), s(&fifo).into(), "-q".into()], second);
    assert_fails_cleanly(&["run"], &out, "a FIFO");
    let out = ends_within(&["run".into(), "/dev/zero".into(), "-q".into()], second);
    assert_fails_cleanly(&["run"], &out, "character device");
    // A drift.json that is a FIFO, or /dev/zero through a symlink: verify and --continue-from.
    let output = scratch.path().join("out");
    ok(&generate(&input, &output, 4));
    std::fs::remove_file(output.join("drift.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", output.join("drift.json")).unwrap();
    let out = ends_within(&["verify".into(), s(&output).into()], second);
    assert_fails_cleanly(&["verify"], &out, "character device");
    let mut args = generate(&input, &scratch.path().join("next"), 2);
    args.extend(["--continue-from".into(), s(&output).into()]);
    let out = ends_within(&args, second);
    assert_fails_cleanly(&["generate"], &out, "character device");
    std::fs::remove_file(output.join("drift.json")).unwrap();
    Command::new("mkfifo")
        .arg(output.join("drift.json"))
        .status()
        .unwrap();
    let out = ends_within(&["verify".into(), s(&output).into()], second);
    assert_fails_cleanly(&["verify"], &out, "a FIFO");
    // A staged COMMIT that is a FIFO: the next run into the folder refuses it.
    let staged = scratch.path().join("staged");
    std::fs::create_dir_all(staged.join(STAGING)).unwrap();
    Command::new("mkfifo")
        .arg(staged.join(STAGING).join("COMMIT"))
        .status()
        .unwrap();
    let out = ends_within(&generate(&input, &staged, 2), second);
    assert_fails_cleanly(&["generate"], &out, "a FIFO");
}

#[test]
fn an_edited_stream_record_is_refused_by_the_outputs_own_tables() {
    let (scratch, input) = scratch();
    let first = scratch.path().join("first");
    let second = scratch.path().join("second");
    ok(&generate(&input, &first, 5));
    let mut args = generate(&input, &second, 5);
    args.extend(["--continue-from".into(), s(&first).into()]);
    ok(&args);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(second.join("drift.json")).unwrap()).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 3] = [
        // The first call dropped: the stream would restart at sample 5 with used images.
        ("drift log holds samples 5 to 9", |r| {
            r["stream"]["calls"].as_array_mut().unwrap().remove(0);
        }),
        // Another seed: another permutation, other file names.
        ("replaying its stream record gives", |r| {
            r["seed"] = serde_json::json!(7);
        }),
        // A call's candidates moved: the ids still fit, the images do not.
        ("replaying its stream record gives", |r| {
            r["stream"]["calls"][0]["candidates"] = serde_json::json!(6);
        }),
    ];
    for (needle, edit) in edits {
        let mut edited = record.clone();
        edit(&mut edited);
        std::fs::write(
            second.join("drift.json"),
            serde_json::to_string_pretty(&edited).unwrap(),
        )
        .unwrap();
        let third = scratch.path().join("third");
        let mut args = generate(&input, &third, 2);
        args.extend(["--continue-from".into(), s(&second).into()]);
        let stderr = fails(&args, needle);
        assert!(stderr.contains("edited"), "{stderr}");
        assert!(!third.join("drift.json").exists());
    }
}

#[test]
fn verify_trusts_no_listed_name_and_says_what_it_found() {
    let (scratch, input) = scratch();
    let output = scratch.path().join("out");
    ok(&generate(&input, &output, 4));
    let text = std::fs::read_to_string(output.join("drift.json")).unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
    for name in ["../x", "/etc/hostname"] {
        record["files"][0]["name"] = serde_json::json!(name);
        std::fs::write(output.join("drift.json"), record.to_string()).unwrap();
        let out = drift_pipeline(&["verify", s(&output)]);
        let stderr = assert_fails_cleanly(&["verify"], &out, "not a plain file name");
        assert!(stderr.contains(name), "{stderr}");
    }
    std::fs::write(output.join("drift.json"), &text).unwrap();
    succeeds(&["verify", s(&output)]);
    // A regular file is not an output folder (and nothing is written to find that out).
    let file = output.join("drift.json");
    let out = drift_pipeline(&["verify", s(&file)]);
    let stderr = assert_fails_cleanly(&["verify"], &out, "is not a folder");
    assert!(!stderr.contains("cannot write"), "{stderr}");
    // While a writer holds the folder, verify says a run is at work (not that one died).
    let held = drift_writer::OutputFolder::lock(&output, &drift_writer::OUTPUT_FILES).unwrap();
    let out = drift_pipeline(&["verify", s(&output)]);
    let stderr = assert_fails_cleanly(&["verify"], &out, "a run is writing it now");
    assert!(!stderr.contains("died"), "{stderr}");
    drop(held);
    succeeds(&["verify", s(&output)]);
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let (scratch, input) = scratch();
    let output = scratch.path().join("out");
    let args = generate(&input, &output, 4);
    let scenario = scratch.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        format!(
            "input = {:?}\nsize = \"16\"\n[[segment]]\nsamples = 3\noutput = {:?}\n",
            s(&input),
            s(&scratch.path().join("run"))
        ),
    )
    .unwrap();
    let weights = scratch.path().join("w.safetensors");
    drift_embedder::write_synthetic_weights(5, &weights).unwrap();
    let report = scratch.path().join("report");
    let evaluate = [
        "evaluate",
        "--input",
        s(&input),
        "--output",
        s(&report),
        "--weights",
        s(&weights),
        "--transform",
        "hue",
        "--levels",
        "0.5",
        "--num-samples",
        "4",
        "--size",
        "32",
    ];
    for args in [
        vec!["inspect".to_owned(), s(&input).to_owned()],
        args.iter().filter(|a| *a != "-q").cloned().collect(),
        vec!["run".to_owned(), s(&scenario).to_owned()],
        evaluate.map(str::to_owned).to_vec(),
        vec!["verify".to_owned(), s(&output).to_owned()],
        vec!["weights".to_owned(), "list".to_owned()],
    ] {
        // A pipe whose reader is gone before the command writes: every write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_drift-pipeline"))
            .args(&args)
            .env("DRIFT_PIPELINE_CACHE", scratch.path().join("cache"))
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    // The work was done before the output was closed: the outputs are complete.
    assert!(output.join("drift.json").exists());
    assert!(scratch.path().join("run").join("drift.json").exists());
    assert!(
        scratch
            .path()
            .join("report")
            .join("evaluation.json")
            .exists()
    );
}

#[test]
fn names_that_cannot_be_recorded_or_extracted_safely_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let (scratch, input) = scratch();
    // Two files whose names differ only in invalid UTF-8 would both be logged as `x\u{FFFD}y`.
    let class = walk(&input)[0].parent().unwrap().to_owned();
    let image = walk(&class)[0].clone();
    let odd = class.join(std::ffi::OsStr::from_bytes(b"x\xffy.png"));
    std::fs::copy(&image, &odd).unwrap();
    fails(
        &generate(&input, &scratch.path().join("a"), 2),
        "not valid UTF-8",
    );
    std::fs::remove_file(&odd).unwrap();
    // A class folder whose name is a path on Windows: refused as a zip folder.
    let evil = input.join("w\\..\\..\\evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::copy(&image, evil.join("a.png")).unwrap();
    let mut args = generate(&input, &scratch.path().join("b"), 2);
    args.push("--organize-by-class".into());
    fails(&args, "a backslash is a separator on Windows");
    assert!(!scratch.path().join("b").join("sampled_images.zip").exists());
}

#[test]
fn an_output_inside_another_outputs_staging_folder_is_refused() {
    let (scratch, input) = scratch();
    let other = scratch.path().join("other");
    std::fs::create_dir_all(other.join(STAGING)).unwrap();
    let output = other.join(STAGING).join("mine");
    fails(&generate(&input, &output, 2), "staging folder");
    assert!(!output.exists());
}

#[test]
fn a_refused_shard_run_leaves_no_folder_behind() {
    let (scratch, input) = scratch();
    let shard = scratch.path().join("shard");
    let mut args = generate(&input, &shard, 2);
    args.extend(["--shard".into(), "0/3".into()]);
    fails(&args, "fewer than the 3 shards");
    assert!(!shard.exists(), "{} was created", shard.display());
}

#[test]
fn negative_numbers_name_their_flag() {
    let (scratch, input) = scratch();
    let output = scratch.path().join("out");
    let mut args = generate(&input, &output, 2);
    let at = args.iter().position(|a| a == "--num-samples").unwrap();
    args[at + 1] = "-1".into();
    fails(&args, "'--num-samples <N>'");
    let mut args = generate(&input, &output, 2);
    args.extend(["--seed".into(), "-1".into()]);
    fails(&args, "'--seed <SEED>'");
}
