//! `drift_pipeline._native`: the compiled half of the Python package. Python fills the same
//! [`RawRun`] / [`RawSegment`] the command line and scenario files fill (as JSON, with the
//! scenario file's keys) and [`RunSpec`] validates it with [`PYTHON`]'s spelling, so
//! the three front ends share every default and check. The pure-Python layer
//! (`python/drift_pipeline/`) holds the original tool's API on top of this module.
//!
//! Work runs on a Rust thread while the calling thread waits without the GIL, waking every
//! 50 ms to look for Ctrl-C (which cancels the run cleanly, then raises `KeyboardInterrupt`)
//! and to report progress to a Python callable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

mod errors;

use drift_pipeline::{
    DriftGenerator, FrontEnd, PipelineError, Progress, RawRun, RawSegment, RunSpec, SampleSummary,
    SpecError, TransformKind,
};
use errors::Kind;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Python's spelling of the run's keys: the keyword arguments of `ImageDatasetGenerator` and
/// `sample`, for errors the run spec reports.
const PYTHON: FrontEnd = FrontEnd {
    key: |key| {
        let keyword = match key {
            "input" => "input_path",
            "size" => "input_dim",
            "delta_timestamp" => "sample_delta_timestamp",
            "embeddings" => "compute_embeddings",
            "samples" => "num_samples",
            "output" => "output_path",
            "transforms" => "transform_list",
            "name" => "segment",
            "class_dirichlet" => "dirichlet",
            other => other,
        };
        format!("keyword '{keyword}'")
    },
    segment: Some(|_, name| format!("sample() ({name})")),
    overwrite_hint: "pass overwrite=True to replace it",
    needs_embeddings: "only applies with compute_embeddings=True",
};

/// A stream over one dataset: the Rust generator behind `ImageDatasetGenerator`.
#[pyclass(module = "drift_pipeline._native")]
struct Generator {
    spec: RunSpec,
    /// Boxed: the embedder holds 64-byte-aligned data, and Python allocates objects with a
    /// smaller alignment (PyO3 stores the struct inside the Python object).
    generator: Box<DriftGenerator>,
    cancel: Arc<AtomicBool>,
}

#[pymethods]
impl Generator {
    /// `run` is a JSON object with the scenario file's top-level keys (no segments).
    #[new]
    fn new(py: Python<'_>, run: &str) -> PyResult<Self> {
        let raw: RawRun = serde_json::from_str(run).map_err(|e| value_error(e.to_string()))?;
        let mut spec =
            RunSpec::build_stream(raw, PYTHON, Path::new("")).map_err(|e| spec_error(&e))?;
        let cancel = Arc::new(AtomicBool::new(false));
        spec.set_cancel(Some(cancel.clone()));
        let generator = interruptible(py, &cancel, None, |_| spec.generator().map(Box::new))
            .and_then(|result| result.map_err(|e| spec_error(&e)))?;
        Ok(Self {
            spec,
            generator,
            cancel,
        })
    }

    /// Writes the next segment: `segment` is a JSON object with a scenario segment's keys.
    /// Returns the summary as a dict.
    #[pyo3(signature = (segment, organize_by_class, overwrite, progress=None))]
    fn sample<'py>(
        &mut self,
        py: Python<'py>,
        segment: &str,
        organize_by_class: bool,
        overwrite: bool,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let raw: RawSegment =
            serde_json::from_str(segment).map_err(|e| value_error(e.to_string()))?;
        let segment = self
            .spec
            .segment(raw, self.generator.calls_made())
            .map_err(|e| spec_error(&e))?;
        segment
            .apply(&mut self.generator)
            .map_err(|e| pipeline_error(&e))?;
        for warning in segment.warnings() {
            PyErr::warn(
                py,
                &py.get_type::<pyo3::exceptions::PyUserWarning>(),
                &std::ffi::CString::new(warning).unwrap_or_default(),
                1,
            )?;
        }
        self.generator
            .set_output_options(organize_by_class, overwrite);
        let generator = &mut *self.generator;
        let summary = interruptible(py, &self.cancel, progress.as_ref(), |reporter| {
            generator.sample_with_progress(segment.samples, &segment.output, reporter.as_ref())
        })?
        .map_err(|e| pipeline_error(&e))?;
        summary_dict(py, &summary, &segment.name)
    }

    /// Images not yet sampled.
    #[getter]
    fn remaining(&self) -> usize {
        self.generator.remaining()
    }

    /// The id the next sample gets.
    #[getter]
    fn next_sample_id(&self) -> u64 {
        self.generator.next_sample_id()
    }

    /// Class names in label order.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.generator.dataset().classes().names().to_vec()
    }

    /// The dataset's listing fingerprint.
    #[getter]
    fn dataset_fingerprint(&self) -> String {
        self.generator.dataset().fingerprint().to_owned()
    }

    /// The device, normalization and weights with embeddings on.
    #[getter]
    fn embedding_description(&self) -> Option<String> {
        self.generator.embedding_description()
    }
}

