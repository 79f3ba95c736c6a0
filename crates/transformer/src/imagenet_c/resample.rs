//! Bilinear resampling as `scipy.ndimage` does it with `order=1`: `zoom` (corners aligned) and
//! `map_coordinates` with `mode='reflect'`. scipy sums the neighbours' products in the order
//! of its filter loop (rows, then columns), each product `value * w_row * w_column`, in f64.

use super::gaussian::Border;

/// The output length `scipy.ndimage.zoom` gives an axis of `len` at `factor`:
/// `int(round(len * factor))`, Python's half-to-even round.
pub(crate) fn zoomed_len(len: usize, factor: f64) -> usize {
    (len as f64 * factor).round_ties_even() as usize
}

/// Per output index: the first input index and the weight of the second, corner-aligned
/// (`o (n_in - 1) / (n_out - 1)`, `grid_mode=False`).
fn zoom_taps(n_in: usize, n_out: usize) -> Vec<(usize, f64)> {
    let ratio = if n_out > 1 {
        (n_in as f64 - 1.0) / (n_out as f64 - 1.0)
    } else {
        0.0
    };
    (0..n_out)
        .map(|o| {
            let coordinate = o as f64 * ratio;
            let start = coordinate.floor();
            (start as usize, coordinate - start)
        })
        .collect()
}

/// `scipy.ndimage.zoom(plane, (factor, factor), order=1)` of a `width x height` plane: a
/// `zoomed_len(width) x zoomed_len(height)` plane.
pub(crate) fn zoom(plane: &[f64], (width, height): (usize, usize), factor: f64) -> Vec<f64> {
    let (out_w, out_h) = (zoomed_len(width, factor), zoomed_len(height, factor));
    let rows = zoom_taps(height, out_h);
    let columns = zoom_taps(width, out_w);
    let mut out = Vec::with_capacity(out_w * out_h);
    for &(y, ty) in &rows {
        let y1 = (y + 1).min(height - 1);
        let (wy0, wy1) = (1.0 - ty, ty);
        let (row0, row1) = (&plane[y * width..][..width], &plane[y1 * width..][..width]);
        for &(x, tx) in &columns {
            let x1 = (x + 1).min(width - 1);
            let (wx0, wx1) = (1.0 - tx, tx);
            out.push(
                row0[x] * wy0 * wx0
                    + row0[x1] * wy0 * wx1
                    + row1[x] * wy1 * wx0
                    + row1[x1] * wy1 * wx1,
            );
        }
    }
    out
}

/// `map_coordinates(plane, [rows, columns], order=1, mode='reflect')` of a `width x height`
/// plane at one point: both neighbours of each axis folded half-sample-symmetrically.
#[inline]
pub(crate) fn sample_reflect(
    plane: &[f64],
    (width, height): (usize, usize),
    row: f64,
    column: f64,
) -> f64 {
    let (y0, x0) = (row.floor(), column.floor());
    let (ty, tx) = (row - y0, column - x0);
    let (y0, x0) = (y0 as isize, x0 as isize);
    let (ya, yb) = (
        Border::Reflect.index(y0, height),
        Border::Reflect.index(y0 + 1, height),
    );
    let (xa, xb) = (
        Border::Reflect.index(x0, width),
        Border::Reflect.index(x0 + 1, width),
    );
    let (wy0, wy1, wx0, wx1) = (1.0 - ty, ty, 1.0 - tx, tx);
    plane[ya * width + xa] * wy0 * wx0
        + plane[ya * width + xb] * wy0 * wx1
        + plane[yb * width + xa] * wy1 * wx0
        + plane[yb * width + xb] * wy1 * wx1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_keeps_corners_and_interpolates_linearly() {
        let plane = [0.0, 1.0, 2.0, 3.0];
        let out = zoom(&plane, (2, 2), 2.0);
        assert_eq!(out.len(), 16);
        assert_eq!((out[0], out[3], out[12], out[15]), (0.0, 1.0, 2.0, 3.0));
        assert!((out[1] - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(zoomed_len(224, 1.11), 249);
        assert_eq!(zoomed_len(5, 1.5), 8); // 7.5 rounds to even
    }

    #[test]
    fn sampling_at_whole_coordinates_is_the_value_and_reflects_outside() {
        let plane: Vec<f64> = (0..12).map(f64::from).collect();
        for y in 0..3 {
            for x in 0..4 {
                assert_eq!(
                    sample_reflect(&plane, (4, 3), y as f64, x as f64),
                    plane[y * 4 + x]
                );
            }
        }
        assert_eq!(sample_reflect(&plane, (4, 3), -1.0, 0.0), 0.0);
        assert_eq!(sample_reflect(&plane, (4, 3), 0.0, 4.0), 3.0);
        assert!((sample_reflect(&plane, (4, 3), 0.0, -0.5) - 0.0).abs() < 1e-15);
    }
}
