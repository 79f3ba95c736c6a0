//! Every error of the library crates as one of the exceptions of `drift_pipeline.errors`
//! (Python classes, so that each can also subclass the built-in exception users caught
//! before). The matches are exhaustive, with no catch-all: a new error variant does not
//! compile until it is given its exception.

use drift_detect::DetectError;
use drift_evaluate::{EvaluateError, PreviewError, ReportMergeError};
use drift_merge::MergeError;
use drift_pipeline::{EmbedderError, PipelineError, ReaderError, SpecError, WriterError};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;

/// The exception classes of `drift_pipeline.errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    InvalidRun,
    InputNotFound,
    InputNotADirectory,
    OutputExists,
    Data,
    Storage,
    Interrupted,
    Internal,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Self::InvalidRun => "InvalidRunError",
            Self::InputNotFound => "InputNotFoundError",
            Self::InputNotADirectory => "InputNotADirectoryError",
            Self::OutputExists => "OutputExistsError",
            Self::Data => "DataError",
            Self::Storage => "StorageError",
            Self::Internal | Self::Interrupted => "InternalError",
        }
    }

    /// The exception, with `message`.
    pub(crate) fn error(self, message: String) -> PyErr {
        if self == Self::Interrupted {
            return PyKeyboardInterrupt::new_err(message);
        }
        Python::attach(|py| {
            let exception = py
                .import("drift_pipeline.errors")
                .and_then(|module| module.getattr(self.class_name()))
                .and_then(|class| class.call1((message.as_str(),)));
            match exception {
                Ok(exception) => PyErr::from_value(exception),
                Err(error) => PyRuntimeError::new_err(format!("{message} ({error})")),
            }
        })
    }
}

/// `error` as its exception, in the command line's words (and Python's way to replace an
/// existing output where the message does not say it yet).
pub(crate) fn raise(error: &(dyn std::error::Error + 'static), kind: Kind) -> PyErr {
    let mut message = drift_pipeline_cli::error_chain(error);
    if kind == Kind::OutputExists && !message.contains("overwrite") {
        message.push_str(" (pass overwrite=True to replace it)");
    }
    kind.error(message)
}

pub(crate) fn spec(error: &SpecError) -> Kind {
    match error {
        SpecError::Invalid { .. } => Kind::InvalidRun,
        SpecError::OutputExists { .. } => Kind::OutputExists,
        SpecError::Run { source, .. } => pipeline(source),
    }
}

pub(crate) fn pipeline(error: &PipelineError) -> Kind {
    match error {
        PipelineError::Reader(error) => reader(error),
        PipelineError::Writer(error) | PipelineError::Encode { source: error, .. } => writer(error),
        PipelineError::Embedder(error) => embedder(error),
        PipelineError::Cancelled => Kind::Interrupted,
        PipelineError::NoWeights => Kind::InputNotFound,
        PipelineError::Store(error) => store(error),
        PipelineError::RemoteOutput(error) => remote_output(error),
        PipelineError::Sampler(_)
        | PipelineError::Transform(_)
        | PipelineError::LabelShift(_)
        | PipelineError::Option(_)
        | PipelineError::ClassMapping(_)
        | PipelineError::OutputInInput { .. }
        | PipelineError::TimestampOverflow { .. }
        | PipelineError::Shard(_) => Kind::InvalidRun,
        PipelineError::RanOut { .. }
        | PipelineError::Continuation { .. }
        | PipelineError::Manifest { .. } => Kind::Data,
    }
}

fn remote_output(error: &drift_pipeline::RemoteOutputError) -> Kind {
    match error {
        drift_pipeline::RemoteOutputError::Store(error) => store(error),
        drift_pipeline::RemoteOutputError::OutputExists { .. } => Kind::OutputExists,
        _ => Kind::Storage,
    }
}

fn store(error: &drift_pipeline::StoreError) -> Kind {
    match error {
        drift_pipeline::StoreError::NotFound { .. } => Kind::InputNotFound,
        drift_pipeline::StoreError::BadUrl { .. } => Kind::InvalidRun,
        _ => Kind::Storage,
    }
}

fn reader(error: &ReaderError) -> Kind {
    match error {
        ReaderError::MissingRoot { .. } => Kind::InputNotFound,
        ReaderError::RootNotADirectory { .. } => Kind::InputNotADirectory,
        ReaderError::Io { .. } => Kind::Storage,
        ReaderError::NoClasses { .. }
        | ReaderError::NonUtf8Name { .. }
        | ReaderError::EmptyClass { .. }
        | ReaderError::Decode { .. }
        | ReaderError::TooLarge { .. }
        | ReaderError::OverBudget { .. }
        | ReaderError::NotAFile { .. }
        | ReaderError::Changed { .. } => Kind::Data,
    }
}

fn writer(error: &WriterError) -> Kind {
    match error {
        WriterError::OutputExists { .. } => Kind::OutputExists,
        WriterError::InsideStaging { .. } | WriterError::UnsafeZipFolder { .. } => Kind::InvalidRun,
        WriterError::NotAFolder { .. }
        | WriterError::Read { .. }
        | WriterError::Locked { .. }
        | WriterError::CommitInterrupted { .. }
        | WriterError::Io { .. }
        | WriterError::Zip { .. }
        | WriterError::Parquet { .. }
        | WriterError::Png { .. } => Kind::Storage,
        WriterError::Unverified { .. }
        | WriterError::UnsafeName { .. }
        | WriterError::BadTable { .. }
        | WriterError::OutOfOrder { .. }
        | WriterError::Embedding { .. }
        | WriterError::DriftLog { .. }
        | WriterError::UnknownLabel { .. } => Kind::Data,
    }
}

fn embedder(error: &EmbedderError) -> Kind {
    match error {
        EmbedderError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Kind::InputNotFound
        }
        EmbedderError::Io { .. } => Kind::Storage,
        EmbedderError::Device(_) | EmbedderError::BatchTooLarge { .. } => Kind::InvalidRun,
        EmbedderError::Format { .. }
        | EmbedderError::MissingTensor { .. }
        | EmbedderError::UnexpectedTensor { .. }
        | EmbedderError::TensorShape { .. }
        | EmbedderError::TensorValues { .. }
        | EmbedderError::TensorType { .. }
        | EmbedderError::HashMismatch { .. }
        | EmbedderError::MixedSizes { .. } => Kind::Data,
    }
}

