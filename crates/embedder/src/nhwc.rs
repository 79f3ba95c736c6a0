//! The CPU forward pass of ResNet18 on drift-conv's kernels: activations stay channels-last
//! (NHWC) from the input to the global pool; the stride-1 3x3 convolutions go through Winograd,
//! the others through a gathered (or, for the 3-channel stem, in-place) matmul, each with its
//! bias, shortcut and ReLU applied as its rows are made (see drift-conv for the kernels and for
//! why burn's `conv2d` is not used on the CPU).
//!
//! Determinism: drift-conv's outputs do not depend on the batch, the thread count or the SIMD
//! width, so neither do an image's features; the embedder's tests check it end to end.

use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use drift_conv::{
    Activations, Conv2d, Epilogue, Workspace, global_average, max_pool_3x3_s2, pooled_side,
};

use crate::LayerTime;
use crate::resnet::{BasicBlock, Layers};
use crate::weights::StateDict;

/// Images the network runs on at a time, whatever the embedding batch: activations, the
/// largest of them layer1's (at 224x224, 6.4 MB for 8 images), and scratch stay this group's
/// size, and the matmuls still get enough rows to keep every thread busy.
pub const GROUP_IMAGES: usize = 8;

/// Bytes of ResNet18's weights as the CPU network holds them: 11.2 M folded parameters, of
/// which the 13 Winograd convolutions' 9.4 M are held transformed (4x for F(4x4) in layer1-3,
/// 16/9 for F(2x2) in layer4: 22.0 M values) and the rest packed as they are (1.7 M): 23.7 M
/// f32 values, rounded up.
const CPU_WEIGHT_BYTES: u64 = 96 << 20;

/// Bytes the CPU forward pass allocates for `batch` images of `size` on `threads` threads
/// (0: one per core), as `ResNet18Nhwc::forward` allocates them: groups of at most
/// [`GROUP_IMAGES`] images, one group in flight per thread, each on a workspace that keeps
/// about five activation buffers (input, a block's input, output, shortcut and result) of the
/// largest activation it meets (the input, the stem's one-image output, or layer1's maps)
/// plus one scratch buffer (drift-conv's gather budget, or layer1's Winograd windows and
/// products for one image where that is larger); and the weights, once.
pub fn cpu_working_bytes(batch: usize, size: drift_core::ImageSize, threads: usize) -> u64 {
    if batch == 0 {
        return 0;
    }
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let group = drift_conv::balanced(batch, GROUP_IMAGES) as u64;
    let in_flight = (threads as u64).min((batch as u64).div_ceil(group));
    let (height, width) = (u64::from(size.height), u64::from(size.width));
    let stem_side = |side: u64| (side + 6 - 7) / 2 + 1;
    let (stem_h, stem_w) = (stem_side(height), stem_side(width));
    let (pooled_h, pooled_w) = (
        pooled_side(stem_h as usize) as u64,
        pooled_side(stem_w as usize) as u64,
    );
    let largest_activation = (group * 3 * height * width)
        .max(64 * stem_h * stem_w)
        .max(group * 64 * pooled_h * pooled_w);
    let layer1_winograd = pooled_h.div_ceil(4) * pooled_w.div_ceil(4) * 36 * (64 + 64);
    let stem_padded = (height + 6) * (width + 6) * 3;
    let scratch = (drift_conv::GATHER_FLOATS as u64)
        .max(layer1_winograd)
        .max(stem_padded);
    let per_group = (5 * largest_activation + scratch) * 4;
    let features = batch as u64 * crate::EMBEDDING_DIM as u64 * 4;
    in_flight
        .saturating_mul(per_group)
        .saturating_add(CPU_WEIGHT_BYTES)
        .saturating_add(features)
}

/// Records how long each layer of a forward pass took, when asked to.
pub(crate) struct LayerClock<'a>(pub(crate) Option<&'a mut Vec<LayerTime>>);

impl LayerClock<'_> {
    fn time<T>(&mut self, layer: impl FnOnce() -> String, run: impl FnOnce() -> T) -> T {
        let Some(times) = self.0.as_deref_mut() else {
            return run();
        };
        let started = Instant::now();
        let result = run();
        let seconds = started.elapsed().as_secs_f64();
        // A layer run in groups of images is one entry: the sum.
        let layer = layer();
        match times.iter_mut().find(|time| time.layer == layer) {
            Some(time) => time.seconds += seconds,
            None => times.push(LayerTime { layer, seconds }),
        }
        result
    }
}

impl BasicBlock<Conv2d> {
    fn forward(
        &self,
        name: &str,
        x: Activations,
        workspace: &mut Workspace,
        clock: &mut LayerClock<'_>,
    ) -> Activations {
        let describe = |part: &str, conv: &Conv2d, x: &Activations| {
            format!(
                "{name}.{part} ({}x{}, {})",
                x.height,
                x.width,
                conv.describe()
            )
        };
        let out = clock.time(
            || describe("conv1", &self.conv1, &x),
            || self.conv1.forward(&x, Epilogue::Relu, workspace),
        );
        let shortcut = match &self.downsample {
            Some(downsample) => {
                let shortcut = clock.time(
                    || describe("downsample", downsample, &x),
                    || downsample.forward(&x, Epilogue::Linear, workspace),
                );
                workspace.recycle(x);
                shortcut
            }
            None => x,
        };
        let result = clock.time(
            || describe("conv2", &self.conv2, &out),
            || {
                self.conv2
                    .forward(&out, Epilogue::AddRelu(&shortcut), workspace)
            },
        );
        workspace.recycle(out);
        workspace.recycle(shortcut);
        result
    }
}

