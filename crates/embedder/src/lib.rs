//! Embedder stage: 512-d ResNet18 features of sampled images.
//!
//! [`StateDict::load`] reads torchvision weights (`.pth` or safetensors) and checks every
//! tensor; [`Embedder::new`] folds them into an inference network on the chosen device;
//! [`Embedder::embed`] turns a batch of 8-bit RGB images into one 512-d vector each. On the CPU
//! the network runs on drift-conv's kernels (`nhwc`), with no burn in the build; the GPU path
//! (burn's wgpu backend, feature `wgpu`) and burn's deprecated ndarray CPU backend (feature
//! `ndarray`) are the only parts that compile burn (`gpu`).

#[cfg(any(feature = "wgpu", feature = "ndarray"))]
mod gpu;
mod nhwc;
mod resnet;
mod synthetic;
pub mod weights;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

#[cfg(any(feature = "wgpu", feature = "ndarray"))]
use burn::prelude::*;
#[cfg(any(feature = "wgpu", feature = "ndarray"))]
use burn::tensor::TensorData;
pub use drift_core::EMBEDDING_DIM;
use drift_core::{ImageSize, RgbImage8};
use rayon::prelude::*;

pub use synthetic::{synthetic_images, synthetic_state_dict, write_synthetic_weights};
pub use weights::{Provenance, StateDict, WeightsSource};

/// ImageNet channel means, as torchvision's `IMAGENET1K_V1` transforms use them.
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// What the network sees of a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Normalize {
    /// Raw [0, 1] values, as the Python tool fed them: embeddings and KL values stay
    /// comparable with that tool's.
    #[default]
    None,
    /// (x - mean) / std with ImageNet's statistics, which the pretrained weights expect.
    ImageNet,
}

impl Normalize {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Normalize::None => "none",
            Normalize::ImageNet => "imagenet",
        }
    }
}

impl FromStr for Normalize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(Normalize::None),
            "imagenet" => Ok(Normalize::ImageNet),
            other => Err(format!(
                "unknown normalization '{other}' (valid: none, imagenet)"
            )),
        }
    }
}

/// Which kind of device to embed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A hardware GPU when this build has a GPU backend and one answers, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// Any wgpu adapter (software ones included), or an error.
    Gpu,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Gpu),
            other => Err(format!("unknown device '{other}' (valid: auto, cpu, gpu)")),
        }
    }
}

/// What runs the network on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuBackend {
    /// The default: drift-conv's kernels (Winograd and a packed matmul, channels-last), the
    /// fastest measured here. Spelled `flex` on the command line, the name it had when burn's
    /// flex backend hosted the weights; burn has no part in it now.
    #[default]
    Flex,
    /// burn's deprecated `ndarray` backend (cargo feature `ndarray`).
    NdArray,
}

impl FromStr for CpuBackend {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "flex" => Ok(CpuBackend::Flex),
            "ndarray" => Ok(CpuBackend::NdArray),
            other => Err(format!(
                "unknown CPU backend '{other}' (valid: flex, ndarray)"
            )),
        }
    }
}

/// How to build an [`Embedder`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbedderOptions {
    /// CPU, GPU, or whichever is there.
    pub device: DeviceChoice,
    /// The CPU backend, when the CPU is used.
    pub cpu_backend: CpuBackend,
    /// Input normalization.
    pub normalize: Normalize,
    /// CPU threads for the network; 0 means one per core.
    pub threads: usize,
}

