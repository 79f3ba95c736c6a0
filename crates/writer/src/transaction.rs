//! Output folders as transactions: one writer per folder, files staged aside and committed
//! together, and recovery of whatever a dead run left behind.
//!
//! - **Lock**: [`OutputFolder::lock`] takes an advisory lock (`flock`) on `.drift-pipeline.lock`
//!   inside the folder before anything looks at the folder's contents. The kernel drops the lock
//!   when its holder dies, however it dies, so a stale lock is simply a free one; the file holds
//!   the holder's pid and host, which a refused writer names. The lock file is never removed
//!   (removing it would let two writers lock two different files).
//! - **Stage**: a [`Staging`] writes every file under `.drift-pipeline.staging/`, inside the
//!   folder (never outside it), and syncs each one.
//! - **Commit**: a `COMMIT` file in the staging folder names what to install and what to remove;
//!   once it is on disk the commit is decided. The old marker file (`drift.json`) is removed
//!   first, the data files are renamed into place (each rename atomic), obsolete files of the
//!   old output are removed, and the new marker is renamed in last. So a folder whose marker
//!   exists is complete, and the marker names every file with its size and SHA-256 (see
//!   [`FileRecord`]), so any reader can verify it.
//! - **Recover**: the next [`OutputFolder::lock`] on the folder finishes a decided commit (roll
//!   forward) or deletes an undecided staging folder, and says which in
//!   [`OutputFolder::recovery`].

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Component, Path, PathBuf};

use crate::{WriterError, io_error};

/// The lock file in every output folder (hidden; it stays after the run).
pub const LOCK_FILE: &str = ".drift-pipeline.lock";
/// The folder a run stages its files in, inside the output folder.
pub const STAGING_DIR: &str = ".drift-pipeline.staging";
/// Written into the staging folder when every staged file is on disk: the commit is decided.
const COMMIT_FILE: &str = "COMMIT";

/// Set to a fault point's name (`staged`, `mid-commit`, `committed`) to abort the process there,
/// as a kill would: the tests use it to prove a folder is old-complete or new-complete whatever
/// the moment of death. Nothing else reads it.
pub const ABORT_AT_ENV: &str = "DRIFT_PIPELINE_TEST_ABORT_AT";

fn fault_point(name: &str) {
    if std::env::var_os(ABORT_AT_ENV).is_some_and(|value| value == name) {
        std::process::abort();
    }
}

pub use drift_core::Recovery;

/// One file of a committed output, as the marker file records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRecord {
    /// The file name inside the output folder.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
}

/// An output folder held by this process: locked, with what dead runs left cleared up.
#[derive(Debug)]
pub struct OutputFolder {
    path: PathBuf,
    /// Holds the flock for as long as this value lives.
    _lock: File,
    output_files: Vec<String>,
    recovery: Option<Recovery>,
}

