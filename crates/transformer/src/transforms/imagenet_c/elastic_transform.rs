//! `imagenet_c:elastic_transform` (the `imagecorruptions` version, not ImageNet-C's affine one):
//! each pixel sampled at a displacement, two uniform fields smoothed by a Gaussian of sigma 1%
//! of the image's sides and scaled by alpha; bilinear, mirrored at the edges.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::gaussian::{Border, gaussian_filter_into};
use crate::imagenet_c::{
    Corruption, Draws, in_lanes, keep_scratch, rounded_level, set_places, take_scratch,
};
use crate::planar::{to_byte, to_unit};
use crate::registry::{ParamColumn, Params, severity_value};

/// The displacement's scale alpha at severities 0 (identity) to 5.
const ALPHA: [f64; 6] = [0.0, 12.5, 16.25, 21.25, 25.0, 30.0];

pub(crate) struct ElasticTransform;

impl Corruption for ElasticTransform {
    fn name(&self) -> &'static str {
        "imagenet_c:elastic_transform"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C elastic_transform (imagecorruptions' version) at severity 5L: displacements \
         U(-H/200, H/200) per pixel, smoothed (sigma 1% of each side), times alpha = 0, 12.5, \
         16.25, 21.25, 25, 30 at severities 0-5"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[ParamColumn {
            name: "alpha",
            meaning: "the displacements' scale",
        }]
    }

    fn differences(&self) -> &'static str {
        "none (this is the package's elastic transform, not ImageNet-C's affine one)"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::one(severity_value(level, &ALPHA))
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let size = image.size();
        let (w, h) = (size.width as usize, size.height as usize);
        let (dx, dy) = displacements(params.value(0), (w, h), draws);
        // The package's image is `np.array(x, dtype=np.float32) / 255.`, which our planes hold;
        // copied (the remap cannot work in place), in a buffer kept per thread.
        let mut source = take_scratch(&SOURCE, 3 * w * h);
        source.copy_from_slice(image.data());
        pulp::Arch::new().dispatch(Remap {
            source: &source,
            out: image.data_mut(),
            shape: (w, h),
            dx: &dx,
            dy: &dy,
        });
        keep_scratch(&SOURCE, source);
        keep_scratch(&DX, dx);
        keep_scratch(&DY, dy);
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        draws: &mut dyn Draws,
    ) -> bool {
        let size = image.size();
        let (w, h) = (size.width as usize, size.height as usize);
        let (dx, dy) = displacements(params.value(0), (w, h), draws);
        // Each pixel as one word, read in one load where its values were three.
        let mut source = take_scratch(&SOURCE_WORDS, w * h);
        pulp::Arch::new().dispatch(ToWords {
            pixels: image.pixels(),
            words: &mut source,
        });
        pulp::Arch::new().dispatch(RemapBytes {
            source: &source,
            out: image.pixels_mut(),
            shape: (w, h),
            dx: &dx,
            dy: &dy,
            near_half: NEAR_HALF,
        });
        keep_scratch(&SOURCE_WORDS, source);
        keep_scratch(&DX, dx);
        keep_scratch(&DY, dy);
        true
    }
}

/// The displacement fields `(dx, dy)`, as the package draws them:
/// `(gaussian(uniform(-H/200, H/200), sigma, mode='reflect', truncate=3) * alpha)
/// .astype(np.float32)`, widened back to f64, in buffers kept per thread (see `take_scratch`).
fn displacements(
    alpha: f64,
    (w, h): (usize, usize),
    draws: &mut dyn Draws,
) -> (Vec<f64>, Vec<f64>) {
    let sigma = (h as f64 * 0.01, w as f64 * 0.01);
    // The package takes the height for both axes' largest displacement.
    let max_d = h as f64 * 0.005;
    // The uniform draws, in a buffer of their own: the Gaussian reads them there and writes
    // the field, no copy between.
    let mut uniform = take_scratch(&UNIFORM, w * h);
    let mut field = |draws: &mut dyn Draws, slot| -> Vec<f64> {
        let mut values = take_scratch(slot, w * h);
        draws.uniform(-max_d, max_d, &mut uniform);
        gaussian_filter_into(
            &uniform,
            &mut values,
            (w, h),
            sigma,
            3.0,
            Border::Reflect,
            false,
        );
        in_lanes(
            #[inline(always)]
            || {
                for v in &mut values {
                    *v = f64::from((*v * alpha) as f32);
                }
            },
        );
        values
    };
    let dx = field(draws, &DX);
    let dy = field(draws, &DY);
    keep_scratch(&UNIFORM, uniform);
    (dx, dy)
}