/// What can go wrong loading weights or embedding.
#[derive(Debug, thiserror::Error)]
pub enum EmbedderError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is neither a PyTorch checkpoint nor safetensors, or is damaged.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor ResNet18 needs is not in the file.
    #[error("{}: missing tensor '{tensor}': not a complete ResNet18 state dict", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The torchvision name of the tensor.
        tensor: String,
    },
    /// The file holds a tensor ResNet18 does not have.
    #[error(
        "{}: unexpected tensor '{tensor}': not a ResNet18 state dict (ResNet34/50 and other \
         models are not supported)",
        path.display()
    )]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The name of the tensor.
        tensor: String,
    },
    /// A tensor has the wrong shape.
    #[error("{}: tensor '{tensor}' has shape {found:?}, ResNet18 needs {expected:?}", path.display())]
    TensorShape {
        /// The file.
        path: PathBuf,
        /// The torchvision name of the tensor.
        tensor: String,
        /// What ResNet18 needs.
        expected: Vec<usize>,
        /// What the file holds.
        found: Vec<usize>,
    },
    /// A tensor holds values no trained network has: NaN or infinity anywhere, or a negative
    /// BatchNorm variance (every image would then get the same or a meaningless embedding).
    #[error("{}: tensor '{tensor}' {reason}", path.display())]
    TensorValues {
        /// The file.
        path: PathBuf,
        /// The torchvision name of the tensor.
        tensor: String,
        /// What is wrong, with the first bad value's index.
        reason: String,
    },
    /// A tensor is not floating point.
    #[error("{}: tensor '{tensor}' has element type {dtype}, expected a float type", path.display())]
    TensorType {
        /// The file.
        path: PathBuf,
        /// The name of the tensor.
        tensor: String,
        /// Its element type.
        dtype: String,
    },
    /// A file carries a known name but not its hash.
    #[error(
        "{}: sha256 is {found}, but a file of this name must have {expected}: the file is \
         damaged or not what its name says; delete it and fetch it again",
        path.display()
    )]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// The known hash.
        expected: String,
        /// The file's hash.
        found: String,
    },
    /// The requested device is not available.
    #[error("{0}")]
    Device(String),
    /// A batch would need more memory than the machine has free.
    #[error(
        "embedding batches of {batch} images at {size} needs about {} MiB, more than the {} MiB \
         of memory available: use a smaller batch size or image size",
        needed >> 20,
        available >> 20
    )]
    BatchTooLarge {
        /// Images per batch.
        batch: usize,
        /// Their size.
        size: ImageSize,
        /// Bytes the batch needs, estimated.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// A batch mixed image sizes.
    #[error("a batch mixes image sizes {first} and {other}")]
    MixedSizes {
        /// The first image's size.
        first: ImageSize,
        /// A different size in the same batch.
        other: ImageSize,
    },
}

/// Refuses a batch whose CPU forward pass would not fit in the memory available now (the
/// kernel's `MemAvailable`; 16 GiB where that cannot be read), before anything is allocated.
/// The estimate is [`cpu_working_bytes`]: groups of [`GROUP_IMAGES`] images, at most one per
/// thread in flight, so the need grows with the image size and the threads, not the batch.
/// (The GPU path's memory is the GPU's, which burn manages.)
pub fn check_batch_memory(
    batch: usize,
    size: ImageSize,
    threads: usize,
) -> Result<(), EmbedderError> {
    let needed = cpu_working_bytes(batch, size, threads);
    let available = available_memory().unwrap_or(16 << 30);
    if needed > available {
        return Err(EmbedderError::BatchTooLarge {
            batch,
            size,
            needed,
            available,
        });
    }
    Ok(())
}

pub use nhwc::{GROUP_IMAGES, cpu_working_bytes};

fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// ResNet18 features on one device, with the weights loaded once.
pub struct Embedder {
    network: Network,
    description: String,
    normalize: Normalize,
    /// CPU backends run their kernels on this pool, so `threads` is honoured without touching
    /// rayon's global pool (which other stages may use).
    pool: rayon::ThreadPool,
}

