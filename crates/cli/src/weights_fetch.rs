//! `drift-pipeline weights fetch`: download ResNet18 weights into the cache, checking SHA-256.
//!
//! The destination's folder is locked like an output folder (one fetch at a time into it), the
//! file is streamed into its staging area, hashed on the way, and committed (renamed into place)
//! only when the hash matches; a mismatch deletes it. A target that is already there with the
//! right hash is not downloaded again. Whatever a killed fetch left is removed by the next one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use drift_embedder::weights::{TORCHVISION_PTH, TORCHVISION_URL, cache_dir, hex, sha256_file};
use drift_writer::{OutputFolder, Staging};
use sha2::{Digest, Sha256};

/// What to download and where.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// Where from (default: torchvision's official address).
    pub url: String,
    /// The expected SHA-256, lowercase hex (default: torchvision's file).
    pub sha256: String,
    /// Where to (default: the cache directory, under torchvision's file name).
    pub destination: PathBuf,
}

impl FetchRequest {
    /// torchvision's IMAGENET1K_V1 `.pth` into the cache directory, unless told otherwise.
    pub fn new(
        url: Option<String>,
        sha256: Option<String>,
        destination: Option<PathBuf>,
    ) -> Result<Self, FetchError> {
        let destination = match destination {
            Some(path) => path,
            None => cache_dir()
                .ok_or(FetchError::NoCacheDir)?
                .join(TORCHVISION_PTH.file_name),
        };
        let sha256 = sha256.unwrap_or_else(|| TORCHVISION_PTH.sha256.to_owned());
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FetchError::BadHash(sha256));
        }
        Ok(Self {
            url: url.unwrap_or_else(|| TORCHVISION_URL.to_owned()),
            sha256: sha256.to_ascii_lowercase(),
            destination,
        })
    }
}

/// How a fetch ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Downloaded and verified: this many bytes.
    Downloaded(u64),
    /// Already there with the right hash.
    AlreadyPresent,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No HOME, XDG_CACHE_HOME or DRIFT_PIPELINE_CACHE.
    #[error("no cache directory: set DRIFT_PIPELINE_CACHE (or HOME), or pass --output FILE")]
    NoCacheDir,
    /// `--sha256` is not 64 hex digits.
    #[error("--sha256 '{0}' is not 64 hexadecimal digits")]
    BadHash(String),
    /// The server could not be reached or answered with an error.
    #[error("cannot download {url}: {reason}")]
    Http {
        /// The address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A local file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The destination folder could not be locked, staged into or committed.
    #[error(transparent)]
    Writer(drift_writer::WriterError),
    /// The downloaded bytes are not the expected file; they were deleted.
    #[error(
        "downloaded {bytes} bytes from {url} with sha256 {found}, but expected {expected}: the \
         download was deleted, nothing was saved"
    )]
    HashMismatch {
        /// The address.
        url: String,
        /// Bytes received.
        bytes: u64,
        /// The expected hash.
        expected: String,
        /// The hash of what arrived.
        found: String,
    },
}

/// Downloads `request.url` to `request.destination`, calling `progress(received, total)` as
/// bytes arrive (total from Content-Length, when the server sends one).
pub fn fetch(
    request: &FetchRequest,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<Fetched, FetchError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| FetchError::Io { path, source }
    };
    let file_name = request.destination.file_name().map_or_else(
        || "weights".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let parent = match request.destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let folder = OutputFolder::lock(parent, &[&file_name]).map_err(FetchError::Writer)?;
    if request.destination.is_file()
        && sha256_file(&request.destination).map_err(io_error(&request.destination))?
            == request.sha256
    {
        return Ok(Fetched::AlreadyPresent);
    }
    let http_error = |reason: String| FetchError::Http {
        url: request.url.clone(),
        reason,
    };
    let response = ureq::get(&request.url)
        .call()
        .map_err(|error| http_error(error.to_string()))?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    // A wrong file of the same name stays until the verified download replaces it.
    let mut staging = Staging::begin(folder, &file_name, true).map_err(FetchError::Writer)?;
    let temporary = staging.staged_path(&file_name);
    let result = (|| {
        let mut file = staging.create(&file_name).map_err(FetchError::Writer)?;
        let mut body = response.into_body().into_reader();
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        let mut received = 0u64;
        loop {
            let read = body
                .read(&mut buffer)
                .map_err(|error| http_error(error.to_string()))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            file.write_all(&buffer[..read])
                .map_err(io_error(&temporary))?;
            received += read as u64;
            progress(received, total);
        }
        file.sync_all().map_err(io_error(&temporary))?;
        let found = hex(&hasher.finalize());
        if found != request.sha256 {
            return Err(FetchError::HashMismatch {
                url: request.url.clone(),
                bytes: received,
                expected: request.sha256.clone(),
                found,
            });
        }
        Ok(received)
    })();
    // On error, dropping the staging removes what was downloaded: nothing unverified stays.
    let received = result?;
    staging.commit().map_err(FetchError::Writer)?;
    Ok(Fetched::Downloaded(received))
}
