//! OpenCV's `resize(..., INTER_CUBIC)` of 8-bit planes: Keys' cubic with A = -0.75, the source
//! coordinate `(d + 0.5) in / out - 0.5` and its four taps' weights in f32 as OpenCV computes
//! them, edges replicated, each output rounded half to even and saturated to a byte.
//!
//! OpenCV's own arithmetic is not one thing: the wheels `imagecorruptions` runs on call Intel's
//! IPP for this resize, whose sums are its own, and OpenCV's fallback sums 11-bit fixed-point
//! weights (3-5% of bytes 1 off IPP's). Summing the f32 weights in f64 comes closest: about
//! 1e-4 of the bytes of the frost textures resized by 1.1 differ from the package's by one
//! level, all of them sums within 1e-3 of a half.

/// One output coordinate's four source indices (clamped to the line) and weights.
struct Taps {
    index: [usize; 4],
    weight: [f64; 4],
}

/// The taps of each of `n_out` outputs along a line of `n_in`.
fn taps(n_in: usize, n_out: usize) -> Vec<Taps> {
    // `scale = 1 / inv_scale`, `inv_scale = out / in`, in f64 as OpenCV has them.
    let scale = 1.0 / (n_out as f64 / n_in as f64);
    let last = n_in as isize - 1;
    (0..n_out)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let start = f.floor();
            let weight = cubic_weights(f - start);
            let start = start as isize - 1;
            Taps {
                index: std::array::from_fn(|k| (start + k as isize).clamp(0, last) as usize),
                weight: weight.map(f64::from),
            }
        })
        .collect()
}

/// OpenCV's `interpolateCubic` in f32: Keys' kernel at the four taps around a fraction `x`,
/// the last weight one minus the others.
fn cubic_weights(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let w0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let w2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// Resizes a `width x height` byte plane to `out_width x out_height`.
pub(crate) fn resize_cubic(
    plane: &[u8],
    (width, height): (usize, usize),
    (out_width, out_height): (usize, usize),
) -> Vec<u8> {
    debug_assert_eq!(plane.len(), width * height);
    let columns = taps(width, out_width);
    let rows = taps(height, out_height);
    // The horizontal pass over every source row, then the vertical pass from its rows.
    let mut across = vec![0.0f64; height * out_width];
    for (source, out) in plane
        .chunks_exact(width)
        .zip(across.chunks_exact_mut(out_width))
    {
        for (value, tap) in out.iter_mut().zip(&columns) {
            *value = (0..4).fold(0.0, |sum, k| {
                sum + f64::from(source[tap.index[k]]) * tap.weight[k]
            });
        }
    }
    let mut out = vec![0u8; out_width * out_height];
    for (line, tap) in out.chunks_exact_mut(out_width).zip(&rows) {
        let sources = tap.index.map(|r| &across[r * out_width..][..out_width]);
        for (x, byte) in line.iter_mut().enumerate() {
            let sum = (0..4).fold(0.0, |sum, k| sum + sources[k][x] * tap.weight[k]);
            *byte = sum.round_ties_even().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_interpolate_at_whole_coordinates() {
        for x in [0.0f32, 0.25, 0.5, 0.9] {
            let w = cubic_weights(x);
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{x}");
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_constant_plane_stays_constant_and_the_same_size_is_a_copy() {
        let flat = vec![77u8; 9 * 5];
        assert!(
            resize_cubic(&flat, (9, 5), (13, 8))
                .iter()
                .all(|&v| v == 77)
        );
        let ramp: Vec<u8> = (0..9 * 5).map(|i| (i * 5) as u8).collect();
        assert_eq!(resize_cubic(&ramp, (9, 5), (9, 5)), ramp);
    }

    #[test]
    fn an_upscaled_ramp_is_opencvs() {
        // `cv2.resize(ramp, (25, 1), interpolation=cv2.INTER_CUBIC)` with IPP off (OpenCV 5.0):
        // Keys' overshoot past the last source value included.
        let ramp: Vec<u8> = (0..10).map(|i| (i * 20) as u8).collect();
        let opencv = [
            0, 2, 8, 17, 27, 33, 43, 50, 57, 67, 73, 83, 90, 97, 107, 113, 123, 130, 137, 147, 153,
            163, 172, 178, 182,
        ];
        assert_eq!(resize_cubic(&ramp, (10, 1), (25, 1)), opencv);
    }
}