impl fmt::Debug for Embedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embedder")
            .field("device", &self.description)
            .field("normalize", &self.normalize)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Builds the network from checked weights on the device `options` asks for.
    pub fn new(weights: &StateDict, options: EmbedderOptions) -> Result<Self, EmbedderError> {
        let threads = if options.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            options.threads
        };
        let (processor, description) = select_device(options)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("embedder-{i}"))
            .build()
            .map_err(|error| EmbedderError::Device(format!("cannot start threads: {error}")))?;
        let network = pool.install(|| match processor {
            Processor::Cpu => Network::Nhwc(Box::new(nhwc::ResNet18Nhwc::new(weights))),
            #[cfg(any(feature = "wgpu", feature = "ndarray"))]
            Processor::Burn(device) => Network::Nchw {
                model: Box::new(gpu::ResNet18Features::new(weights, &device)),
                device,
            },
        });
        Ok(Self {
            network,
            description,
            normalize: options.normalize,
            pool,
        })
    }

    /// Which device and backend embed, in words (e.g. "cpu (Winograd + packed matmul)").
    /// Thread counts are
    /// left out: they do not change a single bit of the output.
    pub fn device_description(&self) -> &str {
        &self.description
    }

    /// The input normalization.
    pub fn normalize(&self) -> Normalize {
        self.normalize
    }

    /// One 512-d embedding per image, in order. All images must have the same size.
    pub fn embed(&self, images: &[&RgbImage8]) -> Result<Vec<Vec<f32>>, EmbedderError> {
        self.embed_with(images, None)
    }

    /// [`Embedder::embed`], with the time each layer took (a profiling aid: see the
    /// `embed_profile` example). The CPU path times every convolution; the GPU path, whose
    /// work is queued asynchronously, reports the whole network as one entry.
    pub fn embed_timed(
        &self,
        images: &[&RgbImage8],
    ) -> Result<(Vec<Vec<f32>>, Vec<LayerTime>), EmbedderError> {
        let mut times = Vec::new();
        let features = self.embed_with(images, Some(&mut times))?;
        Ok((features, times))
    }

    fn embed_with(
        &self,
        images: &[&RgbImage8],
        times: Option<&mut Vec<LayerTime>>,
    ) -> Result<Vec<Vec<f32>>, EmbedderError> {
        let Some(first) = images.first() else {
            return Ok(Vec::new());
        };
        let size = first.size();
        if let Some(other) = images.iter().find(|image| image.size() != size) {
            return Err(EmbedderError::MixedSizes {
                first: size,
                other: other.size(),
            });
        }
        let features = match &self.network {
            #[cfg(any(feature = "wgpu", feature = "ndarray"))]
            Network::Nchw { model, device } => {
                let started = std::time::Instant::now();
                let input = self.input_tensor(images, size, device);
                let features = self.pool.install(|| model.forward(input).into_data());
                if let Some(times) = times {
                    times.push(LayerTime {
                        layer: "whole network (burn conv2d)".to_owned(),
                        seconds: started.elapsed().as_secs_f64(),
                    });
                }
                features
                    .try_to_vec::<f32>()
                    .expect("the network computes in f32")
            }
            Network::Nhwc(model) => {
                let group = drift_conv::balanced(images.len(), nhwc::GROUP_IMAGES);
                let forward = |group: &[&RgbImage8], clock: &mut nhwc::LayerClock<'_>| {
                    let shape = (group.len(), size.height as usize, size.width as usize);
                    model.forward(shape, |input| self.fill_input(group, input), clock)
                };
                self.pool.install(|| match times {
                    // Layer times are meaningful only one group at a time.
                    Some(times) => {
                        let mut clock = nhwc::LayerClock(Some(times));
                        images
                            .chunks(group)
                            .flat_map(|group| forward(group, &mut clock))
                            .collect()
                    }
                    // Groups run concurrently, each on the thread that took it, its kernels'
                    // jobs stolen only by an idle thread: one group's barriers no longer leave
                    // a core waiting.
                    None => images
                        .par_chunks(group)
                        .map(|group| forward(group, &mut nhwc::LayerClock(None)))
                        .collect::<Vec<_>>()
                        .concat(),
                })
            }
        };
        Ok(features
            .chunks_exact(EMBEDDING_DIM)
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// x / 255, then normalized, as torchvision's `to_tensor` and `normalize` do: dividing
    /// first keeps [0, 1] inputs bit-identical to theirs.
    fn input_value(&self, byte: u8, channel: usize) -> f32 {
        let (scale, shift) = match self.normalize {
            Normalize::None => (1.0, 0.0),
            Normalize::ImageNet => (IMAGENET_STD[channel], IMAGENET_MEAN[channel]),
        };
        (f32::from(byte) / 255.0 - shift) / scale
    }

    /// `[batch, 3, height, width]` from interleaved RGB bytes.
    #[cfg(any(feature = "wgpu", feature = "ndarray"))]
    fn input_tensor(&self, images: &[&RgbImage8], size: ImageSize, device: &Device) -> Tensor<4> {
        let plane = size.pixel_count();
        let mut input = vec![0f32; images.len() * 3 * plane];
        for (image, chunk) in images.iter().zip(input.chunks_exact_mut(3 * plane)) {
            let (red, rest) = chunk.split_at_mut(plane);
            let (green, blue) = rest.split_at_mut(plane);
            for (i, rgb) in image.pixels().chunks_exact(3).enumerate() {
                red[i] = self.input_value(rgb[0], 0);
                green[i] = self.input_value(rgb[1], 1);
                blue[i] = self.input_value(rgb[2], 2);
            }
        }
        let shape = [images.len(), 3, size.height as usize, size.width as usize];
        Tensor::from_data(TensorData::new(input, shape), device)
    }

    /// Writes `images` into `input`, `[batch, height, width, 3]`: the interleaved RGB bytes
    /// are already channels-last.
    fn fill_input(&self, images: &[&RgbImage8], input: &mut [f32]) {
        let image_len = input.len() / images.len();
        for (image, dst) in images.iter().zip(input.chunks_exact_mut(image_len)) {
            for (i, (value, &byte)) in dst.iter_mut().zip(image.pixels()).enumerate() {
                *value = self.input_value(byte, i % 3);
            }
        }
    }
}

/// How long one layer of one [`Embedder::embed_timed`] call took.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTime {
    /// The layer, in torchvision's names, with its input size and kind of kernel.
    pub layer: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The network in the layout that is fastest on its device.
enum Network {
    /// drift-conv's kernels on NHWC activations: CPUs (see `nhwc`).
    Nhwc(Box<nhwc::ResNet18Nhwc>),
    /// burn's `conv2d` on NCHW tensors: GPUs, and burn's ndarray CPU backend.
    #[cfg(any(feature = "wgpu", feature = "ndarray"))]
    Nchw {
        model: Box<gpu::ResNet18Features>,
        device: Device,
    },
}

