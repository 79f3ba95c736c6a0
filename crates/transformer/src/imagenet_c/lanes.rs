//! Random fields in SIMD lanes: sixteen xoshiro256++ generators side by side, and normals from
//! them by Box-Muller, for the corruptions whose cost is drawing a value per pixel and channel
//! (`gaussian_noise`, `speckle_noise`, `impulse_noise`, `snow`, `spatter`, `elastic_transform`,
//! `fog`).
//!
//! One value at a time, a ziggurat normal costs ~2.3 ns here and a uniform ~1 ns: more than
//! the package's 20x allows for the whole corruption. Sixteen generators advance together in
//! two u64x8 (or four u64x4: two chains or more, which hide a step's latency; with eight,
//! uniforms were 10% slower), and the normals' logarithm, sine and cosine are f32 polynomials of
//! fused multiply-adds (written as `mul_add`, which every path computes fused: FMA instructions
//! in SIMD, `fmaf` in scalar code), multiplies, a division and a square root, which SIMD lanes
//! and scalar code compute alike (IEEE-754 rounds each of them exactly).
//! The values are therefore the same bits on every CPU and at every SIMD width; a test compares
//! the dispatched path with pulp's scalar one. f32 (16 lanes to a 512-bit vector) is twice as
//! fast as f64 and far finer than the 1/255 steps the noise ends in: each normal is within
//! ~1e-6 of the exact transform of its two uniforms, and |z| reaches 6.56.
//!
//! Sixteen is fixed, not the machine's width, so that the stream does not depend on it.

use rand::Rng;

/// Generators side by side.
pub(crate) const LANES: usize = 16;
/// Uniforms one step gives (one per generator).
pub(crate) const UNITS_PER_STEP: usize = LANES;
/// Normals one step gives (a Box-Muller pair per generator: 16 f32 lanes).
pub(crate) const NORMALS_PER_STEP: usize = 2 * LANES;

/// Sixteen xoshiro256++ states, as structure of arrays (`s[word][lane]`), so that one step is a
/// few instructions on whole vectors.
#[derive(Clone)]
pub(crate) struct Lanes {
    s: [[u64; LANES]; 4],
}

impl Lanes {
    /// Sixteen generators seeded with 64 values of `rng` (the corruption's noise stream). An
    /// all-zero state, the one xoshiro cannot leave, is replaced.
    pub(crate) fn seeded_from<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut s = [[0u64; LANES]; 4];
        for word in &mut s {
            for value in word.iter_mut() {
                *value = rng.next_u64();
            }
        }
        let zero: Vec<bool> = (0..LANES)
            .map(|lane| s.iter().all(|word| word[lane] == 0))
            .collect();
        for (value, zero) in s[0].iter_mut().zip(zero) {
            if zero {
                *value = 0x9e37_79b9_7f4a_7c15;
            }
        }
        Self { s }
    }

    /// Fills `out` (a multiple of [`UNITS_PER_STEP`] long) with uniforms in [0, 1): the top 52
    /// bits of each value over 2^52 (`rand` takes 53, which the exact conversion below cannot
    /// hold).
    pub(crate) fn fill_units(&mut self, out: &mut [f64]) {
        debug_assert_eq!(out.len() % UNITS_PER_STEP, 0);
        pulp::Arch::new().dispatch(FillUnits { lanes: self, out });
    }

    /// `low + range u` of each uniform `u` of [`Lanes::fill_units`], in the same loop.
    pub(crate) fn fill_scaled_units(&mut self, out: &mut [f64], low: f64, range: f64) {
        debug_assert_eq!(out.len() % UNITS_PER_STEP, 0);
        pulp::Arch::new().dispatch(FillScaledUnits {
            lanes: self,
            out,
            low,
            range,
        });
    }

    /// Fills `out` (a multiple of [`NORMALS_PER_STEP`] long) with standard normals: step k's
    /// generator j gives `r cos t` at 32k + j and `r sin t` at 32k + 16 + j.
    pub(crate) fn fill_normals(&mut self, out: &mut [f64]) {
        self.fill_scaled_normals(out, 0.0, 1.0);
    }

    /// [`Lanes::fill_normals`] as the f32 values they are (each f64 of `fill_normals` is one
    /// of these, exactly), computed as f32.
    pub(crate) fn fill_normals_f32(&mut self, out: &mut [f32]) {
        debug_assert_eq!(out.len() % NORMALS_PER_STEP, 0);
        // The steps of a batch first, then the normals of their bits, each dispatched on its
        // own: with both in one function, LLVM ran the generators one at a time in
        // general-purpose registers (measured: 180 us against 120 us for the normals of a
        // 224 x 224 image).
        let arch = pulp::Arch::new();
        let mut bits = [[0u64; LANES]; BATCH];
        for blocks in out.chunks_mut(BATCH * NORMALS_PER_STEP) {
            let steps = blocks.len() / NORMALS_PER_STEP;
            arch.dispatch(FillBits {
                state: &mut self.s,
                bits: &mut bits[..steps],
            });
            arch.dispatch(NormalsOfBits {
                bits: &bits[..steps],
                out: blocks,
            });
        }
    }

    /// [`Lanes::fill_normals`] as `loc + scale z`.
    pub(crate) fn fill_scaled_normals(&mut self, out: &mut [f64], loc: f64, scale: f64) {
        debug_assert_eq!(out.len() % NORMALS_PER_STEP, 0);
        let arch = pulp::Arch::new();
        let mut normals = [0f32; BATCH * NORMALS_PER_STEP];
        for blocks in out.chunks_mut(BATCH * NORMALS_PER_STEP) {
            let normals = &mut normals[..blocks.len()];
            self.fill_normals_f32(normals);
            arch.dispatch(ScaleNormals {
                normals,
                out: blocks,
                loc,
                scale,
            });
        }
    }
}

