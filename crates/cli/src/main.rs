//! The `drift-pipeline` binary: the command line of [`drift_pipeline_cli`].

use std::process::ExitCode;

/// mimalloc, for the reason given in the workspace's Cargo.toml (the per-image buffers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(drift_pipeline_cli::main_with(std::env::args_os()))
}
