//! The `drift-pipeline` binary: the command line of [`drift_pipeline_cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(drift_pipeline_cli::main_with(std::env::args_os()))
}
