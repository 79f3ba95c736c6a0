//! Bilinear resampling as `scipy.ndimage` does it with `order=1`: `zoom` (corners aligned) and
//! `map_coordinates` with `mode='reflect'`. scipy sums the neighbours' products in the order
//! of its filter loop (rows, then columns), each product `value * w_row * w_column`, in f64.

/// The output length `scipy.ndimage.zoom` gives an axis of `len` at `factor`:
/// `int(round(len * factor))`, Python's half-to-even round.
pub(crate) fn zoomed_len(len: usize, factor: f64) -> usize {
    (len as f64 * factor).round_ties_even() as usize
}

/// Per output index: the two input indices it reads and their weights, corner-aligned
/// (`o (n_in - 1) / (n_out - 1)`, `grid_mode=False`); the first `keep` outputs only.
fn zoom_taps(n_in: usize, n_out: usize, keep: usize) -> Vec<(usize, usize, f64, f64)> {
    let ratio = if n_out > 1 {
        (n_in as f64 - 1.0) / (n_out as f64 - 1.0)
    } else {
        0.0
    };
    (0..keep.min(n_out))
        .map(|o| {
            let coordinate = o as f64 * ratio;
            let start = coordinate.floor();
            let t = coordinate - start;
            let first = start as usize;
            (first, (first + 1).min(n_in - 1), 1.0 - t, t)
        })
        .collect()
}

/// A window of a plane: `width x height` values from column `left` and row `top` of a plane
/// whose rows are `stride` values long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) left: usize,
    pub(crate) top: usize,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

impl Window {
    /// The window `clipped_zoom` (zoom_blur's and snow's) zooms: `ceil(side / factor)` per
    /// axis, from `(side - kept) // 2`.
    pub(crate) fn clipped_zoom((width, height): (usize, usize), factor: f64) -> Self {
        let (kept_width, kept_height) = (
            (width as f64 / factor).ceil() as usize,
            (height as f64 / factor).ceil() as usize,
        );
        Self {
            left: (width - kept_width) / 2,
            top: (height - kept_height) / 2,
            width: kept_width,
            height: kept_height,
        }
    }
}

/// `scipy.ndimage.zoom(window, (factor, factor), order=1)` cut to its top-left `keep` (width,
/// height): `sink(y, row)` for each output row, compiled for the widest SIMD the CPU has.
pub(crate) fn zoom_window(
    plane: &[f64],
    stride: usize,
    window: Window,
    factor: f64,
    keep: (usize, usize),
    sink: impl FnMut(usize, &[f64]),
) {
    pulp::Arch::new().dispatch(ZoomWindow {
        plane,
        stride,
        window,
        rows: zoom_taps(window.height, zoomed_len(window.height, factor), keep.1),
        columns: zoom_taps(window.width, zoomed_len(window.width, factor), keep.0),
        sink,
    });
}

struct ZoomWindow<'a, F> {
    plane: &'a [f64],
    stride: usize,
    window: Window,
    rows: Vec<(usize, usize, f64, f64)>,
    columns: Vec<(usize, usize, f64, f64)>,
    sink: F,
}

impl<F: FnMut(usize, &[f64])> pulp::WithSimd for ZoomWindow<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(mut self, _simd: S) {
        let window = self.window;
        let row_of =
            |y: usize| &self.plane[(window.top + y) * self.stride + window.left..][..window.width];
        // Each source row times its row weight once per output row (the products scipy forms
        // first), then the column taps of those.
        let mut above = vec![0.0; window.width];
        let mut below = vec![0.0; window.width];
        let mut out = vec![0.0; self.columns.len()];
        for (y, &(a, b, wy0, wy1)) in self.rows.iter().enumerate() {
            for ((t, &v), (u, &w)) in above
                .iter_mut()
                .zip(row_of(a))
                .zip(below.iter_mut().zip(row_of(b)))
            {
                *t = v * wy0;
                *u = w * wy1;
            }
            for (o, &(c, d, wx0, wx1)) in out.iter_mut().zip(&self.columns) {
                // scipy's order: the four neighbours, rows outer, each value times both weights.
                *o = above[c] * wx0 + above[d] * wx1 + below[c] * wx0 + below[d] * wx1;
            }
            (self.sink)(y, &out);
        }
    }
}

/// [`zoom_window`] of three planes at once (an image's), which share every tap: the window's
/// values of each source row held as `[r, g, b, 0]` per column, so that one output column of
/// all three is one vector of four lanes (each lane the one plane's arithmetic, in scipy's
/// order, bit for bit). `sink(y, row)` gets output row y as `[r, g, b, _]` per column.
pub(crate) fn zoom_window_rgb(
    planes: [&[f64]; 3],
    stride: usize,
    window: Window,
    factor: f64,
    keep: (usize, usize),
    sink: impl FnMut(usize, &[[f64; 4]]),
) {
    pulp::Arch::new().dispatch(ZoomWindowRgb {
        planes,
        stride,
        window,
        rows: zoom_taps(window.height, zoomed_len(window.height, factor), keep.1),
        columns: zoom_taps(window.width, zoomed_len(window.width, factor), keep.0),
        sink,
    });
}

struct ZoomWindowRgb<'a, F> {
    planes: [&'a [f64]; 3],
    stride: usize,
    window: Window,
    rows: Vec<(usize, usize, f64, f64)>,
    columns: Vec<(usize, usize, f64, f64)>,
    sink: F,
}

