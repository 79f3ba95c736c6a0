//! The `drift-pipeline` command line: flags, progress bars, messages and exit codes, over the
//! drift-pipeline library crates. The binary (`main.rs`) and the Python wheel's
//! `drift-pipeline` script both run [`main_with`]. It owns every flag name (`args`), one module
//! per subcommand (`commands`), the progress and summaries (`report`), the demo data (`demo`)
//! and the weights download (`weights_fetch`).

/// `println!` for a command's output: a closed stdout (`| head`) becomes a [`StdoutClosed`]
/// error, which the edge ([`main_with`]) ends the command on quietly, where `println!` would
/// panic. Use it in functions returning a `Result` whose error converts from `StdoutClosed`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::StdoutClosed)?
    }};
}

mod args;
mod commands;
pub mod demo;
mod report;
pub mod weights_fetch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Result;
use clap::Parser;
use drift_evaluate::{EvaluateError, ReportMergeError};
use drift_merge::MergeError;
use drift_pipeline::{FrontEnd, PipelineError, ReaderError, ShardError, WriterError};

use crate::args::{Cli, Command};
use crate::commands::{
    demo as demo_command, detect, evaluate, generate, index, inspect, merge, preview, run, score,
    timeline, weights,
};

/// The command line's spelling of the run's keys: flags, for errors the run spec reports.
pub const COMMAND_LINE: FrontEnd = FrontEnd {
    key: |key| {
        let flag = match key {
            "samples" => "num-samples",
            "transforms" => "transform",
            "name" => "segment",
            other => return format!("--{}", other.replace('_', "-")),
        };
        format!("--{flag}")
    },
    segment: Some(|_, _| "the run".to_owned()),
    overwrite_hint: "use --overwrite to replace it",
    needs_embeddings: "only applies with --embeddings",
};

/// How the process ends, as its exit code says (fd's `exit_codes.rs`): scripts and Ray tell a
/// failed run from a stopped one by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Done: 0.
    Success,
    /// An error, reported on stderr: 1.
    Failure,
    /// Flags that do not parse, or `--help` and `--version` (clap's own codes: 2, or 0).
    Usage(u8),
    /// Stopped by signal `n` (Ctrl-C, `kill`): 128 + n, every output folder as it was.
    Signal(u8),
}

impl ExitCode {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::Usage(code) => code,
            Self::Signal(number) => 128u8.saturating_add(number),
        }
    }
}

/// Writing to stdout failed: the reader went away (`| head`), or the terminal did.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
pub struct StdoutClosed(pub std::io::Error);

/// The signals that stop a run cleanly: the pipeline stops, every output folder keeps what it
/// had, and the exit code is 128 + the signal's number. A second one ends the process at once
/// (the next run into the folder removes what it staged).
const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// Runs the command line on `args` (the program name first, as `std::env::args_os`) and
/// returns the exit code ([`ExitCode`]).
pub fn main_with<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    exit_code(args).code()
}

fn exit_code<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let _ = error.print();
            return ExitCode::Usage(error.exit_code() as u8);
        }
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let signal = Arc::new(AtomicUsize::new(0));
    for number in STOP_SIGNALS {
        // Registered first, so it sees the flag as it was before this signal set it. Failing to
        // install the handlers only loses the clean stop.
        let _ =
            signal_hook::flag::register_conditional_shutdown(number, 128 + number, cancel.clone());
        let _ = signal_hook::flag::register_usize(number, signal.clone(), number as usize);
        let _ = signal_hook::flag::register(number, cancel.clone());
    }
    let Err(error) = dispatch(cli, cancel) else {
        return ExitCode::Success;
    };
    // A reader that stopped reading (`| head`) has what it wanted: the command ends quietly.
    if let Some(StdoutClosed(closed)) = error.downcast_ref::<StdoutClosed>()
        && closed.kind() == std::io::ErrorKind::BrokenPipe
    {
        return ExitCode::Success;
    }
    eprintln!("error: {}{}", error_chain(error.as_ref()), hint(&error));
    let interrupted = error.chain().any(|cause| {
        matches!(pipeline_error(cause), Some(PipelineError::Cancelled))
            || matches!(
                cause.downcast_ref::<EvaluateError>(),
                Some(EvaluateError::Cancelled)
            )
    });
    match signal.load(Ordering::Relaxed) {
        number if interrupted && number > 0 => ExitCode::Signal(number as u8),
        _ if interrupted => ExitCode::Signal(signal_hook::consts::SIGINT as u8),
        _ => ExitCode::Failure,
    }
}

/// `cause` as the library's error, as it comes (the run spec boxes it).
fn pipeline_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a PipelineError> {
    cause.downcast_ref::<PipelineError>().or_else(|| {
        cause
            .downcast_ref::<Box<PipelineError>>()
            .map(AsRef::as_ref)
    })
}