// Each loop sits in the `#[inline(always)]` `with_simd` of a small struct, with every helper
// `#[inline(always)]`, so that it is compiled for the width `dispatch` picks (see ops.rs).

struct FillUnits<'a> {
    lanes: &'a mut Lanes,
    out: &'a mut [f64],
}

impl pulp::WithSimd for FillUnits<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let mut state = self.lanes.s;
        for block in self.out.chunks_exact_mut(UNITS_PER_STEP) {
            let bits = step(&mut state);
            for (value, bits) in block.iter_mut().zip(bits) {
                *value = unit_of(bits);
            }
        }
        self.lanes.s = state;
    }
}

/// [`FillUnits`] scaled to `low + range u` in the same loop: a struct of its own, because one
/// loop for both cases (an addition of 0) cost impulse_noise 9%, and two loops in one
/// `with_simd` ran the generators out of registers.
struct FillScaledUnits<'a> {
    lanes: &'a mut Lanes,
    out: &'a mut [f64],
    low: f64,
    range: f64,
}

impl pulp::WithSimd for FillScaledUnits<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let mut state = self.lanes.s;
        // In locals: read through `self` in the loop, they can keep it scalar.
        let (low, range) = (self.low, self.range);
        for block in self.out.chunks_exact_mut(UNITS_PER_STEP) {
            let bits = step(&mut state);
            for (value, bits) in block.iter_mut().zip(bits) {
                *value = low + range * unit_of(bits);
            }
        }
        self.lanes.s = state;
    }
}

/// A uniform in [0, 1) from the top 52 of 64 bits.
#[inline(always)]
fn unit_of(bits: u64) -> f64 {
    int_to_f64(bits >> 12) * (1.0 / 4_503_599_627_370_496.0)
}

/// Steps per batch of [`Lanes::fill_normals_f32`]: 4 KiB of bits.
const BATCH: usize = 32;

/// `loc + scale z` of each normal z, in f64.
struct ScaleNormals<'a> {
    normals: &'a [f32],
    out: &'a mut [f64],
    loc: f64,
    scale: f64,
}

impl pulp::WithSimd for ScaleNormals<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (out, &z) in self.out.iter_mut().zip(self.normals) {
            *out = self.loc + self.scale * f64::from(z);
        }
    }
}

/// One step of the generators per entry of `bits`.
struct FillBits<'a> {
    state: &'a mut [[u64; LANES]; 4],
    bits: &'a mut [[u64; LANES]],
}

impl pulp::WithSimd for FillBits<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let mut state = *self.state;
        for bits in self.bits {
            let out = step(&mut state);
            for (to, value) in bits.iter_mut().zip(out) {
                *to = value;
            }
        }
        *self.state = state;
    }
}

/// The Box-Muller pairs of each step's bits, in [`Lanes::fill_normals`]'s layout.
struct NormalsOfBits<'a> {
    bits: &'a [[u64; LANES]],
    out: &'a mut [f32],
}

impl pulp::WithSimd for NormalsOfBits<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (block, bits) in self.out.chunks_exact_mut(NORMALS_PER_STEP).zip(self.bits) {
            let mut cosines = [0f32; LANES];
            let mut sines = [0f32; LANES];
            for j in 0..LANES {
                (cosines[j], sines[j]) = box_muller(bits[j]);
            }
            let (cos_out, sin_out) = block.split_at_mut(LANES);
            cos_out.copy_from_slice(&cosines);
            sin_out.copy_from_slice(&sines);
        }
    }
}

