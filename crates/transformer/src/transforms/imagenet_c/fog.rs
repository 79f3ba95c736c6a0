//! `imagenet_c:fog`: a plasma fractal (diamond-square) of strength k added to every channel,
//! the image then scaled by `max / (max + k)`, `max` its brightest value over all channels.

use drift_core::ImageSize;

use crate::PlanarImage;
use crate::imagenet_c::plasma::{
    Extremes, keep_plasma, next_power_of_two, plasma_fractal, raw_plasma,
};
use crate::imagenet_c::{
    Corruption, Draws, Scale, Unit, rounded_level, rounded_unit_byte_lanes, set_places,
    store_values,
};
use crate::registry::{ParamColumn, Params, severity_value};

/// The fog's strength k at severities 0 (identity, CCC's row) to 5.
const STRENGTH: [f64; 6] = [0.0, 1.5, 2.0, 2.5, 2.5, 3.0];
/// The plasma's roughness decay at severities 0 to 5 (lower is rougher).
const DECAY: [f64; 6] = [2.0, 2.0, 2.0, 1.7, 1.5, 1.4];

pub(crate) struct Fog;

impl Corruption for Fog {
    fn name(&self) -> &'static str {
        "imagenet_c:fog"
    }

    fn description(&self) -> &'static str {
        "ImageNet-C fog at severity 5L: + k x a plasma fractal of roughness decay d, then x max / \
         (max + k); (k, d) = (0, 2), (1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4) at \
         severities 0-5"
    }

    fn columns(&self) -> &'static [ParamColumn] {
        &[
            ParamColumn {
                name: "strength",
                meaning: "the fog's strength k",
            },
            ParamColumn {
                name: "decay",
                meaning: "the plasma's roughness decay d, lower is rougher",
            },
        ]
    }

    fn differences(&self) -> &'static str {
        "none (the map is the next power of two of the longest side, cut from its top left, as \
         in the package: its feature scale jumps at powers of two)"
    }

    fn parity(&self) -> &'static str {
        "exact given numpy's draws"
    }

    fn params(&self, level: f64, _size: ImageSize, _draws: &mut dyn Draws) -> Params {
        Params::new(&[
            Some(severity_value(level, &STRENGTH)),
            Some(severity_value(level, &DECAY)),
        ])
    }

    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws) {
        let (strength, decay) = (params.value(0), params.value(1));
        let size = image.size();
        let (w, h) = (size.width as usize, size.height as usize);
        // `np.max(shape)` of an H x W x 3 array: a side below 3 gives a map of 4.
        let side = next_power_of_two(w.max(h).max(3));
        let plasma = plasma_fractal(side, decay, draws);
        let unit = Unit::of(image);
        // `x.max()`: `unit` rises with the stored value, so the largest value gives it.
        let brightest = image
            .data()
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let max = unit.unit(brightest);
        let [r, g, b] = image.planes_mut();
        pulp::Arch::new().dispatch(AddFog {
            planes: [r, g, b],
            plasma: &plasma,
            side,
            width: w,
            unit,
            strength,
            max,
        });
        keep_plasma(plasma);
    }

    fn corrupt_rgb8(
        &self,
        params: &Params,
        image: &mut drift_core::RgbImage8,
        draws: &mut dyn Draws,
    ) -> bool {
        let (strength, decay) = (params.value(0), params.value(1));
        let size = image.size();
        let w = size.width as usize;
        let side = next_power_of_two(w.max(size.height as usize).max(3));
        let plasma = raw_plasma(side, decay, draws).expect("a map of at least 4 x 4");
        let brightest = image.pixels().iter().copied().max().unwrap_or(0);
        pulp::Arch::new().dispatch(AddFogToBytes {
            pixels: image.pixels_mut(),
            row: &|y| plasma.row(y),
            extremes: plasma.extremes,
            width: w,
            strength,
            max: Unit::of_byte(usize::from(brightest)),
            near_half: NEAR_HALF,
        });
        plasma.keep();
        true
    }
}

