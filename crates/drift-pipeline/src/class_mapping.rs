//! `--class-mapping FILE`: original label or class name -> published label.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drift_core::ClassTable;

/// Why a class mapping was refused. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ClassMappingError {
    /// The file cannot be read.
    #[error("cannot read class mapping {path}: {source}")]
    Io {
        /// The mapping file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a flat JSON or TOML table of integers.
    #[error(
        "class mapping {path} is not a valid {format} table of class -> integer label: {reason}"
    )]
    Syntax {
        /// The mapping file.
        path: PathBuf,
        /// JSON or TOML.
        format: &'static str,
        /// The parser's words.
        reason: String,
    },
    /// Neither `.json` nor `.toml`.
    #[error("class mapping {path} must end in .json or .toml")]
    UnknownFormat {
        /// The mapping file.
        path: PathBuf,
    },
    /// A key that is neither a class name nor an existing label.
    #[error(
        "class mapping {path}: key '{key}' is neither a class name nor a label of this dataset (classes: {known})"
    )]
    UnknownKey {
        /// The mapping file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The dataset's `label=name` pairs.
        known: String,
    },
    /// Two keys for the same class with different values.
    #[error("class mapping {path}: class '{class}' is mapped twice, to {first} and to {second}")]
    Conflict {
        /// The mapping file.
        path: PathBuf,
        /// The class.
        class: String,
        /// One value.
        first: i64,
        /// The other value.
        second: i64,
    },
}

/// A flat table that refuses a key given twice (serde_json keeps the last one silently; TOML
/// refuses too, so both formats say the same).
struct UniqueKeys(BTreeMap<String, i64>);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of class -> integer label")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut table = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, i64>()? {
                    if table.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "key '{key}' is given twice"
                        )));
                    }
                    table.insert(key, value);
                }
                Ok(UniqueKeys(table))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A resolved mapping from original label to published label. Classes the file does not
/// mention keep their original label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassMapping {
    labels: Vec<i64>,
}

impl ClassMapping {
    /// Reads `path` (`.json` or `.toml`): a flat table whose keys are class names or original
    /// labels (as text) and whose values are integers. A key that names a class wins over the
    /// same text read as a label.
    pub fn load(path: &Path, classes: &ClassTable) -> Result<Self, ClassMappingError> {
        let text =
            drift_core::read_small_text(path, drift_core::METADATA_LIMIT).map_err(|source| {
                ClassMappingError::Io {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let UniqueKeys(table) = match extension.as_deref() {
            Some("json") => serde_json::from_str(&text).map_err(|e| ClassMappingError::Syntax {
                path: path.to_owned(),
                format: "JSON",
                reason: e.to_string(),
            })?,
            Some("toml") => toml::from_str(&text).map_err(|e| ClassMappingError::Syntax {
                path: path.to_owned(),
                format: "TOML",
                reason: e.to_string(),
            })?,
            _ => {
                return Err(ClassMappingError::UnknownFormat {
                    path: path.to_owned(),
                });
            }
        };
        Self::resolve(path, &table, classes)
    }

    fn resolve(
        path: &Path,
        table: &BTreeMap<String, i64>,
        classes: &ClassTable,
    ) -> Result<Self, ClassMappingError> {
        let mut assigned: Vec<Option<i64>> = vec![None; classes.len()];
        for (key, &value) in table {
            let label = classes
                .label(key)
                .or_else(|| key.parse::<usize>().ok().filter(|&l| l < classes.len()))
                .ok_or_else(|| ClassMappingError::UnknownKey {
                    path: path.to_owned(),
                    key: key.clone(),
                    known: classes
                        .names()
                        .iter()
                        .enumerate()
                        .map(|(label, name)| format!("{label}={name}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            match assigned[label] {
                Some(first) if first != value => {
                    return Err(ClassMappingError::Conflict {
                        path: path.to_owned(),
                        class: classes.name(label).unwrap_or_default().to_owned(),
                        first,
                        second: value,
                    });
                }
                _ => assigned[label] = Some(value),
            }
        }
        let labels = assigned
            .into_iter()
            .enumerate()
            .map(|(label, new)| new.unwrap_or(label as i64))
            .collect();
        Ok(Self { labels })
    }

    /// The identity mapping.
    pub fn identity(classes: &ClassTable) -> Self {
        Self {
            labels: (0..classes.len() as i64).collect(),
        }
    }

    /// The published label of `original`.
    pub fn map(&self, original: usize) -> i64 {
        self.labels[original]
    }

    /// The published label of every original label, in label order.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> ClassTable {
        ClassTable::new(vec!["cats".into(), "dogs".into(), "7".into()])
    }

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn maps_names_and_labels_from_json_and_toml() {
        let (_d, json) = write("m.json", r#"{"cats": 10, "1": 20}"#);
        let mapping = ClassMapping::load(&json, &classes()).unwrap();
        assert_eq!(
            (mapping.map(0), mapping.map(1), mapping.map(2)),
            (10, 20, 2)
        );

        let (_d, toml) = write("m.TOML", "dogs = 5\n\"7\" = 1\n");
        let mapping = ClassMapping::load(&toml, &classes()).unwrap();
        assert_eq!((mapping.map(0), mapping.map(1), mapping.map(2)), (0, 5, 1));
    }

    #[test]
    fn refuses_bad_mappings_naming_the_file_and_key() {
        for (name, text, expected) in [
            ("a.json", r#"{"horses": 1}"#, "'horses'"),
            ("b.json", r#"{"3": 1}"#, "'3'"),
            ("c.json", r#"{"cats": "one"}"#, "not a valid JSON"),
            ("d.toml", "cats = 1.5", "not a valid TOML"),
            ("e.yaml", "cats: 1", "must end in .json or .toml"),
            ("f.json", r#"{"cats": 1, "0": 2}"#, "mapped twice"),
        ] {
            let (_d, path) = write(name, text);
            let err = ClassMapping::load(&path, &classes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{name}: {err}");
            assert!(err.contains(name), "{name}: {err}");
        }
    }
}
