//! `imagenet_c:contrast`: each channel pulled towards its own mean, `(x - m) c + m` (per-channel
//! means; SPEC's `contrast` blends with the grey mean instead).

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::{
    Corruption, Draws, Scale, Unit, numpy_sum, rounded_byte, store_unit, stored, unit_values,
};
use crate::registry::{ParamColumn, Params, severity_value};

/// The factor c at severities 0 (identity) to 5.
const FACTOR: [f64; 6] = [1.0, 0.4, 0.3, 0.2, 0.1, 0.05];

pub(crate) struct Contrast;

impl Corruption for Contrast {
    fn name(&self) -> &'static str {
        "imagenet_c:contrast"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C contrast at severity 5L: (x - m) c + m with m each channel's mean, c = 1, .4, \
         .3, .2, .1, .05 at severities 0-5, clipped"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "factor",
            meaning: "contrast factor c",
        }]
    }

    fn differences(&self) -> &'static str {
        "none"
    }

    fn parity(&self) -> &'static str {
        "exact after rounding"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &FACTOR))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, _draws: &mut dyn Draws) {
        let c = params.value(0);
        let n = image.size().pixel_count();
        if Unit::of(image).holds_bytes() {
            // Each value is a function of its byte once the channel's mean is known: the mean
            // from the channel's histogram (see `mean_of`), the values from a table of 256.
            pulp::Arch::new().dispatch(ContrastOnBytes {
                planes: image.data_mut(),
                n,
                c,
            });
            return;
        }
        let mut values = unit_values(image);
        for plane in values.chunks_exact_mut(n) {
            let mean = numpy_sum(plane) / n as f64;
            for x in plane {
                *x = (*x - mean) * c + mean;
            }
        }
        store_unit(image, &values);
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        _draws: &mut dyn Draws,
    ) -> bool {
        let c = params.value(0);
        let bytes = image.pixels_mut();
        let n = bytes.len() / 3;
        let sums = pulp::Arch::new().dispatch(ChannelSums(bytes));
        let tables: [[u8; 256]; 3] = std::array::from_fn(|channel| {
            let mean = mean_of(sums[channel], n);
            std::array::from_fn(|k| rounded_byte((Unit::of_byte(k) - mean) * c + mean, Scale::Unit))
        });
        map_bytes(bytes, &tables);
        true
    }
}

/// Each byte of interleaved RGB through its channel's table. Four pixels (twelve bytes) at a
/// time, read and written as three words: a byte at a time, the loads and stores around each
/// lookup cost more than the lookup.
fn map_bytes(bytes: &mut [u8], tables: &[[u8; 256]; 3]) {
    let mut quads = bytes.chunks_exact_mut(12);
    for quad in &mut quads {
        for (i, four) in quad.chunks_exact_mut(4).enumerate() {
            let word = u32::from_le_bytes(four.try_into().expect("chunks of 4"));
            // Byte j of word i is byte 4 i + j of the quad, of channel (4 i + j) % 3.
            let mapped = (0..4).fold(0u32, |mapped, j| {
                let byte = usize::from((word >> (8 * j)) as u8);
                mapped | u32::from(tables[(4 * i + j) % 3][byte]) << (8 * j)
            });
            four.copy_from_slice(&mapped.to_le_bytes());
        }
    }
    for (at, value) in quads.into_remainder().iter_mut().enumerate() {
        *value = tables[at % 3][usize::from(*value)];
    }
}

/// A channel's mean in [0, 1] from the sum of its `n` bytes: the exact mean (sum / 255 n),
/// rounded once. The package's pairwise float sum is within ~1e-16 of it; a mean from the
/// values' float sum would be too, but would differ between the planar and byte paths.
fn mean_of(byte_sum: u64, n: usize) -> f64 {
    byte_sum as f64 / (255.0 * n as f64)
}

/// The sums of each channel's bytes of interleaved RGB, compiled for the widest SIMD the CPU
/// has (a closure handed to `dispatch` here was not inlined, and stayed scalar).
struct ChannelSums<'a>(&'a [u8]);

impl pulp::WithSimd for ChannelSums<'_> {
    type Output = [u64; 3];

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> [u64; 3] {
        channel_sums(self.0)
    }
}

/// The sums of each channel's bytes of interleaved RGB: 48 running sums (16 pixels, three
/// vectors of 16 u32s) a block, folded by channel at the end.
#[inline(always)]
fn channel_sums(bytes: &[u8]) -> [u64; 3] {
    const LANES: usize = 16;
    // u32 sums of at most 2^20 blocks each (255 * 2^20 < 2^32), then added into u64s.
    const BLOCKS_PER_FOLD: usize = 1 << 20;
    let mut sums = [0u64; 3];
    let mut blocks = bytes.chunks_exact(3 * LANES);
    let remainder = blocks.remainder();
    loop {
        let mut running = [[0u32; LANES]; 3];
        let mut any = false;
        for block in blocks.by_ref().take(BLOCKS_PER_FOLD) {
            any = true;
            for (running, part) in running.iter_mut().zip(block.chunks_exact(LANES)) {
                let part: &[u8; LANES] = part.try_into().expect("chunks of 16");
                *running = std::array::from_fn(|j| running[j] + u32::from(part[j]));
            }
        }
        for (part, running) in running.iter().enumerate() {
            for (j, &sum) in running.iter().enumerate() {
                sums[(part * LANES + j) % 3] += u64::from(sum);
            }
        }
        if !any {
            break;
        }
    }
    for (j, &b) in remainder.iter().enumerate() {
        sums[j % 3] += u64::from(b);
    }
    sums
}

/// Contrast of an image holding bytes, compiled for the widest SIMD the CPU has.
struct ContrastOnBytes<'a> {
    planes: &'a mut [f32],
    n: usize,
    c: f64,
}

impl pulp::WithSimd for ContrastOnBytes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (n, c) = (self.n, self.c);
        for plane in self.planes.chunks_exact_mut(n) {
            // Four histograms, so that equal neighbours do not wait on each other's count.
            let mut counts = [[0u32; 256]; 4];
            let mut quads = plane.chunks_exact(4);
            for quad in &mut quads {
                for (histogram, &x) in counts.iter_mut().zip(quad) {
                    histogram[Unit::byte_and_unit(x).0] += 1;
                }
            }
            for &x in quads.remainder() {
                counts[0][Unit::byte_and_unit(x).0] += 1;
            }
            let byte_sum: u64 = (0..256)
                .map(|k| {
                    let count: u32 = counts.iter().map(|histogram| histogram[k]).sum();
                    u64::from(count) * k as u64
                })
                .sum();
            let mean = mean_of(byte_sum, n);
            let table: [f32; 256] =
                std::array::from_fn(|k| stored((Unit::of_byte(k) - mean) * c + mean));
            for x in plane.iter_mut() {
                *x = table[Unit::byte_and_unit(*x).0];
            }
        }
    }
}
