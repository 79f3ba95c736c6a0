//! Outputs on object storage as transactions, without rename, flock or fsync.
//!
//! The local transaction (`drift-writer`'s `transaction` module) rests on POSIX rename and
//! flock; object stores have neither, but they have conditional writes: create-only
//! (`If-None-Match: *`, GCS generation 0) and compare-and-swap (`If-Match: <etag>`). Everything
//! here is decided by a compare-and-swap on one object, the prefix's lock object.
//!
//! - **Lock**: `.drift-pipeline.lock` under the prefix holds a [`LockRecord`]: a state
//!   (`free`, `writing`, `committing`), the holder (host and pid), a transaction id and a lease.
//!   A writer takes a missing lock by creating it, a free or dead one by swapping it (at most one
//!   of any number of racers wins either), and renews its lease on a thread while it works. A
//!   holder is dead when its lease ran out, or at once when it ran on this host and its process is
//!   gone. The lock object is never deleted, only set free.
//! - **Stage**: the output's files are uploaded under `.drift-pipeline.staging/<txid>/`.
//! - **Commit**: swapping the lock to `committing` with the plan (files to install, the marker,
//!   old files to remove) decides the commit; a writer that lost its lock cannot decide. Then the
//!   old marker is deleted, each staged file copied to its name inside the store (no bytes pass
//!   through this machine), old files removed, the marker copied last, staging deleted, and the
//!   lock set free. So a prefix whose marker exists holds a complete output, which the marker
//!   describes (sizes and SHA-256 of every file).
//! - **Recover**: the next writer to take a dead writer's lock finishes a decided commit (every
//!   step is idempotent: the staged objects stay until the marker is in place) or deletes what
//!   an undecided one staged.
//!
//! Multipart uploads a killed writer left unfinished are invisible to listing and cost storage
//! until aborted; a bucket lifecycle rule (`AbortIncompleteMultipartUpload`) removes them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drift_core::Recovery;
use object_store::PutMode;

use crate::{Conditional, RemoteLocation, StoreError, Version};

/// The lock object under every remote output prefix.
pub const LOCK_OBJECT: &str = ".drift-pipeline.lock";
/// Staged files live below this prefix until the commit.
pub const STAGING_PREFIX: &str = ".drift-pipeline.staging";
/// Seconds a writer's lease lasts without renewal (default 120): after that another writer may
/// take the lock over. Tests shorten it.
pub const LEASE_ENV: &str = "DRIFT_PIPELINE_LOCK_LEASE_SECS";
const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// Set to a fault point's name (`remote-staged`, `remote-mid-commit`, `remote-committed`, and
/// `remote-assembling`: an assembled file's parts uploaded, the upload not completed) to abort
/// the process there, as a kill would (tests only).
const ABORT_AT_ENV: &str = "DRIFT_PIPELINE_TEST_ABORT_AT";

pub(crate) fn fault_point(name: &str) {
    if std::env::var_os(ABORT_AT_ENV).is_some_and(|value| value == name) {
        std::process::abort();
    }
}

