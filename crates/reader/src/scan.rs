//! Listing a class-folder dataset the way torchvision's `ImageFolder` does (sorted classes,
//! its image extensions), without decoding anything, and the listing's fingerprint (SHA-256
//! of relative paths and sizes) that streams and shards check a dataset against.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use drift_core::ClassTable;

use crate::ReaderError;

/// torchvision's `IMG_EXTENSIONS`, compared case-insensitively.
const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "pgm", "bmp", "tif", "tiff", "webp",
];

/// How many ignored paths a [`Dataset`] keeps as examples (the count is always exact).
pub const IGNORED_EXAMPLES: usize = 20;

/// True when `path` has one of the recognised image extensions.
pub fn is_image_extension(path: &Path) -> bool {
    path.extension().and_then(OsStr::to_str).is_some_and(|ext| {
        IMAGE_EXTENSIONS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(ext))
    })
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// One image of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Where the file is.
    pub path: PathBuf,
    /// Its class's label.
    pub label: usize,
    /// Its size when the dataset was scanned.
    pub bytes: u64,
}

/// A scanned class-folder dataset: classes, images and what was ignored.
#[derive(Debug, Clone)]
pub struct Dataset {
    root: PathBuf,
    classes: ClassTable,
    images: Vec<ImageEntry>,
    /// Every ignored path, in the order the scan met them.
    ignored: Vec<PathBuf>,
    fingerprint: String,
}