/// Runs a scenario (`run`: a scenario file's text, TOML, or its keys as JSON; paths relative
/// to `base`): every segment staged, then all committed together. One summary dict per
/// segment.
#[pyfunction]
#[pyo3(signature = (run, is_toml, base, progress=None, shard=None, shard_output=None, manifest=None))]
#[allow(clippy::too_many_arguments)] // one per keyword of the Python function
fn run_scenario<'py>(
    py: Python<'py>,
    run: &str,
    is_toml: bool,
    base: PathBuf,
    progress: Option<Bound<'py, PyAny>>,
    shard: Option<String>,
    shard_output: Option<PathBuf>,
    manifest: Option<PathBuf>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let mut raw: RawRun = if is_toml {
        toml::from_str(run).map_err(|e| value_error(format!("scenario: {e}")))?
    } else {
        serde_json::from_str(run).map_err(|e| value_error(format!("scenario: {e}")))?
    };
    if shard.is_some() {
        raw.shard = shard;
        raw.shard_output = shard_output;
    }
    if manifest.is_some() {
        raw.manifest = manifest;
    }
    let mut spec =
        RunSpec::build(raw, FrontEnd::SCENARIO_FILE, &base).map_err(|e| spec_error(&e))?;
    let cancel = Arc::new(AtomicBool::new(false));
    spec.set_cancel(Some(cancel.clone()));
    let summaries = interruptible(py, &cancel, progress.as_ref(), |reporter| {
        spec.run(|_| Box::new(Forward(reporter.clone())), |_, _, _| {})
    })?
    .map_err(|e| spec_error(&e))?;
    spec.segments
        .iter()
        .zip(&summaries)
        .map(|(segment, summary)| summary_dict(py, summary, &segment.name))
        .collect()
}

