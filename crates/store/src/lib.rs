//! Object storage for datasets and outputs: `s3://`, `gs://` and `az://` URLs (and
//! `memory://` for tests), configured from the environment the way each cloud's users expect,
//! behind blocking calls.
//!
//! [`Location::parse`] tells a URL from a local path; a [`RemoteLocation`] is a store and a
//! prefix in it, with [`RemoteLocation::list`], [`RemoteLocation::get`], uploads and downloads
//! of local files, and the few conditional writes [`transaction`] builds an output transaction
//! on. Async is confined here: one small runtime runs every request, and callers (the pipeline's
//! threads, Python) block on it.
//!
//! Credentials come only from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), never from a
//! URL, and never appear in what this crate writes or reports: URLs with a user, password or
//! query are refused, and errors pass through [`redact`].

mod assemble;
mod images;
pub mod transaction;

pub use assemble::{AssemblyStats, Piece};

pub use bytes::Bytes;
pub use images::RemoteImages;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use futures_util::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

/// What went wrong with object storage. Messages name the URL, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The text looked like a URL but is not one this tool can use.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL as given (credentials are refused before they could be echoed).
        url: String,
        /// Why.
        reason: String,
    },
    /// The object (or the bucket) does not exist.
    #[error("{url} does not exist{hint}")]
    NotFound {
        /// The object's URL.
        url: String,
        /// More words when the bucket itself is missing.
        hint: String,
    },
    /// The store refused the credentials, or they lack a permission.
    #[error("{url}: access denied ({reason}); check the credentials in the environment")]
    Denied {
        /// The object's URL.
        url: String,
        /// The store's words, credentials removed.
        reason: String,
    },
    /// Any other failure of a request (after the client's retries with backoff).
    #[error("{url}: {reason}")]
    Request {
        /// The object's URL.
        url: String,
        /// The store's words, credentials removed.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Local {
        /// The local file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where a dataset or an output is: a local path or an object-store prefix.
#[derive(Debug, Clone)]
pub enum Location {
    /// A path on a local (or shared) file system.
    Local(PathBuf),
    /// A prefix in an object store.
    Remote(RemoteLocation),
}

/// The URL schemes taken as object storage.
pub const SCHEMES: [&str; 7] = ["s3", "s3a", "gs", "az", "abfs", "abfss", "memory"];

impl Location {
    /// A URL with one of [`SCHEMES`] is remote, `file://` names a local path, anything without
    /// a scheme is a local path; any other scheme is refused.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        match url_scheme(text) {
            None => Ok(Location::Local(PathBuf::from(text))),
            Some("file") => {
                let url = url::Url::parse(text).map_err(|e| bad_url(text, e.to_string()))?;
                url.to_file_path()
                    .map(Location::Local)
                    .map_err(|()| bad_url(text, "not a local file path".into()))
            }
            Some(_) => RemoteLocation::open(text).map(Location::Remote),
        }
    }

    /// [`Location::parse`] of a path given as a `Path` (a URL travels through path-typed
    /// fields unchanged).
    pub fn from_path(path: &Path) -> Result<Self, StoreError> {
        match path.to_str() {
            Some(text) if url_scheme(text).is_some() => Self::parse(text),
            _ => Ok(Location::Local(path.to_owned())),
        }
    }

    /// The remote location, if it is one.
    pub fn remote(&self) -> Option<&RemoteLocation> {
        match self {
            Location::Remote(remote) => Some(remote),
            Location::Local(_) => None,
        }
    }
}

/// Whether `path` is spelled as a URL (`scheme://...`) rather than a file path.
pub fn is_url(path: &Path) -> bool {
    path.to_str().and_then(url_scheme).is_some()
}

/// The lowercase scheme of `scheme://...` text (RFC 3986 scheme characters), if it has one.
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

fn bad_url(url: &str, reason: String) -> StoreError {
    StoreError::BadUrl {
        url: url.to_owned(),
        reason,
    }
}

/// A prefix ("folder") in an object store.
#[derive(Clone)]
pub struct RemoteLocation {
    /// `scheme://bucket/prefix`, without a trailing slash.
    url: String,
    store: Arc<dyn ObjectStore>,
    backend: Arc<Backend>,
    prefix: ObjectPath,
}