/// One xoshiro256++ step of every generator of `s` (a local copy of [`Lanes::s`], which the
/// loops keep in registers).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // index loops over whole arrays are what vectorizes
fn step(s: &mut [[u64; LANES]; 4]) -> [u64; LANES] {
    // Each operation a loop over whole local arrays, which LLVM compiles to vector
    // instructions: with `array::from_fn` closures, uniforms took twice the time.
    let [mut s0, mut s1, mut s2, mut s3] = *s;
    let mut out = [0u64; LANES];
    for i in 0..LANES {
        out[i] = s0[i]
            .wrapping_add(s3[i])
            .rotate_left(23)
            .wrapping_add(s0[i]);
    }
    let mut t = [0u64; LANES];
    for i in 0..LANES {
        t[i] = s1[i] << 17;
    }
    for i in 0..LANES {
        s2[i] ^= s0[i];
    }
    for i in 0..LANES {
        s3[i] ^= s1[i];
    }
    for i in 0..LANES {
        s1[i] ^= s2[i];
    }
    for i in 0..LANES {
        s0[i] ^= s3[i];
    }
    for i in 0..LANES {
        s2[i] ^= t[i];
    }
    for i in 0..LANES {
        s3[i] = s3[i].rotate_left(45);
    }
    *s = [s0, s1, s2, s3];
    out
}

/// `k` as an f64, exactly, for `k` < 2^52, by the bits of 2^52 + k (AVX2 has no conversion
/// from u64; `as f64` would leave the loop scalar there).
#[inline(always)]
fn int_to_f64(k: u64) -> f64 {
    f64::from_bits(0x4330_0000_0000_0000 | k) - 4_503_599_627_370_496.0
}

/// `k` as an f32, for `k` < 2^31 (a conversion from i32, which every SIMD width has).
#[inline(always)]
fn small_int_to_f32(k: u32) -> f32 {
    k as i32 as f32
}

/// Two standard normals from one 64-bit value: its high half gives u in (0, 1] (31 bits:
/// (m + 1) 2^-31, so |z| reaches 6.56), its low half the angle t = 2 pi v, v in [0, 1).
#[inline(always)]
fn box_muller(bits: u64) -> (f32, f32) {
    let u = (small_int_to_f32((bits >> 33) as u32) + 1.0) * (1.0 / 2_147_483_648.0);
    let r = (-2.0 * ln(u)).sqrt();
    let (cos, sin) = cos_sin_turn(bits as u32);
    (r * cos, r * sin)
}

/// ln x for x in (0, 1], a normal f32: x = m 2^e with m in [sqrt(1/2), sqrt(2)), and
/// ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.1716, by its series to s^7 (relative error
/// ~1e-7, the f32's own; the tests hold it against `f64::ln`).
#[inline(always)]
fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    // The mantissa as a number in [1, 2), and the exponent.
    let m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000);
    let e = small_int_to_f32(bits >> 23) - 127.0;
    let above = m > std::f32::consts::SQRT_2;
    let m = if above { m * 0.5 } else { m };
    let e = if above { e + 1.0 } else { e };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = s2.mul_add(s2.mul_add(s2.mul_add(1.0 / 7.0, 1.0 / 5.0), 1.0 / 3.0), 1.0);
    (2.0 * s).mul_add(series, e * std::f32::consts::LN_2)
}