/// Measures how strong a drift is (`drift-pipeline evaluate`): `run` holds the embedding keys
/// (`weights`, `normalize`, `device`, `batch_size`, ...) as JSON. Returns the report folder.
#[pyfunction]
#[pyo3(signature = (input, output, transforms, levels, run, seed=None, size=None, num_samples=None, threads=None, overwrite=false, progress=None, shard=None, target_kl=None, target_tolerance=0.01))]
#[allow(clippy::too_many_arguments)] // one per keyword of the Python function
fn evaluate<'py>(
    py: Python<'py>,
    input: PathBuf,
    output: PathBuf,
    transforms: Vec<String>,
    levels: Option<Vec<f64>>,
    run: &str,
    seed: Option<u64>,
    size: Option<&str>,
    num_samples: Option<u64>,
    threads: Option<usize>,
    overwrite: bool,
    progress: Option<Bound<'py, PyAny>>,
    shard: Option<String>,
    target_kl: Option<f64>,
    target_tolerance: f64,
) -> PyResult<PathBuf> {
    let shard = shard
        .map(|text| text.parse::<drift_pipeline::Shard>())
        .transpose()
        .map_err(|e| value_error(format!("keyword 'shard': {e}")))?;
    use drift_evaluate::{EvaluateOptions, evaluate};
    let defaults = EvaluateOptions::default();
    let mut raw: RawRun = serde_json::from_str(run).map_err(|e| value_error(e.to_string()))?;
    raw.embeddings = true;
    let embedding = drift_pipeline::embedding_options(&raw, PYTHON, Path::new(""))
        .map_err(|e| spec_error(&e))?
        .expect("embeddings are on");
    let transforms = transforms
        .iter()
        .map(|name| name.parse::<TransformKind>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| value_error(format!("keyword 'transforms': {e}")))?;
    let size = size
        .map(str::parse)
        .transpose()
        .map_err(|e| value_error(format!("keyword 'input_dim': {e}")))?
        .unwrap_or(defaults.size);
    let cancel = Arc::new(AtomicBool::new(false));
    let options = EvaluateOptions {
        transforms,
        levels: levels.unwrap_or(defaults.levels.clone()),
        num_samples,
        seed: seed.unwrap_or(defaults.seed),
        size,
        embedding,
        threads: threads.unwrap_or(defaults.threads),
        overwrite,
        cancel: Some(cancel.clone()),
        shard,
        target_kl: target_kl.map(|target| drift_evaluate::TargetKl {
            target,
            tolerance: target_tolerance,
        }),
        ..defaults
    };
    let evaluation = interruptible(py, &cancel, progress.as_ref(), |reporter| {
        evaluate(&input, &output, &options, reporter.as_ref())
    })?
    .map_err(|e| errors::raise(&e, errors::evaluate(&e)))?;
    Ok(evaluation.output)
}

/// Draws a contact sheet of transforms at drift levels (`drift-pipeline preview`) into
/// `output` (FILE.png and FILE.svg; name either, or no extension). `image` or `input` (a
/// dataset, with `samples`) gives the images; an empty `transforms` means the whole catalog.
/// Returns the PNG.
#[pyfunction]
#[pyo3(signature = (output, transforms, levels, image=None, input=None, samples=1, size=None, seed=None))]
#[allow(clippy::too_many_arguments)] // one per keyword of the Python function
fn preview(
    py: Python<'_>,
    output: PathBuf,
    transforms: Vec<String>,
    levels: Option<Vec<f64>>,
    image: Option<PathBuf>,
    input: Option<PathBuf>,
    samples: usize,
    size: Option<&str>,
    seed: Option<u64>,
) -> PyResult<PathBuf> {
    use drift_evaluate::{PREVIEW_LEVELS, PreviewOptions, PreviewSource};
    let stem = drift_pipeline_cli::figure_stem(&output)
        .map_err(|e| value_error(format!("keyword 'output_path': {e}")))?;
    let source = match (image, input) {
        (Some(image), None) => PreviewSource::Image(image),
        (None, Some(root)) => PreviewSource::Dataset { root, samples },
        _ => return Err(value_error("give one of 'image' and 'input'".into())),
    };
    let transforms = match transforms.is_empty() {
        true => TransformKind::all().to_vec(),
        false => transforms
            .iter()
            .map(|name| name.parse::<TransformKind>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| value_error(format!("keyword 'transforms': {e}")))?,
    };
    let size = match size {
        Some(text) => text
            .parse()
            .map_err(|e| value_error(format!("keyword 'input_dim': {e}")))?,
        None => drift_pipeline::ImageSize::new(224, 224).expect("a valid size"),
    };
    let options = PreviewOptions {
        source,
        transforms,
        levels: levels.unwrap_or_else(|| PREVIEW_LEVELS.to_vec()),
        size,
        seed: seed.unwrap_or(drift_pipeline::DEFAULT_SEED),
    };
    py.detach(|| {
        let sheet = drift_evaluate::preview(&options)?;
        drift_evaluate::write_preview(&sheet, &stem)
    })
    .map_err(|e| errors::raise(&e, errors::preview(&e)))?;
    Ok(stem.with_extension("png"))
}

