//! `drift-pipeline run SCENARIO.toml`: one seed and input, then an ordered list of segments, each
//! with a sample count, an output folder and its drift. Ids, timestamps and the image cursor
//! continue across segments. The whole file is validated before anything is written.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{ClassPriors, LabelShift};
use crate::{
    DeviceChoice, DriftGenerator, EmbeddingOptions, GeneratorOptions, ImageSize, Normalize,
    PipelineError, PngCompression, Progress, SampleSummary, StreamClock, TransformSpec,
};
use drift_transformer::{Drift, DriftShape, TransformChain};

/// Why a scenario was refused; every variant names the file and, where it applies, the segment.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("cannot read scenario {path}: {source}")]
    Io {
        /// The scenario file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not valid TOML, or keys/types that do not fit.
    #[error("scenario {path}: {reason}")]
    Syntax {
        /// The scenario file.
        path: PathBuf,
        /// The parser's words, with line and key.
        reason: String,
    },
    /// A value that parses but makes no sense.
    #[error("scenario {path}: {place}: {reason}")]
    Invalid {
        /// The scenario file.
        path: PathBuf,
        /// `segment 2 (production), key 'transforms'` or `key 'size'`.
        place: String,
        /// What is wrong.
        reason: String,
    },
    /// The dataset or a segment failed.
    #[error("scenario {path}: {place}: {source}")]
    Run {
        /// The scenario file.
        path: PathBuf,
        /// Where it failed.
        place: String,
        /// Why.
        source: Box<PipelineError>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    input: PathBuf,
    #[serde(default = "default_seed")]
    seed: u64,
    size: Option<String>,
    start_timestamp: Option<f64>,
    delta_timestamp: Option<f64>,
    #[serde(default)]
    organize_by_class: bool,
    class_mapping: Option<PathBuf>,
    #[serde(default)]
    skip_bad_images: bool,
    #[serde(default)]
    overwrite: bool,
    png_compression: Option<String>,
    #[serde(default)]
    embeddings: bool,
    weights: Option<PathBuf>,
    normalize: Option<String>,
    device: Option<String>,
    batch_size: Option<usize>,
    #[serde(rename = "segment", default)]
    segments: Vec<SegmentFile>,
}

fn default_seed() -> u64 {
    42
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentFile {
    name: Option<String>,
    samples: u64,
    output: PathBuf,
    #[serde(default)]
    transforms: Vec<String>,
    drift: Option<String>,
    class_mapping: Option<PathBuf>,
    class_weights: Option<std::collections::BTreeMap<String, f64>>,
    class_dirichlet: Option<f64>,
    #[serde(default)]
    with_replacement: bool,
}

/// One validated segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its name (or `segment N`).
    pub name: String,
    /// Samples to write.
    pub samples: u64,
    /// Output folder, resolved against the scenario's folder.
    pub output: PathBuf,
    /// Its drift (empty: clean).
    pub transforms: Vec<TransformSpec>,
    /// How the drift arrives over the segment's samples.
    pub shape: DriftShape,
    /// A class mapping that takes effect from this segment on (a concept change).
    pub class_mapping: Option<PathBuf>,
    /// Label shift within this segment.
    pub label_shift: LabelShift,
}

/// A validated scenario, ready to run.
#[derive(Debug)]
pub struct Scenario {
    path: PathBuf,
    seed: u64,
    input: PathBuf,
    options: GeneratorOptions,
    segments: Vec<Segment>,
}

impl Scenario {
    /// Reads and validates `path`. Relative paths inside are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_owned(),
            source,
        })?;
        let file: ScenarioFile = toml::from_str(&text).map_err(|e| ScenarioError::Syntax {
            path: path.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let invalid = |place: String, reason: String| ScenarioError::Invalid {
            path: path.to_owned(),
            place,
            reason,
        };
        let mut options = GeneratorOptions {
            organize_by_class: file.organize_by_class,
            class_mapping: file.class_mapping.map(|p| base.join(p)),
            skip_bad_images: file.skip_bad_images,
            overwrite: file.overwrite,
            ..GeneratorOptions::default()
        };
        if let Some(size) = &file.size {
            options.size = size
                .parse::<ImageSize>()
                .map_err(|e| invalid("key 'size'".into(), e.to_string()))?;
        }
        if let Some(compression) = &file.png_compression {
            options.png_compression = compression
                .parse::<PngCompression>()
                .map_err(|e| invalid("key 'png_compression'".into(), e))?;
        }
        if file.embeddings {
            let mut embedding = EmbeddingOptions {
                weights: file.weights.map(|p| base.join(p)),
                ..EmbeddingOptions::default()
            };
            if let Some(normalize) = &file.normalize {
                embedding.normalize = normalize
                    .parse::<Normalize>()
                    .map_err(|e| invalid("key 'normalize'".into(), e))?;
            }
            if let Some(device) = &file.device {
                embedding.device = device
                    .parse::<DeviceChoice>()
                    .map_err(|e| invalid("key 'device'".into(), e))?;
            }
            if let Some(batch_size) = file.batch_size {
                if batch_size == 0 {
                    return Err(invalid(
                        "key 'batch_size'".into(),
                        "must be at least 1".into(),
                    ));
                }
                embedding.batch_size = batch_size;
            }
            options.embeddings = Some(embedding);
        } else if let Some(key) = [
            ("weights", file.weights.is_some()),
            ("normalize", file.normalize.is_some()),
            ("device", file.device.is_some()),
            ("batch_size", file.batch_size.is_some()),
        ]
        .iter()
        .find_map(|(key, set)| set.then_some(key))
        {
            return Err(invalid(
                format!("key '{key}'"),
                "only applies with embeddings = true".into(),
            ));
        }
        let mut clock = StreamClock::default();
        if let Some(start) = file.start_timestamp {
            if !start.is_finite() {
                return Err(invalid(
                    "key 'start_timestamp'".into(),
                    "must be a finite number".into(),
                ));
            }
            clock.start = start;
        }
        if let Some(delta) = file.delta_timestamp {
            if !(delta.is_finite() && delta > 0.0) {
                return Err(invalid(
                    "key 'delta_timestamp'".into(),
                    "must be greater than 0".into(),
                ));
            }
            clock.delta = delta;
        }
        options.clock = clock;
        let input = base.join(&file.input);
        if file.segments.is_empty() {
            return Err(invalid(
                "[[segment]]".into(),
                "a scenario needs at least one segment".into(),
            ));
        }
        let mut segments = Vec::with_capacity(file.segments.len());
        for (index, segment) in file.segments.into_iter().enumerate() {
            let name = segment
                .name
                .unwrap_or_else(|| format!("segment {}", index + 1));
            let place = |key: &str| format!("segment {} ({name}), key '{key}'", index + 1);
            if segment.samples == 0 {
                return Err(invalid(place("samples"), "must be at least 1".into()));
            }
            let transforms = segment
                .transforms
                .iter()
                .map(|t| t.parse::<TransformSpec>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(place("transforms"), e.to_string()))?;
            let shape = match &segment.drift {
                None => DriftShape::Abrupt,
                Some(_) if transforms.is_empty() => {
                    return Err(invalid(
                        place("drift"),
                        "a drift shape needs transforms to apply".into(),
                    ));
                }
                Some(text) => text
                    .parse::<DriftShape>()
                    .map_err(|e| invalid(place("drift"), e.to_string()))?,
            };
            Drift::new(TransformChain::new(transforms.clone()), shape)
                .map_err(|e| invalid(place("transforms"), e.to_string()))?;
            let priors = match (segment.class_weights, segment.class_dirichlet) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        place("class_dirichlet"),
                        "give class_weights or class_dirichlet, not both".into(),
                    ));
                }
                (Some(weights), None) => ClassPriors::Weights(weights.into_iter().collect()),
                (None, Some(alpha)) => ClassPriors::Dirichlet(alpha),
                (None, None) if segment.with_replacement => {
                    return Err(invalid(
                        place("with_replacement"),
                        "only applies with class_weights or class_dirichlet".into(),
                    ));
                }
                (None, None) => ClassPriors::AsInDataset,
            };
            if segment.output.as_os_str().is_empty() {
                return Err(invalid(
                    place("output"),
                    "is empty: name a folder for the segment's output".into(),
                ));
            }
            let output = base.join(&segment.output);
            let resolved = drift_writer::resolve_path(&output)
                .map_err(|e| invalid(place("output"), format!("{}: {e}", output.display())))?;
            if let Some(earlier) = segments.iter().find(|s: &&Segment| {
                drift_writer::resolve_path(&s.output).is_ok_and(|other| other == resolved)
            }) {
                return Err(invalid(
                    place("output"),
                    format!(
                        "{} is also the output of {} ({}), the same folder",
                        output.display(),
                        earlier.name,
                        earlier.output.display()
                    ),
                ));
            }
            crate::check_output_location(&output, &input)
                .map_err(|e| invalid(place("output"), e.to_string()))?;
            if !options.overwrite
                && let Some(existing) = drift_writer::existing_output(&output)
            {
                return Err(invalid(
                    place("output"),
                    format!(
                        "{} already exists (set overwrite = true to replace it)",
                        existing.display()
                    ),
                ));
            }
            segments.push(Segment {
                name,
                samples: segment.samples,
                output,
                transforms,
                shape,
                class_mapping: segment.class_mapping.map(|p| base.join(p)),
                label_shift: LabelShift {
                    priors,
                    with_replacement: segment.with_replacement,
                },
            });
        }
        Ok(Self {
            path: path.to_owned(),
            seed: file.seed,
            input,
            options,
            segments,
        })
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Replaces the worker-thread count and the cancel flag (command-line settings).
    pub fn set_run_options(
        &mut self,
        threads: usize,
        cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) {
        self.options.threads = threads;
        self.options.cancel = cancel;
    }

    /// Scans the input, checks that the segments fit in the dataset, locks every segment's
    /// output folder, runs the segments in order into their staging areas, and commits them all
    /// together at the end: a failure or interruption leaves every output folder as it was.
    /// `progress` is asked for a reporter per segment; `finished` is told about each segment
    /// (with the scanned dataset) once all are committed.
    pub fn run(
        &self,
        mut progress: impl FnMut(&Segment) -> Box<dyn Progress>,
        mut finished: impl FnMut(&Segment, &SampleSummary, &crate::Dataset),
    ) -> Result<Vec<SampleSummary>, ScenarioError> {
        let run_error = |place: String, source: PipelineError| ScenarioError::Run {
            path: self.path.clone(),
            place,
            source: Box::new(source),
        };
        let mut generator = DriftGenerator::new(self.seed, &self.input, self.options.clone())
            .map_err(|e| {
                // Name the key whose file failed, not the dataset's.
                let place = match &e {
                    PipelineError::Embedder(_) | PipelineError::NoWeights(_) => {
                        "key 'weights'".to_owned()
                    }
                    PipelineError::ClassMapping(_) => "key 'class_mapping'".to_owned(),
                    _ => format!("key 'input' ({})", self.input.display()),
                };
                run_error(place, e)
            })?;
        let total: u64 = self
            .segments
            .iter()
            .filter(|s| !s.label_shift.with_replacement)
            .map(|s| s.samples)
            .sum();
        if total > generator.remaining() as u64 {
            return Err(ScenarioError::Invalid {
                path: self.path.clone(),
                place: "segments".into(),
                reason: format!(
                    "the segments ask for {total} samples in all but the dataset has {} images",
                    generator.remaining()
                ),
            });
        }
        let calls: Vec<(u64, LabelShift)> = self
            .segments
            .iter()
            .map(|s| (s.samples, s.label_shift.clone()))
            .collect();
        if let Err((index, error)) = generator.check_calls(&calls) {
            let segment = &self.segments[index];
            return Err(ScenarioError::Invalid {
                path: self.path.clone(),
                place: format!("segment {} ({})", index + 1, segment.name),
                reason: error.to_string(),
            });
        }
        // Every segment's class mapping is checked against the dataset before anything is written.
        for (index, segment) in self.segments.iter().enumerate() {
            if let Some(path) = &segment.class_mapping {
                crate::ClassMapping::load(path, generator.dataset().classes()).map_err(|e| {
                    ScenarioError::Invalid {
                        path: self.path.clone(),
                        place: format!(
                            "segment {} ({}), key 'class_mapping'",
                            index + 1,
                            segment.name
                        ),
                        reason: e.to_string(),
                    }
                })?;
            }
        }
        // Every folder is locked before any segment runs, so that no other writer can slip in
        // between segments, and an alias the paths did not show (a bind mount) is refused too.
        let mut folders = Vec::with_capacity(self.segments.len());
        let mut reporters = Vec::with_capacity(self.segments.len());
        for (index, segment) in self.segments.iter().enumerate() {
            let place = format!("segment {} ({}), key 'output'", index + 1, segment.name);
            let folder = generator
                .lock_output(&segment.output)
                .map_err(|e| run_error(place, e))?;
            let reporter = progress(segment);
            if let Some(recovery) = folder.recovery() {
                reporter.recovered(folder.path(), recovery);
            }
            folders.push(folder);
            reporters.push(reporter);
        }
        let mut staged = Vec::with_capacity(self.segments.len());
        let mut summaries = Vec::with_capacity(self.segments.len());
        let work = self.segments.iter().enumerate().zip(folders).zip(reporters);
        for (((index, segment), folder), reporter) in work {
            let place = format!("segment {} ({})", index + 1, segment.name);
            if segment.transforms.is_empty() {
                generator.reset();
            } else {
                generator
                    .add_drift(segment.transforms.clone(), segment.shape)
                    .map_err(|e| run_error(place.clone(), e))?;
            }
            generator.set_segment_name(Some(segment.name.clone()));
            generator
                .set_label_shift(segment.label_shift.clone())
                .map_err(|e| run_error(place.clone(), e))?;
            if let Some(path) = &segment.class_mapping {
                generator
                    .set_class_mapping(Some(path))
                    .map_err(|e| run_error(place.clone(), e))?;
            }
            let (summary, output) = generator
                .sample_staged(segment.samples, folder, reporter.as_ref())
                .map_err(|e| run_error(place, e))?;
            staged.push(output);
            summaries.push(summary);
        }
        drift_writer::commit_outputs(staged).map_err(|e| run_error("commit".into(), e.into()))?;
        for (segment, summary) in self.segments.iter().zip(&summaries) {
            finished(segment, summary, generator.dataset());
        }
        Ok(summaries)
    }
}