/// Why a remote output could not be locked, staged or committed.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// Another live writer holds the prefix.
    #[error(
        "{url} is being written by another run ({holder}); wait for it to finish (a dead \
         writer's lock is taken over once its lease of {lease_s} s runs out)"
    )]
    Locked {
        /// The output prefix.
        url: String,
        /// Who holds it.
        holder: String,
        /// Its lease.
        lease_s: u64,
    },
    /// This writer's lease ran out and another writer took the lock: nothing was committed.
    #[error(
        "{url}: another writer took over this run's lock (its lease ran out); nothing was \
         committed"
    )]
    LostLock {
        /// The output prefix.
        url: String,
    },
    /// The lock object holds something this tool did not write there.
    #[error("{url}/{LOCK_OBJECT} is not a lock this tool wrote ({reason}); remove it")]
    ForeignLock {
        /// The output prefix.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The prefix holds an output and replacing it was not asked for.
    #[error("output {url} already exists, and replacing it was not asked for")]
    OutputExists {
        /// The first output file found.
        url: String,
    },
    /// A request failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes a folder-shaped output (a report) at `output`. For a local path, `write` writes it
/// there itself. For an object-store URL, `write` writes it into a fresh local scratch folder
/// while this process holds the prefix's lock, and the files it committed there are then
/// published by the remote transaction, `marker` last. `output_files` are the names an output
/// there may hold (those of an old output that the new one lacks are removed); `overwrite`
/// allows replacing an output the prefix holds.
pub fn write_folder<T, E>(
    output: &std::path::Path,
    output_files: &[&str],
    marker: &str,
    overwrite: bool,
    write: impl FnOnce(&std::path::Path) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError> + From<TransactionError>,
{
    let crate::Location::Remote(location) = crate::Location::from_path(output)? else {
        return write(output);
    };
    let remote = RemoteOutput::lock(&location, output_files)?;
    if !overwrite && let Some(url) = remote.existing_output()? {
        return Err(TransactionError::OutputExists { url }.into());
    }
    let scratch = crate::scratch_dir("drift-pipeline-report-")?;
    let local = scratch.path().join("report");
    let value = write(&local)?;
    let mut files = Vec::new();
    let listed = std::fs::read_dir(&local).map_err(|source| StoreError::Local {
        path: local.clone(),
        source,
    })?;
    for entry in listed {
        let entry = entry.map_err(|source| StoreError::Local {
            path: local.clone(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_file() {
            files.push(name);
        }
    }
    files.sort();
    remote.commit(&local, &files, marker)?;
    Ok(value)
}

/// The lock object's content.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LockRecord {
    state: LockState,
    host: String,
    pid: u32,
    txid: String,
    /// When the holder last renewed its lease (ms since the Unix epoch).
    renewed_unix_ms: u64,
    lease_ms: u64,
    /// The decided commit, in state `committing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plan: Option<Plan>,
    /// Multipart uploads begun by the holder (staged key, upload id): a writer that finds the
    /// holder dead aborts them, so their parts stop costing storage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    uploads: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum LockState {
    Free,
    Writing,
    Committing,
}

/// What a decided commit does (the remote twin of the local `COMMIT` file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Plan {
    /// Staged files copied into place, in order.
    install: Vec<String>,
    /// Copied in last: its presence means the output is complete.
    marker: String,
    /// Files of the old output that the new one does not have.
    remove: Vec<String>,
}

impl LockRecord {
    fn holder(&self) -> String {
        format!("pid {} on host {}", self.pid, self.host)
    }

    /// Whether its holder can no longer be working.
    fn is_dead(&self, now_ms: u64, host: &str) -> bool {
        if now_ms > self.renewed_unix_ms.saturating_add(self.lease_ms) {
            return true;
        }
        self.host == host
            && self.pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    fn check_names(&self, url: &str) -> Result<(), TransactionError> {
        if let Some((key, _)) = self.uploads.iter().find(|(key, _)| {
            key.strip_prefix(STAGING_PREFIX)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_none_or(|rest| !rest.split('/').all(drift_core::is_plain_name))
        }) {
            return Err(TransactionError::ForeignLock {
                url: url.to_owned(),
                reason: format!("it names the upload {key:?}, not one of a staged file"),
            });
        }
        let Some(plan) = &self.plan else {
            return Ok(());
        };
        let names = plan.install.iter().chain(&plan.remove);
        match names
            .chain(std::iter::once(&plan.marker))
            .find(|name| !drift_core::is_plain_name(name) || name.starts_with(".drift-pipeline"))
        {
            Some(name) => Err(TransactionError::ForeignLock {
                url: url.to_owned(),
                reason: format!("its plan names {name:?}, not an output file"),
            }),
            None => Ok(()),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lease() -> Duration {
    std::env::var(LEASE_ENV)
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map_or(DEFAULT_LEASE, Duration::from_secs_f64)
}

/// The lock as this writer holds it: the object's version and content, swapped together.
struct Held {
    version: Version,
    record: LockRecord,
}

struct Lease {
    held: Mutex<Held>,
    lost: AtomicBool,
}

/// A remote output prefix held by this process: locked, with what dead writers left cleared
/// up, ready for one new output to be staged and committed.
pub struct RemoteOutput {
    location: RemoteLocation,
    output_files: Vec<String>,
    lease: Arc<Lease>,
    renewer: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
    recovery: Option<Recovery>,
    staged: Vec<String>,
    decided: Option<Plan>,
    finished: bool,
}

impl std::fmt::Debug for RemoteOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteOutput({})", self.location)
    }
}

impl RemoteOutput {
    /// Takes `location`'s lock (failing at once, naming the holder, when a live writer has it)
    /// and recovers what a dead writer left. `output_files` are the names that make up an
    /// output there.
    pub fn lock(
        location: &RemoteLocation,
        output_files: &[&str],
    ) -> Result<Self, TransactionError> {
        let host = drift_core::host_name();
        let lease_ms = lease().as_millis() as u64;
        let txid = format!(
            "{}-{}-{:x}",
            now_ms(),
            std::process::id(),
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
        );
        let mine = LockRecord {
            state: LockState::Writing,
            host: host.clone(),
            pid: std::process::id(),
            txid,
            renewed_unix_ms: now_ms(),
            lease_ms,
            plan: None,
            uploads: Vec::new(),
        };
        let url = location.url().to_owned();
        // Every round either takes the lock, finds a live holder, or saw another writer
        // change the lock between its read and its swap; a few rounds settle any race.
        for _ in 0..16 {
            let current = match location.get_versioned(LOCK_OBJECT) {
                Ok(current) => Some(current),
                Err(StoreError::NotFound { .. }) => None,
                Err(error) => return Err(error.into()),
            };
            let (mode, previous) = match current {
                None => (PutMode::Create, None),
                Some((bytes, version)) => {
                    let previous: LockRecord = serde_json::from_slice(&bytes).map_err(|e| {
                        TransactionError::ForeignLock {
                            url: url.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                    previous.check_names(&url)?;
                    if previous.state != LockState::Free && !previous.is_dead(now_ms(), &host) {
                        return Err(TransactionError::Locked {
                            url,
                            holder: previous.holder(),
                            lease_s: previous.lease_ms / 1000,
                        });
                    }
                    (version.mode(), Some(previous))
                }
            };
            let mut record = mine.clone();
            record.renewed_unix_ms = now_ms();
            let bytes = serde_json::to_vec(&record).expect("a lock record serialises");
            match location.put_conditional(LOCK_OBJECT, bytes, mode) {
                Ok(version) => {
                    let mut output = Self {
                        location: location.clone(),
                        output_files: output_files.iter().map(|s| (*s).to_owned()).collect(),
                        lease: Arc::new(Lease {
                            held: Mutex::new(Held { version, record }),
                            lost: AtomicBool::new(false),
                        }),
                        renewer: None,
                        recovery: None,
                        staged: Vec::new(),
                        decided: None,
                        finished: false,
                    };
                    output.start_renewing();
                    output.recovery = output.recover(previous.as_ref())?;
                    return Ok(output);
                }
                Err(Conditional::Lost) => continue,
                Err(Conditional::Failed(error)) => return Err(error.into()),
            }
        }
        Err(TransactionError::Locked {
            url,
            holder: "other writers racing for it".into(),
            lease_s: lease_ms / 1000,
        })
    }

    /// The prefix.
    pub fn location(&self) -> &RemoteLocation {
        &self.location
    }

    /// What the lock found left by a dead writer, if anything.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// The URL of the first output file present under the prefix, if any.
    pub fn existing_output(&self) -> Result<Option<String>, TransactionError> {
        for name in &self.output_files {
            if self.location.exists(name)? {
                return Ok(Some(self.location.url_of(name)));
            }
        }
        Ok(None)
    }

    fn txid(&self) -> String {
        self.held().record.txid.clone()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.lease
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn staged_key(txid: &str, name: &str) -> String {
        format!("{STAGING_PREFIX}/{txid}/{name}")
    }

    /// Uploads the local file `local` as staged file `name` (one of the output files).
    pub fn stage_file(
        &mut self,
        local: &std::path::Path,
        name: &str,
    ) -> Result<(), TransactionError> {
        self.check_lease()?;
        let key = Self::staged_key(&self.txid(), name);
        let mut lost = None;
        let uploaded = self.location.upload_file_with(local, &key, &mut |id| {
            self.record_upload(&key, id, &mut lost)
        });
        match (uploaded, lost) {
            (Ok(()), _) => {}
            (Err(_), Some(error)) => return Err(error),
            (Err(error), None) => return Err(error.into()),
        }
        if !self.staged.iter().any(|n| n == name) {
            self.staged.push(name.to_owned());
        }
        Ok(())
    }

    /// Writes staged file `name` as the concatenation of `pieces` (ranges of other objects,
    /// copied by the store where it can: see [`RemoteLocation::assemble`]). The upload's id is
    /// put in the lock first, so a writer killed half-way leaves no upload behind for long.
    pub fn stage_assembled(
        &mut self,
        name: &str,
        pieces: Vec<crate::Piece>,
    ) -> Result<crate::AssemblyStats, TransactionError> {
        self.check_lease()?;
        let key = Self::staged_key(&self.txid(), name);
        let mut lost = None;
        let stats = self.location.assemble(&key, pieces, &mut |id| {
            self.record_upload(&key, id, &mut lost)
        });
        let stats = match (stats, lost) {
            (Ok(stats), _) => stats,
            (Err(_), Some(error)) => return Err(error),
            (Err(error), None) => return Err(error.into()),
        };
        if !self.staged.iter().any(|n| n == name) {
            self.staged.push(name.to_owned());
        }
        Ok(stats)
    }

    /// Puts the multipart upload `id` of staged key `key` in the lock, so that whoever takes
    /// the lock from a dead holder aborts it; a failed swap is kept in `lost`.
    fn record_upload(
        &self,
        key: &str,
        id: &str,
        lost: &mut Option<TransactionError>,
    ) -> Result<(), StoreError> {
        let upload = (key.to_owned(), id.to_owned());
        self.swap(|record| record.uploads.push(upload))
            .map_err(|error| {
                let reason = error.to_string();
                *lost = Some(error);
                StoreError::Request {
                    url: self.location.url_of(key),
                    reason,
                }
            })
    }

    /// The URL of staged file `name` (to be read before the commit, e.g. to hash it).
    pub fn staged_url(&self, name: &str) -> String {
        self.location.url_of(&Self::staged_key(&self.txid(), name))
    }

    fn check_lease(&self) -> Result<(), TransactionError> {
        if self.lease.lost.load(Ordering::SeqCst) {
            return Err(TransactionError::LostLock {
                url: self.location.url().to_owned(),
            });
        }
        Ok(())
    }

    /// Swaps the lock to `record`; a lost swap means another writer took the lock.
    fn swap(&self, change: impl FnOnce(&mut LockRecord)) -> Result<(), TransactionError> {
        let mut held = self.held();
        let mut record = held.record.clone();
        change(&mut record);
        record.renewed_unix_ms = now_ms();
        let bytes = serde_json::to_vec(&record).expect("a lock record serialises");
        match self
            .location
            .put_conditional(LOCK_OBJECT, bytes, held.version.mode())
        {
            Ok(version) => {
                *held = Held { version, record };
                Ok(())
            }
            Err(Conditional::Lost) => {
                self.lease.lost.store(true, Ordering::SeqCst);
                Err(TransactionError::LostLock {
                    url: self.location.url().to_owned(),
                })
            }
            Err(Conditional::Failed(error)) => Err(error.into()),
        }
    }

    /// Decides the commit of the staged files, `marker` last: from here on a crash is finished
    /// by the next writer.
    pub fn decide(&mut self, marker: &str) -> Result<(), TransactionError> {
        self.check_lease()?;
        if !self.staged.iter().any(|n| n == marker) {
            return Err(StoreError::Request {
                url: self.location.url_of(marker),
                reason: "the output was never given its marker file".into(),
            }
            .into());
        }
        let plan = Plan {
            install: self
                .staged
                .iter()
                .filter(|name| *name != marker)
                .cloned()
                .collect(),
            marker: marker.to_owned(),
            remove: self
                .output_files
                .iter()
                .filter(|name| !self.staged.contains(name))
                .cloned()
                .collect(),
        };
        fault_point("remote-staged");
        let decided = plan.clone();
        self.swap(|record| {
            record.state = LockState::Committing;
            record.plan = Some(decided);
        })?;
        self.decided = Some(plan);
        Ok(())
    }

    /// Takes back a decision not yet applied (another output of the same commit failed).
    pub fn undecide(&mut self) {
        if self.decided.is_some()
            && self
                .swap(|record| {
                    record.state = LockState::Writing;
                    record.plan = None;
                })
                .is_ok()
        {
            self.decided = None;
        }
    }

    /// Applies the decided commit and sets the lock free.
    pub fn apply(mut self) -> Result<(), TransactionError> {
        let plan = self.decided.clone().expect("decide comes before apply");
        let txid = self.txid();
        apply_plan(&self.location, &txid, &plan)?;
        self.release()
    }

    /// Stages `files` from the local folder `folder` (the marker among them), decides and
    /// applies the commit.
    pub fn commit(
        mut self,
        folder: &std::path::Path,
        files: &[String],
        marker: &str,
    ) -> Result<(), TransactionError> {
        for name in files.iter().filter(|n| *n != marker) {
            self.stage_file(&folder.join(name), name)?;
        }
        self.stage_file(&folder.join(marker), marker)?;
        self.decide(marker)?;
        self.apply()
    }

    /// Stops renewing and sets the lock free.
    fn release(&mut self) -> Result<(), TransactionError> {
        self.stop_renewing();
        self.finished = true;
        self.swap(|record| {
            record.state = LockState::Free;
            record.plan = None;
            record.uploads.clear();
        })
    }

    fn start_renewing(&mut self) {
        let (stop, stopped) = mpsc::channel::<()>();
        let lease = self.lease.clone();
        let location = self.location.clone();
        let period = Duration::from_millis((lease_of(&lease) / 4).max(50));
        let handle = std::thread::Builder::new()
            .name("drift-lock-lease".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    let mut held = lease.held.lock().unwrap_or_else(PoisonError::into_inner);
                    let mut record = held.record.clone();
                    record.renewed_unix_ms = now_ms();
                    let bytes = serde_json::to_vec(&record).expect("a lock record serialises");
                    match location.put_conditional(LOCK_OBJECT, bytes, held.version.mode()) {
                        Ok(version) => *held = Held { version, record },
                        Err(Conditional::Lost) => {
                            lease.lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        // A failed request is tried again next period; the lease covers three.
                        Err(Conditional::Failed(_)) => {}
                    }
                }
            })
            .expect("a thread starts");
        self.renewer = Some((stop, handle));
    }

    fn stop_renewing(&mut self) {
        if let Some((stop, handle)) = self.renewer.take() {
            drop(stop);
            let _ = handle.join();
        }
    }

    /// Finishes a dead writer's decided commit, or removes what it staged.
    fn recover(&self, previous: Option<&LockRecord>) -> Result<Option<Recovery>, TransactionError> {
        let mut recovery = None;
        if let Some(previous) = previous {
            // Aborting an upload that was completed (or already aborted) is a no-op.
            for (key, id) in &previous.uploads {
                self.location.abort_upload(key, id)?;
            }
        }
        if let Some(previous) = previous
            && previous.state == LockState::Committing
            && let Some(plan) = &previous.plan
        {
            apply_plan(&self.location, &previous.txid, plan)?;
            recovery = Some(Recovery::CompletedCommit);
        }
        let staging = self.location.join(STAGING_PREFIX);
        let leftovers = staging.list()?;
        for object in &leftovers {
            staging.delete(&object.key)?;
        }
        if recovery.is_none() && !leftovers.is_empty() {
            recovery = Some(Recovery::RemovedStaging {
                files: leftovers.len(),
            });
        }
        Ok(recovery)
    }
}

fn lease_of(lease: &Lease) -> u64 {
    lease
        .held
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record
        .lease_ms
}

/// Every step is idempotent, so a crash at any point is finished by running it again.
fn apply_plan(location: &RemoteLocation, txid: &str, plan: &Plan) -> Result<(), TransactionError> {
    let staged = |name: &str| RemoteOutput::staged_key(txid, name);
    let marker_pending = location.exists(&staged(&plan.marker))?;
    if marker_pending {
        location.delete(&plan.marker)?;
        for (index, name) in plan.install.iter().enumerate() {
            // A staged file already gone was copied by an earlier attempt: staging is
            // deleted only once the marker is in place.
            if location.exists(&staged(name))? {
                location.copy(&staged(name), name)?;
            }
            if index == 0 {
                fault_point("remote-mid-commit");
            }
        }
        for name in &plan.remove {
            location.delete(name)?;
        }
        location.copy(&staged(&plan.marker), &plan.marker)?;
    }
    fault_point("remote-committed");
    for name in plan.install.iter().chain(std::iter::once(&plan.marker)) {
        location.delete(&staged(name))?;
    }
    Ok(())
}

impl Drop for RemoteOutput {
    fn drop(&mut self) {
        self.stop_renewing();
        if self.finished {
            return;
        }
        // A decided commit that failed half-way stays for the next writer to finish (the lock
        // says `committing`); an undecided one is removed and the lock set free.
        if self.decided.is_none() {
            let txid = self.txid();
            for name in &self.staged {
                let _ = self.location.delete(&Self::staged_key(&txid, name));
            }
            let _ = self.swap(|record| {
                record.state = LockState::Free;
                record.plan = None;
                record.uploads.clear();
            });
        }
    }
}

/// Commits several remote outputs together (a scenario's segments): every one is decided before
/// any is applied, so a failure before the last decision leaves every prefix as it was.
pub fn commit_all(mut outputs: Vec<(RemoteOutput, String)>) -> Result<(), TransactionError> {
    for index in 0..outputs.len() {
        let (output, marker) = &mut outputs[index];
        if let Err(error) = output.decide(marker) {
            for (output, _) in &mut outputs[..index] {
                output.undecide();
            }
            return Err(error);
        }
    }
    outputs
        .into_iter()
        .try_for_each(|(output, _)| output.apply())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: [&str; 3] = ["a.bin", "b.bin", "marker.json"];

    fn local_output(dir: &std::path::Path, tag: &str, names: &[&str]) -> Vec<String> {
        for name in names {
            std::fs::write(dir.join(name), format!("{tag}:{name}")).unwrap();
        }
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn contents(location: &RemoteLocation) -> Vec<(String, String)> {
        location
            .list()
            .unwrap()
            .into_iter()
            .filter(|o| o.key != LOCK_OBJECT)
            .map(|o| {
                let text = String::from_utf8(location.get(&o.key).unwrap().to_vec()).unwrap();
                (o.key, text)
            })
            .collect()
    }

    #[test]
    fn a_commit_replaces_the_old_output_and_frees_the_lock() {
        let location = RemoteLocation::open("memory://tx-commit/run").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = local_output(dir.path(), "one", &FILES);
        let output = RemoteOutput::lock(&location, &FILES).unwrap();
        assert!(output.existing_output().unwrap().is_none());
        output.commit(dir.path(), &files, "marker.json").unwrap();
        assert_eq!(
            contents(&location),
            [
                ("a.bin".to_owned(), "one:a.bin".to_owned()),
                ("b.bin".into(), "one:b.bin".into()),
                ("marker.json".into(), "one:marker.json".into())
            ]
        );
        // A second output without b.bin: b.bin of the old one goes.
        let files = local_output(dir.path(), "two", &["a.bin", "marker.json"]);
        let output = RemoteOutput::lock(&location, &FILES).unwrap();
        assert_eq!(
            output.existing_output().unwrap().as_deref(),
            Some("memory://tx-commit/run/a.bin")
        );
        output.commit(dir.path(), &files, "marker.json").unwrap();
        assert_eq!(
            contents(&location),
            [
                ("a.bin".to_owned(), "two:a.bin".to_owned()),
                ("marker.json".into(), "two:marker.json".into())
            ]
        );
        let lock: LockRecord = serde_json::from_slice(&location.get(LOCK_OBJECT).unwrap()).unwrap();
        assert_eq!(lock.state, LockState::Free);
    }

    #[test]
    fn a_live_holder_refuses_others_and_an_abandoned_stage_is_removed() {
        let location = RemoteLocation::open("memory://tx-live/run").unwrap();
        let dir = tempfile::tempdir().unwrap();
        local_output(dir.path(), "x", &FILES);
        let mut first = RemoteOutput::lock(&location, &FILES).unwrap();
        first
            .stage_file(&dir.path().join("a.bin"), "a.bin")
            .unwrap();
        let error = RemoteOutput::lock(&location, &FILES)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is being written by another run (pid"),
            "{error}"
        );
        drop(first);
        // Dropped undecided: staging is gone and the lock is free.
        assert!(contents(&location).is_empty());
        let second = RemoteOutput::lock(&location, &FILES).unwrap();
        assert!(second.recovery().is_none());
    }

    #[test]
    fn of_racing_writers_exactly_one_takes_the_lock() {
        for round in 0..20 {
            let url = format!("memory://tx-race/round-{round}");
            let location = RemoteLocation::open(&url).unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(6));
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let (location, barrier) = (location.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        RemoteOutput::lock(&location, &FILES).map(|output| {
                            // Hold it until every racer has tried.
                            std::thread::sleep(Duration::from_millis(50));
                            drop(output);
                        })
                    })
                })
                .collect();
            let winners = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(Result::is_ok)
                .count();
            assert_eq!(winners, 1, "round {round}");
        }
    }

    /// A writer that dies (its lease runs out) before deciding leaves the old output; one
    /// that dies after deciding has its commit finished by the next writer.
    #[test]
    fn a_dead_writers_commit_is_finished_or_removed() {
        let location = RemoteLocation::open("memory://tx-dead/run").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = local_output(dir.path(), "old", &FILES);
        RemoteOutput::lock(&location, &FILES)
            .unwrap()
            .commit(dir.path(), &files, "marker.json")
            .unwrap();
        let old = contents(&location);

        // Dead before deciding: simulate by a lock record whose lease ran out long ago.
        let mut dying = RemoteOutput::lock(&location, &FILES).unwrap();
        let files = local_output(dir.path(), "new", &FILES);
        for name in &files {
            dying.stage_file(&dir.path().join(name), name).unwrap();
        }
        dying.stop_renewing();
        expire(&dying);
        std::mem::forget(dying);
        let next = RemoteOutput::lock(&location, &FILES).unwrap();
        assert_eq!(
            next.recovery(),
            Some(&Recovery::RemovedStaging { files: 3 })
        );
        drop(next);
        assert_eq!(contents(&location), old);

        // Dead after deciding, before applying: the next writer finishes the commit.
        let mut dying = RemoteOutput::lock(&location, &FILES).unwrap();
        for name in &files {
            dying.stage_file(&dir.path().join(name), name).unwrap();
        }
        dying.decide("marker.json").unwrap();
        dying.stop_renewing();
        expire(&dying);
        std::mem::forget(dying);
        assert_eq!(contents(&location).len(), 6, "old output plus staging");
        let next = RemoteOutput::lock(&location, &FILES).unwrap();
        assert_eq!(next.recovery(), Some(&Recovery::CompletedCommit));
        drop(next);
        assert_eq!(
            contents(&location),
            [
                ("a.bin".to_owned(), "new:a.bin".to_owned()),
                ("b.bin".into(), "new:b.bin".into()),
                ("marker.json".into(), "new:marker.json".into())
            ]
        );
    }

    /// Writes the holder's record back with a lease that ran out.
    fn expire(output: &RemoteOutput) {
        let held = output.held();
        let mut record = held.record.clone();
        record.renewed_unix_ms = 0;
        output
            .location
            .put_conditional(
                LOCK_OBJECT,
                serde_json::to_vec(&record).unwrap(),
                held.version.mode(),
            )
            .unwrap();
    }

    #[test]
    fn a_writer_whose_lock_was_taken_cannot_commit() {
        let location = RemoteLocation::open("memory://tx-lost/run").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = local_output(dir.path(), "x", &FILES);
        let mut slow = RemoteOutput::lock(&location, &FILES).unwrap();
        slow.stop_renewing();
        expire(&slow);
        let taker = RemoteOutput::lock(&location, &FILES).unwrap();
        for name in &files {
            slow.stage_file(&dir.path().join(name), name).unwrap();
        }
        let error = slow.decide("marker.json").unwrap_err().to_string();
        assert!(error.contains("another writer took over"), "{error}");
        drop(slow);
        drop(taker);
        assert!(
            contents(&location)
                .iter()
                .all(|(key, _)| !key.ends_with(".bin"))
        );
    }

    #[test]
    fn a_planted_lock_cannot_name_files_outside_the_output() {
        let location = RemoteLocation::open("memory://tx-planted/run").unwrap();
        let record = LockRecord {
            state: LockState::Committing,
            host: "elsewhere".into(),
            pid: 1,
            txid: "t".into(),
            renewed_unix_ms: 0,
            lease_ms: 1,
            plan: Some(Plan {
                install: vec!["../../other/x".into()],
                marker: "marker.json".into(),
                remove: vec![],
            }),
            uploads: Vec::new(),
        };
        // The lock refused with `bytes` planted as the lock object, as a message.
        let refusal = |bytes: Vec<u8>| {
            location.put(LOCK_OBJECT, bytes).unwrap();
            RemoteOutput::lock(&location, &FILES)
                .unwrap_err()
                .to_string()
        };
        let error = refusal(serde_json::to_vec(&record).unwrap());
        assert!(error.contains("not a lock this tool wrote"), "{error}");
        // An upload to abort outside the staging area is refused the same way.
        let record = LockRecord {
            plan: None,
            uploads: vec![("../elsewhere/x".into(), "id".into())],
            ..record
        };
        let error = refusal(serde_json::to_vec(&record).unwrap());
        assert!(error.contains("names the upload"), "{error}");
        let error = refusal(b"garbage".to_vec());
        assert!(error.contains("not a lock this tool wrote"), "{error}");
    }
}