/// Runs drift detectors over a stream's embeddings (`drift-pipeline detect`). Returns the
/// report folder.
#[pyfunction]
#[pyo3(signature = (reference, stream, output, detectors, window, stride=None, alpha=0.05, seed=0, threads=None, overwrite=false, shard=None))]
#[allow(clippy::too_many_arguments)] // one per keyword of the Python function
fn detect(
    py: Python<'_>,
    reference: PathBuf,
    stream: Vec<PathBuf>,
    output: PathBuf,
    detectors: Vec<String>,
    window: usize,
    stride: Option<usize>,
    alpha: f64,
    seed: u64,
    threads: Option<usize>,
    overwrite: bool,
    shard: Option<String>,
) -> PyResult<PathBuf> {
    use drift_detect::{DetectOptions, DetectorSpec};
    let shard = shard
        .map(|text| text.parse::<drift_pipeline::Shard>())
        .transpose()
        .map_err(|e| value_error(format!("keyword 'shard': {e}")))?;
    let detectors = detectors
        .iter()
        .map(|spec| spec.parse::<DetectorSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| value_error(format!("keyword 'detectors': {e}")))?;
    let options = DetectOptions {
        detectors,
        window,
        stride,
        alpha,
        seed,
        overwrite,
        threads: threads.unwrap_or_else(|| DetectOptions::default().threads),
        shard,
    };
    py.detach(|| drift_detect::detect(&reference, &stream, &output, &options))
        .map_err(|e| errors::raise(&e, errors::detect(&e)))?;
    Ok(output)
}

/// Grades detectors against a stream's ground truth (`drift-pipeline score`): `settings` holds
/// the options as JSON (`max_delay`, `baselines`, ...). Returns the report folder.
#[pyfunction]
#[pyo3(signature = (stream, output, detections, alarms, windows, settings, overwrite=false))]
#[allow(clippy::too_many_arguments)] // one per keyword of the Python function
fn score(
    py: Python<'_>,
    stream: Vec<PathBuf>,
    output: PathBuf,
    detections: Vec<PathBuf>,
    alarms: Vec<PathBuf>,
    windows: Vec<PathBuf>,
    settings: &str,
    overwrite: bool,
) -> PyResult<PathBuf> {
    use drift_detect::{Baseline, ScoreInputs, ScoreOptions};
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        max_delay: Option<u64>,
        max_early: Option<u64>,
        rate_unit: Option<u64>,
        drifted_min: Option<f64>,
        power_target: Option<f64>,
        confidence: Option<f64>,
        level_bins: Option<usize>,
        baselines: Option<Vec<String>>,
        window: Option<u64>,
        alpha: Option<f64>,
    }
    let settings: Settings =
        serde_json::from_str(settings).map_err(|e| value_error(e.to_string()))?;
    let defaults = ScoreOptions::default();
    let baselines = settings
        .baselines
        .map(|list| {
            list.iter()
                .map(|b| b.parse::<Baseline>())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| value_error(format!("keyword 'baselines': {e}")))?;
    let options = ScoreOptions {
        max_delay: settings.max_delay.unwrap_or(defaults.max_delay),
        max_early: settings.max_early.unwrap_or(defaults.max_early),
        rate_unit: settings.rate_unit.unwrap_or(defaults.rate_unit),
        drifted_min: settings.drifted_min.unwrap_or(defaults.drifted_min),
        power_target: settings.power_target.unwrap_or(defaults.power_target),
        confidence: settings.confidence.unwrap_or(defaults.confidence),
        level_bins: settings.level_bins,
        baselines,
        window: settings.window.unwrap_or(defaults.window),
        alpha: settings.alpha.unwrap_or(defaults.alpha),
        overwrite,
    };
    let inputs = ScoreInputs {
        detections,
        alarms,
        windows,
    };
    py.detach(|| drift_detect::score(&stream, &inputs, &output, &options))
        .map_err(|e| errors::raise(&e, errors::detect(&e)))?;
    Ok(output)
}

/// `(name, label, images)` of each class, the ignored count and every ignored path.
type DatasetListing = (Vec<(String, usize, usize)>, usize, Vec<String>);

