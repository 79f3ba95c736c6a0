//! What output transactions share, local (`drift-writer`) and on object storage
//! (`drift-store`): what recovery of a dead run did, and who a writer is.

/// What taking an output's lock found left by a run that died there, and did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The run died before its commit was decided: its staged files were removed; the
    /// output is the one that was there before it.
    RemovedStaging {
        /// Files removed (staged files and leftovers of older versions).
        files: usize,
    },
    /// The run died while committing: the commit was completed, so the output is its.
    CompletedCommit,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovery::RemovedStaging { files } => write!(
                f,
                "removed {files} staged file(s) of an earlier run that did not finish; the \
                 output it would have replaced was left as it was"
            ),
            Recovery::CompletedCommit => write!(
                f,
                "completed the commit of an earlier run that died while committing"
            ),
        }
    }
}

/// This machine's name, as lock holders are named.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
