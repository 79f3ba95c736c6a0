//! Reference drift detectors over a stream's embeddings (`drift-pipeline detect`): the
//! statistics (`ks`, `kolmogorov`, `cvm`, `mmd`, `lsdd`), pure computation, and the run over windows of
//! output folders (`run`), which reads the embeddings and writes the report through
//! drift-writer's transaction.

pub mod cvm;
pub mod kolmogorov;
pub mod ks;
pub mod lsdd;
pub mod merge;
pub mod mmd;
pub mod mmd_long;
pub mod mmd_online;
pub mod run;
pub mod score;
pub mod speed;

pub use merge::merge_reports;
pub use run::{DetectError, DetectOptions, DetectRecord, DetectorSpec, detect};
pub use score::{Baseline, ScoreInputs, ScoreOptions, ScoreRecord, score};
