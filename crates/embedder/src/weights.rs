//! ResNet18 state dicts: reading torchvision `.pth` and safetensors files, checking every
//! tensor's name and shape, and telling the reference weights from any other.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::EmbedderError;

/// A weights file this tool knows by name and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownWeights {
    /// The file name under which the file circulates and is cached.
    pub file_name: &'static str,
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: &'static str,
    /// Where the file comes from.
    pub description: &'static str,
}

/// torchvision's ResNet18 IMAGENET1K_V1 weights, the reference of SPEC.
pub const TORCHVISION_PTH: KnownWeights = KnownWeights {
    file_name: "resnet18-f37072fd.pth",
    sha256: "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
    description: "torchvision ResNet18 IMAGENET1K_V1 (.pth)",
};

/// The same weights as safetensors with torchvision's tensor names (timm `resnet18.tv_in1k`).
pub const TIMM_SAFETENSORS: KnownWeights = KnownWeights {
    file_name: "resnet18.tv_in1k.safetensors",
    sha256: "694f673df6520a3158624e8a89af086f59923ee4cd7436fe5bc3bc71d295ad81",
    description: "timm resnet18.tv_in1k, the torchvision IMAGENET1K_V1 weights (safetensors)",
};

/// Every file this tool knows, in the order the cache is searched.
pub const KNOWN_WEIGHTS: [KnownWeights; 2] = [TORCHVISION_PTH, TIMM_SAFETENSORS];

/// The official download address of [`TORCHVISION_PTH`].
pub const TORCHVISION_URL: &str = "https://download.pytorch.org/models/resnet18-f37072fd.pth";

/// The environment variable that overrides the cache directory.
pub const CACHE_ENV: &str = "DRIFT_PIPELINE_CACHE";

/// The directory where weights are cached: `$DRIFT_PIPELINE_CACHE`, else
/// `$XDG_CACHE_HOME/drift-pipeline`, else `$HOME/.cache/drift-pipeline`.
pub fn cache_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty(CACHE_ENV) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("drift-pipeline"));
    }
    non_empty("HOME").map(|home| PathBuf::from(home).join(".cache").join("drift-pipeline"))
}

/// The first known weights file present in the cache directory.
pub fn find_cached() -> Option<PathBuf> {
    let dir = cache_dir()?;
    KNOWN_WEIGHTS
        .iter()
        .map(|known| dir.join(known.file_name))
        .find(|path| path.is_file())
}

/// What to tell a user who asked for embeddings without weights.
pub fn how_to_get_weights() -> String {
    let cache = cache_dir().map_or_else(
        || format!("the cache directory (set {CACHE_ENV})"),
        |dir| dir.display().to_string(),
    );
    format!(
        "no ResNet18 weights found: give a weights file (torchvision .pth or safetensors), or run \
         `drift-pipeline weights fetch` to download {} into {cache}, or copy {} or {} there \
         yourself",
        TORCHVISION_PTH.file_name, TORCHVISION_PTH.file_name, TIMM_SAFETENSORS.file_name
    )
}

/// Lowercase hex SHA-256 of a file's bytes (refusing anything but a regular file).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    drift_core::sha256_hex(drift_core::open_regular(path)?)
}

pub use drift_core::hex;

/// One float tensor of a state dict, as f32 in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub values: Vec<f32>,
}

/// Whether a loaded file is the reference of SPEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// A known file whose hash matched.
    Reference(KnownWeights),
    /// Any other valid ResNet18 state dict (fine-tuned, or test weights).
    Other,
}

/// A ResNet18 state dict with torchvision's tensor names, checked for completeness and shapes.
#[derive(Debug, Clone)]
pub struct StateDict {
    tensors: BTreeMap<String, WeightTensor>,
}

/// Where a state dict came from.
#[derive(Debug, Clone)]
pub struct WeightsSource {
    /// The file.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Reference or not.
    pub provenance: Provenance,
}

impl WeightsSource {
    /// One line for logs and summaries.
    pub fn describe(&self) -> String {
        match &self.provenance {
            Provenance::Reference(known) => {
                format!("{} ({})", self.path.display(), known.description)
            }
            Provenance::Other => format!(
                "{} (sha256 {}; not the reference IMAGENET1K_V1 weights)",
                self.path.display(),
                &self.sha256[..16]
            ),
        }
    }
}