/// ResNet18 up to and including the global average pool, channels-last, for CPU devices.
#[derive(Debug)]
pub(crate) struct ResNet18Nhwc {
    layers: Layers<Conv2d>,
    /// One workspace per group in flight: groups run concurrently (see `Embedder::embed`),
    /// each on its own buffers, which are kept for the next groups.
    workspaces: Mutex<Vec<Workspace>>,
}

impl ResNet18Nhwc {
    pub(crate) fn new(dict: &StateDict) -> Self {
        Self {
            layers: Layers::new(dict, Conv2d::new),
            workspaces: Mutex::default(),
        }
    }

    /// `batch` images of `height` x `width` -> `batch` rows of 512 features. `fill_input`
    /// writes the input, `[batch, height, width, 3]`, into a buffer of the workspace; `clock`
    /// records each layer's time when it holds a list. Callers pass at most [`GROUP_IMAGES`]
    /// images: every activation and scratch buffer is sized by the group, not by the
    /// embedding batch.
    pub(crate) fn forward(
        &self,
        (batch, height, width): (usize, usize, usize),
        fill_input: impl FnOnce(&mut [f32]),
        clock: &mut LayerClock<'_>,
    ) -> Vec<f32> {
        let mut workspace = self
            .workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        let mut values = workspace.buffer(batch * height * width * 3);
        fill_input(&mut values);
        let x = Activations {
            values,
            batch,
            height,
            width,
            channels: 3,
        };
        let mut y = clock.time(
            || format!("conv1 + maxpool ({height}x{width}, 7x7/2 3->64, read in place)"),
            || self.stem_and_pool(&x, 0..batch, &mut workspace),
        );
        workspace.recycle(x);
        for (i, block) in self.layers.blocks.iter().enumerate() {
            let name = format!("layer{}.{}", i / 2 + 1, i % 2);
            y = block.forward(&name, y, &mut workspace, clock);
        }
        let features = clock.time(|| "avgpool".to_owned(), || global_average(&y));
        workspace.recycle(y);
        self.workspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(workspace);
        features
    }

    /// The stem convolution and the max pool of images `batch`, one at a time: the stem's
    /// output (3.2 MB per image at 224x224) lives only until it is pooled.
    fn stem_and_pool(
        &self,
        x: &Activations,
        batch: Range<usize>,
        workspace: &mut Workspace,
    ) -> Activations {
        const IMAGES: usize = 1;
        let Conv2d::Gather(stem) = &self.layers.stem else {
            unreachable!("Winograd takes only 3x3 convolutions, the stem is 7x7")
        };
        let (stem_h, stem_w) = (stem.output_side(x.height), stem.output_side(x.width));
        let (height, width) = (pooled_side(stem_h), pooled_side(stem_w));
        let channels = stem.out_channels();
        let image_len = height * width * channels;
        let mut pooled = workspace.buffer(batch.len() * image_len);
        for first in batch.clone().step_by(IMAGES) {
            let images = first..(first + IMAGES).min(batch.end);
            let at = first - batch.start;
            let dst = &mut pooled[at * image_len..(at + images.len()) * image_len];
            let group = stem.forward_images(x, images, Epilogue::Relu, workspace);
            max_pool_3x3_s2(&group, dst);
            workspace.recycle(group);
        }
        Activations {
            values: pooled,
            batch: batch.len(),
            height,
            width,
            channels,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::synthetic_state_dict;

    fn random_images(batch: usize, height: usize, width: usize, seed: u64) -> Activations {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Activations {
            values: (0..batch * height * width * 3)
                .map(|_| rng.random::<f32>())
                .collect(),
            batch,
            height,
            width,
            channels: 3,
        }
    }

    fn run(network: &ResNet18Nhwc, x: &Activations) -> Vec<f32> {
        network.forward(
            (x.batch, x.height, x.width),
            |input| input.copy_from_slice(&x.values),
            &mut LayerClock(None),
        )
    }

    #[test]
    fn working_memory_grows_with_threads_and_size_not_the_batch() {
        let size = |side| drift_core::ImageSize::new(side, side).unwrap();
        let at_224 = cpu_working_bytes(32, size(224), 2);
        assert_eq!(cpu_working_bytes(256, size(224), 2), at_224 + 224 * 512 * 4);
        assert!(cpu_working_bytes(32, size(224), 4) > at_224);
        // A batch of 32 1024-px images on 2 threads: the old per-image model asked 21 GB.
        let large = cpu_working_bytes(32, size(1024), 2);
        assert!(large > 1 << 30 && large < 2 << 30, "{large}");
        // One group at 224 px: under 300 MiB with the weights.
        assert!(cpu_working_bytes(8, size(224), 1) < 300 << 20);
    }

    #[test]
    fn tiny_images_embed_the_same_alone_and_in_a_batch() {
        // 20x20 leaves one pixel per image in the last stage, and 5x5 before it: a matmul of
        // a few rows, and Winograd tiles that overhang the image, alone as in a batch.
        let network = ResNet18Nhwc::new(&synthetic_state_dict(7));
        let batch = random_images(3, 20, 20, 5);
        let together = run(&network, &batch);
        let per_image = 20 * 20 * 3;
        for (i, expected) in together.chunks_exact(512).enumerate() {
            let alone = Activations {
                values: batch.values[i * per_image..(i + 1) * per_image].to_vec(),
                batch: 1,
                ..batch
            };
            assert_eq!(run(&network, &alone), expected, "image {i}");
        }
    }
}
