//! The dataset manifest (`drift-pipeline index`): a dataset's listing (relative paths, classes,
//! sizes) and, verified, which images decode, in one Parquet file. A run given one
//! (`--manifest`) takes the listing from it instead of listing the folder again (a network file
//! system listed once, not by every worker), checks the files it reads against it, and, for a
//! sharded run with `--skip-bad-images`, knows which earlier candidates were skipped without
//! decoding them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use drift_reader::{Dataset, Decoder};
use drift_writer::ManifestEntry;

use crate::PipelineError;

const KEY_FINGERPRINT: &str = "drift_pipeline.fingerprint";
const KEY_CLASSES: &str = "drift_pipeline.classes";
const KEY_ROOT: &str = "drift_pipeline.root";
const KEY_VERIFIED: &str = "drift_pipeline.verified";
const KEY_VERSION: &str = "drift_pipeline.version";

/// A dataset's listing, and which images decode when verified.
#[derive(Debug, Clone)]
pub struct DatasetManifest {
    /// Where it was read from (for errors).
    path: PathBuf,
    root: PathBuf,
    classes: Vec<String>,
    entries: Vec<ManifestEntry>,
    fingerprint: String,
    verified: bool,
}

/// An image `index --verify` could not decode.
#[derive(Debug, Clone)]
pub struct UndecodableImage {
    /// Relative to the dataset root.
    pub path: String,
    /// The decoder's words.
    pub reason: String,
}

impl DatasetManifest {
    /// The manifest of `dataset`. With `verify`, every image is decoded (on `threads` threads)
    /// by `decoder`, the decoder `generate` uses; `progress` is told how many are done.
    pub fn index(
        dataset: &Dataset,
        remote: Option<&drift_store::RemoteImages>,
        verify: Option<&Decoder>,
        threads: usize,
        progress: &(dyn Fn(usize) + Sync),
    ) -> (Self, Vec<UndecodableImage>) {
        let classes = dataset.classes().names().to_vec();
        let relative = |path: &Path| {
            let relative = path.strip_prefix(dataset.root()).unwrap_or(path);
            relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        };
        let decoded: Vec<Option<Result<(), String>>> = match verify {
            None => vec![None; dataset.images().len()],
            Some(decoder) => decode_all(dataset, remote, decoder, threads, progress),
        };
        let mut undecodable = Vec::new();
        let entries = dataset
            .images()
            .iter()
            .zip(decoded)
            .map(|(image, decoded)| {
                let path = relative(&image.path);
                if let Some(Err(reason)) = &decoded {
                    undecodable.push(UndecodableImage {
                        path: path.clone(),
                        reason: reason.clone(),
                    });
                }
                ManifestEntry {
                    path,
                    class_name: classes[image.label].clone(),
                    label: image.label as i64,
                    bytes: image.bytes,
                    decodes: decoded.map(|d| d.is_ok()),
                }
            })
            .collect();
        let root = match drift_store::is_url(dataset.root()) {
            true => dataset.root().to_owned(),
            false => std::path::absolute(dataset.root()).unwrap_or_else(|_| dataset.root().into()),
        };
        let manifest = Self {
            path: PathBuf::new(),
            root,
            classes,
            entries,
            fingerprint: dataset.fingerprint().to_owned(),
            verified: verify.is_some(),
        };
        (manifest, undecodable)
    }

