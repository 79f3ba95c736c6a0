//! `cargo xtask tidy`: checks that what ARCHITECTURE.md promises is true of the code, so that
//! it stays true. Each check prints what it looked at; any violation fails the task, naming the
//! file and the rule.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use drift_transformer::TransformKind;

/// The stage crates (and the measure crate): each may depend on drift-core, and on no other
/// crate of the workspace.
const STAGE_CRATES: [&str; 6] = [
    "drift-reader",
    "drift-sampler",
    "drift-transformer",
    "drift-embedder",
    "drift-writer",
    "drift-measure",
];

/// Engine crates: computation a stage builds on (drift-conv, the CPU convolution engine).
/// They depend on no workspace crate; a stage crate may depend on them.
const ENGINE_CRATES: [&str; 1] = ["drift-conv"];

/// Libraries whose types must not leave one crate: (library, the crates that may depend on it
/// as a normal dependency). Dev-dependencies (tests reading outputs back) are not limited.
const CONFINED: [(&str, &[&str]); 9] = [
    ("burn", &["drift-embedder"]),
    ("arrow", &["drift-writer"]),
    ("parquet", &["drift-writer"]),
    ("zip", &["drift-writer"]),
    ("image", &["drift-reader", "drift-pipeline"]),
    ("clap", &["drift-pipeline"]),
    ("indicatif", &["drift-pipeline"]),
    ("signal-hook", &["drift-pipeline"]),
    ("crossbeam-channel", &["drift-pipeline"]),
];

/// Words that name an arrow, parquet or zip type in Rust source.
const WRITER_LIBRARY_WORDS: [&str; 8] = [
    "arrow::",
    "parquet::",
    "zip::",
    "SchemaRef",
    "RecordBatch",
    "ArrowWriter",
    "ZipWriter",
    "ParquetError",
];

/// Registered transforms whose fidelity is not a golden fixture, and the test that covers them
/// instead (a test function of tests/transform_golden.rs), or the transforms they are made of.
const GOLDEN_EXCEPTIONS: [(&str, Coverage); 2] = [
    (
        "gaussian_noise",
        Coverage::Statistical("noise_has_the_specified_mean_and_spread"),
    ),
    (
        "default",
        Coverage::MadeOf(&["gaussian_blur", "gaussian_noise"]),
    ),
];

enum Coverage {
    Statistical(&'static str),
    MadeOf(&'static [&'static str]),
}

/// The longest a function of crates/drift-pipeline may be, in lines.
const MAX_FUNCTION_LINES: usize = 80;

pub fn run(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let metadata = cargo_metadata(root)?;
    check_dependencies(&metadata, &mut problems);
    check_writer_api(root, &mut problems)?;
    check_registry(root, &mut problems)?;
    check_code_map(root, &mut problems)?;
    check_function_lengths(&root.join("crates/drift-pipeline/src"), &mut problems)?;
    if problems.is_empty() {
        println!("tidy: all checks passed");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("tidy: {problem}");
    }
    bail!("{} tidy problem(s)", problems.len())
}

fn cargo_metadata(root: &Path) -> Result<serde_json::Value> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("parsing cargo metadata")
}

/// Stage crates depend on drift-core and engine crates only; engine crates (and drift-core) on
/// no workspace crate; confined libraries stay in their crates.
fn check_dependencies(metadata: &serde_json::Value, problems: &mut Vec<String>) {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let members: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        let manifest = package["manifest_path"].as_str().unwrap_or_default();
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let dep = dependency["name"].as_str().unwrap_or_default();
            let kind = dependency["kind"].as_str().unwrap_or("normal");
            let leaf = name == "drift-core" || ENGINE_CRATES.contains(&name);
            if leaf && members.contains(dep) {
                problems.push(format!(
                    "{manifest}: {name} depends on {dep} ({kind}); drift-core and engine crates \
                     depend on no workspace crate"
                ));
            }
            if STAGE_CRATES.contains(&name)
                && members.contains(dep)
                && dep != "drift-core"
                && !ENGINE_CRATES.contains(&dep)
            {
                problems.push(format!(
                    "{manifest}: stage crate {name} depends on {dep} ({kind}); stage crates \
                     depend only on drift-core and engine crates ({})",
                    ENGINE_CRATES.join(", ")
                ));
            }
            if kind == "dev" || name == "xtask" {
                continue;
            }
            for (library, allowed) in CONFINED {
                if dep == library && !allowed.contains(&name) {
                    problems.push(format!(
                        "{manifest}: {name} depends on {library}, which only {} may use",
                        allowed.join(" and ")
                    ));
                }
            }
        }
    }
    println!(
        "tidy: dependencies of {} workspace crates checked",
        packages.len()
    );
}

