//! The byte paths: SPEC's transforms applied to 8-bit RGB directly, without the float planes.
//!
//! Each computes every value with the same f32 operations, in the same order, as its planar
//! counterpart in `ops`, and rounds it as [`PlanarImage::to_rgb8`] does, so its bytes equal the
//! planar path's followed by the chain's final rounding (the tests below compare each with that
//! path, bit for bit). The chain uses them while its image is still 8-bit: for its last
//! transform, and for `rotate` anywhere (nearest-neighbour resampling moves bytes and writes
//! zeros, so its output still holds bytes). What they save is memory traffic, which costs more
//! than the arithmetic: the planar path converts to 12 bytes of f32 per pixel, reads and writes
//! them, and converts back; these read and write the 3 bytes.
//!
//! Like `ops`, each loop is compiled for the widest SIMD the CPU has, chosen at run time
//! (`pulp::Arch::dispatch`), with the same IEEE operations in every width.
//!
//! [`PlanarImage::to_rgb8`]: crate::PlanarImage::to_rgb8

use drift_core::RgbImage8;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::ops::{self, RotationGrid, RotationPlan};
use crate::planar::{to_byte, to_unit};

/// `to_byte(blend(x, other, factor))` per value: brightness (`other` 0) and contrast. A function
/// of the byte alone, so first a table of 256 (the float arithmetic, clamps and the rounding
/// run 256 times instead of once per value); then, where an integer affine map
/// reproduces the whole table, that map, which vectorises, or else the table.
pub(crate) fn blend(image: &mut RgbImage8, other: f32, factor: f32) {
    let table: [u8; 256] =
        std::array::from_fn(|v| to_byte(ops::blend(to_unit(v as u8), other, factor)));
    let pixels = image.pixels_mut();
    match AffineBytes::fit(&table, other, factor) {
        Some(map) => pulp::Arch::new().dispatch(ApplyAffine { pixels, map }),
        None => {
            for x in pixels {
                *x = table[usize::from(*x)];
            }
        }
    }
}

/// `v -> clamp((v * scale + offset) >> SHIFT, 0, 255)`: a byte table in integer arithmetic.
#[derive(Debug, Clone, Copy)]
struct AffineBytes {
    scale: i32,
    offset: i32,
}

impl AffineBytes {
    const SHIFT: u32 = 20;

    #[inline(always)]
    fn map(self, v: u8) -> u8 {
        ((i32::from(v) * self.scale + self.offset) >> Self::SHIFT).clamp(0, 255) as u8
    }

    /// The map closest to the blend's real arithmetic (`round(255 (f v / 255 + (1 - f) o))`),
    /// if it gives every entry of `table`, the float computation's bytes. It misses where the
    /// float rounding and the 2^-20 steps disagree about a value near a half (about one draw in
    /// 700); the table serves then.
    fn fit(table: &[u8; 256], other: f32, factor: f32) -> Option<Self> {
        let unit = f64::from(1u32 << Self::SHIFT);
        let (factor, other) = (f64::from(factor), f64::from(other));
        let scale = (factor * unit).round();
        let offset = ((255.0 * other * (1.0 - factor) + 0.5) * unit).round();
        // Every v * scale + offset must stay within i32 (false for NaN too).
        let fits = scale.abs() * 255.0 + offset.abs() < f64::from(i32::MAX);
        if !fits {
            return None;
        }
        let map = Self {
            scale: scale as i32,
            offset: offset as i32,
        };
        (0..=255u8)
            .all(|v| map.map(v) == table[usize::from(v)])
            .then_some(map)
    }
}

struct ApplyAffine<'a> {
    pixels: &'a mut [u8],
    map: AffineBytes,
}

impl pulp::WithSimd for ApplyAffine<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for x in self.pixels {
            *x = self.map.map(*x);
        }
    }
}

/// `ops::contrast` on bytes: the mean grey, then the blend.
pub(crate) fn contrast(image: &mut RgbImage8, factor: f32) {
    let mean = grey_mean(image.pixels());
    blend(image, mean, factor);
}

/// The largest pixel count whose grey sum any order of f64 additions gets exactly.
const EXACT_SUM_PIXELS: usize = 1 << 17;