impl Dataset {
    /// Lists `root` with `ImageFolder` semantics. Nothing is decoded.
    ///
    /// Hidden files and folders (names starting with `.`) are ignored, as are files without a
    /// recognised extension; symbolic links are followed (loops are an error).
    pub fn scan(root: &Path) -> Result<Self, ReaderError> {
        let metadata = std::fs::metadata(root).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ReaderError::MissingRoot {
                path: root.to_owned(),
            },
            _ => ReaderError::Io {
                path: root.to_owned(),
                source,
            },
        })?;
        if !metadata.is_dir() {
            return Err(ReaderError::RootNotADirectory {
                path: root.to_owned(),
            });
        }
        let mut dataset = Dataset {
            root: root.to_owned(),
            classes: ClassTable::default(),
            images: Vec::new(),
            ignored: Vec::new(),
            fingerprint: String::new(),
        };

        let mut class_dirs = Vec::new();
        for entry in read_dir(root)? {
            let entry = entry.map_err(|source| io_error(root, source))?;
            let path = entry.path();
            let is_dir = std::fs::metadata(&path)
                .map_err(|source| io_error(&path, source))?
                .is_dir();
            if !is_dir || is_hidden(&entry.file_name()) {
                dataset.ignore(path);
                continue;
            }
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| ReaderError::NonUtf8Name { path: path.clone() })?;
            class_dirs.push((name, path));
        }
        if class_dirs.is_empty() {
            return Err(ReaderError::NoClasses {
                path: root.to_owned(),
            });
        }
        // Rust orders Strings by bytes, which for UTF-8 is Python's code-point order.
        class_dirs.sort();

        let mut empty_classes = Vec::new();
        for (label, (_, class_dir)) in class_dirs.iter().enumerate() {
            let before = dataset.images.len();
            dataset.list_class(class_dir, label)?;
            if dataset.images.len() == before {
                empty_classes.push(class_dir.clone());
            }
        }
        if let Some(first) = empty_classes.first() {
            return Err(ReaderError::EmptyClass {
                path: first.clone(),
                others: empty_classes.len() - 1,
            });
        }
        dataset.classes = ClassTable::new(class_dirs.into_iter().map(|(name, _)| name).collect());
        dataset.fingerprint = dataset.listing_fingerprint();
        Ok(dataset)
    }

    /// A dataset from a listing made earlier (a manifest), without listing `root` again:
    /// `classes` in label order, and each image's path relative to `root` (`/`-separated),
    /// label and size. The fingerprint is the listing's, so it equals a scan's while nothing
    /// changed; [`Dataset::check_unchanged`] compares files against it.
    pub fn from_listing(
        root: &Path,
        classes: Vec<String>,
        images: impl IntoIterator<Item = (String, usize, u64)>,
    ) -> Self {
        let mut dataset = Dataset {
            root: root.to_owned(),
            classes: ClassTable::new(classes),
            images: images
                .into_iter()
                .map(|(relative, label, bytes)| ImageEntry {
                    path: relative
                        .split('/')
                        .fold(root.to_owned(), |p, part| p.join(part)),
                    label,
                    bytes,
                })
                .collect(),
            ignored: Vec::new(),
            fingerprint: String::new(),
        };
        dataset.fingerprint = dataset.listing_fingerprint();
        dataset
    }

    /// A dataset from an object store's listing below `root` (each object's key relative to
    /// it, `/`-separated, and its size), with the same `ImageFolder` semantics as
    /// [`Dataset::scan`]: classes are the first key components, sorted; hidden components and
    /// unrecognised extensions are ignored; images are ordered folder by folder, files sorted
    /// within a folder. So a bucket holding a copy of a folder gives the same images in the same
    /// order, and the same fingerprint. Keys ending in `/` (folder markers) are not files.
    pub fn from_objects(
        root: &Path,
        objects: impl IntoIterator<Item = (String, u64)>,
    ) -> Result<Self, ReaderError> {
        let mut classes: BTreeMap<String, BTreeMap<String, Vec<(String, u64)>>> = BTreeMap::new();
        let mut ignored = Vec::new();
        let mut ignored_units = std::collections::HashSet::new();
        let mut any = false;
        for (key, bytes) in objects {
            any = true;
            let parts: Vec<&str> = key.split('/').collect();
            let is_folder_marker = key.ends_with('/');
            // What is ignored is the first hidden component and what is below it, as one path.
            let hidden = parts
                .iter()
                .position(|part| part.starts_with('.'))
                .map(|at| parts[..=at].join("/"));
            let unit = match (&hidden, parts.len()) {
                (Some(unit), _) => Some(unit.clone()),
                (None, 1) => Some(key.clone()),
                (None, _) if is_folder_marker => None,
                (None, _) if !is_image_extension(Path::new(&key)) => Some(key.clone()),
                _ => None,
            };
            if hidden.is_none() && parts.len() > 1 {
                classes.entry(parts[0].to_owned()).or_default();
            }
            if let Some(unit) = unit {
                if ignored_units.insert(unit.clone()) {
                    ignored.push(
                        unit.split('/')
                            .fold(root.to_owned(), |p, part| p.join(part)),
                    );
                }
                continue;
            }
            if is_folder_marker {
                continue;
            }
            let (folder, name) = key.rsplit_once('/').expect("a key below a class folder");
            classes
                .entry(parts[0].to_owned())
                .or_default()
                .entry(folder.to_owned())
                .or_default()
                .push((name.to_owned(), bytes));
        }
        if !any {
            return Err(ReaderError::MissingRoot {
                path: root.to_owned(),
            });
        }
        if classes.is_empty() {
            return Err(ReaderError::NoClasses {
                path: root.to_owned(),
            });
        }
        let empty: Vec<_> = classes
            .iter()
            .filter(|(_, folders)| folders.is_empty())
            .map(|(name, _)| root.join(name))
            .collect();
        if let Some(first) = empty.first() {
            return Err(ReaderError::EmptyClass {
                path: first.clone(),
                others: empty.len() - 1,
            });
        }
        let names: Vec<String> = classes.keys().cloned().collect();
        let mut images = Vec::new();
        for (label, folders) in classes.into_values().enumerate() {
            for (folder, mut files) in folders {
                files.sort();
                images.extend(
                    files
                        .into_iter()
                        .map(|(name, bytes)| (format!("{folder}/{name}"), label, bytes)),
                );
            }
        }
        let mut dataset = Self::from_listing(root, names, images);
        dataset.ignored = ignored;
        Ok(dataset)
    }

    /// Checks that the images at `indices` are still regular files of the listed sizes.
    pub fn check_unchanged(
        &self,
        indices: impl IntoIterator<Item = usize>,
    ) -> Result<(), ReaderError> {
        for index in indices {
            let image = &self.images[index];
            let changed = |reason: String| ReaderError::Changed {
                path: image.path.clone(),
                reason,
            };
            let metadata = std::fs::metadata(&image.path).map_err(|e| changed(e.to_string()))?;
            if !metadata.is_file() {
                return Err(changed("no longer a regular file".into()));
            }
            if metadata.len() != image.bytes {
                return Err(changed(format!(
                    "{} bytes then, {} now",
                    image.bytes,
                    metadata.len()
                )));
            }
        }
        Ok(())
    }

    /// Appends the images of one class: folders in sorted path order, files sorted within each
    /// folder, as `sorted(os.walk(...))` in torchvision's `make_dataset` does.
    fn list_class(&mut self, class_dir: &Path, label: usize) -> Result<(), ReaderError> {
        let mut by_folder: BTreeMap<String, Vec<(String, PathBuf, u64)>> = BTreeMap::new();
        let mut walker = walkdir::WalkDir::new(class_dir)
            .follow_links(true)
            .min_depth(1)
            .into_iter();
        while let Some(entry) = walker.next() {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(class_dir).to_owned();
                let source = e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("symbolic link loop"));
                io_error(&path, source)
            })?;
            if is_hidden(entry.file_name()) {
                if entry.file_type().is_dir() {
                    walker.skip_current_dir();
                }
                self.ignore(entry.into_path());
                continue;
            }
            if entry.file_type().is_dir() {
                continue;
            }
            let path = entry.into_path();
            if !is_image_extension(&path) {
                self.ignore(path);
                continue;
            }
            // Paths are recorded as text (drift log, zip entries, manifests): a lossy spelling
            // would name no file, or two files alike.
            if path
                .strip_prefix(&self.root)
                .unwrap_or(&path)
                .to_str()
                .is_none()
            {
                return Err(ReaderError::NonUtf8Name { path });
            }
            // A FIFO or device named like an image would block the decoder forever.
            let metadata = std::fs::metadata(&path).map_err(|source| io_error(&path, source))?;
            let kind = metadata.file_type();
            if !kind.is_file() {
                return Err(ReaderError::NotAFile {
                    kind: drift_core::describe_file_type(kind).to_owned(),
                    path,
                });
            }
            let folder = path
                .parent()
                .unwrap_or(class_dir)
                .to_string_lossy()
                .into_owned();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            by_folder
                .entry(folder)
                .or_default()
                .push((name, path, metadata.len()));
        }
        for (_, mut files) in by_folder {
            files.sort();
            self.images
                .extend(files.into_iter().map(|(_, path, bytes)| ImageEntry {
                    path,
                    label,
                    bytes,
                }));
        }
        Ok(())
    }

    /// SHA-256 of the listing: every image's path relative to the root (`/`-separated, class
    /// folder first) and size, in label order. Names and sizes, not contents: hashing every
    /// image would read the whole dataset, and a changed file almost always changes size.
    fn listing_fingerprint(&self) -> String {
        let mut listing = String::from("drift-pipeline dataset listing v1\n");
        for image in &self.images {
            let relative = image.path.strip_prefix(&self.root).unwrap_or(&image.path);
            let parts: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            listing.push_str(&format!("{}\t{}\n", parts.join("/"), image.bytes));
        }
        drift_core::sha256_hex(listing.as_bytes()).expect("hashing bytes in memory cannot fail")
    }

    fn ignore(&mut self, path: PathBuf) {
        self.ignored.push(path);
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Classes in label order.
    pub fn classes(&self) -> &ClassTable {
        &self.classes
    }

    /// All images, class by class, in `ImageFolder` order.
    pub fn images(&self) -> &[ImageEntry] {
        &self.images
    }

    /// Number of images per label.
    pub fn counts_per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for image in &self.images {
            counts[image.label] += 1;
        }
        counts
    }

    /// How many files and folders were ignored (not images, hidden, or loose files in the root).
    pub fn ignored_count(&self) -> usize {
        self.ignored.len()
    }

    /// Every ignored path, in the order the scan met them.
    pub fn ignored(&self) -> &[PathBuf] {
        &self.ignored
    }

    /// The ignored paths counted by kind: `.ext` (lowercase), `no extension`, `folder` or
    /// `hidden`, most frequent first (then by name).
    pub fn ignored_by_kind(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for path in &self.ignored {
            let kind = if path.file_name().is_some_and(is_hidden) {
                "hidden".to_owned()
            } else if path.is_dir() {
                "folder".to_owned()
            } else {
                path.extension().map_or("no extension".to_owned(), |ext| {
                    format!(".{}", ext.to_string_lossy().to_lowercase())
                })
            };
            *counts.entry(kind).or_default() += 1;
        }
        let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts
    }

    /// Identifies the dataset's listing (paths and sizes, see the README): a stream continued
    /// on another run refuses a dataset whose fingerprint changed, and file names derive from it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The first [`IGNORED_EXAMPLES`] ignored paths.
    pub fn ignored_examples(&self) -> &[PathBuf] {
        &self.ignored[..self.ignored.len().min(IGNORED_EXAMPLES)]
    }
}