/// A dataset's classes and what was ignored.
#[pyfunction]
fn inspect(path: PathBuf) -> PyResult<DatasetListing> {
    // A dataset on object storage is listed as a local one is scanned.
    let (dataset, _) = drift_pipeline::open_dataset(&path).map_err(|e| pipeline_error(&e))?;
    let counts = dataset.counts_per_class();
    let classes = dataset
        .classes()
        .names()
        .iter()
        .enumerate()
        .map(|(label, name)| (name.clone(), label, counts[label]))
        .collect();
    let ignored = dataset
        .ignored()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Ok((classes, dataset.ignored_count(), ignored))
}

/// Writes the dataset manifest of `input` to `output` (`drift-pipeline index`); `verify`
/// decodes every image. Returns the images listed and those that do not decode, with why.
#[pyfunction]
#[pyo3(signature = (input, output, verify=false, threads=0))]
fn index(
    py: Python<'_>,
    input: PathBuf,
    output: PathBuf,
    verify: bool,
    threads: usize,
) -> PyResult<(usize, Vec<(String, String)>)> {
    py.detach(|| {
        let (dataset, remote) = drift_pipeline::open_dataset(&input)?;
        let decoder = drift_pipeline::Decoder::new(drift_pipeline::ImageSize::default());
        let threads = drift_pipeline::worker_threads(threads);
        let (manifest, undecodable) = drift_pipeline::DatasetManifest::index(
            &dataset,
            remote.as_ref(),
            verify.then_some(&decoder),
            threads,
            &|_| {},
        );
        manifest.write(&output)?;
        Ok::<_, PipelineError>((
            manifest.images(),
            undecodable
                .into_iter()
                .map(|u| (u.path, u.reason))
                .collect(),
        ))
    })
    .map_err(|e| pipeline_error(&e))
}

/// Merges shard folders (`drift-pipeline merge`) into `output` (a one-segment run) or each
/// segment's own folder. Returns the merged folders with their samples, the zip bytes copied,
/// the seconds taken, any warnings and the bytes moved from and within object storage.
/// `zip_hasher`, when shards and outputs are all on object storage, is called with each merged
/// zip's hash job (JSON) and returns its SHA-256 (the Ray driver runs the job as a task, see
/// `hash_assembled_zip`); without it this process reads the merged zips.
#[pyfunction]
#[pyo3(signature = (shards, output=None, overwrite=false, zip_hasher=None))]
fn merge<'py>(
    py: Python<'py>,
    shards: Vec<PathBuf>,
    output: Option<PathBuf>,
    overwrite: bool,
    zip_hasher: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let call_hasher = |job: &drift_merge::ZipHashJob| -> Result<String, String> {
        let hasher = zip_hasher.as_ref().expect("only given with a hasher");
        let job = serde_json::to_string(job).map_err(|e| e.to_string())?;
        Python::attach(|py| {
            hasher
                .call1(py, (job,))
                .and_then(|sha| sha.extract::<String>(py))
                .map_err(|e| e.to_string())
        })
    };
    let hasher: Option<drift_merge::ZipHasher<'_>> = zip_hasher.as_ref().map(|_| &call_hasher as _);
    let summary = py
        .detach(|| {
            drift_merge::merge_with(&shards, output.as_deref(), overwrite, &|_, _| {}, hasher)
        })
        .map_err(|e| errors::raise(&e, errors::merge(&e)))?;
    let dict = PyDict::new(py);
    let outputs: Vec<(String, u64)> = summary
        .outputs
        .iter()
        .map(|(folder, samples)| (folder.display().to_string(), *samples))
        .collect();
    dict.set_item("outputs", outputs)?;
    dict.set_item("zip_bytes", summary.zip_bytes)?;
    dict.set_item("seconds", summary.elapsed.as_secs_f64())?;
    dict.set_item("warnings", summary.warnings)?;
    dict.set_item("downloaded_bytes", summary.downloaded_bytes)?;
    dict.set_item("copied_bytes", summary.copied_bytes)?;
    dict.set_item("hashed_bytes", summary.hashed_bytes)?;
    Ok(dict)
}