/// (cos, sin) of 2 pi v, v = `k` / 2^32: the nearest quarter turn q from k's top bits, the
/// angle a in [-pi/4, pi/4) from there (measured in integers), Taylor series of a to a^8 and
/// a^7 (error below 4e-7), turned by q.
#[inline(always)]
fn cos_sin_turn(k: u32) -> (f32, f32) {
    const QUARTER_BITS: u32 = 30;
    let quadrant = k.wrapping_add(1 << (QUARTER_BITS - 1)) >> QUARTER_BITS;
    // k - q 2^30 as a signed offset in [-2^29, 2^29).
    let offset = k.wrapping_sub(quadrant << QUARTER_BITS) as i32;
    let a = offset as f32 * (std::f32::consts::FRAC_PI_2 / (1u32 << QUARTER_BITS) as f32);
    let a2 = a * a;
    let s = a * a2.mul_add(
        a2.mul_add(a2.mul_add(-1.0 / 5040.0, 1.0 / 120.0), -1.0 / 6.0),
        1.0,
    );
    let c = a2.mul_add(
        a2.mul_add(
            a2.mul_add(a2.mul_add(1.0 / 40320.0, -1.0 / 720.0), 1.0 / 24.0),
            -0.5,
        ),
        1.0,
    );
    // Turned by the quadrant: (c, s), (-s, c), (-c, -s), (s, -c).
    let swap = quadrant & 1 == 1;
    let (c, s) = if swap { (s, c) } else { (c, s) };
    let negate_cos = quadrant == 1 || quadrant == 2;
    let negate_sin = quadrant >= 2;
    (
        if negate_cos { -c } else { c },
        if negate_sin { -s } else { s },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulp::WithSimd;
    use rand::SeedableRng;

    fn lanes(seed: u64) -> Lanes {
        Lanes::seeded_from(&mut crate::NoiseRng::seed_from_u64(seed))
    }

    #[test]
    fn each_lane_is_xoshiro256_plus_plus() {
        // Lane i's state, given to rand's own xoshiro256++, gives lane i's values.
        let mut l = lanes(3);
        let mut reference: Vec<crate::NoiseRng> = (0..LANES)
            .map(|lane| {
                let mut seed = [0u8; 32];
                for word in 0..4 {
                    seed[8 * word..][..8].copy_from_slice(&l.s[word][lane].to_le_bytes());
                }
                crate::NoiseRng::from_seed(seed)
            })
            .collect();
        for _ in 0..100 {
            let values = step(&mut l.s);
            for (lane, rng) in reference.iter_mut().enumerate() {
                assert_eq!(values[lane], rng.next_u64());
            }
        }
    }

    #[test]
    fn ln_and_the_turns_sine_and_cosine_hold_to_the_library_functions() {
        let mut rng = crate::NoiseRng::seed_from_u64(11);
        let mut worst = (0.0f64, 0.0f64);
        for i in 0..200_000u64 {
            let bits = if i < 64 {
                // The ends: u near 0 and 1, angles on and beside the octant boundaries.
                (i << 58) | (i % 3)
            } else {
                rng.next_u64()
            };
            let u = ((bits >> 33) as f32 + 1.0) / 2_147_483_648.0;
            let got = f64::from(ln(u));
            let want = f64::from(u).ln();
            let error = if want == 0.0 {
                got.abs()
            } else {
                ((got - want) / want).abs()
            };
            worst.0 = worst.0.max(error);
            let turn = (bits as u32) as f64 / 4_294_967_296.0;
            let (c, s) = cos_sin_turn(bits as u32);
            let angle = 2.0 * std::f64::consts::PI * turn;
            let error = (f64::from(c) - angle.cos())
                .abs()
                .max((f64::from(s) - angle.sin()).abs());
            worst.1 = worst.1.max(error);
        }
        assert!(worst.0 < 1e-6, "ln's relative error {}", worst.0);
        assert!(worst.1 < 1e-6, "sin and cos error {}", worst.1);
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(cos_sin_turn(0), (1.0, 0.0));
        // The largest normal: u = 2^-31.
        let (c, _) = box_muller(0);
        assert!((f64::from(c) - (62.0 * std::f64::consts::LN_2).sqrt()).abs() < 1e-5);
    }

    #[test]
    fn the_dispatched_lanes_give_the_scalar_paths_bits() {
        let mut simd = lanes(5);
        let mut scalar = simd.clone();
        let mut a = vec![0.0; 64 * NORMALS_PER_STEP];
        let mut b = a.clone();
        simd.fill_normals(&mut a);
        let mut bits = [[0u64; LANES]; 64];
        FillBits {
            state: &mut scalar.s,
            bits: &mut bits,
        }
        .with_simd(pulp::Scalar::new());
        let mut normals = vec![0f32; 64 * NORMALS_PER_STEP];
        NormalsOfBits {
            bits: &bits,
            out: &mut normals,
        }
        .with_simd(pulp::Scalar::new());
        for (b, z) in b.iter_mut().zip(normals) {
            *b = f64::from(z);
        }
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let mut scaled_lanes = simd.clone();
        simd.fill_units(&mut a);
        FillUnits {
            lanes: &mut scalar,
            out: &mut b,
        }
        .with_simd(pulp::Scalar::new());
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!(a.iter().all(|u| (0.0..1.0).contains(u)));
        // Scaled in the same loop: `low + range u` of the same uniforms.
        let mut scaled = vec![0.0; a.len()];
        scaled_lanes.fill_scaled_units(&mut scaled, -3.0, 7.5);
        for (&s, &u) in scaled.iter().zip(&a) {
            assert_eq!(s.to_bits(), (-3.0 + 7.5 * u).to_bits());
        }
    }
}