/// The mean grey of RGB bytes, with the bits of `ops::contrast`'s (each pixel's f32 grey,
/// summed in f64 in pixel order, divided, rounded to f32). The grey of a byte pixel is 0 or at
/// least 2^-12 (its smallest term, 0.114 / 255, is above that) and below 2, so a multiple of
/// 2^-35; sums of at most 2^17 of them are multiples of 2^-35 below 2^18, which 53 bits hold
/// exactly. So up to 2^17 pixels every order of additions gives the sequential sum, and eight
/// accumulators (which vectorise) replace a chain of dependent additions; larger images are
/// summed in order.
pub(crate) fn grey_mean(pixels: &[u8]) -> f32 {
    let n = pixels.len() / 3;
    let sum = if n <= EXACT_SUM_PIXELS {
        pulp::Arch::new().dispatch(GreySum(pixels))
    } else {
        pixels.chunks_exact(3).map(pixel_grey).sum()
    };
    (sum / n as f64) as f32
}

#[inline(always)]
fn pixel_grey(px: &[u8]) -> f64 {
    f64::from(ops::grey(to_unit(px[0]), to_unit(px[1]), to_unit(px[2])))
}

/// The grey sum in eight lanes (exact only below [`EXACT_SUM_PIXELS`]).
struct GreySum<'a>(&'a [u8]);

impl pulp::WithSimd for GreySum<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> f64 {
        const LANES: usize = 8;
        let mut lanes = [0.0f64; LANES];
        let blocks = self.0.chunks_exact(3 * LANES);
        let tail: f64 = blocks.remainder().chunks_exact(3).map(pixel_grey).sum();
        for block in blocks {
            for (lane, px) in lanes.iter_mut().zip(block.chunks_exact(3)) {
                *lane += pixel_grey(px);
            }
        }
        lanes.iter().sum::<f64>() + tail
    }
}

/// `ops::saturation` on bytes, pixel by pixel in one loop.
pub(crate) fn saturation(image: &mut RgbImage8, factor: f32) {
    pulp::Arch::new().dispatch(Saturate {
        pixels: image.pixels_mut(),
        factor,
    });
}

struct Saturate<'a> {
    pixels: &'a mut [u8],
    factor: f32,
}

impl pulp::WithSimd for Saturate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let factor = self.factor;
        for px in self.pixels.chunks_exact_mut(3) {
            let (r, g, b) = (to_unit(px[0]), to_unit(px[1]), to_unit(px[2]));
            let grey = ops::grey(r, g, b);
            px.copy_from_slice(&[
                to_byte(ops::blend(r, grey, factor)),
                to_byte(ops::blend(g, grey, factor)),
                to_byte(ops::blend(b, grey, factor)),
            ]);
        }
    }
}

/// `ops::hue` on bytes, pixel by pixel in one loop.
pub(crate) fn hue(image: &mut RgbImage8, shift: f32) {
    if shift == 0.0 {
        return;
    }
    pulp::Arch::new().dispatch(HuePixels {
        pixels: image.pixels_mut(),
        shift,
    });
}

struct HuePixels<'a> {
    pixels: &'a mut [u8],
    shift: f32,
}

impl pulp::WithSimd for HuePixels<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for px in self.pixels.chunks_exact_mut(3) {
            let [r, g, b] =
                ops::shift_pixel_hue(to_unit(px[0]), to_unit(px[1]), to_unit(px[2]), self.shift);
            px.copy_from_slice(&[to_byte(r), to_byte(g), to_byte(b)]);
        }
    }
}

/// `ops::rotate` on bytes: the same plan and source pixels, moved as bytes. Exact: its bytes
/// are the planar result's values times 255, not just their rounding.
pub(crate) fn rotate(image: &mut RgbImage8, angle_degrees: f64) {
    let size = image.size();
    let (w, h) = (size.width as usize, size.height as usize);
    let source = image.pixels();
    // One byte more than the image: each pixel is written as four bytes, the fourth
    // overwritten by the next pixel, and the last one cut off at the end.
    let mut out = vec![0u8; source.len() + 1];
    match ops::rotation_plan(angle_degrees, w, h) {
        RotationPlan::Identity => return,
        RotationPlan::QuarterTurns(k) => {
            for (y, row) in out.chunks_exact_mut(3 * w).enumerate() {
                for (x, px) in row.chunks_exact_mut(3).enumerate() {
                    let (sx, sy) = ops::quarter_turn_source(k, x, y, w, h);
                    let from = 3 * (sy * w + sx);
                    px.copy_from_slice(&source[from..from + 3]);
                }
            }
        }
        RotationPlan::Resample(theta) => pulp::Arch::new().dispatch(RotateRows {
            source,
            out: &mut out,
            grid: RotationGrid::new(theta, w, h),
        }),
    }
    out.truncate(source.len());
    *image = RgbImage8::from_pixels(size, out).expect("the source's size");
}