/// What a store offers beyond [`ObjectStore`]: the low-level multipart API (every back end has
/// it) and, on S3, ranged part copies (`UploadPartCopy`, which object_store does not expose:
/// see `assemble`).
struct Backend {
    multipart: Arc<dyn object_store::multipart::MultipartStore>,
    s3: Option<assemble::S3PartCopy>,
}

impl std::fmt::Debug for RemoteLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl std::fmt::Display for RemoteLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl RemoteLocation {
    /// Opens the store named by `text` (configured from the environment) at its prefix.
    pub fn open(text: &str) -> Result<Self, StoreError> {
        let url = url::Url::parse(text).map_err(|e| bad_url(text, e.to_string()))?;
        let scheme = url.scheme().to_ascii_lowercase();
        if !SCHEMES.contains(&scheme.as_str()) {
            return Err(bad_url(
                text,
                format!(
                    "unsupported scheme {scheme}:// (object storage is s3://, gs:// or az://; a \
                     local path needs no scheme)"
                ),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Echoing the URL would echo the secret: name the scheme and host only.
            return Err(bad_url(
                &format!("{scheme}://{}", url.host_str().unwrap_or_default()),
                "credentials in a URL are refused; set them in the environment (AWS_*, \
                 GOOGLE_*, AZURE_*)"
                    .into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad_url(
                text,
                "a query or fragment is refused (it could carry a credential); configure the \
                 store through the environment"
                    .into(),
            ));
        }
        let bucket = url.host_str().unwrap_or_default().to_owned();
        if bucket.is_empty() {
            return Err(bad_url(text, "names no bucket or container".into()));
        }
        let prefix = ObjectPath::parse(url.path().trim_matches('/'))
            .map_err(|e| bad_url(text, format!("not a valid object path ({e})")))?;
        let (store, backend) = open_store(&scheme, &url, &bucket)?;
        let url = match prefix.as_ref() {
            "" => format!("{scheme}://{bucket}"),
            path => format!("{scheme}://{bucket}/{path}"),
        };
        Ok(Self {
            url,
            store,
            backend,
            prefix,
        })
    }

    /// `scheme://bucket/prefix`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The location `relative` (`/`-separated) below this one.
    pub fn join(&self, relative: &str) -> Self {
        let mut joined = self.clone();
        joined.prefix = self.path(relative);
        joined.url = format!("{}/{}", self.url, relative.trim_matches('/'));
        joined
    }

    /// The location `path` names, which must be an object-store URL (not a local path).
    pub fn from_url_path(path: &Path) -> Result<Self, StoreError> {
        match Location::from_path(path)? {
            Location::Remote(remote) => Ok(remote),
            Location::Local(_) => Err(bad_url(
                &path.display().to_string(),
                "is a local path, not an object-store URL".into(),
            )),
        }
    }

    /// This location as an object: its parent prefix and its name (refused at a bucket's
    /// root, which names no object).
    pub fn parent_and_name(&self) -> Result<(Self, String), StoreError> {
        let prefix = self.prefix.as_ref();
        let (parent, name) = match prefix.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None if prefix.is_empty() => {
                return Err(bad_url(
                    &self.url,
                    "names a bucket, not a file in it".into(),
                ));
            }
            None => ("", prefix),
        };
        let mut location = self.clone();
        location.prefix = ObjectPath::from(parent);
        location.url = self.url[..self.url.len() - name.len() - 1].to_owned();
        Ok((location, name.to_owned()))
    }

    fn path(&self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .filter(|part| !part.is_empty())
            .fold(self.prefix.clone(), |path, part| path.clone().join(part))
    }

    fn url_of(&self, relative: &str) -> String {
        match relative {
            "" => self.url.clone(),
            relative => format!("{}/{relative}", self.url),
        }
    }

    /// Every object below this prefix: its key relative to the prefix, and its size, sorted
    /// by key. One listing (paged by the store).
    pub fn list(&self) -> Result<Vec<RemoteObject>, StoreError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let store = self.store.clone();
        let listed: Vec<_> = block_on(async move { store.list(prefix).collect::<Vec<_>>().await });
        let mut objects = Vec::with_capacity(listed.len());
        for meta in listed {
            let meta = meta.map_err(|e| self.error("", e))?;
            let key = meta.location.as_ref();
            let relative = match self.prefix.as_ref() {
                "" => key,
                prefix => key
                    .strip_prefix(prefix)
                    .and_then(|k| k.strip_prefix('/'))
                    .unwrap_or(key),
            };
            objects.push(RemoteObject {
                key: relative.to_owned(),
                bytes: meta.size,
            });
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The bytes of object `relative`.
    pub fn get(&self, relative: &str) -> Result<Bytes, StoreError> {
        self.get_versioned(relative).map(|(bytes, _)| bytes)
    }

    /// The bytes of object `relative`, `None` when there is none.
    pub fn get_if_present(&self, relative: &str) -> Result<Option<Bytes>, StoreError> {
        match self.get(relative) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The bytes of object `relative`, for callers already in async code (the image reads).
    async fn get_async(&self, relative: &str) -> Result<Bytes, StoreError> {
        let read = async { self.store.get(&self.path(relative)).await?.bytes().await };
        read.await.map_err(|error| self.error(relative, error))
    }

    /// The bytes of object `relative` with its version (for a compare-and-swap).
    fn get_versioned(&self, relative: &str) -> Result<(Bytes, Version), StoreError> {
        let path = self.path(relative);
        let store = self.store.clone();
        block_on(async move {
            let result = store.get(&path).await?;
            let version = Version {
                e_tag: result.meta.e_tag.clone(),
                version: result.meta.version.clone(),
            };
            Ok((result.bytes().await?, version))
        })
        .map_err(|e| self.error(relative, e))
    }

    /// Writes object `relative` whole, overwriting.
    pub fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.put_conditional(relative, bytes, PutMode::Overwrite)
            .map(drop)
            .map_err(|e| e.into_store_error(self, relative))
    }

    /// Writes object `relative` whole under `mode`; [`Conditional::Lost`] when the condition
    /// does not hold (it exists, or changed since `version`).
    fn put_conditional(
        &self,
        relative: &str,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> Result<Version, Conditional> {
        let path = self.path(relative);
        let store = self.store.clone();
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        block_on(async move {
            store
                .put_opts(&path, PutPayload::from(bytes), options)
                .await
        })
        .map(|result| Version {
            e_tag: result.e_tag,
            version: result.version,
        })
        .map_err(|error| match error {
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => Conditional::Lost,
            error => Conditional::Failed(self.error(relative, error)),
        })
    }

    /// Uploads the local file `local` as object `relative`, in parts of 8 MiB (a few in
    /// flight), so memory stays bounded whatever the file's size.
    pub fn upload_file(&self, local: &Path, relative: &str) -> Result<(), StoreError> {
        self.upload_file_with(local, relative, &mut |_| Ok(()))
    }

    /// [`RemoteLocation::upload_file`], telling `on_upload` the multipart upload's id first
    /// when the file takes several parts (see [`RemoteLocation::assemble`]).
    pub fn upload_file_with(
        &self,
        local: &Path,
        relative: &str,
        on_upload: &mut dyn FnMut(&str) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        use std::io::Read as _;
        let local_error = |source| StoreError::Local {
            path: local.to_owned(),
            source,
        };
        let mut file = drift_core::open_regular(local).map_err(local_error)?;
        let size = file.metadata().map_err(local_error)?.len();
        if size <= 8 << 20 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).map_err(local_error)?;
            return self.put(relative, bytes);
        }
        let piece = Piece::File {
            path: local.to_owned(),
            range: 0..size,
        };
        self.assemble(relative, vec![piece], on_upload).map(drop)
    }

    /// Downloads object `relative` into the new local file `local`, streamed.
    pub fn download_file(&self, relative: &str, local: &Path) -> Result<u64, StoreError> {
        use std::io::Write as _;
        let local_error = |source| StoreError::Local {
            path: local.to_owned(),
            source,
        };
        let mut file = std::fs::File::create_new(local).map_err(local_error)?;
        let path = self.path(relative);
        let store = self.store.clone();
        let written = block_on(async move {
            let mut stream = store.get(&path).await.map_err(Upload::Store)?.into_stream();
            let mut written = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(Upload::Store)?;
                file.write_all(&chunk).map_err(Upload::Local)?;
                written += chunk.len() as u64;
            }
            file.sync_all().map_err(Upload::Local)?;
            Ok(written)
        });
        written.map_err(|error| match error {
            Upload::Local(source) => local_error(source),
            Upload::Store(error) => self.error(relative, error),
        })
    }

    /// Copies object `from` to `to` inside the store (no bytes pass through this machine).
    pub fn copy(&self, from: &str, to: &str) -> Result<(), StoreError> {
        // S3 copies at most 5 GiB in one request; a bigger object is copied in ranged parts.
        if self.backend.s3.is_some() {
            let size = self.size(from)?;
            if size > assemble::MAX_PART {
                let piece = Piece::Range {
                    source: self.clone(),
                    key: from.to_owned(),
                    range: 0..size,
                };
                return self.assemble(to, vec![piece], &mut |_| Ok(())).map(drop);
            }
        }
        let (source, target) = (self.path(from), self.path(to));
        let store = self.store.clone();
        block_on(async move { store.copy(&source, &target).await }).map_err(|e| self.error(from, e))
    }

    /// Deletes object `relative`; a missing one is not an error.
    pub fn delete(&self, relative: &str) -> Result<(), StoreError> {
        let path = self.path(relative);
        let store = self.store.clone();
        match block_on(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.error(relative, error)),
        }
    }