/// The BatchNorm statistics torchvision stores, and which of them a ResNet18 needs.
const BN_PARTS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// Every tensor a ResNet18 feature extractor needs, with its shape, in torchvision's names.
pub fn resnet18_layout() -> Vec<(String, Vec<usize>)> {
    let mut layout = Vec::new();
    let mut conv_bn = |conv: &str, bn: &str, out: usize, inp: usize, k: usize| {
        layout.push((format!("{conv}.weight"), vec![out, inp, k, k]));
        for part in BN_PARTS {
            layout.push((format!("{bn}.{part}"), vec![out]));
        }
    };
    conv_bn("conv1", "bn1", 64, 3, 7);
    let widths = [64, 128, 256, 512];
    let mut inp = 64;
    for (stage, &out) in widths.iter().enumerate() {
        for block in 0..2 {
            let prefix = format!("layer{}.{block}", stage + 1);
            let block_in = if block == 0 { inp } else { out };
            conv_bn(
                &format!("{prefix}.conv1"),
                &format!("{prefix}.bn1"),
                out,
                block_in,
                3,
            );
            conv_bn(
                &format!("{prefix}.conv2"),
                &format!("{prefix}.bn2"),
                out,
                out,
                3,
            );
            if block == 0 && stage > 0 {
                conv_bn(
                    &format!("{prefix}.downsample.0"),
                    &format!("{prefix}.downsample.1"),
                    out,
                    block_in,
                    1,
                );
            }
        }
        inp = out;
    }
    layout
}

/// Why a tensor's values cannot be a trained network's: a non-finite value anywhere, or a
/// negative BatchNorm variance. `None` when they are fine.
fn bad_values(name: &str, values: &[f32]) -> Option<String> {
    if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Some(format!(
            "holds {value} at index {index}: weights must be finite"
        ));
    }
    if name.ends_with(".running_var")
        && let Some((index, value)) = values.iter().enumerate().find(|(_, v)| **v < 0.0)
    {
        return Some(format!(
            "holds {value} at index {index}: a BatchNorm variance cannot be negative"
        ));
    }
    None
}

/// Tensors a torchvision ResNet18 state dict has that the feature extractor does not use.
fn is_unused(name: &str) -> bool {
    name == "fc.weight" || name == "fc.bias" || name.ends_with(".num_batches_tracked")
}

impl StateDict {
    /// Builds a state dict from named tensors, checking names and shapes against ResNet18.
    /// Names may carry a `module.` prefix (from `nn.DataParallel`); tensors a feature extractor
    /// does not use (`fc.*`, `num_batches_tracked`) are dropped.
    pub fn from_tensors(
        file: &Path,
        tensors: impl IntoIterator<Item = (String, WeightTensor)>,
    ) -> Result<Self, EmbedderError> {
        let mut all: BTreeMap<String, WeightTensor> = BTreeMap::new();
        for (name, tensor) in tensors {
            let name = name.strip_prefix("module.").unwrap_or(&name).to_owned();
            all.insert(name, tensor);
        }
        let layout = resnet18_layout();
        let mut tensors = BTreeMap::new();
        for (name, shape) in &layout {
            let Some(tensor) = all.remove(name) else {
                return Err(EmbedderError::MissingTensor {
                    path: file.to_owned(),
                    tensor: name.clone(),
                });
            };
            if &tensor.shape != shape {
                return Err(EmbedderError::TensorShape {
                    path: file.to_owned(),
                    tensor: name.clone(),
                    expected: shape.clone(),
                    found: tensor.shape,
                });
            }
            if let Some(reason) = bad_values(name, &tensor.values) {
                return Err(EmbedderError::TensorValues {
                    path: file.to_owned(),
                    tensor: name.clone(),
                    reason,
                });
            }
            tensors.insert(name.clone(), tensor);
        }
        if let Some(extra) = all.keys().find(|name| !is_unused(name)) {
            return Err(EmbedderError::UnexpectedTensor {
                path: file.to_owned(),
                tensor: extra.clone(),
            });
        }
        Ok(Self { tensors })
    }

    /// Loads a torchvision `.pth` or a safetensors file (told apart by content), checks it,
    /// and says whether it is the reference.
    pub fn load(path: &Path) -> Result<(Self, WeightsSource), EmbedderError> {
        let io_error = |source| EmbedderError::Io {
            path: path.to_owned(),
            source,
        };
        let sha256 = sha256_file(path).map_err(io_error)?;
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let mut provenance = Provenance::Other;
        for known in KNOWN_WEIGHTS {
            if known.sha256 == sha256 {
                provenance = Provenance::Reference(known);
            } else if known.file_name == file_name {
                return Err(EmbedderError::HashMismatch {
                    path: path.to_owned(),
                    expected: known.sha256.to_owned(),
                    found: sha256,
                });
            }
        }
        let tensors = read_tensors(path)?;
        let dict = Self::from_tensors(path, tensors)?;
        Ok((
            dict,
            WeightsSource {
                path: path.to_owned(),
                sha256,
                provenance,
            },
        ))
    }