/// Checks shard folders as `merge` would and commits `shard-index.json` listing them into
/// `output` (`drift-pipeline merge --index`, the no-merge layout); returns the index as JSON.
#[pyfunction]
#[pyo3(signature = (shards, output, overwrite=false))]
fn write_shard_index(
    py: Python<'_>,
    shards: Vec<PathBuf>,
    output: PathBuf,
    overwrite: bool,
) -> PyResult<String> {
    let index = py
        .detach(|| drift_merge::write_index(&shards, &output, overwrite))
        .map_err(|e| errors::raise(&e, errors::merge(&e)))?;
    Ok(serde_json::to_string(&index).expect("an index serialises"))
}

/// Runs a merged zip's hash job (JSON, as `merge` hands it to its `zip_hasher`): reads the
/// assembled zip once, checking each shard's zip against its record. Returns the SHA-256 and
/// the bytes read.
#[pyfunction]
fn hash_assembled_zip(py: Python<'_>, job: String) -> PyResult<(String, u64)> {
    let job: drift_merge::ZipHashJob = serde_json::from_str(&job)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("not a hash job: {e}")))?;
    let hash = py
        .detach(|| drift_merge::hash_assembled_zip(&job))
        .map_err(|e| errors::raise(&e, errors::merge(&e)))?;
    Ok((hash.sha256, hash.read_bytes))
}

/// The bytes of one object (a file of an output on object storage).
#[pyfunction]
fn read_object<'py>(py: Python<'py>, url: PathBuf) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let bytes = py
        .detach(|| drift_pipeline::remote::read_object(&url))
        .map_err(|e| errors::raise(&e, errors::pipeline(&e)))?;
    Ok(pyo3::types::PyBytes::new(py, &bytes))
}

/// Deletes every object below an object-store URL (the Ray driver's shards after the merge).
#[pyfunction]
fn delete_remote_folder(py: Python<'_>, url: PathBuf) -> PyResult<usize> {
    py.detach(|| drift_pipeline::remote::delete_folder(&url))
        .map_err(|e| errors::raise(&e, errors::pipeline(&e)))
}

/// Joins `evaluate` shard reports into one report (`drift-pipeline merge` of reports).
#[pyfunction]
#[pyo3(signature = (shards, output, overwrite=false))]
fn merge_reports(
    py: Python<'_>,
    shards: Vec<PathBuf>,
    output: PathBuf,
    overwrite: bool,
) -> PyResult<PathBuf> {
    py.detach(|| drift_evaluate::merge_reports(&shards, &output, overwrite))
        .map(|evaluation| evaluation.output)
        .map_err(|e| errors::raise(&e, errors::report_merge(&e)))
}

/// Joins `detect` shard reports into one report (`drift-pipeline merge` of detect reports).
#[pyfunction]
#[pyo3(signature = (shards, output, overwrite=false))]
fn merge_detect_reports(
    py: Python<'_>,
    shards: Vec<PathBuf>,
    output: PathBuf,
    overwrite: bool,
) -> PyResult<PathBuf> {
    py.detach(|| drift_detect::merge_reports(&shards, &output, overwrite))
        .map(|_| output)
        .map_err(|e| errors::raise(&e, errors::detect(&e)))
}

/// The registered transforms: `(name, bare alias or None, family, description)` each, in
/// registry order.
#[pyfunction]
fn transforms() -> Vec<(
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
)> {
    TransformKind::all()
        .iter()
        .map(|kind| {
            (
                kind.name(),
                kind.alias(),
                kind.family().label(),
                kind.description(),
            )
        })
        .collect()
}

