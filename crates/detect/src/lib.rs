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
pub use run::{DETECT_FILES, DetectError, DetectOptions, DetectRecord, DetectorSpec, detect};
pub use score::{Baseline, ScoreInputs, ScoreOptions, ScoreRecord, score};

/// `f` of each item, in order, on up to `threads` scoped threads each taking a contiguous share:
/// each item is computed whole on one thread, so the results do not depend on the thread count.
pub(crate) fn map_on_threads<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let share = items.len().div_ceil(threads.max(1)).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(share)
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a worker thread panicked"))
            .collect()
    })
}