impl OutputFolder {
    /// Creates `path` if missing, takes its lock (failing at once, naming the holder, when
    /// another writer has it) and recovers what a dead run left. `output_files` are the names
    /// that make up an output in this folder.
    pub fn lock(path: &Path, output_files: &[&str]) -> Result<Self, WriterError> {
        if path.exists() && !path.is_dir() {
            return Err(WriterError::NotAFolder {
                path: path.to_owned(),
            });
        }
        let resolved = resolve_path(path).map_err(|source| io_error(path, source))?;
        if let Some(staging) = resolved
            .ancestors()
            .find(|folder| folder.file_name().is_some_and(|name| name == STAGING_DIR))
        {
            return Err(WriterError::InsideStaging {
                path: path.to_owned(),
                staging: staging.to_owned(),
            });
        }
        std::fs::create_dir_all(path).map_err(|source| io_error(path, source))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = drift_core::open_lock_file(&lock_path)
            .map_err(|source| io_error(&lock_path, source))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(WriterError::Locked {
                    path: path.to_owned(),
                    holder: if holder.is_empty() {
                        "another process".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io_error(&lock_path, source)),
        }
        // Who holds it, for the message a second writer gets.
        let holder = format!(
            "pid {} on host {}",
            std::process::id(),
            drift_core::host_name()
        );
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| lock.write_all(holder.as_bytes()))
            .map_err(|source| io_error(&lock_path, source))?;
        let mut folder = Self {
            path: path.to_owned(),
            _lock: lock,
            output_files: output_files.iter().map(|name| (*name).to_owned()).collect(),
            recovery: None,
        };
        folder.recovery = folder.recover()?;
        Ok(folder)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the lock found left by a dead run, if anything.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// The first output file present in the folder, if any.
    pub fn existing_output(&self) -> Option<PathBuf> {
        self.output_files
            .iter()
            .map(|name| self.path.join(name))
            .find(|path| path.exists())
    }

    fn staging_dir(&self) -> PathBuf {
        self.path.join(STAGING_DIR)
    }

    fn recover(&self) -> Result<Option<Recovery>, WriterError> {
        let staging = self.staging_dir();
        let mut removed = 0;
        let mut leftover = false;
        // Temporary files of versions that wrote `.<name>.<pid>.partial` beside the outputs.
        let entries =
            std::fs::read_dir(&self.path).map_err(|source| io_error(&self.path, source))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_legacy_partial(&name, &self.output_files) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|source| io_error(&path, source))?;
                removed += 1;
            }
        }
        let staging_kind = std::fs::symlink_metadata(&staging).map(|m| m.file_type());
        if staging_kind.as_ref().is_ok_and(|kind| !kind.is_dir()) {
            // A planted symlink (or file) in the staging folder's place: never followed.
            return Err(WriterError::UnsafeName {
                path: staging,
                name: "a staging folder that is not a folder".into(),
            });
        }
        if staging_kind.is_ok() {
            match CommitPlan::read(&staging)? {
                Some(plan) => {
                    plan.apply(&self.path, &staging)?;
                    return Ok(Some(Recovery::CompletedCommit));
                }
                None => {
                    leftover = true;
                    removed += std::fs::read_dir(&staging).map_or(0, Iterator::count);
                    std::fs::remove_dir_all(&staging)
                        .map_err(|source| io_error(&staging, source))?;
                }
            }
        }
        Ok((leftover || removed > 0).then_some(Recovery::RemovedStaging { files: removed }))
    }
}

fn is_legacy_partial(name: &str, output_files: &[String]) -> bool {
    let Some(rest) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".partial"))
    else {
        return false;
    };
    output_files.iter().any(|file| {
        rest.strip_prefix(file)
            .and_then(|pid| pid.strip_prefix('.'))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// What a decided commit does: written as `COMMIT` in the staging folder, so that a commit
/// interrupted half-way can be finished by the next run.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CommitPlan {
    /// Staged files renamed into place, in order.
    install: Vec<String>,
    /// The file renamed in last: its presence means the output is complete.
    marker: String,
    /// Files of the old output that the new one does not have.
    remove: Vec<String>,
}

impl CommitPlan {
    /// The decided plan in `staging`, if any. Read bounded, from a regular file only, and
    /// every name it holds checked to be a plain name inside the folder before anything is
    /// applied: a planted plan cannot reach outside the output folder.
    fn read(staging: &Path) -> Result<Option<Self>, WriterError> {
        let path = staging.join(COMMIT_FILE);
        let plan: Self = match drift_core::read_small_text(&path, drift_core::METADATA_LIMIT) {
            // A plan that does not parse was never completely written: undecided.
            Ok(text) => match serde_json::from_str(&text) {
                Ok(plan) => plan,
                Err(_) => return Ok(None),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(WriterError::Read { path, source }),
        };
        let names = plan.install.iter().chain(&plan.remove);
        if let Some(name) = names
            .chain(std::iter::once(&plan.marker))
            .find(|name| !drift_core::is_plain_name(name))
        {
            return Err(WriterError::UnsafeName {
                path,
                name: name.clone(),
            });
        }
        Ok(Some(plan))
    }

    fn write(&self, staging: &Path) -> Result<(), WriterError> {
        let path = staging.join(COMMIT_FILE);
        let bytes = serde_json::to_vec(self).expect("the plan serialises");
        write_synced(&path, &bytes)?;
        sync_dir(staging)
    }

    /// Every step is idempotent, so a crash at any point is finished by running it again.
    fn apply(&self, folder: &Path, staging: &Path) -> Result<(), WriterError> {
        let staged_marker = staging.join(&self.marker);
        let marker_pending = staged_marker.exists();
        if marker_pending {
            remove_if_present(&folder.join(&self.marker))?;
        }
        for (index, name) in self.install.iter().enumerate() {
            let staged = staging.join(name);
            if staged.exists() {
                let target = folder.join(name);
                std::fs::rename(&staged, &target).map_err(|source| io_error(&target, source))?;
            }
            if index == 0 {
                fault_point("mid-commit");
            }
        }
        for name in &self.remove {
            remove_if_present(&folder.join(name))?;
        }
        if marker_pending {
            sync_dir(folder)?;
            let target = folder.join(&self.marker);
            std::fs::rename(&staged_marker, &target).map_err(|source| io_error(&target, source))?;
        }
        sync_dir(folder)?;
        fault_point("committed");
        std::fs::remove_dir_all(staging).map_err(|source| io_error(staging, source))
    }
}

fn remove_if_present(path: &Path) -> Result<(), WriterError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error(path, source)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), WriterError> {
    let mut file = File::create(path).map_err(|source| io_error(path, source))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error(path, source))
}