/// What a sharded driver needs to know of a scenario (checked as a run would check it): its
/// input, whether it skips bad images, the embedding device asked for, and each segment's
/// name, samples and output folder.
#[pyfunction]
fn scenario_facts<'py>(
    py: Python<'py>,
    run: &str,
    is_toml: bool,
    base: PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    let raw: RawRun = if is_toml {
        toml::from_str(run).map_err(|e| value_error(format!("scenario: {e}")))?
    } else {
        serde_json::from_str(run).map_err(|e| value_error(format!("scenario: {e}")))?
    };
    let device = raw.device.clone();
    let spec = RunSpec::build(raw, FrontEnd::SCENARIO_FILE, &base).map_err(|e| spec_error(&e))?;
    let dict = PyDict::new(py);
    dict.set_item("input", spec.input.display().to_string())?;
    dict.set_item("skip_bad_images", spec.options.skip_bad_images)?;
    dict.set_item("embeddings", spec.options.embeddings.is_some())?;
    dict.set_item("device", device)?;
    let segments: Vec<(String, u64, String)> = spec
        .segments
        .iter()
        .map(|s| (s.name.clone(), s.samples, s.output.display().to_string()))
        .collect();
    dict.set_item("segments", segments)?;
    Ok(dict)
}

/// The CPU kind this process embeds on (recorded per shard).
#[pyfunction]
fn cpu_kind() -> String {
    drift_pipeline::cpu_kind()
}

/// Writes seeded random ResNet18 weights (safetensors): for tests, never for measurements.
#[pyfunction]
fn write_test_weights(seed: u64, path: PathBuf) -> PyResult<()> {
    drift_embedder::write_synthetic_weights(seed, &path)
        .map_err(|e| Kind::Storage.error(format!("{}: {e}", path.display())))
}

/// The weights cache directory, and the cached reference weights file if there is one.
#[pyfunction]
fn weights_cache() -> (Option<PathBuf>, Option<PathBuf>) {
    (
        drift_pipeline::weights::cache_dir(),
        drift_pipeline::weights::find_cached(),
    )
}

/// The `drift-pipeline` command line, in this process: `argv` as `sys.argv`. Returns the exit
/// code. The wheel's `drift-pipeline` script runs this, so it is the binary's code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| drift_pipeline_cli::main_with(argv))
}

