//! The output format, pinned across versions: a small fixed scenario (a clean segment, then a
//! drifted one with label shift, transforms with random parameters and embeddings from seeded
//! weights) whose every file's SHA-256 is committed in
//! `tests/fixtures/golden/output_format.txt`. Every other test rebuilds its expectation with
//! the same library code, so a change to a purpose code, a stream layout, a schema or an
//! encoder setting passes them all; this one fails. When such a change is deliberate,
//! regenerate the file (`DRIFT_UPDATE_OUTPUT_GOLDEN=1 cargo test -p drift-pipeline-cli --test
//! output_format`) and say in the commit why the bytes changed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

const GOLDEN: &str = "tests/fixtures/golden/output_format.txt";
const UPDATE_ENV: &str = "DRIFT_UPDATE_OUTPUT_GOLDEN";

/// `segment/file` -> SHA-256 of every file the scenario wrote. `drift.json` records the input
/// folder's path (the stream's `input`), which is the test's scratch folder: it is hashed with
/// that path replaced by `<scratch>`.
fn hashes(root: &Path, segments: &[&str], scratch: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let scratch = scratch.to_str().expect("a UTF-8 scratch path");
    for segment in segments {
        for (name, mut bytes) in common::bytes_of(&root.join(segment)) {
            if name == "drift.json" {
                let text = String::from_utf8(bytes).expect("drift.json is UTF-8");
                assert!(
                    text.contains(scratch),
                    "drift.json records the input's path"
                );
                bytes = text.replace(scratch, "<scratch>").into_bytes();
            }
            let digest = Sha256::digest(&bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            out.insert(format!("{segment}/{name}"), hex);
        }
    }
    out
}

#[test]
fn a_fixed_scenario_writes_the_committed_bytes() {
    let setup = common::WeightsSetup::new(8, 11, 5);
    let scenario = setup.path("scenario.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"input = "{input}"
seed = 2024
size = "40x32"
embeddings = true
weights = "{weights}"
batch_size = 4

[[segment]]
name = "reference"
samples = 4
output = "out/reference"

[[segment]]
name = "drifted"
samples = 6
output = "out/drifted"
transforms = ["rotate=0.6", "gaussian_noise=0.4", "hue=0.3"]
drift = "gradual:width=4"
class_dirichlet = 0.5
"#,
            input = setup.input.display(),
            weights = setup.weights.display()
        ),
    )
    .unwrap();
    setup.succeeds(&["run", scenario.to_str().unwrap(), "--quiet"]);
    let got = hashes(
        &setup.path("out"),
        &["reference", "drifted"],
        setup.scratch.path(),
    );
    assert!(got.len() >= 12, "both segments' files: {got:?}");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let golden = root.join(GOLDEN);
    let text: String = got.iter().map(|(k, v)| format!("{v}  {k}\n")).collect();
    if std::env::var_os(UPDATE_ENV).is_some() {
        std::fs::write(&golden, &text).unwrap();
        eprintln!("wrote {}", golden.display());
        return;
    }
    let committed = std::fs::read_to_string(&golden).unwrap_or_default();
    let differing: Vec<&str> = text
        .lines()
        .filter(|line| !committed.lines().any(|c| c == *line))
        .collect();
    assert!(
        differing.is_empty() && committed.lines().count() == got.len(),
        "THE OUTPUT FORMAT CHANGED: these files' bytes differ from {GOLDEN}:\n{}\n\
         Seeded outputs must stay byte-identical across versions. If the change is deliberate, \
         regenerate the golden with `{UPDATE_ENV}=1 cargo test -p drift-pipeline-cli --test \
         output_format` and say in the commit why the bytes changed.",
        differing.join("\n")
    );
}
