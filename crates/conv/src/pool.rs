//! Pooling on channels-last activations: ResNet's 3x3 stride-2 max pool and the global
//! average pool. Per pixel and per channel, so the bits do not depend on the thread count.

use rayon::prelude::*;

use crate::activations::Activations;

/// The output side of the 3x3, stride-2 max pool with padding 1.
pub fn pooled_side(input: usize) -> usize {
    (input + 2 - 3) / 2 + 1
}

/// 3x3 max pool, stride 2, padding 1 (padding never wins, as in PyTorch), into `out`.
pub fn max_pool_3x3_s2(x: &Activations, out: &mut [f32]) {
    let (out_h, out_w) = (pooled_side(x.height), pooled_side(x.width));
    let channels = x.channels;
    debug_assert_eq!(out.len(), x.batch * out_h * out_w * channels);
    let arch = pulp::Arch::new();
    out.par_chunks_mut(out_w * channels)
        .enumerate()
        .for_each(|(line, dst)| {
            arch.dispatch(|| {
                let (image, out_y) = (line / out_h, line % out_h);
                let rows = (out_y * 2).saturating_sub(1)..(out_y * 2 + 2).min(x.height);
                for (out_x, pixel) in dst.chunks_exact_mut(channels).enumerate() {
                    let columns = (out_x * 2).saturating_sub(1)..(out_x * 2 + 2).min(x.width);
                    pixel.fill(f32::NEG_INFINITY);
                    for y in rows.clone() {
                        for column in columns.clone() {
                            let at = ((image * x.height + y) * x.width + column) * channels;
                            for (m, &v) in pixel.iter_mut().zip(&x.values[at..at + channels]) {
                                *m = m.max(v);
                            }
                        }
                    }
                }
            })
        });
}

/// The mean of each channel over each image.
pub fn global_average(x: &Activations) -> Vec<f32> {
    let channels = x.channels;
    let pixels = x.pixels_per_image();
    let mut out = vec![0f32; x.batch * channels];
    out.par_chunks_mut(channels)
        .zip(x.values.par_chunks(pixels * channels))
        .for_each(|(means, image)| {
            for pixel in image.chunks_exact(channels) {
                for (sum, &v) in means.iter_mut().zip(pixel) {
                    *sum += v;
                }
            }
            for mean in means.iter_mut() {
                *mean /= pixels as f32;
            }
        });
    out
}
