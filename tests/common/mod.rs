//! Helpers shared by the integration tests: real image files on disk, and readers for outputs.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow::array::{Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use image::{ImageEncoder, codecs::jpeg::JpegEncoder, codecs::png::PngEncoder};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// A smooth but non-trivial test pattern, different for every `variant`.
pub fn pattern(width: u32, height: u32, variant: u32) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            pixels.push(((x * 255 / width.max(1)) ^ (variant * 37)) as u8);
            pixels.push(((y * 255 / height.max(1)) + variant * 11) as u8);
            pixels.push((((x + y) * 3 + variant * 53) % 256) as u8);
        }
    }
    pixels
}

pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    color: image::ExtendedColorType,
    data: &[u8],
) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = File::create(path).unwrap();
    PngEncoder::new(file)
        .write_image(data, width, height, color)
        .unwrap();
}

pub fn write_jpeg(path: &Path, width: u32, height: u32, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = File::create(path).unwrap();
    JpegEncoder::new_with_quality(file, 92)
        .write_image(data, width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
}

/// An indexed-colour (palette) PNG, written with the png crate since `image` only writes RGB(A)/L.
pub fn write_palette_png(path: &Path, width: u32, height: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = File::create(path).unwrap();
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 250]);
    let mut writer = encoder.write_header().unwrap();
    let indices: Vec<u8> = (0..width * height).map(|i| ((i / 7) % 4) as u8).collect();
    writer.write_image_data(&indices).unwrap();
}

/// A dataset with every kind of input SPEC names: PNG and JPEG, RGBA, grey, 16-bit, palette, BMP,
/// TIFF, WebP, nested folders, and files that must be ignored. Three classes (4, 7 and 5 images),
/// 4 ignored paths.
pub fn mixed_dataset(root: &Path) {
    use image::ExtendedColorType as C;
    let rgb = |w, h, v| pattern(w, h, v);
    write_png(
        &root.join("cats/a.png"),
        300,
        200,
        C::Rgb8,
        &rgb(300, 200, 1),
    );
    write_jpeg(&root.join("cats/b.jpg"), 250, 250, &rgb(250, 250, 2));
    write_jpeg(
        &root.join("cats/deep/nested/c.JPEG"),
        180,
        320,
        &rgb(180, 320, 3),
    );
    let rgba: Vec<u8> = rgb(64, 48, 4)
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 17])
        .collect();
    write_png(&root.join("cats/d_rgba.png"), 64, 48, C::Rgba8, &rgba);
    let grey: Vec<u8> = (0..100 * 80).map(|i| (i % 251) as u8).collect();
    write_png(&root.join("dogs/grey.png"), 100, 80, C::L8, &grey);
    let grey16: Vec<u8> = (0..50u32 * 40)
        .flat_map(|i| ((i * 31) as u16).to_ne_bytes())
        .collect();
    write_png(&root.join("dogs/grey16.png"), 50, 40, C::L16, &grey16);
    write_palette_png(&root.join("dogs/palette.png"), 90, 60);
    image::save_buffer(root.join("dogs/e.bmp"), &rgb(120, 90, 5), 120, 90, C::Rgb8).unwrap();
    std::fs::create_dir_all(root.join("dogs/sub")).unwrap();
    image::save_buffer(
        root.join("dogs/sub/f.tiff"),
        &rgb(77, 99, 6),
        77,
        99,
        C::Rgb8,
    )
    .unwrap();
    write_png(&root.join("dogs/H.PNG"), 40, 300, C::Rgb8, &rgb(40, 300, 8));
    image::save_buffer(root.join("dogs/g.webp"), &rgb(130, 70, 7), 130, 70, C::Rgb8).unwrap();
    for i in 0..5 {
        write_jpeg(
            &root.join(format!("zebras/z{i}.jpg")),
            224,
            224,
            &rgb(224, 224, 10 + i),
        );
    }
    std::fs::write(root.join("cats/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("dogs/vector.svg"), "<svg/>").unwrap();
    std::fs::write(root.join("dogs/.hidden.png"), "hidden and corrupt").unwrap();
    std::fs::write(root.join("README.md"), "loose file in the root").unwrap();
}

/// The rows of input_mapping.parquet (sample_id, timestamp, file_name), checking the schema.
pub fn read_input_mapping(folder: &Path) -> Vec<(i64, f64, String)> {
    let batches = read_parquet(
        &folder.join("input_mapping.parquet"),
        &[
            ("sample_id", DataType::Int64),
            ("timestamp", DataType::Float64),
            ("file_name", DataType::Utf8),
        ],
    );
    let mut rows = Vec::new();
    for batch in batches {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let ts = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let names = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for i in 0..batch.num_rows() {
            rows.push((ids.value(i), ts.value(i), names.value(i).to_owned()));
        }
    }
    rows
}

/// The rows of target.parquet (sample_id, timestamp, label), checking the schema.
pub fn read_target(folder: &Path) -> Vec<(i64, f64, i64)> {
    let batches = read_parquet(
        &folder.join("target.parquet"),
        &[
            ("sample_id", DataType::Int64),
            ("timestamp", DataType::Float64),
            ("label", DataType::Int64),
        ],
    );
    let mut rows = Vec::new();
    for batch in batches {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let ts = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let labels = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for i in 0..batch.num_rows() {
            rows.push((ids.value(i), ts.value(i), labels.value(i)));
        }
    }
    rows
}

/// A dataset manifest's (path, decodes) rows, checking its schema.
#[allow(dead_code)] // not every test binary reads manifests
pub fn read_manifest_rows(path: &Path) -> Vec<(String, bool)> {
    let batches = read_parquet(
        path,
        &[
            ("path", DataType::Utf8),
            ("class_name", DataType::Utf8),
            ("label", DataType::Int64),
            ("bytes", DataType::Int64),
            ("decodes", DataType::Boolean),
        ],
    );
    let mut rows = Vec::new();
    for batch in batches {
        let paths = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        let decodes = batch
            .column(4)
            .as_any()
            .downcast_ref::<arrow::array::BooleanArray>()
            .unwrap();
        for i in 0..batch.num_rows() {
            rows.push((paths.value(i).to_owned(), decodes.value(i)));
        }
    }
    rows
}

/// A Parquet file's record batches, after checking its schema's names and types.
pub fn read_parquet(
    path: &Path,
    expected: &[(&str, DataType)],
) -> Vec<arrow::record_batch::RecordBatch> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = builder.schema().clone();
    let fields: Vec<(&str, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone()))
        .collect();
    assert_eq!(fields, expected, "schema of {}", path.display());
    builder.build().unwrap().map(Result::unwrap).collect()
}