/// [`AddFog`] on interleaved bytes: the same value of each, rounded as the stored value would
/// be by `to_rgb8`: `255 v` is `b ratio + 255 f ratio` for a byte `b` and its pixel's fog `f`,
/// the second term per pixel, then one fused multiply-add per value, in f32 (sixteen lanes),
/// rounded to the nearest level. Only where that lies
/// within [`NEAR_HALF`] levels of a rounding edge is the value computed as the package does,
/// with its divisions in f64.
struct AddFogToBytes<'a> {
    pixels: &'a mut [u8],
    /// A row of the plasma before its normalisation by `extremes`, as its even columns and its
    /// odd ones ([`RawPlasma::row`](crate::imagenet_c::plasma::RawPlasma::row)).
    row: &'a dyn Fn(usize) -> [&'a [f64]; 2],
    extremes: Extremes,
    width: usize,
    strength: f64,
    max: f64,
    /// [`NEAR_HALF`], but in tests.
    near_half: f32,
}

/// How close to a half (in levels) an f32 value is computed again in f64: four times the f32
/// path's error bound where a rounding edge can lie (the sum's terms under 256 levels, each
/// rounded once to f32, ~5e-5 levels).
const NEAR_HALF: f32 = 2e-4;

impl pulp::WithSimd for AddFogToBytes<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (strength, max) = (self.strength, self.max);
        let scale = max + strength;
        let ratio = max / scale;
        let inverse_range = 1.0 / self.extremes.range;
        // In locals: read through `self` in the loops, they can keep them scalar.
        let (near_half, min) = (self.near_half, self.extremes.min);
        let (ratio32, offset) = (ratio as f32, 255.0 * strength * ratio);
        let w = self.width;
        let values = FogValues {
            ratio32,
            near_half,
            strength,
            max,
            scale,
            extremes: self.extremes,
        };
        let half = w.div_ceil(2);
        let mut even_terms = vec![0.0f32; half];
        let mut odd_terms = vec![0.0f32; half];
        let mut terms = vec![0.0f32; 3 * w];
        for (y, row) in self.pixels.chunks_exact_mut(3 * w).enumerate() {
            let plasma = (self.row)(y);
            let term = |p: f64| (offset * ((p - min) * inverse_range)) as f32;
            for (t, &p) in even_terms.iter_mut().zip(plasma[0]) {
                *t = term(p);
            }
            for (t, &p) in odd_terms.iter_mut().zip(plasma[1]) {
                *t = term(p);
            }
            spread_pairs(&even_terms, &odd_terms, &mut terms);
            // Whole chunks apart from the last, short one: their length is known, and their
            // copies are two vectors, not calls of `memcpy`.
            let whole = row.len() / CHUNK * CHUNK;
            let mut chunks = row.chunks_exact_mut(CHUNK);
            for (c, (bytes, terms)) in (&mut chunks).zip(terms.chunks_exact(CHUNK)).enumerate() {
                values.chunk(plasma, c * CHUNK, bytes, terms);
            }
            values.chunk(plasma, whole, chunks.into_remainder(), &terms[whole..]);
        }
    }
}

/// How [`AddFogToBytes`] finds a row's bytes, a chunk at a time.
struct FogValues {
    ratio32: f32,
    near_half: f32,
    strength: f64,
    max: f64,
    scale: f64,
    extremes: Extremes,
}

impl FogValues {
    /// A value's level in f32 (`255 v`) from its byte and its pixel's term, rounded, and whether
    /// it lies near a rounding edge.
    #[inline(always)]
    fn level(&self, byte: u8, term: f32) -> (u8, bool) {
        rounded_level(
            f32::from(byte).mul_add(self.ratio32, term),
            0.5 - self.near_half,
        )
    }