struct RotateRows<'a> {
    source: &'a [u8],
    out: &'a mut [u8],
    grid: RotationGrid,
}

impl pulp::WithSimd for RotateRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (source, out, mut grid) = (self.source, self.out, self.grid);
        let row_bytes = 3 * grid.index.len();
        for y in 0..out.len() / row_bytes {
            grid.row(y);
            let row = &mut out[y * row_bytes..(y + 1) * row_bytes + 1];
            let sources = grid.index.iter().zip(&grid.mask);
            for (x, (&from, &mask)) in sources.enumerate() {
                // Four bytes in one load (three for the image's last pixel), masked, stored as
                // four.
                let from = 3 * from as usize;
                let four: [u8; 4] = match source.get(from..from + 4) {
                    Some(four) => four.try_into().expect("four bytes"),
                    None => [source[from], source[from + 1], source[from + 2], 0],
                };
                let pixel = u32::from_le_bytes(four) & mask;
                row[3 * x..3 * x + 4].copy_from_slice(&pixel.to_le_bytes());
            }
        }
    }
}

/// `ops::gaussian_blur` on bytes: the same separable 5x5 pass, on interleaved rows (the taps
/// three values apart), with the row pass kept for five rows at a time and each output row
/// written in place once no row pass needs its source bytes.
pub(crate) fn gaussian_blur(image: &mut RgbImage8, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let size = image.size();
    pulp::Arch::new().dispatch(Blur {
        pixels: image.pixels_mut(),
        kernel: ops::gaussian_kernel(sigma),
        size: (size.width as usize, size.height as usize),
    });
}

struct Blur<'a> {
    pixels: &'a mut [u8],
    kernel: [f32; 5],
    size: (usize, usize),
}

impl pulp::WithSimd for Blur<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (kernel, (w, h)) = (self.kernel, self.size);
        let stride = 3 * w;
        let mut padded = vec![0.0f32; stride + 12];
        // The row passes of source rows r, in slot r % 5. The rows one output row needs,
        // reflect(y - 2 ..= y + 2), lie within five consecutive rows, so their slots differ;
        // a row needed again is still in its slot; a row first needed at output row y is not
        // above it, so its bytes are not yet overwritten.
        let mut slots = vec![0.0f32; 5 * stride];
        let mut held = [usize::MAX; 5];
        for y in 0..h {
            let rows = [-2isize, -1, 0, 1, 2].map(|d| ops::reflect(y as isize + d, h));
            for r in rows {
                if held[r % 5] == r {
                    continue;
                }
                held[r % 5] = r;
                let row = &self.pixels[r * stride..(r + 1) * stride];
                for (p, &v) in padded[6..stride + 6].iter_mut().zip(row) {
                    *p = to_unit(v);
                }
                for i in [0, 1, w + 2, w + 3] {
                    let from = 3 * ops::reflect(i as isize - 2, w);
                    for c in 0..3 {
                        padded[3 * i + c] = to_unit(row[from + c]);
                    }
                }
                let out = &mut slots[(r % 5) * stride..(r % 5 + 1) * stride];
                let taps = (&padded[..stride], &padded[3..stride + 3]);
                let taps = (taps, &padded[6..stride + 6], &padded[9..stride + 9]);
                let ((p0, p1), p2, p3) = taps;
                let p4 = &padded[12..stride + 12];
                for (x, out) in out.iter_mut().enumerate() {
                    *out = ops::five_taps(kernel, [p0[x], p1[x], p2[x], p3[x], p4[x]]);
                }
            }
            let [r0, r1, r2, r3, r4] = rows.map(|r| &slots[(r % 5) * stride..(r % 5 + 1) * stride]);
            let columns = r0.iter().zip(r1).zip(r2).zip(r3).zip(r4);
            let out = &mut self.pixels[y * stride..(y + 1) * stride];
            for (byte, ((((a, b), c), d), e)) in out.iter_mut().zip(columns) {
                *byte = to_byte(ops::five_taps(kernel, [*a, *b, *c, *d, *e]));
            }
        }
    }
}

