//! `cargo xtask tidy`: checks that what ARCHITECTURE.md promises is true of the code, so that
//! it stays true. Each check prints what it looked at; any violation fails the task, naming the
//! file and the rule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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
const CONFINED: [(&str, &[&str]); 12] = [
    ("burn", &["drift-embedder"]),
    // The umbrella crate's compute kernels cost a quarter of a fresh build; the writer uses
    // arrow-array and arrow-schema.
    ("arrow", &[]),
    ("arrow-array", &["drift-writer"]),
    ("arrow-schema", &["drift-writer"]),
    ("parquet", &["drift-writer"]),
    ("zip", &["drift-writer"]),
    ("image", &["drift-reader", "drift-pipeline-cli"]),
    ("clap", &["drift-pipeline-cli"]),
    ("indicatif", &["drift-pipeline-cli"]),
    ("signal-hook", &["drift-pipeline-cli"]),
    ("ureq", &["drift-pipeline-cli"]),
    ("crossbeam-channel", &["drift-pipeline", "drift-evaluate"]),
];

/// Words that name an arrow, parquet or zip type in Rust source.
const WRITER_LIBRARY_WORDS: [&str; 10] = [
    "arrow::",
    "arrow_array::",
    "arrow_schema::",
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

pub fn run(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let metadata = cargo_metadata(root)?;
    check_dependencies(&metadata, &mut problems);
    check_writer_api(root, &mut problems)?;
    check_registry(root, &mut problems)?;
    check_code_map(root, &mut problems)?;
    check_crate_graph(root, &metadata, &mut problems)?;
    check_module_docs(root, &metadata, &mut problems)?;
    check_lanes_closures(root, &metadata, &mut problems)?;
    report_function_lengths(root, &metadata)?;
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

/// The workspace's packages (from `cargo metadata`) and their names.
fn workspace_packages(metadata: &serde_json::Value) -> (Vec<serde_json::Value>, BTreeSet<String>) {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let members = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    (packages, members)
}

/// Stage crates depend on drift-core and engine crates only; engine crates (and drift-core) on
/// no workspace crate; confined libraries stay in their crates.
fn check_dependencies(metadata: &serde_json::Value, problems: &mut Vec<String>) {
    let (packages, members) = workspace_packages(metadata);
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
                    let who = match allowed {
                        [] => "no crate".to_owned(),
                        allowed => format!("only {}", allowed.join(" and ")),
                    };
                    problems.push(format!(
                        "{manifest}: {name} depends on {library}, which {who} may use"
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

/// Every registered transform has a README row (the generated table) and golden coverage;
/// every ImageNet-C corruption a row of the README's catalog and golden cases at all five
/// severities.
fn check_registry(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    if !readme.contains(&drift_transformer::markdown_table()) {
        problems.push(
            "README.md: the transform table is not the registry's \
             (drift_transformer::markdown_table())"
                .into(),
        );
    }
    if !readme.contains(&drift_transformer::catalog_table()) {
        problems.push(
            "README.md: the ImageNet-C catalog is not the registry's \
             (drift_transformer::catalog_table())"
                .into(),
        );
    }
    let golden = root.join("tests/fixtures/golden");
    let manifests = [
        std::fs::read_to_string(golden.join("transforms/manifest.json"))?,
        std::fs::read_to_string(golden.join("corruptions/manifest.json"))?,
    ];
    // A corruption's golden cases name it as the package does (without `imagenet_c:`).
    let in_golden = |name: &str| {
        let name = name
            .strip_prefix(drift_transformer::Family::IMAGENET_C_PREFIX)
            .unwrap_or(name);
        manifests.iter().any(|m| {
            m.contains(&format!("\"transform\": \"{name}\""))
                || m.contains(&format!("\"corruption\": \"{name}\""))
        })
    };
    let statistical = std::fs::read_to_string(root.join("tests/transform_golden.rs"))?;
    for kind in TransformKind::all() {
        let name = kind.name();
        if kind.corruption().is_some() {
            let bare = &name[drift_transformer::Family::IMAGENET_C_PREFIX.len()..];
            for severity in 1..=5 {
                let case = format!("\"corruption\": \"{bare}\",\n   \"severity\": {severity},");
                if !manifests[1].contains(&case) {
                    problems.push(format!(
                        "corruption {name} has no golden case at severity {severity} \
                         (tools/golden/make_corruption_golden.py)"
                    ));
                }
            }
        }
        if !readme.contains(&format!("| `{name}` ")) {
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

/// The crate graph ARCHITECTURE.md draws (its fenced `crate -> dependencies` lines under "Crate
/// graph") is the workspace's: every member, with exactly its normal workspace dependencies.
fn check_crate_graph(
    root: &Path,
    metadata: &serde_json::Value,
    problems: &mut Vec<String>,
) -> Result<()> {
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md"))?;
    let section = map
        .split("## Crate graph")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .context("ARCHITECTURE.md has no fenced block under '## Crate graph'")?;
    let mut drawn = std::collections::BTreeMap::new();
    for line in section.lines().filter(|l| l.contains("->")) {
        let (name, deps) = line.split_once("->").expect("filtered on ->");
        let deps: BTreeSet<String> = deps
            .split(',')
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .collect();
        drawn.insert(name.trim().to_owned(), deps);
    }
    let (packages, members) = workspace_packages(metadata);
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        let actual: BTreeSet<String> = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| members.contains(*d))
            .map(str::to_owned)
            .collect();
        match drawn.get(name) {
            None => problems.push(format!(
                "ARCHITECTURE.md's crate graph leaves out {name} (-> {})",
                actual.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            Some(deps) if *deps != actual => problems.push(format!(
                "ARCHITECTURE.md's crate graph says {name} -> {}, Cargo.toml says -> {}",
                deps.iter().cloned().collect::<Vec<_>>().join(", "),
                actual.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            Some(_) => {}
        }
    }
    for name in drawn.keys().filter(|name| !members.contains(*name)) {
        problems.push(format!(
            "ARCHITECTURE.md's crate graph names {name}, not a workspace crate"
        ));
    }
    println!(
        "tidy: ARCHITECTURE.md's crate graph matches cargo metadata ({} crates)",
        members.len()
    );
    Ok(())
}

/// The Rust source files of every workspace crate (under each crate's folder), and the
/// workspace's tests/ folder.
fn source_files(root: &Path, metadata: &serde_json::Value) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let mut dirs: Vec<(String, PathBuf)> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str()?);
            Some((
                p["name"].as_str()?.to_owned(),
                manifest.parent()?.join("src"),
            ))
        })
        .collect();
    dirs.push(("tests".to_owned(), root.join("tests")));
    while let Some((name, dir)) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                // Fixtures hold data, not source.
                if path.file_name().is_none_or(|n| n != "fixtures") {
                    dirs.push((name.clone(), path));
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push((name.clone(), path));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Every source file opens with a module doc (`//!`) that says what it holds.
fn check_module_docs(
    root: &Path,
    metadata: &serde_json::Value,
    problems: &mut Vec<String>,
) -> Result<()> {
    let files = source_files(root, metadata)?;
    for (_, path) in &files {
        let text = std::fs::read_to_string(path)?;
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: no module doc: open the file with `//!` lines saying what it holds",
                path.display()
            ));
        }
    }
    println!("tidy: {} source files have a module doc", files.len());
    Ok(())
}

/// Every closure given to the transformer's `in_lanes` is marked `#[inline(always)]`: one that
/// LLVM does not inline into the dispatched `with_simd` is compiled for the baseline CPU (SSE2),
/// and fog's map ran its five steps that way unseen.
fn check_lanes_closures(
    root: &Path,
    metadata: &serde_json::Value,
    problems: &mut Vec<String>,
) -> Result<()> {
    let mut calls = 0;
    for (name, path) in source_files(root, metadata)? {
        if name != "drift-transformer" {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for (at, _) in text.match_indices("in_lanes(") {
            let before = &text[..at];
            // Its definition, or another name ending in `in_lanes` (`chain_in_lanes`).
            let longer_name = before
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            if before.ends_with("fn ") || longer_name {
                continue;
            }
            calls += 1;
            if !text[at + "in_lanes(".len()..]
                .trim_start()
                .starts_with("#[inline(always)]")
            {
                let line = before.lines().count();
                problems.push(format!(
                    "{}:{line}: the closure given to `in_lanes` must be `#[inline(always)]` (else it \
                     runs compiled for SSE2)",
                    path.display()
                ));
            }
        }
    }
    println!("tidy: {calls} closures given to in_lanes are #[inline(always)]");
    Ok(())
}

/// The longest function (outside test modules) of each crate, printed: a measure, not a rule.
/// A line cap applied to one crate bent its functions to just under it (11 at 70-79 lines under
/// a cap of 80), so there is none; reviews judge length by what a function does.
fn report_function_lengths(root: &Path, metadata: &serde_json::Value) -> Result<()> {
    let mut longest: std::collections::BTreeMap<String, (usize, String)> = Default::default();
    for (name, path) in source_files(root, metadata)? {
        if name == "tests" {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let lines: Vec<&str> = text.lines().collect();
        for (start, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("#[cfg(test)]") {
                break;
            }
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
            let entry = longest.entry(name.clone()).or_default();
            if length + 1 > entry.0 {
                *entry = (length + 1, format!("{}:{}", path.display(), start + 1));
            }
        }
    }
    for (name, (length, place)) in longest {
        println!("tidy: longest function of {name}: {length} lines ({place})");
    }
    Ok(())
}