    /// The values of a chunk of a row (`from` its first one's place in the row), into
    /// `rounded`, with whether any lies near a rounding edge (about one chunk in 40), then back
    /// into the row. A chunk with one finds which from its bytes, still in the row, and mends
    /// those in f64.
    #[inline(always)]
    fn chunk(&self, plasma: [&[f64]; 2], from: usize, bytes: &mut [u8], terms: &[f32]) {
        let mut rounded = [0u8; CHUNK];
        let rounded = &mut rounded[..bytes.len()];
        let mut any_near = false;
        for ((r, &byte), &term) in rounded.iter_mut().zip(&*bytes).zip(terms) {
            let (byte, is_near) = self.level(byte, term);
            *r = byte;
            any_near |= is_near;
        }
        if any_near {
            let mut near = [0u8; CHUNK];
            let near = &mut near[..bytes.len()];
            for ((n, &byte), &term) in near.iter_mut().zip(&*bytes).zip(terms) {
                *n = u8::from(self.level(byte, term).1);
            }
            for at in set_places(near) {
                // `k / 255` as `Unit::unit_lanes` computes it, then the package's order.
                let x = f64::from(bytes[at]) / 255.0;
                let column = (from + at) / 3;
                let p = plasma[column % 2][column / 2];
                let v = (x + self.strength * self.extremes.normalised(p)) * self.max / self.scale;
                rounded[at] = rounded_unit_byte_lanes(v);
            }
        }
        bytes.copy_from_slice(rounded);
    }
}

/// Values per chunk of [`AddFogToBytes`]: a few vectors, so that going over a chunk again where
/// a value lies near a rounding edge costs little.
const CHUNK: usize = 64;

/// Each pixel's term over its three values: pixel `x`'s is `even[x / 2]` for an even `x`,
/// `odd[x / 2]` for an odd one; `out` is three values a pixel.
fn spread_pairs(even: &[f32], odd: &[f32], out: &mut [f32]) {
    let (done, pairs) = (spread_pairs_permuted(even, odd, out), out.len() / 6);
    let mut sixes = out[6 * done..].chunks_exact_mut(6);
    for ((six, &e), &o) in (&mut sixes).zip(&even[done..]).zip(&odd[done..]) {
        six[..3].fill(e);
        six[3..].fill(o);
    }
    // An odd width's last pixel is even.
    if let Some(&e) = even.get(pairs) {
        sixes.into_remainder().fill(e);
    }
}

/// Where value `j` of a block of [`spread_pairs`] comes from: pixel `j / 3`'s term, lane
/// `pixel / 2` of `even` (an even pixel) or of `odd` (`true`). The permutes' tables are built
/// from it.
#[cfg(target_arch = "x86_64")]
const fn spread_source(j: usize) -> (usize, bool) {
    let pixel = j / 3;
    (pixel / 2, pixel % 2 == 1)
}

/// [`spread_pairs`] by sixteen pairs at a time with AVX-512 lane permutes (six `vpermt2ps` for
/// 96 values, where scalar stores took 96), else [`spread_pairs_avx2`]: how many pairs it did.
/// `pulp`
/// offers no permute in its portable vectors, but its AVX-512 token calls the intrinsic safely,
/// and `pulp::cast` moves the lanes in and out.
#[cfg(target_arch = "x86_64")]
fn spread_pairs_permuted(even: &[f32], odd: &[f32], out: &mut [f32]) -> usize {
    use core::arch::x86_64::{__m512, __m512i};
    let Some(simd) = pulp::x86::V4::try_new() else {
        return spread_pairs_avx2(even, odd, out);
    };
    // `odd`'s lanes are 16 on in the two-source permute's index.
    const INDICES: [[i32; 16]; 6] = {
        let mut indices = [[0; 16]; 6];
        let mut j = 0;
        while j < 96 {
            let (lane, from_odd) = spread_source(j);
            indices[j / 16][j % 16] = (lane + if from_odd { 16 } else { 0 }) as i32;
            j += 1;
        }
        indices
    };
    let blocks = (out.len() / 96).min(even.len() / 16).min(odd.len() / 16);
    simd.vectorize(
        #[inline(always)]
        || {
            let indices: [__m512i; 6] = INDICES.map(pulp::cast);
            for b in 0..blocks {
                let lanes = |values: &[f32]| -> __m512 {
                    let sixteen: [f32; 16] = values[16 * b..][..16].try_into().expect("16");
                    pulp::cast(sixteen)
                };
                let (e, o) = (lanes(even), lanes(odd));
                for (chunk, &index) in out[96 * b..][..96].chunks_exact_mut(16).zip(&indices) {
                    let spread: [f32; 16] =
                        pulp::cast(simd.avx512f._mm512_permutex2var_ps(e, index, o));
                    chunk.copy_from_slice(&spread);
                }
            }
        },
    );
    16 * blocks
}