/// `ops::gaussian_noise` on bytes: the same draws in the same (plane) order, a chunk of one
/// plane at a time into a buffer, so that the generator's serial loop and the arithmetic (which
/// vectorises apart from the three-byte stride) each run on their own.
pub(crate) fn gaussian_noise(image: &mut RgbImage8, mean: f32, sigma: f32, rng: &mut impl Rng) {
    const CHUNK: usize = 4096;
    let mut normals = [0.0f32; CHUNK];
    let pixels = image.pixels_mut();
    for c in 0..3 {
        for chunk in pixels.chunks_mut(3 * CHUNK) {
            let normals = &mut normals[..chunk.len() / 3];
            for z in normals.iter_mut() {
                *z = StandardNormal.sample(rng);
            }
            pulp::Arch::new().dispatch(AddNoise {
                pixels: chunk,
                channel: c,
                normals,
                mean,
                sigma,
            });
        }
    }
}

struct AddNoise<'a> {
    pixels: &'a mut [u8],
    channel: usize,
    normals: &'a [f32],
    mean: f32,
    sigma: f32,
}

impl pulp::WithSimd for AddNoise<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (mean, sigma) = (self.mean, self.sigma);
        for (px, &z) in self.pixels.chunks_exact_mut(3).zip(self.normals) {
            let x = &mut px[self.channel];
            *x = to_byte(ops::add_noise(to_unit(*x), z, mean, sigma));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlanarImage;
    use drift_core::ImageSize;
    use rand::SeedableRng;

    /// Bytes with every value, runs of equal ones, greys and saturated colours.
    fn image(w: u32, h: u32, seed: u64) -> RgbImage8 {
        let size = ImageSize::new(w, h).unwrap();
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        let pixels = (0..size.pixel_count())
            .flat_map(|i| {
                let v: [u8; 3] = rand::RngExt::random(&mut rng);
                match i % 5 {
                    0 => [v[0]; 3],
                    1 => [(i % 256) as u8, 255, 0],
                    _ => v,
                }
            })
            .collect();
        RgbImage8::from_pixels(size, pixels).unwrap()
    }

    const SIZES: [(u32, u32); 8] = [
        (1, 1),
        (2, 3),
        (5, 1),
        (1, 6),
        (7, 5),
        (37, 29),
        (224, 224),
        (300, 440),
    ];

    /// The byte path against the planar path and the final rounding, on every size.
    fn same_bytes(name: &str, bytes: impl Fn(&mut RgbImage8), planar: impl Fn(&mut PlanarImage)) {
        for (i, (w, h)) in SIZES.into_iter().enumerate() {
            let original = image(w, h, i as u64);
            let mut fast = original.clone();
            bytes(&mut fast);
            let mut slow = PlanarImage::from_rgb8(&original);
            planar(&mut slow);
            assert_eq!(fast, slow.to_rgb8(), "{name} on {w}x{h}");
        }
    }

    #[test]
    fn each_byte_path_gives_the_planar_paths_bytes() {
        for factor in [0.0, 0.37, 1.0, 1.6, 3.99] {
            same_bytes(
                "brightness",
                |i| blend(i, 0.0, factor),
                |i| ops::brightness(i, factor),
            );
            same_bytes(
                "contrast",
                |i| contrast(i, factor),
                |i| ops::contrast(i, factor),
            );
            same_bytes(
                "saturation",
                |i| saturation(i, factor),
                |i| ops::saturation(i, factor),
            );
        }
        for shift in [-0.5, -0.31, 0.0, 0.013, 0.25, 0.5] {
            same_bytes("hue", |i| hue(i, shift), |i| ops::hue(i, shift));
        }
        for sigma in [0.0, 0.3, 0.77, 1.5, 3.0] {
            same_bytes(
                "gaussian_blur",
                |i| gaussian_blur(i, sigma),
                |i| ops::gaussian_blur(i, sigma),
            );
        }
        for sigma in [0.05, 0.5] {
            let noise = || rand::rngs::Xoshiro256PlusPlus::seed_from_u64(9);
            same_bytes(
                "gaussian_noise",
                |i| gaussian_noise(i, 0.1, sigma, &mut noise()),
                |i| ops::gaussian_noise(i, 0.1, sigma, &mut noise()),
            );
        }
    }

    #[test]
    fn the_blend_gives_the_float_bytes_by_its_integer_map_and_by_its_table() {
        // Every byte value, against the planar path, at many drawn factors and means: both
        // ways of applying the table occur.
        let size = ImageSize::new(256, 1).unwrap();
        let values: Vec<u8> = (0..=255u8).flat_map(|v| [v, 255 - v, v]).collect();
        let original = RgbImage8::from_pixels(size, values).unwrap();
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(5);
        let (mut fitted, mut tabled) = (0, 0);
        for i in 0..4000 {
            let factor: f32 = rand::RngExt::random_range(&mut rng, 0.0..4.0);
            let other: f32 = if i % 2 == 0 {
                0.0
            } else {
                rand::RngExt::random(&mut rng)
            };
            let table: [u8; 256] =
                std::array::from_fn(|v| to_byte(ops::blend(to_unit(v as u8), other, factor)));
            match AffineBytes::fit(&table, other, factor) {
                Some(_) => fitted += 1,
                None => tabled += 1,
            }
            let mut fast = original.clone();
            blend(&mut fast, other, factor);
            let mut blended = PlanarImage::from_rgb8(&original).data().to_vec();
            for x in &mut blended {
                *x = ops::blend(*x, other, factor);
            }
            let slow = PlanarImage::from_planes(size, blended).unwrap();
            assert_eq!(fast, slow.to_rgb8(), "factor {factor}, other {other}");
        }
        assert!(
            fitted > 3000 && tabled > 0,
            "{fitted} fitted, {tabled} tabled"
        );
    }

    #[test]
    fn rotation_on_bytes_is_exact_at_every_kind_of_angle() {
        for angle in [
            0.0, 90.0, 180.0, 270.0, -90.0, 360.0, 33.3, -71.5, 45.0, 89.999,
        ] {
            for (i, (w, h)) in SIZES.into_iter().enumerate() {
                let original = image(w, h, 100 + i as u64);
                let mut fast = original.clone();
                rotate(&mut fast, angle);
                let mut slow = PlanarImage::from_rgb8(&original);
                ops::rotate(&mut slow, angle);
                // Exact, not just after rounding: the planar result is the bytes' k / 255.
                let fast = PlanarImage::from_rgb8(&fast);
                let bits = |p: &PlanarImage| p.data().iter().map(|x| x.to_bits()).collect();
                let (fast_bits, slow_bits): (Vec<u32>, Vec<u32>) = (bits(&fast), bits(&slow));
                assert!(fast_bits == slow_bits, "rotate {angle} on {w}x{h}");
                assert!(slow.holds_bytes(), "rotate keeps an image of bytes one");
            }
        }
    }

    #[test]
    fn the_grey_mean_of_bytes_has_the_sequential_sums_bits() {
        // Bright images near the exact-sum limit and past it.
        for (w, h) in [(362, 362), (512, 256), (513, 256), (1000, 700)] {
            let size = ImageSize::new(w, h).unwrap();
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(u64::from(w));
            let pixels: Vec<u8> = (0..3 * size.pixel_count())
                .map(|_| 200 + (rand::RngExt::random::<u8>(&mut rng) % 56))
                .collect();
            let sequential: f64 = pixels.chunks_exact(3).map(pixel_grey).sum();
            let expected = (sequential / size.pixel_count() as f64) as f32;
            assert_eq!(grey_mean(&pixels).to_bits(), expected.to_bits(), "{w}x{h}");
            let lanes = pulp::WithSimd::with_simd(GreySum(&pixels), pulp::Scalar::new());
            if size.pixel_count() <= EXACT_SUM_PIXELS {
                assert_eq!(lanes.to_bits(), sequential.to_bits(), "{w}x{h}");
            }
        }
    }
}