/// One row's bilinear taps: each pixel's fractions along both axes and its four neighbours'
/// indices in the plane, mirrored at the edges as `map_coordinates(mode='reflect')` reads them.
struct RowTaps {
    row_t: Vec<f64>,
    column_t: Vec<f64>,
    /// Each pixel's top-left neighbour's index; the other three are the next one along and the
    /// two below them, but for the pixels in `mirrored` (whose entry here is 0).
    top_left: Vec<usize>,
    /// The pixels with a neighbour outside the plane, and their four neighbours' mirrored
    /// indices (top left, top right, bottom left, bottom right).
    mirrored: Vec<(usize, [usize; 4])>,
    /// Which pixels have a neighbour outside the plane: 1 where one has, else 0 (bytes, not
    /// bools, so that the scan for them reads eight at a time).
    outside: Vec<u8>,
}

impl RowTaps {
    fn new(w: usize) -> Self {
        Self {
            row_t: vec![0.0; w],
            column_t: vec![0.0; w],
            top_left: vec![0; w],
            mirrored: Vec::new(),
            outside: vec![0; w],
        }
    }

    /// The taps of row `y` of a `w x h` plane displaced by `dy` and `dx` (that row's): the
    /// floors, fractions and top-left indices in one vector loop, which also counts the pixels
    /// with a neighbour outside; their mirrored indices in a scalar loop.
    #[inline(always)]
    fn fill(&mut self, y: usize, (w, h): (usize, usize), dy: &[f64], dx: &[f64]) {
        // The last row and column a pixel's top-left neighbour can have inside the plane.
        let (last_row, last_column) = ((h as f64) - 2.0, (w as f64) - 2.0);
        let mut count = 0u32;
        for (x, (((rt, ct), tl), out)) in self
            .row_t
            .iter_mut()
            .zip(&mut self.column_t)
            .zip(&mut self.top_left)
            .zip(&mut self.outside)
            .enumerate()
        {
            let (row, column) = (y as f64 + dy[x], x as f64 + dx[x]);
            // `+ 0.0` makes a floor of -0.0 the +0.0 that `floor_fast` gives.
            let (r0, c0) = (row.floor() + 0.0, column.floor() + 0.0);
            (*rt, *ct) = (row - r0, column - c0);
            let inside = r0 >= 0.0 && r0 <= last_row && c0 >= 0.0 && c0 <= last_column;
            *out = u8::from(!inside);
            count += u32::from(!inside);
            *tl = if inside {
                whole_to_index(r0 * w as f64 + c0)
            } else {
                0
            };
        }
        self.mirrored.clear();
        if count == 0 {
            return;
        }
        // Nearly every row has some (a pixel near either side reads past it), a few.
        let places = set_places(&self.outside);
        for x in places {
            let (row, column) = (y as f64 + dy[x], x as f64 + dx[x]);
            let (y0, x0) = (
                (row.floor() + 0.0) as isize,
                (column.floor() + 0.0) as isize,
            );
            let (ya, yb) = (
                Border::Reflect.index(y0, h),
                Border::Reflect.index(y0 + 1, h),
            );
            let (xa, xb) = (
                Border::Reflect.index(x0, w),
                Border::Reflect.index(x0 + 1, w),
            );
            self.mirrored
                .push((x, [ya * w + xa, ya * w + xb, yb * w + xa, yb * w + xb]));
        }
    }