/// [`spread_pairs_permuted`] with AVX2 (eight pairs at a time: each output vector permutes
/// both terms' vectors and blends them): how many pairs it did, 0 without AVX2.
#[cfg(target_arch = "x86_64")]
fn spread_pairs_avx2(even: &[f32], odd: &[f32], out: &mut [f32]) -> usize {
    use core::arch::x86_64::{__m256, __m256i};
    let Some(simd) = pulp::x86::V3::try_new() else {
        return 0;
    };
    // Each value's lane in both permutes, and the blend's mask: its sign bit picks `odd`.
    const INDICES: [[i32; 8]; 6] = {
        let mut indices = [[0; 8]; 6];
        let mut j = 0;
        while j < 48 {
            indices[j / 8][j % 8] = spread_source(j).0 as i32;
            j += 1;
        }
        indices
    };
    const FROM_ODD: [[f32; 8]; 6] = {
        let mut masks = [[0.0; 8]; 6];
        let mut j = 0;
        while j < 48 {
            masks[j / 8][j % 8] = if spread_source(j).1 { -1.0 } else { 0.0 };
            j += 1;
        }
        masks
    };
    let blocks = (out.len() / 48).min(even.len() / 8).min(odd.len() / 8);
    simd.vectorize(
        #[inline(always)]
        || {
            let indices: [__m256i; 6] = INDICES.map(pulp::cast);
            let masks: [__m256; 6] = FROM_ODD.map(pulp::cast);
            for b in 0..blocks {
                let lanes = |values: &[f32]| -> __m256 {
                    let eight: [f32; 8] = values[8 * b..][..8].try_into().expect("8");
                    pulp::cast(eight)
                };
                let (e, o) = (lanes(even), lanes(odd));
                let vectors = out[48 * b..][..48].chunks_exact_mut(8);
                for ((chunk, &index), &mask) in vectors.zip(&indices).zip(&masks) {
                    let from_even = simd.avx2._mm256_permutevar8x32_ps(e, index);
                    let from_odd = simd.avx2._mm256_permutevar8x32_ps(o, index);
                    let spread: [f32; 8] =
                        pulp::cast(simd.avx._mm256_blendv_ps(from_even, from_odd, mask));
                    chunk.copy_from_slice(&spread);
                }
            }
        },
    );
    8 * blocks
}

/// Without x86-64, the scalar loop does it all.
#[cfg(not(target_arch = "x86_64"))]
fn spread_pairs_permuted(_even: &[f32], _odd: &[f32], _out: &mut [f32]) -> usize {
    0
}

/// `clip((x + k plasma) max / (max + k), 0, 1)` of every value, compiled for the widest SIMD the
/// CPU has (the division stays a division: the package divides).
struct AddFog<'a> {
    planes: [&'a mut [f32]; 3],
    plasma: &'a [f64],
    side: usize,
    width: usize,
    unit: Unit,
    strength: f64,
    max: f64,
}