    /// Writes it to `path` (replaced atomically).
    pub fn write(&self, path: &Path) -> Result<(), PipelineError> {
        let metadata = BTreeMap::from([
            (KEY_FINGERPRINT.to_owned(), self.fingerprint.clone()),
            (
                KEY_CLASSES.to_owned(),
                serde_json::to_string(&self.classes).expect("strings serialize"),
            ),
            (
                KEY_ROOT.to_owned(),
                self.root.to_string_lossy().into_owned(),
            ),
            (KEY_VERIFIED.to_owned(), self.verified.to_string()),
            (KEY_VERSION.to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ]);
        match drift_store::Location::from_path(path)? {
            drift_store::Location::Local(_) => {
                drift_writer::write_manifest(path, &self.entries, &metadata)?
            }
            // One object, written whole by one request: readers see the old or the new one.
            drift_store::Location::Remote(remote) => {
                let scratch = scratch_file()?;
                drift_writer::write_manifest(&scratch.path().join("m"), &self.entries, &metadata)?;
                let (parent, name) = remote.parent_and_name()?;
                parent.upload_file(&scratch.path().join("m"), &name)?;
            }
        }
        Ok(())
    }

    /// Reads the manifest at `path`, checking that its listing is the one it was made from.
    pub fn read(path: &Path) -> Result<Self, PipelineError> {
        let refuse = |reason: String| PipelineError::Manifest {
            path: path.to_owned(),
            reason,
        };
        let scratch;
        let local = match drift_store::Location::from_path(path)? {
            drift_store::Location::Local(_) => path,
            drift_store::Location::Remote(remote) => {
                scratch = scratch_file()?;
                let (parent, name) = remote.parent_and_name()?;
                parent.download_file(&name, &scratch.path().join("m"))?;
                &scratch.path().join("m")
            }
        };
        let (entries, metadata) = drift_writer::read_manifest(local).map_err(|e| match e {
            drift_writer::WriterError::BadTable { reason, .. } => refuse(reason),
            other => refuse(other.to_string()),
        })?;
        let key = |name: &str| {
            metadata
                .get(name)
                .cloned()
                .ok_or_else(|| refuse(format!("no {name} (not made by drift-pipeline index)")))
        };
        let classes: Vec<String> = serde_json::from_str(&key(KEY_CLASSES)?)
            .map_err(|e| refuse(format!("{KEY_CLASSES}: {e}")))?;
        let manifest = Self {
            path: path.to_owned(),
            root: PathBuf::from(key(KEY_ROOT)?),
            fingerprint: key(KEY_FINGERPRINT)?,
            verified: key(KEY_VERIFIED)? == "true",
            classes,
            entries,
        };
        let fits = manifest.entries.iter().all(|e| {
            usize::try_from(e.label)
                .ok()
                .and_then(|label| manifest.classes.get(label))
                .is_some_and(|name| *name == e.class_name)
                && (!manifest.verified || e.decodes.is_some())
        });
        if !fits || manifest.dataset(&manifest.root).is_err() {
            return Err(refuse(
                "its rows do not match its listing's fingerprint or classes (edited?); make it \
                 again with drift-pipeline index"
                    .into(),
            ));
        }
        Ok(manifest)
    }

    /// The dataset it lists, rooted at `root` (a worker may mount it elsewhere than where it
    /// was indexed): nothing is listed again.
    pub fn dataset(&self, root: &Path) -> Result<Dataset, PipelineError> {
        let dataset = Dataset::from_listing(
            root,
            self.classes.clone(),
            self.entries
                .iter()
                .map(|e| (e.path.clone(), e.label as usize, e.bytes)),
        );
        if dataset.fingerprint() != self.fingerprint {
            return Err(PipelineError::Manifest {
                path: self.path.clone(),
                reason: "its rows do not match its listing's fingerprint (edited?)".into(),
            });
        }
        Ok(dataset)
    }

    /// Per image, whether it decodes; `None` unless made with `--verify`.
    pub fn decodes(&self) -> Option<Vec<bool>> {
        self.verified.then(|| {
            self.entries
                .iter()
                .map(|e| e.decodes == Some(true))
                .collect()
        })
    }

    /// Images listed.
    pub fn images(&self) -> usize {
        self.entries.len()
    }

    /// The listing's fingerprint (as [`Dataset::fingerprint`]).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Where the dataset was when it was indexed.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A scratch folder for a manifest on its way to or from object storage.
fn scratch_file() -> Result<tempfile::TempDir, PipelineError> {
    Ok(drift_store::scratch_dir("drift-pipeline-manifest-")?)
}

/// Decodes every image of `dataset` on `threads` threads, each taking the next undone index.
fn decode_all(
    dataset: &Dataset,
    remote: Option<&drift_store::RemoteImages>,
    decoder: &Decoder,
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<Option<Result<(), String>>> {
    // Reads from object storage wait on the network: many threads keep requests in flight.
    let threads = match remote {
        Some(_) => threads.max(crate::pipeline::REMOTE_READS_IN_FLIGHT),
        None => threads,
    };
    let decode = |index: usize, path: &Path| match remote {
        None => decoder.decode(path).map(drop).map_err(|e| e.to_string()),
        Some(remote) => remote
            .read(index)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                decoder
                    .decode_bytes(&bytes, path)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
    };
    let images = dataset.images();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<(), String>>> = vec![None; images.len()];
    let parts: Vec<Vec<(usize, Result<(), String>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(image) = images.get(index) else {
                            return mine;
                        };
                        mine.push((index, decode(index, &image.path)));
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a decode thread does not panic"))
            .collect()
    });
    for (index, result) in parts.into_iter().flatten() {
        results[index] = Some(result);
    }
    results
}