/// Every zip entry: name -> bytes, checking that entries are stored, not deflated.
pub fn read_zip(folder: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = File::open(folder.join("sampled_images.zip")).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut entries = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        assert_eq!(
            entry.compression(),
            zip::CompressionMethod::Stored,
            "{name}"
        );
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        entries.insert(name, bytes);
    }
    entries
}

/// The files of an output folder, including hidden ones (a leftover staging folder shows), but
/// not the folder's lock file, which stays by design and holds the last writer's pid.
pub fn listing(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(folder) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != ".drift-pipeline.lock")
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

pub fn bytes_of(folder: &Path) -> Vec<(String, Vec<u8>)> {
    listing(folder)
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(folder.join(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}

/// `embeddings.parquet`: (sample_id, timestamp, embedding) rows, checking SPEC's schema.
#[allow(dead_code)] // not every test binary reads embeddings
pub fn read_embeddings(folder: &Path) -> Vec<(i64, f64, Vec<f64>)> {
    use arrow::array::FixedSizeListArray;
    let item = std::sync::Arc::new(arrow::datatypes::Field::new_list_field(
        DataType::Float64,
        true,
    ));
    let batches = read_parquet(
        &folder.join("embeddings.parquet"),
        &[
            ("sample_id", DataType::Int64),
            ("timestamp", DataType::Float64),
            ("embedding", DataType::FixedSizeList(item, 512)),
        ],
    );
    let mut rows = Vec::new();
    for batch in batches {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let ts = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let lists = batch
            .column(2)
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap();
        assert_eq!(lists.null_count(), 0);
        for i in 0..batch.num_rows() {
            let values = lists.value(i);
            let values = values.as_any().downcast_ref::<Float64Array>().unwrap();
            rows.push((ids.value(i), ts.value(i), values.values().to_vec()));
        }
    }
    rows
}

/// The interpreter for tools/check/check_output.py (`cargo xtask test` sets
/// DRIFT_PIPELINE_PYTHON); `None`, with a note, outside CI. CI must run the check.
#[allow(dead_code)] // not every test binary runs the Python check
pub fn check_python() -> Option<std::ffi::OsString> {
    let python = std::env::var_os("DRIFT_PIPELINE_PYTHON");
    if python.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Python check: use `cargo xtask test`"
        );
        eprintln!("DRIFT_PIPELINE_PYTHON is not set: Python reader check not run");
    }
    python
}

/// Runs tools/check/check_output.py on `output`: polars, pyarrow, DuckDB and zipfile read it.
#[allow(dead_code)] // not every test binary runs the Python check
pub fn run_python_check(python: &std::ffi::OsStr, output: &Path, args: &[&str]) {
    run_python_script(python, "check_output.py", output, args);
}