impl pulp::WithSimd for AddFog<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (w, unit, strength, max) = (self.width, self.unit, self.strength, self.max);
        let scale = max + strength;
        let mut row = vec![0.0; w];
        for plane in self.planes {
            for (y, values) in plane.chunks_exact_mut(w).enumerate() {
                let fog = &self.plasma[y * self.side..][..w];
                for ((out, &x), &f) in row.iter_mut().zip(values.iter()).zip(fog) {
                    *out = (unit.unit_lanes(x) + strength * f) * max / scale;
                }
                store_values(values, &row, Scale::Unit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_pairs_gives_each_pixel_its_term_three_times() {
        // Widths below, at and past the permuted blocks of 32 pixels, odd and even (on a CPU
        // without AVX-512 the scalar loop does all).
        for width in [1usize, 2, 7, 31, 32, 33, 64, 95, 224, 225] {
            let half = width.div_ceil(2);
            let even: Vec<f32> = (0..half).map(|i| i as f32 * 2.0).collect();
            let odd: Vec<f32> = (0..half).map(|i| i as f32 * 2.0 + 1.0).collect();
            let mut out = vec![-1.0f32; 3 * width];
            spread_pairs(&even, &odd, &mut out);
            let want: Vec<f32> = (0..3 * width).map(|j| (j / 3) as f32).collect();
            assert_eq!(out, want, "{width}");
            // The AVX2 form alone (taken where AVX-512 is missing), on the pairs it does.
            #[cfg(target_arch = "x86_64")]
            {
                let mut out = vec![-1.0f32; 3 * width];
                let done = spread_pairs_avx2(&even, &odd, &mut out);
                assert_eq!(out[..6 * done], want[..6 * done], "AVX2, {width}");
                assert!(out[6 * done..].iter().all(|&v| v == -1.0), "AVX2, {width}");
            }
        }
    }

    #[test]
    fn the_f32_bytes_are_the_divided_ones() {
        // Every value recomputed with the divisions (a bound of a whole level), and the usual
        // bound, both against the package's formula value by value.
        let (w, h, side) = (37, 41, 64);
        let plasma: Vec<f64> = (0..side * side)
            .map(|i| ((i * 7919) % 4099) as f64 / 31.0 - 50.0)
            .collect();
        let extremes = Extremes {
            min: -50.0,
            range: 4098.0 / 31.0,
        };
        // Each row's even and odd columns apart, as `RawPlasma::row` gives them.
        let columns = |y: usize, parity: usize| -> Vec<f64> {
            plasma[y * side..][..side]
                .iter()
                .copied()
                .skip(parity)
                .step_by(2)
                .collect()
        };
        let evens: Vec<Vec<f64>> = (0..side).map(|y| columns(y, 0)).collect();
        let odds: Vec<Vec<f64>> = (0..side).map(|y| columns(y, 1)).collect();
        let pixels: Vec<u8> = (0..3 * w * h).map(|i| (i * 37 % 256) as u8).collect();
        for (strength, brightest) in [(1.5, 255), (2.5, 200), (3.0, 17), (1.7, 254), (2.1, 131)] {
            let max = Unit::of_byte(brightest);
            let mut want = pixels.clone();
            for (i, byte) in want.iter_mut().enumerate() {
                let (y, x) = (i / (3 * w), i % (3 * w) / 3);
                let f = extremes.normalised(plasma[y * side + x]);
                let v = (f64::from(*byte) / 255.0 + strength * f) * max / (max + strength);
                *byte = rounded_unit_byte_lanes(v);
            }
            for near_half in [NEAR_HALF, 1.0] {
                let mut got = pixels.clone();
                pulp::Arch::new().dispatch(AddFogToBytes {
                    pixels: &mut got,
                    row: &|y| [&evens[y], &odds[y]],
                    extremes,
                    width: w,
                    strength,
                    max,
                    near_half,
                });
                assert_eq!(got, want, "{strength} {brightest} {near_half}");
            }
        }
    }
}