    /// The four neighbours' values of each pixel of the row, from `plane` (a value or a
    /// pixel's word per index), into `values`.
    #[inline(always)]
    fn gather<T: Copy>(&self, plane: &[T], w: usize, values: &mut [Vec<T>; 4]) {
        // Slices, not the vectors: through a `&mut Vec` each store reloads its pointer.
        let [a, b, c, d] = values;
        let (a, b, c, d) = (&mut a[..w], &mut b[..w], &mut c[..w], &mut d[..w]);
        // The pairs of an in-plane pixel (or of index 0, which a mirrored one holds) fit in a
        // plane of a row and two values more; a smaller plane (one row, or one column of two)
        // has only mirrored pixels.
        if plane.len() >= w + 2 {
            // Each pixel's neighbours as two pairs: two loads, not four.
            for (x, &i) in self.top_left[..w].iter().enumerate() {
                let (top, bottom) = (&plane[i..][..2], &plane[i + w..][..2]);
                (a[x], b[x], c[x], d[x]) = (top[0], top[1], bottom[0], bottom[1]);
            }
        }
        for &(x, [tl, tr, bl, br]) in &self.mirrored {
            (a[x], b[x], c[x], d[x]) = (plane[tl], plane[tr], plane[bl], plane[br]);
        }
    }
}

/// A whole number in [0, 2^52) as an index, by the bits of 2^52 + v: a float-to-integer `as`
/// (which saturates) kept the loop around it scalar.
#[inline(always)]
fn whole_to_index(v: f64) -> usize {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    ((v + TWO_52).to_bits() & ((1 << 52) - 1)) as usize
}

/// `map_coordinates`' bilinear sum of one value in scipy's order, `as f32`, clipped to [0, 1].
#[inline(always)]
fn bilinear([a, b, c, d]: [f32; 4], ty: f64, tx: f64) -> f32 {
    let (wy0, wy1, wx0, wx1) = (1.0 - ty, ty, 1.0 - tx, tx);
    let (a, b, c, d) = (f64::from(a), f64::from(b), f64::from(c), f64::from(d));
    let value = (a * wy0 * wx0 + b * wy0 * wx1 + c * wy1 * wx0 + d * wy1 * wx1) as f32;
    value.clamp(0.0, 1.0)
}

/// Interleaved RGB bytes as one little-endian word per pixel (R, G, B, 0).
struct ToWords<'a> {
    pixels: &'a [u8],
    words: &'a mut [u32],
}

impl pulp::WithSimd for ToWords<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (word, pixel) in self.words.iter_mut().zip(self.pixels.chunks_exact(3)) {
            *word = u32::from(pixel[0]) | u32::from(pixel[1]) << 8 | u32::from(pixel[2]) << 16;
        }
    }
}

/// [`Remap`] on interleaved bytes, each neighbour's pixel read as one word: `Remap`'s bytes.
/// Each value is first summed in levels in f32 (sixteen lanes, the four weights shared by the
/// three channels, a fused multiply-add per neighbour) and rounded to the nearest level; only
/// where that lies within [`NEAR_HALF`] levels of a rounding edge is the pixel computed as
/// `Remap` computes it (the values `k / 255` as `PlanarImage::from_rgb8` makes them, the sum in
/// f64 in scipy's order, rounded as `to_rgb8` rounds).
struct RemapBytes<'a> {
    /// The pixels as `out` was, a word each (see [`ToWords`]).
    source: &'a [u32],
    out: &'a mut [u8],
    shape: (usize, usize),
    dx: &'a [f64],
    dy: &'a [f64],
    /// [`NEAR_HALF`], but in tests.
    near_half: f32,
}

/// How close to a half (in levels) a value summed in f32 is computed again in f64: over twice
/// the two paths' bounds together. The f32 sum: four weights, each a product of two f32
/// fractions, within 3 x 2^-25 of the exact one (at most 9.1e-5 levels over four neighbours
/// of up to 255), and four roundings of partial sums under 256 (3e-5). `Remap`'s own roundings
/// between the exact sum and its byte: `k / 255` to f32, the value to f32, `255 x` and `+ 0.5`
/// in f32 (4.6e-5 together).
const NEAR_HALF: f32 = 4e-4;