/// Runs `tools/check/<script>` on `folder` with `args`; it must succeed.
#[allow(dead_code)] // not every test binary runs a Python check
pub fn run_python_script(python: &std::ffi::OsStr, script: &str, folder: &Path, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/check")
        .join(script);
    let out = std::process::Command::new(python)
        .arg(path)
        .arg(folder)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Python check {script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test that could not exercise its property here (no `mount`, no `mkfifo`): a note outside
/// CI, a failure under CI, where every property must be exercised.
#[allow(dead_code)] // not every test binary has such a test
pub fn not_exercised(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, and this test could not exercise its property: {why}"
    );
    eprintln!("not exercised: {why}");
}

/// Runs the `drift-pipeline` binary. With `cache`, `DRIFT_PIPELINE_CACHE` points there, so a
/// test never sees the real weights cache of whoever runs it.
pub fn drift_pipeline_in(args: &[&str], cache: Option<&Path>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_drift-pipeline"));
    command.args(args);
    if let Some(cache) = cache {
        command.env("DRIFT_PIPELINE_CACHE", cache);
    }
    command.output().expect("the binary runs")
}

/// The binary with the environment as it is.
pub fn drift_pipeline(args: &[&str]) -> std::process::Output {
    drift_pipeline_in(args, None)
}

/// A scratch folder with a demo dataset (`in/`), seeded test weights and an empty weights cache.
pub struct WeightsSetup {
    pub scratch: tempfile::TempDir,
    pub input: std::path::PathBuf,
    pub weights: std::path::PathBuf,
    pub cache: std::path::PathBuf,
}

impl WeightsSetup {
    /// `images_per_class` demo images per class from `dataset_seed`; weights from `weights_seed`.
    pub fn new(images_per_class: usize, dataset_seed: u64, weights_seed: u64) -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let input = scratch.path().join("in");
        drift_pipeline_cli::demo::write_dataset(&input, images_per_class, dataset_seed).unwrap();
        let weights = scratch.path().join("test-weights.safetensors");
        drift_embedder::write_synthetic_weights(weights_seed, &weights).unwrap();
        let cache = scratch.path().join("empty-cache");
        Self {
            scratch,
            input,
            weights,
            cache,
        }
    }

    /// `name` in the scratch folder.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.scratch.path().join(name)
    }

    /// The binary, with the empty cache.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        drift_pipeline_in(args, Some(&self.cache))
    }

    /// The binary with the empty cache; it must succeed. Returns its stdout.
    pub fn succeeds(&self, args: &[&str]) -> String {
        assert_succeeds(args, &self.run(args))
    }

    /// A command that must fail cleanly with `needle` in its message.
    pub fn fails(&self, args: &[&str], needle: &str) -> String {
        assert_fails_cleanly(args, &self.run(args), needle)
    }
}

/// Checks that a command succeeded (showing its stderr if not) and returns its stdout.
pub fn assert_succeeds(args: &[&str], out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// Runs the binary; it must succeed. Returns its stdout.
pub fn succeeds(args: &[&str]) -> String {
    assert_succeeds(args, &drift_pipeline(args))
}

/// Checks that a command failed cleanly: non-zero exit, no panic, a message containing `needle`.
/// Returns its stderr.
#[allow(dead_code)] // not every test binary runs the binary
pub fn assert_fails_cleanly(args: &[&str], out: &std::process::Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected '{needle}' in: {stderr}"
    );
    stderr
}