    /// Deletes every object below this prefix; returns how many.
    pub fn delete_all(&self) -> Result<usize, StoreError> {
        let objects = self.list()?;
        for object in &objects {
            self.delete(&object.key)?;
        }
        Ok(objects.len())
    }

    /// Whether object `relative` exists.
    pub fn exists(&self, relative: &str) -> Result<bool, StoreError> {
        let path = self.path(relative);
        let store = self.store.clone();
        match block_on(async move { store.head(&path).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(self.error(relative, error)),
        }
    }

    /// `error` in this crate's words, naming the object's URL and no credential.
    fn error(&self, relative: &str, error: object_store::Error) -> StoreError {
        let url = self.url_of(relative);
        match error {
            object_store::Error::NotFound { source, .. } => {
                let reason = source.to_string();
                let hint = if reason.contains("NoSuchBucket") {
                    ": the bucket does not exist".to_owned()
                } else {
                    String::new()
                };
                StoreError::NotFound { url, hint }
            }
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => StoreError::Denied {
                url,
                reason: redact(&source.to_string()),
            },
            error => {
                let reason = redact(&error.to_string());
                if reason.contains("NoSuchBucket") {
                    return StoreError::NotFound {
                        url,
                        hint: ": the bucket does not exist".into(),
                    };
                }
                StoreError::Request { url, reason }
            }
        }
    }
}

/// A local copy of (part of) an output on object storage, removed when dropped.
#[derive(Debug)]
pub struct LocalCopy {
    dir: tempfile::TempDir,
}

impl LocalCopy {
    /// The copy's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Where local copies and scratch folders go when set (default: the system's temporary folder).
pub const SCRATCH_ENV: &str = "DRIFT_PIPELINE_SCRATCH";

/// A new scratch folder named `prefix...`, under [`SCRATCH_ENV`] or the temporary folder.
pub fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir, StoreError> {
    let parent = std::env::var_os(SCRATCH_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .map_err(|source| StoreError::Local {
            path: parent,
            source,
        })
}

impl RemoteLocation {
    /// Downloads the output below this prefix into a local scratch folder: its `marker` (a
    /// JSON record whose `files` array lists each file's `name`, `bytes` and `sha256`) and every
    /// file it lists but those in `skip`, each checked against the recorded size and SHA-256.
    /// Without the marker the prefix holds no complete output (outputs put it last).
    pub fn fetch_output(&self, marker: &str, skip: &[&str]) -> Result<LocalCopy, StoreError> {
        let unverified = |reason: String| StoreError::Request {
            url: self.url.clone(),
            reason,
        };
        let bytes = self
            .get_if_present(marker)?
            .ok_or_else(|| unverified(format!("no {marker}: it holds no complete output")))?;
        #[derive(serde::Deserialize)]
        struct Record {
            name: String,
            bytes: u64,
            sha256: String,
        }
        #[derive(serde::Deserialize)]
        struct Listing {
            files: Vec<Record>,
        }
        let listing: Listing = serde_json::from_slice(&bytes)
            .map_err(|e| unverified(format!("{marker} does not list the output's files ({e})")))?;
        let dir = scratch_dir("drift-pipeline-copy-")?;
        let local = |path: &Path, source| StoreError::Local {
            path: path.to_owned(),
            source,
        };
        let target = dir.path().join(marker);
        std::fs::write(&target, &bytes).map_err(|e| local(&target, e))?;
        for record in &listing.files {
            if !drift_core::is_plain_name(&record.name) || record.name == marker {
                return Err(unverified(format!(
                    "{marker} lists {:?}, not a file name",
                    record.name
                )));
            }
            if skip.contains(&record.name.as_str()) {
                continue;
            }
            let target = dir.path().join(&record.name);
            self.download_file(&record.name, &target)?;
            let file = std::fs::File::open(&target).map_err(|e| local(&target, e))?;
            let size = file.metadata().map_err(|e| local(&target, e))?.len();
            let sha256 = drift_core::sha256_hex(file).map_err(|e| local(&target, e))?;
            if size != record.bytes || sha256 != record.sha256 {
                return Err(unverified(format!(
                    "{} has {size} bytes with sha256 {sha256}, but {marker} records {} bytes \
                     with sha256 {}: it is not the file of this output",
                    record.name, record.bytes, record.sha256
                )));
            }
        }
        Ok(LocalCopy { dir })
    }
}

/// Downloads the object at `url` (a single file, such as a user's alarm table) into a local
/// scratch folder under its own name; `None` for a local path. Returns the copy and the file.
pub fn fetch_file_if_remote(url: &Path) -> Result<Option<(LocalCopy, PathBuf)>, StoreError> {
    let Location::Remote(remote) = Location::from_path(url)? else {
        return Ok(None);
    };
    let (parent, name) = remote.parent_and_name()?;
    let dir = scratch_dir("drift-pipeline-copy-")?;
    let target = dir.path().join(&name);
    parent.download_file(&name, &target)?;
    Ok(Some((LocalCopy { dir }, target)))
}

/// Downloads the report at `url` (a folder-shaped output without file hashes, such as a
/// `detect` report) into a local scratch folder: its `marker`, which must be there (reports put
/// it last), and each of `names` that is there. `None` for a local path, which is read where
/// it is.
pub fn fetch_report_if_remote(
    url: &Path,
    marker: &str,
    names: &[&str],
) -> Result<Option<LocalCopy>, StoreError> {
    let Location::Remote(remote) = Location::from_path(url)? else {
        return Ok(None);
    };
    let bytes = remote
        .get_if_present(marker)?
        .ok_or_else(|| StoreError::Request {
            url: remote.url.clone(),
            reason: format!("no {marker}: it holds no complete report"),
        })?;
    let dir = scratch_dir("drift-pipeline-copy-")?;
    let target = dir.path().join(marker);
    std::fs::write(&target, &bytes).map_err(|source| StoreError::Local {
        path: target.clone(),
        source,
    })?;
    // One request per file: a missing one is simply not part of the report.
    for name in names.iter().filter(|n| **n != marker) {
        if let Some(bytes) = remote.get_if_present(name)? {
            let target = dir.path().join(name);
            std::fs::write(&target, &bytes).map_err(|source| StoreError::Local {
                path: target,
                source,
            })?;
        }
    }
    Ok(Some(LocalCopy { dir }))
}

/// Downloads the output at `url` (see [`RemoteLocation::fetch_output`]); `None` for a local
/// path, which is read where it is.
pub fn fetch_if_remote(
    url: &Path,
    marker: &str,
    skip: &[&str],
) -> Result<Option<LocalCopy>, StoreError> {
    match Location::from_path(url)? {
        Location::Local(_) => Ok(None),
        Location::Remote(remote) => remote.fetch_output(marker, skip).map(Some),
    }
}

enum Upload {
    Local(std::io::Error),
    Store(object_store::Error),
}

/// An object's version as a compare-and-swap needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    e_tag: Option<String>,
    version: Option<String>,
}

impl Version {
    fn mode(&self) -> PutMode {
        PutMode::Update(object_store::UpdateVersion {
            e_tag: self.e_tag.clone(),
            version: self.version.clone(),
        })
    }
}

/// A conditional write that did not happen.
#[derive(Debug)]
enum Conditional {
    /// Its condition did not hold (someone else wrote first).
    Lost,
    /// The request failed.
    Failed(StoreError),
}

impl Conditional {
    fn into_store_error(self, location: &RemoteLocation, relative: &str) -> StoreError {
        match self {
            Conditional::Lost => StoreError::Request {
                url: location.url_of(relative),
                reason: "changed by another writer".into(),
            },
            Conditional::Failed(error) => error,
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    /// Its key relative to the listed prefix, `/`-separated.
    pub key: String,
    /// Its size.
    pub bytes: u64,
}

/// The store and what it offers beyond [`ObjectStore`], one concrete store behind both.
fn opened<S>(store: S, s3: Option<assemble::S3PartCopy>) -> (Arc<dyn ObjectStore>, Arc<Backend>)
where
    S: ObjectStore + object_store::multipart::MultipartStore,
{
    let store = Arc::new(store);
    let backend = Backend {
        multipart: store.clone(),
        s3,
    };
    (store, Arc::new(backend))
}

fn open_store(
    scheme: &str,
    url: &url::Url,
    bucket: &str,
) -> Result<(Arc<dyn ObjectStore>, Arc<Backend>), StoreError> {
    install_tls_provider();
    let built = match scheme {
        "s3" | "s3a" => object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map(|store| {
                let store = Arc::new(store);
                let s3 = assemble::S3PartCopy::new(store.clone(), bucket);
                let backend = Backend {
                    multipart: store.clone(),
                    s3: Some(s3),
                };
                (store as Arc<dyn ObjectStore>, Arc::new(backend))
            }),
        "gs" => object_store::gcp::GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map(|store| opened(store, None)),
        "az" | "abfs" | "abfss" => object_store::azure::MicrosoftAzureBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|store| opened(store, None)),
        "memory" => Ok(memory_store(bucket)),
        _ => unreachable!("schemes are checked before"),
    };
    built.map_err(|error| {
        bad_url(
            &format!("{scheme}://{bucket}"),
            format!(
                "cannot configure the store from the environment: {}",
                redact(&error.to_string())
            ),
        )
    })
}

/// `memory://NAME`: one in-memory store per name for the life of the process (tests).
fn memory_store(name: &str) -> (Arc<dyn ObjectStore>, Arc<Backend>) {
    use object_store::memory::InMemory;
    use std::collections::HashMap;
    use std::sync::Mutex;
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let store = stores
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone();
    let backend = Backend {
        multipart: store.clone(),
        s3: None,
    };
    (store, Arc::new(backend))
}

/// reqwest is built without a crypto provider (no aws-lc C build): ring's, once per process.
fn install_tls_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Err means another part of the process installed one first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The runtime every request runs on: two I/O threads; requests overlap as tasks.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("drift-store-io")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The environment variables that hold secrets.
const SECRET_VARIABLES: [&str; 8] = [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_CLIENT_SECRET",
];

/// `text` with every secret the environment holds replaced by `***`: errors from the HTTP
/// layer are passed on only through here.
pub fn redact(text: &str) -> String {
    let mut text = text.to_owned();
    for name in SECRET_VARIABLES {
        if let Ok(secret) = std::env::var(name)
            && secret.len() >= 4
        {
            text = text.replace(&secret, "***");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert!(matches!(
            Location::parse("data/x").unwrap(),
            Location::Local(p) if p == Path::new("data/x")
        ));
        assert!(matches!(
            Location::parse("file:///tmp/x").unwrap(),
            Location::Local(p) if p == Path::new("/tmp/x")
        ));
        let remote = Location::parse("memory://bucket/a/b/").unwrap();
        assert_eq!(remote.remote().unwrap().url(), "memory://bucket/a/b");
        let error = Location::parse("ftp://host/x").unwrap_err().to_string();
        assert!(error.contains("unsupported scheme ftp://"), "{error}");
        let error = Location::parse("s3://key:secret@bucket/x")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("secret"), "{error}");
        assert!(
            error.contains("credentials in a URL are refused"),
            "{error}"
        );
        let error = Location::parse("s3://bucket/x?X-Amz-Signature=abc")
            .unwrap_err()
            .to_string();
        assert!(error.contains("query"), "{error}");
        assert!(is_url(Path::new("gs://b/x")));
        assert!(!is_url(Path::new("/a/b:c")));
    }

    #[test]
    fn objects_round_trip_through_a_store() {
        let root = RemoteLocation::open("memory://round-trip/run").unwrap();
        root.put("a/b.txt", b"hello".to_vec()).unwrap();
        root.put("c.txt", b"hi".to_vec()).unwrap();
        assert_eq!(&root.get("a/b.txt").unwrap()[..], b"hello");
        assert!(root.exists("c.txt").unwrap());
        let listed = root.list().unwrap();
        let keys: Vec<_> = listed.iter().map(|o| (o.key.as_str(), o.bytes)).collect();
        assert_eq!(keys, [("a/b.txt", 5), ("c.txt", 2)]);
        let (parent, name) = root.join("a/b.txt").parent_and_name().unwrap();
        assert_eq!(
            (parent.url(), name.as_str()),
            ("memory://round-trip/run/a", "b.txt")
        );
        assert_eq!(&parent.get(&name).unwrap()[..], b"hello");
        let top = RemoteLocation::open("memory://round-trip/x.txt").unwrap();
        let (parent, name) = top.parent_and_name().unwrap();
        assert_eq!(
            (parent.url(), name.as_str()),
            ("memory://round-trip", "x.txt")
        );
        assert!(
            RemoteLocation::open("memory://round-trip")
                .unwrap()
                .parent_and_name()
                .is_err()
        );
        let missing = root.get("nope").unwrap_err().to_string();
        assert_eq!(missing, "memory://round-trip/run/nope does not exist");
        assert!(root.get_if_present("nope").unwrap().is_none());

        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..20_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let local = dir.path().join("big");
        std::fs::write(&local, &big).unwrap();
        root.upload_file(&local, "big.bin").unwrap();
        let back = dir.path().join("back");
        assert_eq!(
            root.download_file("big.bin", &back).unwrap(),
            big.len() as u64
        );
        assert_eq!(std::fs::read(&back).unwrap(), big);
        root.copy("c.txt", "d.txt").unwrap();
        root.delete("c.txt").unwrap();
        root.delete("c.txt").unwrap();
        assert!(!root.exists("c.txt").unwrap());
        assert_eq!(&root.get("d.txt").unwrap()[..], b"hi");
    }

    #[test]
    fn conditional_writes_have_one_winner() {
        let root = RemoteLocation::open("memory://conditional").unwrap();
        let first = root
            .put_conditional("k", b"1".to_vec(), PutMode::Create)
            .unwrap();
        assert!(matches!(
            root.put_conditional("k", b"2".to_vec(), PutMode::Create),
            Err(Conditional::Lost)
        ));
        let second = root
            .put_conditional("k", b"3".to_vec(), first.mode())
            .unwrap();
        assert!(matches!(
            root.put_conditional("k", b"4".to_vec(), first.mode()),
            Err(Conditional::Lost)
        ));
        root.put_conditional("k", b"5".to_vec(), second.mode())
            .unwrap();
        assert_eq!(&root.get("k").unwrap()[..], b"5");
    }
}