fn sync_dir(path: &Path) -> Result<(), WriterError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| io_error(path, source))
}

/// The files of one new output, written aside in the folder's staging area until
/// [`Staging::commit`] (or [`commit_all`]) puts them in place together. Dropped uncommitted, it
/// removes what it staged and the folder keeps its old output.
#[derive(Debug)]
pub struct Staging {
    folder: Option<OutputFolder>,
    dir: PathBuf,
    marker: String,
    staged: Vec<String>,
    decided: bool,
}

impl Staging {
    /// Starts a new output in `folder`. Refuses a folder that holds an output unless
    /// `overwrite`; even then the old output stays complete until the commit. `marker` is the
    /// file committed last (one of the folder's output files).
    pub fn begin(folder: OutputFolder, marker: &str, overwrite: bool) -> Result<Self, WriterError> {
        if !overwrite && let Some(path) = folder.existing_output() {
            return Err(WriterError::OutputExists { path });
        }
        let dir = folder.staging_dir();
        std::fs::create_dir(&dir).map_err(|source| io_error(&dir, source))?;
        Ok(Self {
            folder: Some(folder),
            dir,
            marker: marker.to_owned(),
            staged: Vec::new(),
            decided: false,
        })
    }

    /// The folder the output is for.
    pub fn folder(&self) -> &OutputFolder {
        self.folder.as_ref().expect("held until commit")
    }