/// What to do about `error` in this front end's words (library errors name no flags).
fn hint(error: &anyhow::Error) -> &'static str {
    for cause in error.chain() {
        let writer = match (
            pipeline_error(cause),
            cause.downcast_ref::<MergeError>(),
            cause.downcast_ref::<EvaluateError>(),
            cause.downcast_ref::<ReportMergeError>(),
        ) {
            (Some(PipelineError::Writer(writer)), ..)
            | (_, Some(MergeError::Writer(writer)), ..)
            | (_, _, Some(EvaluateError::Writer(writer)), _)
            | (_, _, _, Some(ReportMergeError::Writer(writer))) => Some(writer),
            (_, _, Some(EvaluateError::Pipeline(PipelineError::Writer(writer))), _) => Some(writer),
            _ => cause.downcast_ref::<WriterError>(),
        };
        if let Some(WriterError::OutputExists { .. }) = writer {
            return " (use --overwrite to replace it)";
        }
        if let Some(PipelineError::Reader(ReaderError::Decode { .. })) = pipeline_error(cause) {
            return " (--skip-bad-images skips unreadable images, counted and listed)";
        }
        match cause.downcast_ref::<MergeError>() {
            Some(MergeError::OutputInShard { recorded: true, .. }) => return " (give --output)",
            Some(MergeError::OutputForSegments { .. }) => return " (leave out --output)",
            _ => {}
        }
        if let Some(PipelineError::Shard(ShardError::NeedsVerifiedManifest { .. })) =
            pipeline_error(cause)
        {
            return " (`drift-pipeline index --verify` makes one: give it with --manifest)";
        }
    }
    ""
}

/// The stem of a figure written as PNG and SVG (`timeline`, `preview`): `FILE.png`, `FILE.svg`
/// and `FILE` all name `FILE`. Another extension is refused, in words every front end uses
/// after naming its flag or keyword.
pub fn figure_stem(output: &std::path::Path) -> Result<std::path::PathBuf, String> {
    match output.extension().and_then(|e| e.to_str()) {
        None => Ok(output.to_owned()),
        Some("png" | "svg") => Ok(output.with_extension("")),
        Some(other) => Err(format!(
            "{}: the figure is written as PNG and SVG; name it FILE.png, FILE.svg or FILE, not \
             .{other}",
            output.display()
        )),
    }
}

/// The error and its causes on one line, each cause once: libraries often show their source
/// in their own message too (`... (os error 28): No space left on device (os error 28)`).
/// Every front end reports errors in these words.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(error);
    while let Some(current) = cause {
        let text = current.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = current.source();
    }
    line
}

fn dispatch(cli: Cli, cancel: Arc<AtomicBool>) -> Result<()> {
    match cli.command {
        Command::Generate(args) => generate::generate(*args, cancel),
        Command::Inspect { dir, all } => inspect::inspect(&dir, all),
        Command::Timeline(args) => timeline::timeline(&args),
        Command::Preview(args) => preview::preview(&args),
        Command::Verify { dir } => {
            // On object storage the output is downloaded (to scratch space) and checked whole.
            let copy = match drift_pipeline::remote::is_url(&dir) {
                true => Some(drift_pipeline::remote::fetch_output(&dir, &[])?),
                false => None,
            };
            let files = drift_pipeline::verify(copy.as_ref().map_or(&*dir, |c| c.path()))?;
            let bytes: u64 = files.iter().map(|file| file.bytes).sum();
            outln!(
                "{}: complete output, {} files and drift.json verified ({bytes} bytes)",
                dir.display(),
                files.len()
            );
            Ok(())
        }
        Command::Evaluate(args) => evaluate::evaluate(args, cancel),
        Command::Detect(args) => detect::detect(args),
        Command::Score(args) => score::score(&args),
        Command::Weights { command } => weights::weights(command),
        Command::Run {
            scenario,
            threads,
            quiet,
            shard,
            output,
        } => run::run_scenario(&scenario, threads, quiet, &shard, output, cancel),
        Command::Index {
            dir,
            output,
            verify,
            threads,
            quiet,
        } => index::index(&dir, &output, verify, threads, quiet),
        Command::Merge {
            shards,
            output,
            index: true,
            overwrite,
            quiet: _,
        } => merge::index(&shards, output.as_deref(), overwrite),
        Command::Merge {
            shards,
            output,
            index: false,
            overwrite,
            quiet,
        } => merge::merge(&shards, output.as_deref(), overwrite, quiet),
        Command::Demo {
            dir,
            overwrite,
            images_per_class,
            run,
        } => demo_command::run_demo(&dir, overwrite, images_per_class as usize, run, cancel),
    }
}