/// No arrow, parquet or zip type in a `pub` item of the writer.
fn check_writer_api(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let src = root.join("crates/writer/src");
    for entry in std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for (number, declaration) in public_declarations(&text) {
            if let Some(word) = WRITER_LIBRARY_WORDS
                .iter()
                .find(|word| declaration.contains(*word))
            {
                problems.push(format!(
                    "{}:{number}: public item names `{word}`: arrow, parquet and zip types stay \
                     private to drift-writer",
                    path.display()
                ));
            }
        }
    }
    println!("tidy: drift-writer's public items checked for arrow, parquet and zip types");
    Ok(())
}

/// Each `pub` (not `pub(crate)`) declaration outside test modules, from its line up to the
/// `{`, `;` or `=` that ends its signature, with its line number.
fn public_declarations(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if !trimmed.starts_with("pub ") {
            continue;
        }
        let mut declaration = String::new();
        for next in &lines[index..] {
            let code = next.split("//").next().unwrap_or_default();
            declaration.push_str(code);
            declaration.push(' ');
            if code.contains('{') || code.contains(';') || code.trim_end().ends_with(',') {
                break;
            }
        }
        out.push((index + 1, declaration));
    }
    out
}

/// Every registered transform has a README row (the generated table) and golden coverage.
fn check_registry(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    if !readme.contains(&drift_transformer::markdown_table()) {
        problems.push(
            "README.md: the transform table is not the registry's \
             (drift_transformer::markdown_table())"
                .into(),
        );
    }
    let golden = root.join("tests/fixtures/golden");
    let manifests = [
        std::fs::read_to_string(golden.join("transforms/manifest.json"))?,
        std::fs::read_to_string(golden.join("corruptions/manifest.json"))?,
    ];
    let in_golden = |name: &str| {
        manifests.iter().any(|m| {
            m.contains(&format!("\"transform\": \"{name}\""))
                || m.contains(&format!("\"corruption\": \"{name}\""))
        })
    };
    let statistical = std::fs::read_to_string(root.join("tests/transform_golden.rs"))?;
    for kind in TransformKind::all() {
        let name = kind.name();
        if !readme.contains(&format!("| `{name}` |")) {
            problems.push(format!("README.md: no row for transform {name}"));
        }
        if !covered(name, &in_golden, &statistical) {
            problems.push(format!(
                "transform {name} has no golden fixture (tests/fixtures/golden/*/manifest.json) \
                 and no stated exception in xtask/src/tidy.rs"
            ));
        }
    }
    println!(
        "tidy: {} registered transforms have README rows and golden tests",
        TransformKind::all().len()
    );
    Ok(())
}

/// Whether transform `name` has a golden fixture, or the exception's test, or is made of
/// transforms that are covered.
fn covered(name: &str, in_golden: &dyn Fn(&str) -> bool, statistical: &str) -> bool {
    in_golden(name)
        || match GOLDEN_EXCEPTIONS.iter().find(|(n, _)| *n == name) {
            Some((_, Coverage::Statistical(test))) => statistical.contains(&format!("fn {test}()")),
            Some((_, Coverage::MadeOf(parts))) => parts
                .iter()
                .all(|part| covered(part, in_golden, statistical)),
            None => false,
        }
}

/// Every repository path ARCHITECTURE.md names in backticks exists.
fn check_code_map(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md"))?;
    let mut checked = 0;
    for (index, quoted) in map.split('`').enumerate() {
        // Odd pieces are inside backticks.
        let looks_like_path = ["crates/", "tests/", "tools/", "xtask/", ".ci/"]
            .iter()
            .any(|prefix| quoted.starts_with(prefix))
            && !quoted.contains(' ')
            && !quoted.contains('*');
        if index % 2 == 1 && looks_like_path {
            checked += 1;
            if !root.join(quoted).exists() {
                problems.push(format!(
                    "ARCHITECTURE.md names `{quoted}`, which does not exist"
                ));
            }
        }
    }
    println!("tidy: {checked} paths of ARCHITECTURE.md's code map exist");
    Ok(())
}

/// No function of the pipeline crate is longer than [`MAX_FUNCTION_LINES`].
fn check_function_lengths(src: &Path, problems: &mut Vec<String>) -> Result<()> {
    let mut longest = (0, String::new());
    for entry in std::fs::read_dir(src)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let lines: Vec<&str> = text.lines().collect();
        for (start, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let is_fn = ["fn ", "pub fn ", "pub(crate) fn "]
                .iter()
                .any(|p| trimmed.starts_with(p));
            if !is_fn || trimmed.ends_with(';') {
                continue;
            }
            let indent = &line[..line.len() - trimmed.len()];
            let close = format!("{indent}}}");
            let Some(length) = lines[start..].iter().position(|l| *l == close) else {
                continue;
            };
            let length = length + 1;
            let name = format!("{}:{}", path.display(), start + 1);
            if length > longest.0 {
                longest = (length, name.clone());
            }
            if length > MAX_FUNCTION_LINES {
                problems.push(format!(
                    "{name}: a function of {length} lines (at most {MAX_FUNCTION_LINES}): split \
                     it into named steps"
                ));
            }
        }
    }
    println!(
        "tidy: longest function of crates/drift-pipeline: {} lines ({})",
        longest.0, longest.1
    );
    Ok(())
}