/// Checks that a command succeeded; returns its stderr (its warnings).
#[allow(dead_code)] // not every test binary reads warnings
pub fn succeeds_with_stderr(args: &[&str], out: &std::process::Output) -> String {
    assert_succeeds(args, out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One row of `kl.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct KlRecord {
    pub transforms: String,
    pub drift_level: f64,
    pub batch: i64,
    pub images: i64,
    pub kl: f64,
}

/// `kl.parquet` of an `evaluate` report, checking its schema.
pub fn read_kl(folder: &Path) -> Vec<KlRecord> {
    let batches = read_parquet(
        &folder.join("kl.parquet"),
        &[
            ("transforms", DataType::Utf8),
            ("drift_level", DataType::Float64),
            ("batch", DataType::Int64),
            ("images", DataType::Int64),
            ("kl", DataType::Float64),
        ],
    );
    let mut rows = Vec::new();
    for batch in batches {
        let column = |i: usize| batch.column(i).as_any();
        let transforms = column(0).downcast_ref::<StringArray>().unwrap();
        let levels = column(1).downcast_ref::<Float64Array>().unwrap();
        let batch_ids = column(2).downcast_ref::<Int64Array>().unwrap();
        let images = column(3).downcast_ref::<Int64Array>().unwrap();
        let kls = column(4).downcast_ref::<Float64Array>().unwrap();
        for i in 0..batch.num_rows() {
            rows.push(KlRecord {
                transforms: transforms.value(i).to_owned(),
                drift_level: levels.value(i),
                batch: batch_ids.value(i),
                images: images.value(i),
                kl: kls.value(i),
            });
        }
    }
    rows
}

/// One row of `drift_log.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftLogRecord {
    pub sample_id: i64,
    pub timestamp: f64,
    pub segment: String,
    pub drifted: bool,
    pub probability: f64,
    /// Relative to the input root.
    pub source_path: String,
    pub class_name: String,
    pub original_label: i64,
    pub zip_entry: String,
    pub class_prior: Option<f64>,
    /// The `levels` map: transform -> level, in the file's order.
    pub levels: Vec<(String, f64)>,
    /// The `parameters` map: `transform.parameter` -> value, in the file's order.
    pub parameters: Vec<(String, f64)>,
}

impl DriftLogRecord {
    /// The level of `transform`, if it was applied.
    pub fn level(&self, transform: &str) -> Option<f64> {
        self.levels
            .iter()
            .find(|(n, _)| n == transform)
            .map(|e| e.1)
    }

    /// The value drawn for `key` (`transform.parameter`), if any.
    pub fn parameter(&self, key: &str) -> Option<f64> {
        self.parameters.iter().find(|(n, _)| n == key).map(|e| e.1)
    }
}

/// A `Map<Utf8, Float64>` column's entries at `row`.
fn map_entries(map: &arrow::array::MapArray, row: usize) -> Vec<(String, f64)> {
    let entries = map.value(row);
    let keys = entries
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let values = entries
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    (0..entries.len())
        .map(|i| (keys.value(i).to_owned(), values.value(i)))
        .collect()
}

/// `drift_log.parquet`, checking its schema: the fixed columns and the two maps.
pub fn read_drift_log(folder: &Path) -> Vec<DriftLogRecord> {
    use arrow::array::{BooleanArray, MapArray};
    let path = folder.join("drift_log.parquet");
    let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = builder.schema().clone();
    let map = |name: &str| match schema.field_with_name(name).unwrap().data_type() {
        DataType::Map(entries, false) => match entries.data_type() {
            DataType::Struct(fields) => {
                assert_eq!(fields[0].data_type(), &DataType::Utf8, "{name} keys");
                assert_eq!(fields[1].data_type(), &DataType::Float64, "{name} values");
                DataType::Map(entries.clone(), false)
            }
            other => panic!("{name}: {other}"),
        },
        other => panic!("{name} is {other}, not a map"),
    };
    let columns: Vec<(&str, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone()))
        .collect();
    assert_eq!(
        columns,
        [
            ("sample_id", DataType::Int64),
            ("timestamp", DataType::Float64),
            ("segment", DataType::Utf8),
            ("drifted", DataType::Boolean),
            ("drift_probability", DataType::Float64),
            ("source_path", DataType::Utf8),
            ("class_name", DataType::Utf8),
            ("original_label", DataType::Int64),
            ("zip_entry", DataType::Utf8),
            ("class_prior", DataType::Float64),
            ("levels", map("levels")),
            ("parameters", map("parameters")),
        ]
    );
    let mut rows = Vec::new();
    for batch in builder.build().unwrap().map(Result::unwrap) {
        let column = |i: usize| batch.column(i).as_any();
        let ids = column(0).downcast_ref::<Int64Array>().unwrap();
        let ts = column(1).downcast_ref::<Float64Array>().unwrap();
        let segments = column(2).downcast_ref::<StringArray>().unwrap();
        let drifted = column(3).downcast_ref::<BooleanArray>().unwrap();
        let probabilities = column(4).downcast_ref::<Float64Array>().unwrap();
        let sources = column(5).downcast_ref::<StringArray>().unwrap();
        let class_names = column(6).downcast_ref::<StringArray>().unwrap();
        let original_labels = column(7).downcast_ref::<Int64Array>().unwrap();
        let zip_entries = column(8).downcast_ref::<StringArray>().unwrap();
        let priors = column(9).downcast_ref::<Float64Array>().unwrap();
        let levels = column(10).downcast_ref::<MapArray>().unwrap();
        let parameters = column(11).downcast_ref::<MapArray>().unwrap();
        for i in 0..batch.num_rows() {
            rows.push(DriftLogRecord {
                sample_id: ids.value(i),
                timestamp: ts.value(i),
                segment: segments.value(i).to_owned(),
                drifted: drifted.value(i),
                probability: probabilities.value(i),
                source_path: sources.value(i).to_owned(),
                class_name: class_names.value(i).to_owned(),
                original_label: original_labels.value(i),
                zip_entry: zip_entries.value(i).to_owned(),
                class_prior: priors.is_valid(i).then(|| priors.value(i)),
                levels: map_entries(levels, i),
                parameters: map_entries(parameters, i),
            });
        }
    }
    rows
}