fn read_dir(path: &Path) -> Result<std::fs::ReadDir, ReaderError> {
    std::fs::read_dir(path).map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> ReaderError {
    ReaderError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder and a bucket holding the same files list the same images, in the same order,
    /// with the same fingerprint and the same ignored paths.
    #[test]
    fn an_object_listing_is_scanned_like_the_folder_it_copies() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            "b_class/z.png",
            "b_class/a.jpg",
            "b_class/sub/m.png",
            "b_class/sub.x/k.png",
            "b_class/.hidden/q.png",
            "b_class/notes.txt",
            "a_class/1.PNG",
            "a_class/deep/er/2.webp",
            ".git/config.png",
            "README.md",
        ];
        for (i, file) in files.iter().enumerate() {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, vec![0u8; i + 3]).unwrap();
        }
        let scanned = Dataset::scan(dir.path()).unwrap();
        let root = Path::new("s3://bucket/data");
        let mut objects: Vec<(String, u64)> = files
            .iter()
            .enumerate()
            .map(|(i, f)| ((*f).to_owned(), i as u64 + 3))
            .collect();
        objects.push(("a_class/".into(), 0));
        objects.sort();
        let listed = Dataset::from_objects(root, objects).unwrap();
        let relative = |d: &Dataset| -> Vec<(String, usize, u64)> {
            d.images()
                .iter()
                .map(|i| {
                    let r = i.path.strip_prefix(d.root()).unwrap();
                    (r.to_string_lossy().into_owned(), i.label, i.bytes)
                })
                .collect()
        };
        assert_eq!(relative(&listed), relative(&scanned));
        assert_eq!(listed.fingerprint(), scanned.fingerprint());
        assert_eq!(listed.classes().names(), scanned.classes().names());
        assert_eq!(
            listed.images()[0].path,
            Path::new("s3://bucket/data/a_class/1.PNG")
        );
        let ignored = |d: &Dataset| {
            let mut paths: Vec<_> = d
                .ignored()
                .iter()
                .map(|p| p.strip_prefix(d.root()).unwrap().to_owned())
                .collect();
            paths.sort();
            paths
        };
        assert_eq!(ignored(&listed), ignored(&scanned));

        let error = Dataset::from_objects(root, [("c/readme.txt".to_owned(), 4)])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("class folder s3://bucket/data/c has no images"),
            "{error}"
        );
        let error = Dataset::from_objects(root, []).unwrap_err().to_string();
        assert_eq!(error, "input folder s3://bucket/data does not exist");
    }
}