    /// Where the staged file `name` lives until the commit.
    pub fn staged_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the staged file `name` (one of the folder's output files). Errors name the
    /// file's final path, which is what a user knows it by.
    pub fn create(&mut self, name: &str) -> Result<File, WriterError> {
        let path = self.staged_path(name);
        let file = File::create(&path)
            .map_err(|source| io_error(&self.folder().path().join(name), source))?;
        if !self.staged.iter().any(|n| n == name) {
            self.staged.push(name.to_owned());
        }
        Ok(file)
    }

    /// Stages file `name` with `bytes`, synced.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), WriterError> {
        let mut file = self.create(name)?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|source| io_error(&self.folder().path().join(name), source))
    }

    /// Sizes and SHA-256 of every staged file except the marker, in staging order: what the
    /// marker should record. Call when every data file is closed and synced.
    pub fn records(&self) -> Result<Vec<FileRecord>, WriterError> {
        self.staged
            .iter()
            .filter(|name| **name != self.marker)
            .map(|name| {
                let path = self.staged_path(name);
                let file = File::open(&path).map_err(|source| io_error(&path, source))?;
                let bytes = file
                    .metadata()
                    .map_err(|source| io_error(&path, source))?
                    .len();
                let sha256 = drift_core::sha256_hex(file).map_err(|s| io_error(&path, s))?;
                Ok(FileRecord {
                    name: name.clone(),
                    bytes,
                    sha256,
                })
            })
            .collect()
    }

    fn plan(&self) -> Result<CommitPlan, WriterError> {
        if !self.staged.contains(&self.marker) {
            return Err(io_error(
                &self.staged_path(&self.marker),
                std::io::Error::other("the output was never given its marker file"),
            ));
        }
        let folder = self.folder();
        Ok(CommitPlan {
            install: self
                .staged
                .iter()
                .filter(|name| **name != self.marker)
                .cloned()
                .collect(),
            marker: self.marker.clone(),
            remove: folder
                .output_files
                .iter()
                .filter(|name| !self.staged.contains(name))
                .cloned()
                .collect(),
        })
    }

    /// Decides the commit: from here on, a crash is finished by the next run.
    fn decide(&mut self) -> Result<CommitPlan, WriterError> {
        let plan = self.plan()?;
        sync_dir(&self.dir)?;
        fault_point("staged");
        plan.write(&self.dir)?;
        self.decided = true;
        Ok(plan)
    }

    /// Takes back a decision that was not applied (another folder of the same commit failed).
    fn undecide(&mut self) {
        if std::fs::remove_file(self.dir.join(COMMIT_FILE)).is_ok() {
            self.decided = false;
        }
    }

    fn apply(mut self, plan: &CommitPlan) -> Result<OutputFolder, WriterError> {
        let folder = self.folder.take().expect("held until commit");
        plan.apply(folder.path(), &self.dir)
            .map_err(|error| WriterError::CommitInterrupted {
                path: folder.path().to_owned(),
                source: Box::new(error),
            })?;
        Ok(folder)
    }

    /// Puts every staged file in place, the marker last; returns the folder, still locked.
    pub fn commit(mut self) -> Result<OutputFolder, WriterError> {
        let plan = self.decide()?;
        self.apply(&plan)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // A decided commit that failed half-way stays for the next run to finish.
        if !self.decided && self.folder.is_some() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Commits several outputs together (a scenario's segments): every one is decided before any
/// is applied, so a failure before the last decision leaves every folder as it was.
pub fn commit_all(mut stagings: Vec<Staging>) -> Result<Vec<OutputFolder>, WriterError> {
    let mut plans = Vec::with_capacity(stagings.len());
    for index in 0..stagings.len() {
        match stagings[index].decide() {
            Ok(plan) => plans.push(plan),
            Err(error) => {
                for staging in &mut stagings[..index] {
                    staging.undecide();
                }
                return Err(error);
            }
        }
    }
    stagings
        .into_iter()
        .zip(&plans)
        .map(|(staging, plan)| staging.apply(plan))
        .collect()
}

/// Checks that `folder` holds one complete output: `marker` exists and every file it lists
/// (its `files` array of [`FileRecord`]s) has the recorded size and SHA-256, no other output file
/// is there, and no commit is pending. Reads only; returns the records.
pub fn verify_output(
    folder: &Path,
    marker: &str,
    output_files: &[&str],
) -> Result<Vec<FileRecord>, WriterError> {
    let unverified = |reason: String| WriterError::Unverified {
        path: folder.to_owned(),
        reason,
    };
    if !folder.is_dir() {
        return Err(match folder.exists() {
            true => WriterError::NotAFolder {
                path: folder.to_owned(),
            },
            false => unverified("no such folder".into()),
        });
    }
    if let Some(holder) = writer_at_work(folder) {
        return Err(unverified(format!(
            "a run is writing it now ({holder}); verify it once that run has finished"
        )));
    }
    let staging = folder.join(STAGING_DIR);
    // A decided commit whose marker is still staged has not finished; once the marker is in
    // place only the staging folder's removal is left, and the output is complete.
    if CommitPlan::read(&staging)?.is_some() && staging.join(marker).exists() {
        return Err(unverified(
            "a run died while committing its output here; the next run into this folder \
             completes the commit"
                .into(),
        ));
    }
    let marker_path = folder.join(marker);
    let text = match drift_core::read_small_text(&marker_path, drift_core::METADATA_LIMIT) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(unverified(format!(
                "no {marker}: it holds no complete output"
            )));
        }
        Err(source) => {
            return Err(WriterError::Read {
                path: marker_path,
                source,
            });
        }
    };
    #[derive(serde::Deserialize)]
    struct Listing {
        files: Vec<FileRecord>,
    }
    let listing: Listing = serde_json::from_str(&text)
        .map_err(|e| unverified(format!("{marker} does not list the output's files ({e})")))?;
    if let Some(record) = listing
        .files
        .iter()
        .find(|record| !drift_core::is_plain_name(&record.name) || record.name == marker)
    {
        return Err(WriterError::UnsafeName {
            path: marker_path,
            name: record.name.clone(),
        });
    }
    for record in &listing.files {
        let path = folder.join(&record.name);
        let file = match drift_core::open_regular(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(unverified(format!("{} is missing", record.name)));
            }
            Err(source) => return Err(WriterError::Read { path, source }),
        };
        let bytes = file.metadata().map_err(|s| io_error(&path, s))?.len();
        let sha256 = drift_core::sha256_hex(file).map_err(|s| io_error(&path, s))?;
        if bytes != record.bytes || sha256 != record.sha256 {
            return Err(unverified(format!(
                "{} has {bytes} bytes with sha256 {sha256}, but {marker} records {} bytes with \
                 sha256 {}: it is not the file of this output",
                record.name, record.bytes, record.sha256
            )));
        }
    }
    if let Some(stray) = output_files.iter().find(|name| {
        **name != marker
            && folder.join(name).exists()
            && !listing.files.iter().any(|record| record.name == **name)
    }) {
        return Err(unverified(format!(
            "{stray} is not part of the output {marker} describes"
        )));
    }
    Ok(listing.files)
}