impl<F: FnMut(usize, &[[f64; 4]])> pulp::WithSimd for ZoomWindowRgb<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(mut self, _simd: S) {
        let window = self.window;
        let (stride, planes) = (self.stride, self.planes);
        let row_of = |plane: usize, y: usize| {
            &planes[plane][(window.top + y) * stride + window.left..][..window.width]
        };
        let mut above = vec![[0.0; 4]; window.width];
        let mut below = vec![[0.0; 4]; window.width];
        let mut out = vec![[0.0; 4]; self.columns.len()];
        for (y, &(a, b, wy0, wy1)) in self.rows.iter().enumerate() {
            let (r, g, b_) = (row_of(0, a), row_of(1, a), row_of(2, a));
            for (((t, &r), &g), &b_) in above.iter_mut().zip(r).zip(g).zip(b_) {
                *t = [r * wy0, g * wy0, b_ * wy0, 0.0];
            }
            let (r, g, b_) = (row_of(0, b), row_of(1, b), row_of(2, b));
            for (((u, &r), &g), &b_) in below.iter_mut().zip(r).zip(g).zip(b_) {
                *u = [r * wy1, g * wy1, b_ * wy1, 0.0];
            }
            for (o, &(c, d, wx0, wx1)) in out.iter_mut().zip(&self.columns) {
                // scipy's order: the four neighbours, rows outer, each value times both
                // weights; lane by lane.
                let (ac, ad, bc, bd) = (above[c], above[d], below[c], below[d]);
                for lane in 0..4 {
                    o[lane] = ac[lane] * wx0 + ad[lane] * wx1 + bc[lane] * wx0 + bd[lane] * wx1;
                }
            }
            (self.sink)(y, &out);
        }
    }
}

/// `scipy.ndimage.zoom(plane, (factor, factor), order=1)` of a `width x height` plane: a
/// `zoomed_len(width) x zoomed_len(height)` plane.
#[cfg(test)]
pub(crate) fn zoom(plane: &[f64], (width, height): (usize, usize), factor: f64) -> Vec<f64> {
    let keep = (zoomed_len(width, factor), zoomed_len(height, factor));
    let mut out = vec![0.0; keep.0 * keep.1];
    let window = Window {
        left: 0,
        top: 0,
        width,
        height,
    };
    zoom_window(plane, width, window, factor, keep, |y, row| {
        out[y * keep.0..][..keep.0].copy_from_slice(row);
    });
    out
}

/// `map_coordinates(..., order=1, mode='reflect')` at one point of a `width x height` plane,
/// prepared once for every plane sampled there: the four neighbours' indices (each axis
/// folded half-sample-symmetrically) and weights.
/// The reference for elastic_transform's row-at-a-time remap.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReflectTap {
    indices: [usize; 4],
    weights: (f64, f64, f64, f64),
}

#[cfg(test)]
use super::gaussian::Border;

#[cfg(test)]
impl ReflectTap {
    /// The tap at `(row, column)`.
    #[inline]
    pub(crate) fn new((width, height): (usize, usize), row: f64, column: f64) -> Self {
        let (y0, x0) = (super::floor_fast(row), super::floor_fast(column));
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
        Self {
            indices: [
                ya * width + xa,
                ya * width + xb,
                yb * width + xa,
                yb * width + xb,
            ],
            weights: (1.0 - ty, ty, 1.0 - tx, tx),
        }
    }

    /// The interpolated value of `plane` here, in scipy's order of sums and products.
    #[inline]
    pub(crate) fn sample(&self, plane: &[f64]) -> f64 {
        let [a, b, c, d] = self.indices;
        let (wy0, wy1, wx0, wx1) = self.weights;
        plane[a] * wy0 * wx0 + plane[b] * wy0 * wx1 + plane[c] * wy1 * wx0 + plane[d] * wy1 * wx1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_plane_zoom_gives_each_planes_bits() {
        let (w, h) = (37, 23);
        let planes: Vec<Vec<f64>> = (0..3)
            .map(|p| {
                (0..w * h)
                    .map(|i| ((i * 7919 + p * 131) % 1000) as f64 / 997.0)
                    .collect()
            })
            .collect();
        for factor in [1.03, 1.2, 1.31] {
            let window = Window::clipped_zoom((w, h), factor);
            let mut together = vec![vec![0.0; w * h]; 3];
            zoom_window_rgb(
                [&planes[0], &planes[1], &planes[2]],
                w,
                window,
                factor,
                (w, h),
                |y, row| {
                    for (plane, out) in together.iter_mut().enumerate() {
                        for (o, v) in out[y * w..][..w].iter_mut().zip(row) {
                            *o = v[plane];
                        }
                    }
                },
            );
            for (plane, values) in planes.iter().enumerate() {
                let mut alone = vec![0.0; w * h];
                zoom_window(values, w, window, factor, (w, h), |y, row| {
                    alone[y * w..][..w].copy_from_slice(row);
                });
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&alone), bits(&together[plane]), "{factor} {plane}");
            }
        }
    }

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
                    ReflectTap::new((4, 3), y as f64, x as f64).sample(&plane),
                    plane[y * 4 + x]
                );
            }
        }
        let at = |row, column| ReflectTap::new((4, 3), row, column).sample(&plane);
        assert_eq!(at(-1.0, 0.0), 0.0);
        assert_eq!(at(0.0, 4.0), 3.0);
        assert_eq!(at(0.0, -0.5), 0.0);
        assert_eq!(at(-0.5, 1.0), 1.0);
    }
}