    /// One tensor by torchvision name.
    pub fn get(&self, name: &str) -> Option<&WeightTensor> {
        self.tensors.get(name)
    }

    /// All tensors, by name.
    pub fn tensors(&self) -> &BTreeMap<String, WeightTensor> {
        &self.tensors
    }

    /// Writes the state dict as safetensors (f32, torchvision names).
    pub fn write_safetensors(&self, path: &Path) -> Result<(), EmbedderError> {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(name, tensor)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    tensor.shape.clone(),
                    bytemuck_f32(&tensor.values),
                )
                .expect("shape and byte length agree by construction");
                (name.clone(), view)
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).map_err(|error| EmbedderError::Format {
            path: path.to_owned(),
            reason: error.to_string(),
        })
    }
}

/// safetensors stores little-endian f32, which is this machine's layout (checked at compile time
/// below), so the values are handed over as bytes without a copy.
fn bytemuck_f32(values: &[f32]) -> &[u8] {
    const _: () = assert!(cfg!(target_endian = "little"));
    bytemuck::cast_slice(values)
}

fn to_f32(path: &Path, name: &str, dtype: &str, bytes: &[u8]) -> Result<Vec<f32>, EmbedderError> {
    match dtype {
        "F32" => Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        "F64" => Ok(bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect()),
        "F16" => Ok(bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()),
        "BF16" => Ok(bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()),
        other => Err(EmbedderError::TensorType {
            path: path.to_owned(),
            tensor: name.to_owned(),
            dtype: other.to_owned(),
        }),
    }
}

/// Every tensor of a torchvision `.pth` (zip or legacy pickle) or safetensors file, told apart by
/// content, as f32. Unused tensors (`fc.*`, `num_batches_tracked`) come back with their shape
/// and no values.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, WeightTensor)>, EmbedderError> {
    let mut magic = [0u8; 2];
    let read = drift_core::open_regular(path)
        .and_then(|mut file| file.read(&mut magic))
        .map_err(|source| EmbedderError::Io {
            path: path.to_owned(),
            source,
        })?;
    // torch.save writes a zip ("PK"); its legacy format starts with a pickle protocol byte.
    if read == 2 && (magic == *b"PK" || magic[0] == 0x80) {
        read_pth(path)
    } else {
        read_safetensors(path)
    }
}

fn read_pth(path: &Path) -> Result<Vec<(String, WeightTensor)>, EmbedderError> {
    let format_error = |reason: String| EmbedderError::Format {
        path: path.to_owned(),
        reason,
    };
    let reader = pytorch_reader::PytorchReader::new(path)
        .map_err(|error| format_error(format!("not a readable PyTorch checkpoint: {error}")))?;
    let mut out = Vec::new();
    for (name, tensor) in reader.into_tensors() {
        let dtype = format!("{:?}", tensor.dtype());
        if is_unused(name.strip_prefix("module.").unwrap_or(&name)) {
            out.push((
                name,
                WeightTensor {
                    shape: tensor.shape().to_vec(),
                    values: Vec::new(),
                },
            ));
            continue;
        }
        let bytes = tensor
            .read()
            .map_err(|error| format_error(format!("tensor {name}: {error}")))?;
        let values = to_f32(path, &name, &dtype, &bytes)?;
        out.push((
            name,
            WeightTensor {
                shape: tensor.shape().to_vec(),
                values,
            },
        ));
    }
    Ok(out)
}

/// The largest weights file read whole: ResNet18's is 45 MB in f32; a file far beyond that is
/// refused before it fills memory.
const WEIGHTS_LIMIT: u64 = 1 << 30;

fn read_safetensors(path: &Path) -> Result<Vec<(String, WeightTensor)>, EmbedderError> {
    let bytes = drift_core::open_regular(path)
        .and_then(|file| {
            let mut bytes = Vec::new();
            file.take(WEIGHTS_LIMIT + 1).read_to_end(&mut bytes)?;
            match bytes.len() as u64 > WEIGHTS_LIMIT {
                true => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("larger than {WEIGHTS_LIMIT} bytes: not ResNet18 weights"),
                )),
                false => Ok(bytes),
            }
        })
        .map_err(|source| EmbedderError::Io {
            path: path.to_owned(),
            source,
        })?;
    let file =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|error| EmbedderError::Format {
            path: path.to_owned(),
            reason: format!("neither a PyTorch checkpoint nor a safetensors file: {error}"),
        })?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        let shape = view.shape().to_vec();
        let values = if is_unused(name.strip_prefix("module.").unwrap_or(&name)) {
            Vec::new()
        } else {
            to_f32(path, &name, &format!("{:?}", view.dtype()), view.data())?
        };
        out.push((name, WeightTensor { shape, values }));
    }
    Ok(out)
}