/// Who holds `folder`'s lock, if a live run does (read without taking or creating anything).
fn writer_at_work(folder: &Path) -> Option<String> {
    let lock_path = folder.join(LOCK_FILE);
    let kind = std::fs::symlink_metadata(&lock_path).ok()?.file_type();
    if !kind.is_file() {
        return None;
    }
    let mut lock = drift_core::open_regular(&lock_path).ok()?;
    match lock.try_lock_shared() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = (&mut lock).take(256).read_to_string(&mut holder);
            Some(match holder.trim() {
                "" => "another process".to_owned(),
                holder => holder.to_owned(),
            })
        }
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// `path` made absolute, `.` and `..` resolved and symlinks followed as far as the path exists,
/// so that two spellings of one folder compare equal before either is created.
pub fn resolve_path(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = PathBuf::new();
    let mut rest = Vec::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir if rest.is_empty() => {
                existing = existing.canonicalize().unwrap_or(existing);
                existing.pop();
            }
            Component::ParentDir => {
                rest.pop();
            }
            Component::CurDir => {}
            other if rest.is_empty() && existing.join(other).exists() => existing.push(other),
            other => rest.push(other.as_os_str().to_owned()),
        }
    }
    let mut resolved = existing.canonicalize()?;
    resolved.extend(rest);
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &[&str] = &["data.bin", "extra.bin", "marker.json"];

    fn stage(folder: OutputFolder, data: &[u8], overwrite: bool) -> Staging {
        let mut staging = Staging::begin(folder, "marker.json", overwrite).unwrap();
        staging.write("data.bin", data).unwrap();
        let records = staging.records().unwrap();
        staging
            .write("marker.json", format!("{records:?}").as_bytes())
            .unwrap();
        staging
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let first = OutputFolder::lock(dir.path(), FILES).unwrap();
        let error = OutputFolder::lock(dir.path(), FILES).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        OutputFolder::lock(dir.path(), FILES).unwrap();
    }

    #[test]
    fn commit_replaces_the_old_output_and_removes_its_obsolete_files() {
        let dir = tempfile::tempdir().unwrap();
        let folder = OutputFolder::lock(dir.path(), FILES).unwrap();
        let mut staging = Staging::begin(folder, "marker.json", false).unwrap();
        staging.write("data.bin", b"old").unwrap();
        staging.write("extra.bin", b"old extra").unwrap();
        staging.write("marker.json", b"old marker").unwrap();
        let folder = staging.commit().unwrap();
        assert!(Staging::begin(folder, "marker.json", false).is_err());

        let folder = OutputFolder::lock(dir.path(), FILES).unwrap();
        let staging = stage(folder, b"new", true);
        assert_eq!(std::fs::read(dir.path().join("data.bin")).unwrap(), b"old");
        staging.commit().unwrap();
        assert_eq!(std::fs::read(dir.path().join("data.bin")).unwrap(), b"new");
        assert!(!dir.path().join("extra.bin").exists());
        assert!(!dir.path().join(STAGING_DIR).exists());
    }

    #[test]
    fn an_undecided_staging_is_removed_and_a_decided_one_finished_by_the_next_lock() {
        let dir = tempfile::tempdir().unwrap();
        let folder = OutputFolder::lock(dir.path(), FILES).unwrap();
        let mut staging = stage(folder, b"new", false);
        // As if the process died now: nothing decided, nothing dropped.
        staging.decided = true;
        drop(staging);
        std::fs::write(dir.path().join(".data.bin.4242.partial"), b"x").unwrap();
        std::fs::write(dir.path().join(".mine.4242.partial"), b"user").unwrap();
        let folder = OutputFolder::lock(dir.path(), FILES).unwrap();
        assert_eq!(
            folder.recovery(),
            Some(&Recovery::RemovedStaging { files: 3 })
        );
        assert!(folder.existing_output().is_none());
        assert!(dir.path().join(".mine.4242.partial").exists(), "not ours");

        // Decided, then died before applying.
        let mut staging = stage(folder, b"new", false);
        let plan = staging.decide().unwrap();
        let _ = plan;
        drop(staging);
        let folder = OutputFolder::lock(dir.path(), FILES).unwrap();
        assert_eq!(folder.recovery(), Some(&Recovery::CompletedCommit));
        assert_eq!(std::fs::read(dir.path().join("data.bin")).unwrap(), b"new");
        assert!(dir.path().join("marker.json").exists());
    }

    #[test]
    fn commit_all_decides_every_folder_before_applying_any() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let first = stage(OutputFolder::lock(&a, FILES).unwrap(), b"a", false);
        // The second lacks its marker: its decision fails, so the first is taken back.
        let second =
            Staging::begin(OutputFolder::lock(&b, FILES).unwrap(), "marker.json", false).unwrap();
        assert!(commit_all(vec![first, second]).is_err());
        assert!(!a.join("data.bin").exists() && !a.join(STAGING_DIR).exists());
        let first = stage(OutputFolder::lock(&a, FILES).unwrap(), b"a", false);
        let second = stage(OutputFolder::lock(&b, FILES).unwrap(), b"b", false);
        commit_all(vec![first, second]).unwrap();
        assert_eq!(std::fs::read(b.join("data.bin")).unwrap(), b"b");
    }

    #[test]
    fn paths_resolve_through_dots_and_symlinks_before_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let via_link = resolve_path(&dir.path().join("link/out/ref")).unwrap();
        let via_dots = resolve_path(&dir.path().join("real/x/../out/./ref")).unwrap();
        assert_eq!(via_link, via_dots);
        assert_eq!(via_link, real.canonicalize().unwrap().join("out/ref"));
    }
}