/// What [`select_device`] found to run the network.
enum Processor {
    /// drift-conv's kernels.
    Cpu,
    /// burn's `conv2d` on this device.
    #[cfg(any(feature = "wgpu", feature = "ndarray"))]
    Burn(Device),
}

fn select_device(options: EmbedderOptions) -> Result<(Processor, String), EmbedderError> {
    let cpu = || match options.cpu_backend {
        CpuBackend::Flex => Ok((Processor::Cpu, "cpu (Winograd + packed matmul)".to_owned())),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // kept selectable while burn ships it, as SPEC asks
        CpuBackend::NdArray => Ok((
            Processor::Burn(Device::ndarray()),
            "cpu (burn ndarray)".to_owned(),
        )),
        #[cfg(not(feature = "ndarray"))]
        CpuBackend::NdArray => Err(EmbedderError::Device(
            "the ndarray backend is not in this build (cargo feature `ndarray`)".to_owned(),
        )),
    };
    match options.device {
        DeviceChoice::Cpu => cpu(),
        DeviceChoice::Gpu => gpu(false).map_err(EmbedderError::Device),
        DeviceChoice::Auto => gpu(true).or_else(|_| cpu()),
    }
}

/// A wgpu device. `--device gpu` takes whatever adapter wgpu offers (Mesa's software
/// "llvmpipe" included, which is how the GPU path is tested without a GPU); `auto` only takes a
/// discrete or integrated GPU, since a software adapter is far slower than the CPU backend.
#[cfg(feature = "wgpu")]
fn gpu(hardware_only: bool) -> Result<(Processor, String), String> {
    use burn::tensor::DeviceKind;
    let kinds: &[(DeviceKind, &str)] = if hardware_only {
        &[
            (DeviceKind::DiscreteGpu(0), "discrete GPU"),
            (DeviceKind::IntegratedGpu(0), "integrated GPU"),
        ]
    } else {
        &[(DeviceKind::DefaultDevice, "default adapter")]
    };
    // The panic hook is process-wide: two probes at once (embedders made on several threads)
    // could each restore the other's silent hook and silence every later panic.
    static PROBING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _probing = PROBING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if hardware_only && !has_hardware_adapter() {
        return Err("no GPU adapter answered (wgpu: Vulkan, Metal, DX12)".to_owned());
    }
    for (kind, name) in kinds {
        let device = Device::wgpu(kind.clone());
        let probe = device.clone();
        // burn opens the adapter lazily and panics when there is none: probe with a tiny
        // tensor, without printing the panic.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            Tensor::<1>::zeros([1], &probe).into_data();
        }));
        std::panic::set_hook(hook);
        if answered.is_ok() {
            return Ok((Processor::Burn(device), format!("gpu (burn wgpu, {name})")));
        }
    }
    Err("no GPU adapter answered (wgpu)".to_owned())
}

/// Whether a discrete or integrated GPU answers on one of wgpu's primary APIs (Vulkan, Metal,
/// DX12). Asked before burn's own probe, whose automatic choice falls back to OpenGL where
/// there is no Vulkan: on a machine without a GPU that loaded Mesa's software renderer and its
/// LLVM (50 MB of resident memory) only to find no hardware. On Linux, a machine with no GPU
/// device node is not asked at all: where Mesa's software Vulkan is installed, merely listing
/// Vulkan's adapters loads it, LLVM and all. Asked once per process, so that graphics
/// instances do not come and go with every embedder.
#[cfg(feature = "wgpu")]
fn has_hardware_adapter() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        if cfg!(target_os = "linux") && !has_gpu_device_node() {
            return false;
        }
        use burn::tensor::wgpu::wgpu;
        let backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        futures_lite::future::block_on(instance.enumerate_adapters(backends))
            .iter()
            .any(|adapter| {
                matches!(
                    adapter.get_info().device_type,
                    wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu
                )
            })
    })
}

/// Whether Linux shows a GPU's device node: a DRM render node (`/dev/dri/renderD*`, every
/// Vulkan driver of a hardware GPU opens one) or NVIDIA's own (`/dev/nvidia0`, ...).
#[cfg(feature = "wgpu")]
fn has_gpu_device_node() -> bool {
    let any_named = |dir: &str, prefix: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
        })
    };
    any_named("/dev/dri", "renderD") || any_named("/dev", "nvidia")
}

#[cfg(not(feature = "wgpu"))]
fn gpu(_hardware_only: bool) -> Result<(Processor, String), String> {
    Err("this build has no GPU backend: rebuild with `--features wgpu`".to_owned())
}
