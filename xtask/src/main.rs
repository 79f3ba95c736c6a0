//! Project automation, run as `cargo xtask <task>`.
//!
//! - `test`: prepares the Python readers used by the output check (a venv with the pinned
//!   packages of `tools/check/requirements.txt`), then runs the whole test suite with them.
//!   This is the README's test command and what CI runs. The tests are built with the GPU
//!   path (wgpu); its parity test runs when DRIFT_TEST_GPU is set, which CI does. Without extra
//!   arguments it then installs the Python package (`pip install .`, built with the dev
//!   profile so that it reuses the test build's compiled dependencies) into a venv of its own
//!   with `python/tests/requirements.txt`, and runs its pytest suite.
//! - `bench [--images N] [--input DIR] [--json FILE]`: images/s of each stage, built in release,
//!   with the machine (cores, CPU) and git commit; end-to-end runs with CPU use, peak RSS and
//!   the busiest stage.
//! - `bench-dataset DIR [IMAGES]`: writes the bench's generated input (1024 images by default)
//!   to DIR, and `bench-generate --input DIR --output DIR --samples N [--drift LIST] [--weights
//!   FILE]` runs one of its end-to-end rows: to profile a run by hand.
//! - `tidy`: checks the promises of ARCHITECTURE.md against the code (stage crates depend only
//!   on drift-core and engine crates, confined libraries stay in their crates, no
//!   arrow/parquet/zip type in the writer's API, every registered transform has a README row and
//!   golden tests, the code map's paths exist, the crate graph matches `cargo metadata`, every
//!   source file has a module doc) and prints each crate's longest function. CI runs it.
//! - `test-weights FILE [--seed N]`: writes seeded random ResNet18 weights (safetensors, with
//!   torchvision's names), the input of `tools/golden/make_embedding_golden.py`.

mod bench;
mod long_stream;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask test [extra cargo test arguments] | cargo xtask tidy | cargo xtask bench [--images N] [--input DIR] [--json FILE] | cargo xtask bench-dataset DIR [IMAGES] | cargo xtask test-weights FILE [--seed N] | cargo xtask long-stream [--samples N] [--reference N] [--window N] [--detector SPEC]... [--threads N] [--dir DIR]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `test` passes its arguments on to cargo test, which has its own --help.
    if args.first().is_some_and(|command| command != "test")
        && args.iter().any(|arg| arg == "--help" || arg == "-h")
    {
        println!("{USAGE}");
        return Ok(());
    }
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        // Timed commands re-run this binary in release so that the timed code is optimised.
        Some("bench") => in_release("bench-release", &args[1..]),
        Some("bench-release") => bench::run(&args[1..]),
        // The issue's long-stream detect run (see long_stream.rs).
        Some("long-stream") => in_release("long-stream-release", &args[1..]),
        Some("long-stream-release") => long_stream::run(&args[1..], &workspace_root()),
        Some("long-stream-detect") => long_stream::detect_child(&args[1..]),
        // One end-to-end run in its own process (started by `bench`, for its RSS and CPU time).
        Some("bench-generate") => bench::generate_child(&args[1..]),
        Some("bench-dataset") => {
            let dir = args
                .get(1)
                .context("usage: cargo xtask bench-dataset DIR [IMAGES]")?;
            let images = args.get(2).map_or(Ok(1024), |n| n.parse())?;
            bench::write_dataset(Path::new(dir), images)
        }
        Some("tidy") => tidy::run(&workspace_root()),
        Some("test-weights") => test_weights(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

/// Runs `command` of this binary, built in release, with `args`.
fn in_release(command: &str, args: &[String]) -> Result<()> {
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(workspace_root())
            .args(["run", "--quiet", "--release", "--package", "xtask", "--"])
            .arg(command)
            .args(args),
    )
}

/// The seed of the weights the embedding golden fixtures were made with.
const GOLDEN_WEIGHTS_SEED: u64 = 18;

fn test_weights(args: &[String]) -> Result<()> {
    let (mut path, mut seed) = (None, GOLDEN_WEIGHTS_SEED);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => {
                let value = args.next().context("--seed needs a value")?;
                seed = value
                    .parse()
                    .with_context(|| format!("--seed: '{value}' is not an integer"))?;
            }
            other if path.is_none() => path = Some(PathBuf::from(other)),
            other => bail!("unexpected argument '{other}'"),
        }
    }
    let path = path.context("usage: cargo xtask test-weights FILE [--seed N]")?;
    drift_embedder::write_synthetic_weights(seed, &path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote seeded ResNet18 weights (seed {seed}) to {}",
        path.display()
    );
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_owned()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// A venv with the check's pinned packages, rebuilt when requirements.txt changes.
fn check_python(root: &Path) -> Result<PathBuf> {
    venv(root, "check-venv", "tools/check/requirements.txt")
}

/// A venv `name` under the target directory with the pinned packages of `requirements`
/// (relative to the root), rebuilt when that file changes. Its python.
fn venv(root: &Path, name: &str, requirements: &str) -> Result<PathBuf> {
    let requirements = root.join(requirements);
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let venv = target_dir(root).join(name);
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.installed");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    eprintln!(
        "xtask: installing {} into {}",
        requirements.display(),
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

/// `pip install .` into the package's test venv, then its pytest suite.
fn python_package_tests(root: &Path) -> Result<()> {
    let python = venv(root, "python-venv", "python/tests/requirements.txt")?;
    let bin = python.parent().expect("venv/bin").to_owned();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    eprintln!("xtask: pip install . (the Python package, dev profile)");
    run(Command::new(&python)
        .current_dir(root)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--force-reinstall",
            ".",
        ])
        // maturin's build backend runs the `maturin` of the venv; the dev profile and the
        // `wgpu` feature make the module's dependency graph the test build's, so burn and the
        // GPU stack are not compiled a second time (a user's `pip install .` builds in release,
        // without wgpu).
        .env("PATH", &path)
        .env("MATURIN_PEP517_ARGS", "--profile dev --features wgpu"))?;
    run(Command::new(&python)
        .current_dir(root)
        .args(["-m", "pytest", "-q", "python/tests"])
        .env("PATH", &path))
}

fn test(extra: &[String]) -> Result<()> {
    let root = workspace_root();
    let python = check_python(&root)?;
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            // The Python module links against an interpreter: its tests are pytest's, below.
            .args([
                "test",
                "--workspace",
                "--exclude",
                "drift-pipeline-python",
                "--locked",
            ])
            .args(extra)
            .env("DRIFT_PIPELINE_PYTHON", &python)
            // The GPU parity test checks values, not speed: skip cubecl's kernel autotuning,
            // which takes minutes on a software Vulkan driver.
            .env(
                "CUBECL_AUTOTUNE_LEVEL",
                std::env::var_os("CUBECL_AUTOTUNE_LEVEL").unwrap_or_else(|| "minimal".into()),
            ),
    )?;
    if extra.is_empty() {
        python_package_tests(&root)?;
    }
    Ok(())
}