impl pulp::WithSimd for RemapBytes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (w, h) = self.shape;
        let near_half = self.near_half;
        let mut taps = RowTaps::new(w);
        // The four neighbours' pixels, a word each.
        let mut words = [vec![0u32; w], vec![0; w], vec![0; w], vec![0; w]];
        // Which pixels of the row have a value near a rounding edge (1) or not (0).
        let mut near = vec![0u8; w];
        let source = self.source;
        for (y, out) in self.out.chunks_exact_mut(3 * w).enumerate() {
            taps.fill(y, (w, h), &self.dy[y * w..][..w], &self.dx[y * w..][..w]);
            taps.gather(source, w, &mut words);
            let [a, b, c, d] = &words;
            let mut count = 0u32;
            for (((((((pixel, near), &a), &b), &c), &d), &ty), &tx) in out
                .chunks_exact_mut(3)
                .zip(&mut near)
                .zip(a)
                .zip(b)
                .zip(c)
                .zip(d)
                .zip(&taps.row_t)
                .zip(&taps.column_t)
            {
                let (wy0, wy1) = ((1.0 - ty) as f32, ty as f32);
                let (wx0, wx1) = ((1.0 - tx) as f32, tx as f32);
                let (w00, w01, w10, w11) = (wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1);
                let channel = |shift: u32| {
                    let level = |word: u32| f32::from((word >> shift) as u8);
                    let sum = level(a).mul_add(
                        w00,
                        level(b).mul_add(w01, level(c).mul_add(w10, level(d) * w11)),
                    );
                    rounded_level(sum, 0.5 - near_half)
                };
                let ((r, near_r), (g, near_g), (b, near_b)) = (channel(0), channel(8), channel(16));
                pixel.copy_from_slice(&[r, g, b]);
                *near = u8::from(near_r | near_g | near_b);
                count += u32::from(*near);
            }
            if count == 0 {
                continue;
            }
            for x in set_places(&near) {
                let (ty, tx) = (taps.row_t[x], taps.column_t[x]);
                let [a, b, c, d] = [a[x], b[x], c[x], d[x]];
                let channel = |shift: u32| {
                    let unit = |word: u32| to_unit((word >> shift) as u8);
                    to_byte(bilinear([unit(a), unit(b), unit(c), unit(d)], ty, tx))
                };
                out[3 * x..][..3].copy_from_slice(&[channel(0), channel(8), channel(16)]);
            }
        }
    }
}

/// `map_coordinates(plane, (y + dy, x + dx), order=1, mode='reflect')` of three planes, each
/// value `as f32` clipped to [0, 1], compiled for the widest SIMD the CPU has, a row at a time:
/// the row's taps ([`RowTaps::fill`]), the neighbours' values per channel into four rows
/// ([`RowTaps::gather`]), then the sums in scipy's order in a vector loop per channel.
///
/// The same values as `resample::ReflectTap` per pixel (a test holds them to it).
struct Remap<'a> {
    /// The three planes, as `out` was.
    source: &'a [f32],
    out: &'a mut [f32],
    shape: (usize, usize),
    dx: &'a [f64],
    dy: &'a [f64],
}

impl pulp::WithSimd for Remap<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (w, h) = self.shape;
        let n = w * h;
        let mut taps = RowTaps::new(w);
        // Per channel, the four neighbours' values of each pixel of the row.
        let mut values: [[Vec<f32>; 4]; 3] =
            std::array::from_fn(|_| [vec![0.0; w], vec![0.0; w], vec![0.0; w], vec![0.0; w]]);
        for y in 0..h {
            taps.fill(y, (w, h), &self.dy[y * w..][..w], &self.dx[y * w..][..w]);
            for (plane, values) in self.source.chunks_exact(n).zip(&mut values) {
                taps.gather(plane, w, values);
            }
            for (channel, [a, b, c, d]) in values.iter().enumerate() {
                let out = &mut self.out[channel * n + y * w..][..w];
                for ((((((o, &a), &b), &c), &d), &ty), &tx) in out
                    .iter_mut()
                    .zip(a)
                    .zip(b)
                    .zip(c)
                    .zip(d)
                    .zip(&taps.row_t)
                    .zip(&taps.column_t)
                {
                    *o = bilinear([a, b, c, d], ty, tx);
                }
            }
        }
    }
}

