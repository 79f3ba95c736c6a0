//! `drift-pipeline run SCENARIO.toml`: one seed and input, then an ordered list of segments, each
//! with a sample count, an output folder and its drift. Ids, timestamps and the image cursor
//! continue across segments. The file is one front end of the run spec: it is read into a
//! [`RawRun`] and validated whole by [`RunSpec::build`] before anything is written.

use std::path::{Path, PathBuf};

use crate::spec::{FrontEnd, RawRun, RunSpec, Segment, SpecError};
use crate::{Progress, SampleSummary};

/// Why a scenario was refused or failed; every variant names the file and, where it applies,
/// the segment and key.
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
    /// A value the run spec refused, or a segment that failed.
    #[error("scenario {path}: {source}")]
    Spec {
        /// The scenario file.
        path: PathBuf,
        /// Where and why.
        source: SpecError,
    },
}

/// A validated scenario, ready to run.
#[derive(Debug)]
pub struct Scenario {
    path: PathBuf,
    spec: RunSpec,
}

impl Scenario {
    /// Reads and validates `path`. Relative paths inside are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        Self::load_with(path, |_| {})
    }

    /// As [`Scenario::load`], with `edit` changing the file's keys before they are checked
    /// (the command line's `--shard`, `--manifest`; give it absolute paths: relative ones are
    /// taken relative to the file's folder).
    pub fn load_with(path: &Path, edit: impl FnOnce(&mut RawRun)) -> Result<Self, ScenarioError> {
        let text =
            drift_core::read_small_text(path, drift_core::METADATA_LIMIT).map_err(|source| {
                ScenarioError::Io {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let mut raw: RawRun = toml::from_str(&text).map_err(|e| ScenarioError::Syntax {
            path: path.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        edit(&mut raw);
        let base = path.parent().unwrap_or(Path::new("."));
        let spec = RunSpec::build(raw, FrontEnd::SCENARIO_FILE, base).map_err(|source| {
            ScenarioError::Spec {
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(Self {
            path: path.to_owned(),
            spec,
        })
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.spec.segments
    }

    /// Replaces the worker-thread count and the cancel flag (command-line settings).
    pub fn set_run_options(
        &mut self,
        threads: usize,
        cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) {
        self.spec.options.threads = threads;
        self.spec.set_cancel(cancel);
    }

    /// Runs the scenario (see [`RunSpec::run`]).
    pub fn run(
        &self,
        progress: impl FnMut(&Segment) -> Box<dyn Progress>,
        finished: impl FnMut(&Segment, &SampleSummary, &crate::Dataset),
    ) -> Result<Vec<SampleSummary>, ScenarioError> {
        self.spec
            .run(progress, finished)
            .map_err(|source| ScenarioError::Spec {
                path: self.path.clone(),
                source,
            })
    }
}