/// Progress counters the worker thread writes and the waiting thread reads.
#[derive(Default)]
struct Counters {
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress for Counters {
    fn samples_written(&self, written: u64, total: u64) {
        self.done.store(written, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn recovered(&self, folder: &Path, recovery: &drift_pipeline::Recovery) {
        eprintln!("note: {}: {recovery}", folder.display());
    }
}

/// Forwards a scenario segment's progress to the one set of counters.
struct Forward(Arc<Counters>);

impl Progress for Forward {
    fn samples_written(&self, written: u64, total: u64) {
        self.0.samples_written(written, total);
    }

    fn recovered(&self, folder: &Path, recovery: &drift_pipeline::Recovery) {
        self.0.recovered(folder, recovery);
    }
}

/// Runs `work` on its own thread while this one waits without the GIL, waking every 50 ms to
/// report progress to `callback(done, total)` and to check for signals. On Ctrl-C (or a
/// callback that raises) the run is cancelled through `cancel`, waited for (it leaves every
/// output as it was), and the Python error is returned.
fn interruptible<T: Send>(
    py: Python<'_>,
    cancel: &AtomicBool,
    callback: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Arc<Counters>) -> T + Send,
) -> PyResult<T> {
    cancel.store(false, Ordering::Relaxed);
    let counters = Arc::new(Counters::default());
    let mut interrupted: Option<PyErr> = None;
    let mut reported = (u64::MAX, u64::MAX);
    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(|| work(&counters));
        loop {
            let finished = py.detach(|| {
                for _ in 0..10 {
                    if worker.is_finished() {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                worker.is_finished()
            });
            if interrupted.is_none() {
                let now = (
                    counters.done.load(Ordering::Relaxed),
                    counters.total.load(Ordering::Relaxed),
                );
                let mut outcome = py.check_signals();
                if let (Ok(()), Some(callback)) = (&outcome, callback)
                    && now != reported
                    && now.1 > 0
                {
                    outcome = callback.call1(now).map(drop);
                    reported = now;
                }
                if let Err(error) = outcome {
                    cancel.store(true, Ordering::Relaxed);
                    interrupted = Some(error);
                }
            }
            if finished {
                return worker.join();
            }
        }
    });
    match (interrupted, result) {
        (Some(error), _) => Err(error),
        (None, Ok(value)) => Ok(value),
        (None, Err(_)) => Err(Kind::Internal
            .error("drift-pipeline: a worker panicked (a bug: please report it)".to_owned())),
    }
}

fn summary_dict<'py>(
    py: Python<'py>,
    summary: &SampleSummary,
    segment: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("output", &summary.output)?;
    dict.set_item("segment", segment)?;
    dict.set_item("samples", summary.samples)?;
    dict.set_item("first_sample_id", summary.first_sample_id)?;
    dict.set_item("timestamps", summary.timestamps)?;
    let skipped: Vec<(String, String)> = summary
        .skipped
        .iter()
        .map(|image| (image.path.display().to_string(), image.reason.clone()))
        .collect();
    dict.set_item("skipped", skipped)?;
    dict.set_item("zip_bytes", summary.zip_bytes)?;
    dict.set_item("elapsed_s", summary.elapsed.as_secs_f64())?;
    dict.set_item("images_per_second", summary.images_per_second())?;
    Ok(dict)
}

fn value_error(message: String) -> PyErr {
    Kind::InvalidRun.error(message)
}

fn spec_error(error: &SpecError) -> PyErr {
    errors::raise(error, errors::spec(error))
}

fn pipeline_error(error: &PipelineError) -> PyErr {
    errors::raise(error, errors::pipeline(error))
}

/// The defaults every front end shares, in Python's keywords: the Python layer's signatures
/// say `None` and the run spec fills these in; they are exported for documentation and
/// introspection, never restated.
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let options = drift_pipeline::GeneratorOptions::default();
    let sweep = drift_evaluate::EvaluateOptions::default();
    let dict = PyDict::new(py);
    dict.set_item("seed", drift_pipeline::DEFAULT_SEED)?;
    dict.set_item("input_dim", options.size.to_string())?;
    dict.set_item("start_timestamp", options.clock.start)?;
    dict.set_item("sample_delta_timestamp", options.clock.delta)?;
    dict.set_item("batch_size", drift_pipeline::DEFAULT_BATCH_SIZE)?;
    dict.set_item("threads", options.threads)?;
    dict.set_item("png_compression", options.png_compression.name())?;
    dict.set_item("levels", sweep.levels)?;
    dict.set_item(
        "transforms",
        sweep
            .transforms
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>(),
    )?;
    Ok(dict)
}

/// The compiled module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Generator>()?;
    module.add_function(wrap_pyfunction!(run_scenario, module)?)?;
    module.add_function(wrap_pyfunction!(evaluate, module)?)?;
    module.add_function(wrap_pyfunction!(detect, module)?)?;
    module.add_function(wrap_pyfunction!(preview, module)?)?;
    module.add_function(wrap_pyfunction!(score, module)?)?;
    module.add_function(wrap_pyfunction!(inspect, module)?)?;
    module.add_function(wrap_pyfunction!(index, module)?)?;
    module.add_function(wrap_pyfunction!(merge, module)?)?;
    module.add_function(wrap_pyfunction!(hash_assembled_zip, module)?)?;
    module.add_function(wrap_pyfunction!(write_shard_index, module)?)?;
    module.add_function(wrap_pyfunction!(delete_remote_folder, module)?)?;
    module.add_function(wrap_pyfunction!(read_object, module)?)?;
    module.add_function(wrap_pyfunction!(merge_reports, module)?)?;
    module.add_function(wrap_pyfunction!(merge_detect_reports, module)?)?;
    module.add_function(wrap_pyfunction!(cpu_kind, module)?)?;
    module.add_function(wrap_pyfunction!(scenario_facts, module)?)?;
    module.add_function(wrap_pyfunction!(transforms, module)?)?;
    module.add_function(wrap_pyfunction!(write_test_weights, module)?)?;
    module.add_function(wrap_pyfunction!(weights_cache, module)?)?;
    module.add_function(wrap_pyfunction!(cli_main, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("DEFAULTS", defaults(module.py())?)?;
    Ok(())
}