thread_local! {
    /// The displacement fields.
    static DX: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    static DY: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A field's uniform draws, before the Gaussian.
    static UNIFORM: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A copy of the image's planes.
    static SOURCE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The image's pixels, a word each.
    static SOURCE_WORDS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imagenet_c::resample::ReflectTap;
    use crate::imagenet_c::test_units;
    use pulp::WithSimd;

    #[test]
    fn the_f32_bytes_are_the_f64_remaps() {
        // The byte path with the usual bound, and with every value recomputed (a bound of a
        // whole level), against the planar remap and `to_rgb8`'s rounding, byte by byte; in
        // the widest lanes and in scalar code.
        let mut next = test_units(7);
        for (w, h, reach) in [(1, 1, 2.0), (5, 3, 9.0), (64, 48, 4.0), (224, 224, 5.0)] {
            let n = w * h;
            // Flat stretches (equal neighbours give sums on whole levels) and noise.
            let pixels: Vec<u8> = (0..3 * n)
                .map(|i| {
                    if i % 97 < 40 {
                        200
                    } else {
                        (next() * 256.0) as u8
                    }
                })
                .collect();
            let dx: Vec<f64> = (0..n).map(|_| (next() - 0.5) * 2.0 * reach).collect();
            let dy: Vec<f64> = (0..n).map(|_| (next() - 0.5) * 2.0 * reach).collect();
            let planes: Vec<f32> = (0..3)
                .flat_map(|c| pixels.iter().skip(c).step_by(3).map(|&k| to_unit(k)))
                .collect();
            let mut remapped = vec![0.0f32; 3 * n];
            pulp::Arch::new().dispatch(Remap {
                source: &planes,
                out: &mut remapped,
                shape: (w, h),
                dx: &dx,
                dy: &dy,
            });
            let want: Vec<u8> = (0..3 * n)
                .map(|i| to_byte(remapped[i % 3 * n + i / 3]))
                .collect();
            let mut words = vec![0u32; n];
            pulp::Arch::new().dispatch(ToWords {
                pixels: &pixels,
                words: &mut words,
            });
            for near_half in [NEAR_HALF, 1.0] {
                for scalar in [false, true] {
                    let mut got = vec![0u8; 3 * n];
                    let remap = RemapBytes {
                        source: &words,
                        out: &mut got,
                        shape: (w, h),
                        dx: &dx,
                        dy: &dy,
                        near_half,
                    };
                    if scalar {
                        remap.with_simd(pulp::Scalar::new());
                    } else {
                        pulp::Arch::new().dispatch(remap);
                    }
                    assert!(got == want, "{w}x{h}, {near_half}, scalar {scalar}");
                }
            }
        }
    }

    #[test]
    fn the_row_remap_gives_the_per_pixel_taps_values() {
        let mut next = test_units(99);
        // Displacements up to several sides, so that reads fold at both ends, and values
        // beyond [0, 1] where the clip matters.
        for (w, h, reach) in [(1, 1, 3.0), (7, 5, 20.0), (40, 31, 3.0), (64, 64, 1.5)] {
            let n = w * h;
            let planes: Vec<f32> = (0..3 * n).map(|_| (next() * 1.2 - 0.1) as f32).collect();
            let dx: Vec<f64> = (0..n).map(|_| (next() - 0.5) * 2.0 * reach).collect();
            let dy: Vec<f64> = (0..n).map(|_| (next() - 0.5) * 2.0 * reach).collect();
            let source = planes.clone();
            let wide: Vec<f64> = planes.iter().map(|&v| f64::from(v)).collect();
            let mut want = vec![0.0f32; 3 * n];
            for y in 0..h {
                for x in 0..w {
                    let i = y * w + x;
                    let tap = ReflectTap::new((w, h), y as f64 + dy[i], x as f64 + dx[i]);
                    for c in 0..3 {
                        want[c * n + i] = (tap.sample(&wide[c * n..][..n]) as f32).clamp(0.0, 1.0);
                    }
                }
            }
            for scalar in [false, true] {
                let mut got = vec![0.0f32; 3 * n];
                let remap = Remap {
                    source: &source,
                    out: &mut got,
                    shape: (w, h),
                    dx: &dx,
                    dy: &dy,
                };
                if scalar {
                    remap.with_simd(pulp::Scalar::new());
                } else {
                    pulp::Arch::new().dispatch(remap);
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{w}x{h}, scalar {scalar}");
            }
        }
    }
}