pub(crate) fn evaluate(error: &EvaluateError) -> Kind {
    match error {
        EvaluateError::Reader(error) => reader(error),
        EvaluateError::Writer(error) => writer(error),
        EvaluateError::Pipeline(error) => pipeline(error),
        EvaluateError::RemoteReport(error) => remote_output(error),
        EvaluateError::Store(error) => store(error),
        EvaluateError::Embedder(error) => embedder(error),
        EvaluateError::Cancelled => Kind::Interrupted,
        EvaluateError::NoTransform
        | EvaluateError::NoLevel
        | EvaluateError::LevelOutside(_)
        | EvaluateError::LevelTwice(_)
        | EvaluateError::TooFewBatches { .. }
        | EvaluateError::Sampler(_)
        | EvaluateError::Transform(_)
        | EvaluateError::TargetKl(_) => Kind::InvalidRun,
        EvaluateError::Measure { .. } => Kind::Data,
    }
}

pub(crate) fn preview(error: &PreviewError) -> Kind {
    match error {
        PreviewError::NoTransform
        | PreviewError::NoLevel
        | PreviewError::Level(_)
        | PreviewError::NoSample => Kind::InvalidRun,
        PreviewError::EmptyDataset(_) | PreviewError::Sheet(_) => Kind::Data,
        PreviewError::Pipeline(error) => pipeline(error),
        PreviewError::Reader(error) => reader(error),
        PreviewError::Writer(error) => writer(error),
        PreviewError::Write { .. } => Kind::Storage,
    }
}

pub(crate) fn report_merge(error: &ReportMergeError) -> Kind {
    match error {
        ReportMergeError::Report(error) => evaluate(error),
        ReportMergeError::Writer(error) => writer(error),
        ReportMergeError::NoShards => Kind::InvalidRun,
        ReportMergeError::Record(_)
        | ReportMergeError::NotAShardReport { .. }
        | ReportMergeError::OtherSweep { .. }
        | ReportMergeError::Twice { .. }
        | ReportMergeError::Missing { .. }
        | ReportMergeError::Gap { .. } => Kind::Data,
    }
}

pub(crate) fn merge(error: &MergeError) -> Kind {
    match error {
        MergeError::Writer(error) => writer(error),
        MergeError::Remote(error) => pipeline(error),
        MergeError::List { .. } | MergeError::Hasher(_) => Kind::Storage,
        MergeError::NoShards
        | MergeError::OutputForSegments { .. }
        | MergeError::OutputInShard { .. } => Kind::InvalidRun,
        MergeError::NoShardOutput { .. }
        | MergeError::Incomplete { .. }
        | MergeError::Record(_)
        | MergeError::NotAShard { .. }
        | MergeError::SettingsHash { .. }
        | MergeError::Range { .. }
        | MergeError::OtherPlan { .. }
        | MergeError::Twice { .. }
        | MergeError::Missing { .. }
        | MergeError::OtherRun { .. }
        | MergeError::ShardZipChanged { .. }
        | MergeError::Embeddings { .. } => Kind::Data,
    }
}

pub(crate) fn detect(error: &DetectError) -> Kind {
    match error {
        DetectError::Writer(error) => writer(error),
        DetectError::Store(error) => store(error),
        DetectError::RemoteReport(error) => remote_output(error),
        DetectError::Input { .. } => Kind::Data,
        DetectError::Settings(_) => Kind::InvalidRun,
    }
}
