//! The building blocks of the ImageNet-C corruptions (`transforms/imagenet_c/`), each following
//! the library call `imagecorruptions` 1.1.2 makes, operation by operation, in f64 where it
//! computes in f64: scipy's Gaussian in its summation order, `ndimage.zoom` and
//! `map_coordinates`, skimage's HSV, OpenCV's disk kernel and `filter2D`, the package's own
//! motion blur. Several corruptions share each of them (and the weather corruptions will).
//!
//! Randomness comes through [`Draws`], in numpy's order and layout, so a test can feed a
//! corruption exactly the fields numpy drew and compare bit for bit; production draws come from
//! the sample's own generators through [`RngDraws`].

pub(crate) mod cubic;
pub(crate) mod disk;
pub(crate) mod gaussian;
pub(crate) mod hsv;
pub(crate) mod lanes;
pub(crate) mod motion;
pub(crate) mod opencv;
pub(crate) mod plasma;
pub(crate) mod resample;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use drift_core::ImageSize;

use rand::RngExt;
use rand_distr::{Distribution, Poisson};

use crate::PlanarImage;
use crate::registry::Params;

/// Where a corruption's random values come from, in the order and layout of numpy's legacy
/// `RandomState` (the global `np.random` the package draws from): a field is filled in C order,
/// so an H x W x 3 field varies the channel fastest, then the column, then the row.
pub trait Draws {
    /// `np.random.normal(loc, scale, size)`: `loc + scale z`, z standard normal.
    fn normal(&mut self, loc: f64, scale: f64, out: &mut [f64]);
    /// Standard normals as f32, where the generator makes them as f32 (ours, [`RngDraws`]):
    /// exactly the values `normal(0, 1, out)` would give at this place in the stream. `false`,
    /// drawing nothing, where it does not (numpy's are f64); a caller asks with an empty `out`.
    fn standard_normals_f32(&mut self, out: &mut [f32]) -> bool {
        let _ = out;
        false
    }
    /// [`Draws::normal`] of a `width x height` field of which only `rows x columns` is read:
    /// `out` gets that window, row by row. numpy draws the whole field, and so does a replay of
    /// its stream; a generator of its own may draw only the window's values (snow reads a
    /// sixteenth of its field).
    fn normal_window(
        &mut self,
        loc: f64,
        scale: f64,
        (width, height): (usize, usize),
        (rows, columns): (std::ops::Range<usize>, std::ops::Range<usize>),
        out: &mut [f64],
    ) {
        let mut field = vec![0.0; width * height];
        self.normal(loc, scale, &mut field);
        for (row, out) in field[rows.start * width..rows.end * width]
            .chunks_exact(width)
            .zip(out.chunks_exact_mut(columns.len()))
        {
            out.copy_from_slice(&row[columns.clone()]);
        }
    }
    /// `np.random.uniform(low, high, size)`: `low + (high - low) u`, u in [0, 1).
    fn uniform(&mut self, low: f64, high: f64, out: &mut [f64]);
    /// `np.random.randint(low, high, size)`: integers in [low, high).
    fn integers(&mut self, low: i64, high: i64, out: &mut [i64]);
    /// `np.random.poisson(lam)`, one count per value of `lam`.
    fn poisson(&mut self, lam: &[f64], out: &mut [f64]);
    /// `Generator.random(size)`: u in [0, 1) (what scikit-image's noise draws from).
    fn unit(&mut self, out: &mut [f64]);
    /// [`Draws::poisson`] at the rates `rates[k]` for each byte k of `bytes` (one of 256 rates
    /// per value, as an 8-bit image has): the same values, where a generator can prepare each
    /// rate once instead of finding it per value.
    fn poisson_of_bytes(&mut self, rates: &[f64; 256], bytes: &[u8], out: &mut [f64]) {
        let lam: Vec<f64> = bytes.iter().map(|&k| rates[usize::from(k)]).collect();
        self.poisson(&lam, out);
    }
    /// Each byte k of `bytes` (an image's values in numpy's order) replaced by `map(n)`, n
    /// the [`Draws::poisson_of_bytes`] draw at `rates[k]`: the same bytes as those draws,
    /// chunk by chunk, and `map`. `map` gives the same byte for every count from `saturate_at`
    /// on, which a generator may use to find most draws by counting the entries of a short
    /// table that a uniform passes.
    fn poisson_of_bytes_mapped(
        &mut self,
        rates: &[f64; 256],
        bytes: &mut [u8],
        saturate_at: usize,
        map: &dyn Fn(f64) -> u8,
    ) {
        let _ = saturate_at;
        poisson_bytes_by_draws(self, rates, bytes, map);
    }
}

/// [`Draws::poisson_of_bytes_mapped`] from whole draws: `poisson_of_bytes` a chunk at a time,
/// then `map`.
fn poisson_bytes_by_draws<D: Draws + ?Sized>(
    draws: &mut D,
    rates: &[f64; 256],
    bytes: &mut [u8],
    map: &dyn Fn(f64) -> u8,
) {
    let mut counts = [0.0; 3 * FIELD_CHUNK];
    for chunk in bytes.chunks_mut(3 * FIELD_CHUNK) {
        let counts = &mut counts[..chunk.len()];
        draws.poisson_of_bytes(rates, chunk, counts);
        for (byte, &n) in chunk.iter_mut().zip(counts.iter()) {
            *byte = map(n);
        }
    }
}

/// [`Draws`] from one of our generators (a sample's parameter or noise stream): the same
/// distributions as numpy's, not its values. Normal and uniform fields come from sixteen
/// generators in SIMD lanes seeded from it ([`lanes`]), the rest from it directly.
pub struct RngDraws<'a, R: rand::Rng + ?Sized> {
    rng: &'a mut R,
    /// Poisson samplers by rate, set up once per image (at most 256 rates for 8-bit input).
    poisson: HashMap<u64, PoissonSampler, BitsHash>,
    /// The samplers of the last 256 rates [`Draws::poisson_of_bytes`] was given, by byte.
    byte_samplers: Option<ByteSamplers>,
    /// The uniforms of a chunk of Poisson draws.
    poisson_units: Vec<f64>,
    /// The lanes, seeded from `rng` when a field first needs them.
    lanes: Option<lanes::Lanes>,
    /// The values of a step not yet handed out, so that a stream of draws does not depend on
    /// how the calls cut it.
    spare_normals: Spare<{ lanes::NORMALS_PER_STEP }>,
    spare_units: Spare<{ lanes::UNITS_PER_STEP }>,
}

impl<'a, R: rand::Rng + ?Sized> RngDraws<'a, R> {
    /// Draws from `rng`.
    pub fn new(rng: &'a mut R) -> Self {
        Self {
            rng,
            poisson: HashMap::default(),
            byte_samplers: None,
            poisson_units: Vec::new(),
            lanes: None,
            spare_normals: Spare::default(),
            spare_units: Spare::default(),
        }
    }

    fn lanes(&mut self) -> &mut lanes::Lanes {
        self.lanes
            .get_or_insert_with(|| lanes::Lanes::seeded_from(self.rng))
    }

    /// `a + b v` of each value `v` of a stream whose steps give `N` values: the spare values
    /// scaled here, whole steps by `fill_scaled` in the lanes' own loop (not in another pass),
    /// the rest from a spare step (`fill`).
    fn fill_affine<const N: usize>(
        &mut self,
        out: &mut [f64],
        (a, b): (f64, f64),
        spare: fn(&mut Self) -> &mut Spare<N>,
        fill_scaled: fn(&mut lanes::Lanes, &mut [f64], f64, f64),
        fill: fn(&mut lanes::Lanes, &mut [f64]),
    ) {
        let taken = spare(self).take(out);
        for value in &mut out[..taken] {
            *value = a + b * *value;
        }
        let out = &mut out[taken..];
        let whole = out.len() / N * N;
        let (steps, rest) = out.split_at_mut(whole);
        fill_scaled(self.lanes(), steps, a, b);
        if !rest.is_empty() {
            self.fill_in_steps(rest, spare, fill);
            for value in rest {
                *value = a + b * *value;
            }
        }
    }

    /// Fills `out` from a stream whose steps give `N` values each (`fill` makes whole steps).
    fn fill_in_steps<const N: usize>(
        &mut self,
        out: &mut [f64],
        spare: fn(&mut Self) -> &mut Spare<N>,
        fill: fn(&mut lanes::Lanes, &mut [f64]),
    ) {
        let taken = spare(self).take(out);
        let out = &mut out[taken..];
        let whole = out.len() / N * N;
        let (steps, rest) = out.split_at_mut(whole);
        fill(self.lanes(), steps);
        if !rest.is_empty() {
            let mut step = [0.0; N];
            fill(self.lanes(), &mut step);
            *spare(self) = Spare {
                values: step,
                next: 0,
            };
            spare(self).take(rest);
        }
    }
}

/// Values of one step of the lanes, handed out from `next`.
struct Spare<const N: usize> {
    values: [f64; N],
    next: usize,
}

impl<const N: usize> Default for Spare<N> {
    fn default() -> Self {
        Self {
            values: [0.0; N],
            next: N,
        }
    }
}

impl<const N: usize> Spare<N> {
    /// Moves as many spare values as fit to the start of `out`; returns how many.
    fn take(&mut self, out: &mut [f64]) -> usize {
        let count = (N - self.next).min(out.len());
        out[..count].copy_from_slice(&self.values[self.next..][..count]);
        self.next += count;
        count
    }
}

impl<R: rand::Rng + ?Sized> Draws for RngDraws<'_, R> {
    fn normal(&mut self, loc: f64, scale: f64, out: &mut [f64]) {
        self.fill_affine(
            out,
            (loc, scale),
            |d| &mut d.spare_normals,
            lanes::Lanes::fill_scaled_normals,
            lanes::Lanes::fill_normals,
        );
    }

    fn standard_normals_f32(&mut self, out: &mut [f32]) -> bool {
        let spare = &mut self.spare_normals;
        let taken = (spare.values.len() - spare.next).min(out.len());
        for (to, &z) in out.iter_mut().zip(&spare.values[spare.next..][..taken]) {
            *to = z as f32;
        }
        spare.next += taken;
        let out = &mut out[taken..];
        let whole = out.len() / lanes::NORMALS_PER_STEP * lanes::NORMALS_PER_STEP;
        let (steps, rest) = out.split_at_mut(whole);
        self.lanes().fill_normals_f32(steps);
        if !rest.is_empty() {
            let mut step = [0.0; lanes::NORMALS_PER_STEP];
            self.lanes().fill_normals(&mut step);
            self.spare_normals = Spare {
                values: step,
                next: 0,
            };
            let mut values = [0.0; lanes::NORMALS_PER_STEP];
            self.spare_normals.take(&mut values[..rest.len()]);
            for (to, z) in rest.iter_mut().zip(values) {
                *to = z as f32;
            }
        }
        true
    }

    /// Only the window's values: ours are not numpy's stream, and the rest would go unread.
    fn normal_window(
        &mut self,
        loc: f64,
        scale: f64,
        _shape: (usize, usize),
        _window: (std::ops::Range<usize>, std::ops::Range<usize>),
        out: &mut [f64],
    ) {
        self.normal(loc, scale, out);
    }

    fn uniform(&mut self, low: f64, high: f64, out: &mut [f64]) {
        self.fill_affine(
            out,
            (low, high - low),
            |d| &mut d.spare_units,
            lanes::Lanes::fill_scaled_units,
            lanes::Lanes::fill_units,
        );
    }

    fn integers(&mut self, low: i64, high: i64, out: &mut [i64]) {
        for value in out {
            *value = self.rng.random_range(low..high);
        }
    }

    fn poisson(&mut self, lam: &[f64], out: &mut [f64]) {
        let mut units = std::mem::take(&mut self.poisson_units);
        units.resize(out.len(), 0.0);
        self.unit(&mut units);
        for ((value, &lam), &u) in out.iter_mut().zip(lam).zip(&units) {
            let sampler = self
                .poisson
                .entry(lam.to_bits())
                .or_insert_with(|| PoissonSampler::new(lam));
            *value = sampler.sample(u, self.rng);
        }
        self.poisson_units = units;
    }

    fn poisson_of_bytes(&mut self, rates: &[f64; 256], bytes: &[u8], out: &mut [f64]) {
        self.prepare_byte_samplers(rates);
        let mut units = std::mem::take(&mut self.poisson_units);
        units.resize(out.len(), 0.0);
        self.unit(&mut units);
        let (_, samplers) = self.byte_samplers.as_ref().expect("set above");
        for ((value, &k), &u) in out.iter_mut().zip(bytes).zip(&units) {
            *value = samplers[usize::from(k)].sample(u, self.rng);
        }
        self.poisson_units = units;
    }

    fn poisson_of_bytes_mapped(
        &mut self,
        rates: &[f64; 256],
        bytes: &mut [u8],
        saturate_at: usize,
        map: &dyn Fn(f64) -> u8,
    ) {
        // Rows of 8, 16, 32 or 64 entries, enough to reach the saturation.
        let width = (saturate_at + 1).next_power_of_two().max(8);
        if width > 64 {
            poisson_bytes_by_draws(self, rates, bytes, map);
            return;
        }
        self.prepare_byte_samplers(rates);
        let (_, samplers) = self.byte_samplers.as_ref().expect("set above");
        let samplers = Arc::clone(samplers);
        let table = CountTable::new(&samplers, width, map);
        let mut units = std::mem::take(&mut self.poisson_units);
        for chunk in bytes.chunks_mut(3 * FIELD_CHUNK) {
            units.resize(chunk.len(), 0.0);
            self.unit(&mut units);
            pulp::Arch::new().dispatch(CountBytes {
                table: &table,
                chunk,
                units: &units,
                samplers: &samplers,
                rng: &mut *self.rng,
                map,
            });
        }
        self.poisson_units = units;
    }

    fn unit(&mut self, out: &mut [f64]) {
        self.fill_in_steps(out, |d| &mut d.spare_units, lanes::Lanes::fill_units);
    }
}

impl<R: rand::Rng + ?Sized> RngDraws<'_, R> {
    /// The samplers of `rates`, by byte, unless they are those of the last call.
    fn prepare_byte_samplers(&mut self, rates: &[f64; 256]) {
        let bits: [u64; 256] = std::array::from_fn(|k| rates[k].to_bits());
        if self.byte_samplers.as_ref().is_none_or(|(b, _)| *b != bits) {
            // Kept across images: the rates depend only on the level (a quarter of shot_noise's
            // time went to making them for each image).
            static KEPT: Kept<[u64; 256], [PoissonSampler]> = Mutex::new(Vec::new());
            let samplers = kept(&KEPT, bits, 4, || {
                rates.iter().map(|&r| PoissonSampler::new(r)).collect()
            });
            self.byte_samplers = Some((bits, samplers));
        }
    }
}

/// [`CountTable::apply`] compiled for the widest SIMD the CPU has (a count is a compare of a
/// row's vectors and a population count).
struct CountBytes<'a, R: ?Sized> {
    table: &'a CountTable,
    chunk: &'a mut [u8],
    units: &'a [f64],
    samplers: &'a [PoissonSampler],
    rng: &'a mut R,
    map: &'a dyn Fn(f64) -> u8,
}

impl<R: rand::Rng + ?Sized> pulp::WithSimd for CountBytes<'_, R> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Self {
            table,
            chunk,
            units,
            samplers,
            rng,
            map,
        } = self;
        match table.width {
            8 => table.apply::<S, 8, R>(simd, chunk, units, samplers, rng, map),
            16 => table.apply::<S, 16, R>(simd, chunk, units, samplers, rng, map),
            32 => table.apply::<S, 32, R>(simd, chunk, units, samplers, rng, map),
            _ => table.apply::<S, 64, R>(simd, chunk, units, samplers, rng, map),
        }
    }
}

/// How many lanes of `mask` are true: a bit each where masks are bits (AVX-512; a scalar
/// `bool` is one byte too), all of a lane's bits where they are lanes (AVX2, NEON).
#[inline(always)]
fn passed<S: pulp::Simd>(_simd: S, mask: S::m64s) -> u32 {
    if const { std::mem::size_of::<S::m64s>() == 1 } {
        bytemuck::cast::<S::m64s, u8>(mask).count_ones()
    } else if const { std::mem::size_of::<S::m64s>() == std::mem::size_of::<S::u64s>() } {
        let lanes: S::u64s = bytemuck::cast(mask);
        bytemuck::cast_slice::<S::u64s, u64>(std::slice::from_ref(&lanes))
            .iter()
            .map(|&lane| u32::from(lane != 0))
            .sum()
    } else {
        unreachable!("pulp's masks are bits or lanes")
    }
}

/// The inversion tables of 256 byte samplers cut to `width` entries, for
/// [`Draws::poisson_of_bytes_mapped`]: a table sampler's draw from u is the count of its table's
/// entries at most u, up to its last entry ([`PoissonSampler::sample`]); counted over the first
/// `width` entries only (the rest padded with infinities), it is the same below `width`, and
/// at `width` (every entry counted) the draw is at least `width`, past the saturation, whose
/// byte the table holds.
struct CountTable {
    /// Per byte, `width` entries.
    entries: Vec<f64>,
    /// Per byte, `width + 1` bytes: `map(min(count, len - 1))`.
    bytes: Vec<u8>,
    /// Bytes whose sampler is not a table (rejection), drawn one by one.
    rejection: [bool; 256],
    width: usize,
}

impl CountTable {
    fn new(samplers: &[PoissonSampler], width: usize, map: &dyn Fn(f64) -> u8) -> Self {
        let mut entries = vec![f64::INFINITY; 256 * width];
        let mut bytes = vec![0u8; 256 * (width + 1)];
        let mut rejection = [false; 256];
        for (k, sampler) in samplers.iter().enumerate() {
            // The last count a draw can give (the table's last entry; 0 for no rate).
            let last = match sampler {
                PoissonSampler::Zero => 0,
                PoissonSampler::Rejection(_) => {
                    rejection[k] = true;
                    0
                }
                PoissonSampler::Table { cdf, len, .. } => {
                    let row = &mut entries[k * width..][..width];
                    let kept = (*len).min(width);
                    row[..kept].copy_from_slice(&cdf[..kept]);
                    len - 1
                }
            };
            for (count, byte) in bytes[k * (width + 1)..][..width + 1].iter_mut().enumerate() {
                *byte = map(count.min(last) as f64);
            }
        }
        Self {
            entries,
            bytes,
            rejection,
            width,
        }
    }

    /// Each byte of `chunk` replaced by its draw's byte, from the uniforms `units` (one per
    /// byte), rejection draws from `rng` in order.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn apply<S: pulp::Simd, const W: usize, R: rand::Rng + ?Sized>(
        &self,
        simd: S,
        chunk: &mut [u8],
        units: &[f64],
        samplers: &[PoissonSampler],
        rng: &mut R,
        map: &dyn Fn(f64) -> u8,
    ) {
        debug_assert_eq!(W, self.width);
        let entries = self.entries.as_chunks::<W>().0;
        for (byte, &u) in chunk.iter_mut().zip(units) {
            let k = usize::from(*byte);
            *byte = if self.rejection[k] {
                map(samplers[k].sample(u, rng))
            } else {
                // The compares a vector at a time, their masks counted (as loops of scalar
                // compares, LLVM extracted and added a bit at a time).
                let (rows, _) = S::as_simd_f64s(&entries[k]);
                let u = simd.splat_f64s(u);
                let count: u32 = rows
                    .iter()
                    .map(|&row| passed(simd, simd.less_than_or_equal_f64s(row, u)))
                    .sum();
                self.bytes[k * (W + 1) + count as usize]
            };
        }
    }
}

/// The samplers of 256 rates, by byte, and the rates' bits.
type ByteSamplers = ([u64; 256], Arc<[PoissonSampler]>);

/// Poisson draws at one rate: by inversion of its cumulative table below a rate of 12 (one
/// uniform per draw, where multiplying uniforms takes about rate + 1 of them), by rand_distr's
/// rejection sampler above. Every draw is handed one uniform, which only the table uses, so
/// that a field of draws takes one uniform per value whatever its rates.
enum PoissonSampler {
    /// Always 0 (rate 0, or not a rate).
    Zero,
    /// `cdf[k]` = P(X <= k), up to where it reaches 1 in f64 (`len` entries), then one
    /// infinity, which stops every walk; `guide[g]` is the first k with `cdf[k] > g / GUIDE`,
    /// where the walk for a u in [g / GUIDE, (g + 1) / GUIDE) starts (at most a step or two
    /// short of its end).
    Table {
        cdf: Vec<f64>,
        len: usize,
        guide: [u8; PoissonSampler::GUIDE],
    },
    Rejection(Poisson<f64>),
}

impl PoissonSampler {
    const TABLE_BELOW: f64 = 12.0;
    /// Cells of the guide table (a power of two, so that g / GUIDE is exact).
    const GUIDE: usize = 256;

    fn new(lam: f64) -> Self {
        if lam.is_nan() || lam <= 0.0 || lam.is_infinite() {
            return Self::Zero;
        }
        if lam >= Self::TABLE_BELOW {
            return Poisson::new(lam).map_or(Self::Zero, Self::Rejection);
        }
        let mut cdf = Vec::new();
        let (mut p, mut total) = ((-lam).exp(), 0.0);
        for k in 1..200 {
            total += p;
            cdf.push(total);
            if total >= 1.0 - 1e-15 {
                break;
            }
            p *= lam / f64::from(k);
        }
        let len = cdf.len();
        cdf.push(f64::INFINITY);
        let mut guide = [0u8; Self::GUIDE];
        let mut k = 0;
        for (g, start) in guide.iter_mut().enumerate() {
            let floor = g as f64 / Self::GUIDE as f64;
            while cdf[k] <= floor {
                k += 1;
            }
            *start = k as u8;
        }
        Self::Table { cdf, len, guide }
    }

    /// The first k from `start` on with u < cdf[k]: two steps without a branch (a guide cell
    /// rarely holds more than two entries), then a walk that almost never runs (a walk alone
    /// mispredicts its end once a draw or so).
    #[inline(always)]
    fn walk(cdf: &[f64], start: u8, u: f64) -> usize {
        let mut k = usize::from(start);
        k += usize::from(cdf[k] <= u);
        k += usize::from(cdf[k] <= u);
        while cdf[k] <= u {
            k += 1;
        }
        k
    }

    /// A draw from the uniform `u` in [0, 1) (the table) or from `rng` (the rejection sampler).
    #[inline(always)]
    fn sample<R: rand::Rng + ?Sized>(&self, u: f64, rng: &mut R) -> f64 {
        match self {
            Self::Zero => 0.0,
            Self::Rejection(poisson) => poisson.sample(rng),
            Self::Table { cdf, len, guide } => {
                // The first k with u < cdf[k] (the count of entries at most u: the table
                // rises), walked to from the guide. The last entry is within 1e-15 of 1: a
                // draw beyond it is counted there.
                let start = guide[(u * Self::GUIDE as f64) as usize];
                Self::walk(cdf, start, u).min(len - 1) as f64
            }
        }
    }
}

/// Values kept by key, oldest first.
pub(crate) type Kept<K, V> = Mutex<Vec<(K, Arc<V>)>>;

/// The value kept under `key`, or `make()`'s, then kept (the oldest dropped past `capacity`).
/// The lock is not held while making: two threads may make the same value, and one is kept.
pub(crate) fn kept<K: PartialEq + Copy, V: ?Sized>(
    list: &Kept<K, V>,
    key: K,
    capacity: usize,
    make: impl FnOnce() -> Arc<V>,
) -> Arc<V> {
    let lookup = |list: &Vec<(K, Arc<V>)>| {
        list.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| Arc::clone(v))
    };
    // A panic elsewhere while holding the lock leaves a usable list: entries are whole.
    if let Some(found) = lookup(&list.lock().unwrap_or_else(|e| e.into_inner())) {
        return found;
    }
    let made = make();
    let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
    if lookup(&list).is_none() {
        if list.len() == capacity {
            list.remove(0);
        }
        list.push((key, Arc::clone(&made)));
    }
    made
}

/// Hashes an f64's bits with one multiplication (the default SipHash costs more than the
/// Poisson draw it looks up).
#[derive(Default)]
struct BitsHasher(u64);

impl std::hash::Hasher for BitsHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (value ^ (value >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type BitsHash = std::hash::BuildHasherDefault<BitsHasher>;

/// One value of `np.random.uniform(low, high)`.
pub(crate) fn uniform_one(draws: &mut dyn Draws, low: f64, high: f64) -> f64 {
    let mut out = [0.0];
    draws.uniform(low, high, &mut out);
    out[0]
}

/// An ImageNet-C corruption: its per-image parameters (interpolated from the severity table and
/// drawn, as the package draws them, in its order) and the corruption itself. Every corruption
/// is also a [`crate::Transform`]; this is the seam through which a test injects numpy's draws.
pub trait Corruption: Sync + 'static {
    /// The registry's name: `imagenet_c:` and the function's name in `imagecorruptions`.
    fn name(&self) -> &'static str;
    /// What the level controls and what is drawn per image.
    fn description(&self) -> &'static str;
    /// The parameters logged per sample.
    fn columns(&self) -> &'static [crate::ParamColumn];
    /// What differs from the package, beyond what every corruption shares (our generator's
    /// values, rounding once at the end of the chain), for the README's catalog.
    fn differences(&self) -> &'static str;
    /// How far from the package the golden test holds it, in words.
    fn parity(&self) -> &'static str;
    /// The parameters at `level` in (0, 1] for an image of `size`: the severity row at s = 5
    /// level and the per-image scalars the package draws before its fields.
    fn params(&self, level: f64, size: ImageSize, draws: &mut dyn Draws) -> Params;
    /// Corrupts `image` with `params`, drawing its random fields from `draws`.
    fn corrupt(&self, params: &Params, image: &mut PlanarImage, draws: &mut dyn Draws);
    /// Corrupts 8-bit pixels directly, where the corruption has such a path (the chain takes
    /// it when the corruption is its last transform): returns true, leaving the bytes that
    /// [`Corruption::corrupt`] on `PlanarImage::from_rgb8(image)` and then `to_rgb8` would
    /// give, bit for bit; returns false, touching nothing, where it has none.
    fn corrupt_rgb8(
        &self,
        _params: &Params,
        _image: &mut drift_core::RgbImage8,
        _draws: &mut dyn Draws,
    ) -> bool {
        false
    }
}

/// `v.floor()` for |v| < 2^52 without a library call (baseline x86-64 has no rounding
/// instruction, so `f64::floor` is a call to libm in every hot loop).
#[inline(always)]
pub(crate) fn floor_fast(v: f64) -> f64 {
    let truncated = v as i64 as f64;
    if truncated > v {
        truncated - 1.0
    } else {
        truncated
    }
}

/// `k / 255` in f64 for every byte k (a division per value costs more than the lookup).
const UNIT: [f64; 256] = {
    let mut table = [0.0; 256];
    let mut k = 0;
    while k < 256 {
        table[k] = k as f64 / 255.0;
        k += 1;
    }
    table
};

/// How the package sees a value of an image, in f64: for an image still holding bytes (fresh
/// from `PlanarImage::from_rgb8`, as the package's input always is) the exact `k / 255` it
/// computes; otherwise the value widened. Widening the f32 `k / 255` instead would be ~1e-8
/// off, enough to flip the truncations some corruptions make.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unit {
    bytes: bool,
}

impl Unit {
    /// The reading of `image`'s values (decided before anything changes them).
    pub(crate) fn of(image: &PlanarImage) -> Self {
        Self {
            bytes: image.holds_bytes(),
        }
    }

    /// Whether the image holds bytes: each value is then a function of its byte alone, and a
    /// per-value corruption can be a table of 256.
    pub(crate) fn holds_bytes(self) -> bool {
        self.bytes
    }

    /// The byte of a value of an image that holds bytes, and its `k / 255` in f64.
    #[inline(always)]
    pub(crate) fn byte_and_unit(x: f32) -> (usize, f64) {
        let k = byte(x);
        (k, UNIT[k])
    }

    /// The byte of a value of an image that holds bytes.
    #[inline(always)]
    pub(crate) fn byte_of(x: f32) -> u8 {
        byte(x) as u8
    }

    /// `k / 255` in f64 for byte `k`.
    pub(crate) fn of_byte(k: usize) -> f64 {
        UNIT[k]
    }

    /// `k / 255` in f64, or `x` widened.
    #[inline(always)]
    pub(crate) fn unit(self, x: f32) -> f64 {
        if self.bytes {
            UNIT[byte(x)]
        } else {
            f64::from(x)
        }
    }

    /// [`Unit::unit`] computed instead of looked up (`k / 255` by a division), for SIMD lanes,
    /// where a table lookup is a gather: the same value.
    #[inline(always)]
    pub(crate) fn unit_lanes(self, x: f32) -> f64 {
        if self.bytes {
            byte(x) as f64 / 255.0
        } else {
            f64::from(x)
        }
    }

    /// The 8-bit scale: `k`, or `255 x`.
    #[inline(always)]
    pub(crate) fn byte(self, x: f32) -> f64 {
        if self.bytes {
            byte(x) as f64
        } else {
            f64::from(x) * 255.0
        }
    }
}

/// The byte k whose `k / 255` (as `from_rgb8` computes it) is `x`: `255 x` is within 1e-5 of
/// k, and adding 2^23 rounds it to k in the float's low mantissa bits (a saturating `as u8`
/// costs several times more and keeps loops scalar).
#[inline(always)]
fn byte(x: f32) -> usize {
    ((x * 255.0 + 8_388_608.0).to_bits() & 0xFF) as usize
}

/// [`Unit::unit`] of every value of the planes.
pub(crate) fn unit_values(image: &PlanarImage) -> Vec<f64> {
    let unit = Unit::of(image);
    image.data().iter().map(|&x| unit.unit(x)).collect()
}

/// Pixels per chunk of a field drawn and applied in pieces (a few KiB of draws at a time
/// instead of a field the size of the image).
pub(crate) const FIELD_CHUNK: usize = 1024;

/// Adds a field drawn in numpy's order (pixel-major, channel fastest) to the image, a chunk at
/// a time: `draw` fills 3 values per pixel of a chunk, `combine(x, z)` makes each value from
/// [`unit`] of the pixel's value and its draw; the result is clipped to [0, 1].
pub(crate) fn apply_field(
    image: &mut PlanarImage,
    mut draw: impl FnMut(&mut [f64], std::ops::Range<usize>),
    combine: impl Fn(f64, f64) -> f64,
) {
    let n = image.size().pixel_count();
    let unit = Unit::of(image);
    let data = image.data_mut();
    let mut field = [0.0; 3 * FIELD_CHUNK];
    let mut combined = [0.0; FIELD_CHUNK];
    let mut start = 0;
    while start < n {
        let len = FIELD_CHUNK.min(n - start);
        let chunk = &mut field[..3 * len];
        draw(chunk, start..start + len);
        for channel in 0..3 {
            let plane = &mut data[channel * n + start..][..len];
            let draws = chunk[channel..].iter().step_by(3);
            for ((c, &x), &z) in combined.iter_mut().zip(plane.iter()).zip(draws) {
                *c = combine(unit.unit(x), z);
            }
            store_values(plane, &combined[..len], Scale::Unit);
        }
        start += len;
    }
}

/// [`apply_field`] on 8-bit pixels, whose interleaved layout is numpy's field order (pixel
/// after pixel, channel fastest): the same draws, and the bytes `to_rgb8` makes of
/// `apply_field`'s values on `PlanarImage::from_rgb8(image)`, without the planes. `draw` fills
/// a chunk's field and sees the chunk's bytes as they are.
pub(crate) fn apply_field_rgb8(
    image: &mut drift_core::RgbImage8,
    mut draw: impl FnMut(&mut [f64], &[u8]),
    combine: impl Fn(f64, f64) -> f64,
) {
    let mut field = [0.0; 3 * FIELD_CHUNK];
    for bytes in image.pixels_mut().chunks_mut(3 * FIELD_CHUNK) {
        let field = &mut field[..bytes.len()];
        draw(field, bytes);
        pulp::Arch::new().dispatch(CombineBytes {
            bytes,
            field,
            combine: &combine,
        });
    }
}

/// [`apply_field_rgb8`] of a field `normal(0, sigma)` from a generator whose normals are f32
/// ([`Draws::standard_normals_f32`]), mostly in f32: `perturbed(k, sz)` is the result in byte
/// units from byte `k` and the f32 draw `sz = sigma z`, and its rounding is the byte wherever
/// it lies farther from a rounding edge (a half) than its error bound; elsewhere (about one
/// value in ten thousand) `combine(k / 255, 0 + sigma z)` in f64, the value the planar path
/// computes, gives the byte. The bytes are those of [`apply_field_rgb8`] with `normal(0, sigma)`
/// (a test holds them to it), at half the cost: f32 lanes are twice as many, and no division.
/// `perturbed` may round each of its operations once, at most three in all. `false`, touching
/// nothing, where the generator has no f32 normals.
pub(crate) fn apply_normals_rgb8(
    image: &mut drift_core::RgbImage8,
    draws: &mut dyn Draws,
    sigma: f64,
    perturbed: impl Fn(f32, f32) -> f32,
    combine: impl Fn(f64, f64) -> f64,
) -> bool {
    if !draws.standard_normals_f32(&mut []) {
        return false;
    }
    let mut field = [0.0f32; 3 * FIELD_CHUNK];
    for bytes in image.pixels_mut().chunks_mut(3 * FIELD_CHUNK) {
        let field = &mut field[..bytes.len()];
        draws.standard_normals_f32(field);
        pulp::Arch::new().dispatch(CombineNormalBytes {
            bytes,
            field,
            sigma,
            perturbed: &perturbed,
            combine: &combine,
        });
    }
    true
}

struct CombineNormalBytes<'a, P, C> {
    bytes: &'a mut [u8],
    field: &'a [f32],
    sigma: f64,
    perturbed: &'a P,
    combine: &'a C,
}

impl<P: Fn(f32, f32) -> f32, C: Fn(f64, f64) -> f64> pulp::WithSimd
    for CombineNormalBytes<'_, P, C>
{
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        const BLOCK: usize = 64;
        // The f32 result is within (|t| + |t - k|) 2^-22 of the f64 one: sigma's f32, the draw's
        // product and `perturbed`'s three roundings are each within 2^-24 of the perturbation
        // or of the result, and the f64 path's own errors are some 2^29 times smaller. Doubled.
        const ERROR: f32 = 1.0 / 2_097_152.0;
        let sigma32 = self.sigma as f32;
        let edge = |t: f32, k: f32| 0.5 - (t.abs() + (t - k).abs()) * ERROR;
        // The byte of each value, and the count of values within their bound of a half.
        let round = |bytes: &mut [u8], field: &[f32]| -> u32 {
            let mut near = 0u32;
            for (byte, &z) in bytes.iter_mut().zip(field) {
                let k = f32::from(*byte);
                let t = (self.perturbed)(k, sigma32 * z);
                // The edges of the clamp are no rounding edges.
                let (rounded, is_near) = rounded_level(t, edge(t, k));
                *byte = rounded;
                near += u32::from(is_near);
            }
            near
        };
        let mut kept = [0u8; BLOCK];
        for (bytes, field) in self.bytes.chunks_mut(BLOCK).zip(self.field.chunks(BLOCK)) {
            kept[..bytes.len()].copy_from_slice(bytes);
            // Whole blocks as arrays, whose loop LLVM vectorizes without a remainder.
            let near = match (
                <&mut [u8; BLOCK]>::try_from(&mut *bytes),
                <&[f32; BLOCK]>::try_from(field),
            ) {
                (Ok(bytes), Ok(field)) => round(bytes, field),
                _ => round(bytes, field),
            };
            if near > 0 {
                for (i, byte) in bytes.iter_mut().enumerate() {
                    let k = f32::from(kept[i]);
                    let t = (self.perturbed)(k, sigma32 * field[i]);
                    let clamped = t.clamp(0.0, 255.0);
                    if (clamped - clamped.round()).abs() > edge(t, k) {
                        let x = f64::from(kept[i]) / 255.0;
                        let z = 0.0 + self.sigma * f64::from(field[i]);
                        *byte = rounded_unit_byte_lanes((self.combine)(x, z));
                    }
                }
            }
        }
    }
}

struct CombineBytes<'a, F> {
    bytes: &'a mut [u8],
    field: &'a [f64],
    combine: &'a F,
}

impl<F: Fn(f64, f64) -> f64> pulp::WithSimd for CombineBytes<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (byte, &z) in self.bytes.iter_mut().zip(self.field) {
            // `k / 255` computed, not looked up: the same value, and no gather in the lanes.
            let x = f64::from(*byte) / 255.0;
            *byte = rounded_unit_byte_lanes((self.combine)(x, z));
        }
    }
}

/// A buffer of `len` f64s kept per thread in `slot` (a `thread_local!` of the caller's), holding
/// whatever the last user left; hand it back with [`keep_scratch`]. A fresh buffer of a
/// plane's size is a mapping that glibc returns after each image and faults in again for the
/// next, which costs more than the work that fills it (docs/MEASUREMENTS.md, 2026-12-07 third).
/// Taken, not borrowed, so that the caller's loops stay in its own (SIMD-compiled) function.
pub(crate) fn take_scratch<T: Copy + Default>(slot: &'static ScratchSlot<T>, len: usize) -> Vec<T> {
    let mut buffer = slot.with(|kept| std::mem::take(&mut *kept.borrow_mut()));
    buffer.resize(len, T::default());
    buffer
}

/// Gives a buffer from [`take_scratch`] back to its slot, unless it is larger than
/// [`KEEP_AT_MOST`]: one large image must not leave a thread holding its buffers for good.
pub(crate) fn keep_scratch<T>(slot: &'static ScratchSlot<T>, buffer: Vec<T>) {
    if buffer.capacity() * std::mem::size_of::<T>() <= KEEP_AT_MOST {
        slot.with(|kept| *kept.borrow_mut() = buffer);
    }
}

/// The largest buffer a thread keeps, in bytes: a plane of f64 of about 2000 x 2000 (fog's map
/// of a 2048-pixel image is exactly this), beyond what page faults cost next to the work.
const KEEP_AT_MOST: usize = 32 << 20;

/// Where a thread keeps a scratch buffer.
pub(crate) type ScratchSlot<T> = std::thread::LocalKey<std::cell::RefCell<Vec<T>>>;

/// A seeded stream of pseudo-random words for tests' inputs (Knuth's 64-bit LCG: each call
/// returns the next state; its high bits are the random ones).
#[cfg(test)]
pub(crate) fn test_words(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed
    }
}

/// [`test_words`] as values in [0, 1): each word's top 53 bits.
#[cfg(test)]
pub(crate) fn test_units(seed: u64) -> impl FnMut() -> f64 {
    let mut words = test_words(seed);
    move || (words() >> 11) as f64 / (1u64 << 53) as f64
}

/// `level` (in levels) clamped to [0, 255] and rounded to the nearest whole level, as a byte,
/// and whether it lies farther than `edge` from that level (so within `0.5 - edge` of a half:
/// near enough to a rounding edge that the caller computes it again). Adding 2^23 rounds the
/// clamped level to the nearest integer, held in the low mantissa bits; a half rounds to even
/// there, but a half is near for any `edge` below 0.5. Selects and float operations only, which
/// SIMD lanes have.
#[inline(always)]
pub(crate) fn rounded_level(level: f32, edge: f32) -> (u8, bool) {
    const TWO_23: f32 = 8_388_608.0;
    let clamped = if level > 0.0 { level } else { 0.0 };
    let clamped = if clamped < 255.0 { clamped } else { 255.0 };
    let big = clamped + TWO_23;
    (big.to_bits() as u8, (clamped - (big - TWO_23)).abs() > edge)
}

/// The places of the bytes set in `flags` (0 or 1 each), eight flags a word: most are 0. Whole
/// words are read as they lie (a copy of each into a word was a `memcpy` call per eight flags);
/// only the last, short one is copied.
pub(crate) fn set_places(flags: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let words = flags.chunks_exact(8);
    let tail = words.remainder();
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    let words = words.map(|eight| u64::from_le_bytes(eight.try_into().expect("eight bytes")));
    words
        .chain(std::iter::once(u64::from_le_bytes(last)))
        .enumerate()
        .filter(|&(_, word)| word != 0)
        .flat_map(|(c, mut word)| {
            std::iter::from_fn(move || {
                (word != 0).then(|| {
                    let place = c * 8 + word.trailing_zeros() as usize / 8;
                    word &= word - 1;
                    place
                })
            })
        })
}

/// Runs `f` inside a `with_simd` of the width `pulp` picks at run time, so that the loops of a
/// small closure called once are compiled for that width. Mark the closure
/// `#[inline(always)]` (`cargo xtask tidy` checks): one LLVM does not inline there is compiled
/// for SSE2 (a `{{closure}}` symbol of its own in a profile); and a library function it calls
/// that is not inlined (an iterator's `fold`) is too. A struct implementing `pulp::WithSimd`
/// with `pulp`'s vector operations is the sure way.
#[inline(always)]
pub(crate) fn in_lanes<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(InLanes(f))
}

struct InLanes<F>(F);

impl<R, F: FnOnce() -> R> pulp::WithSimd for InLanes<F> {
    type Output = R;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> R {
        (self.0)()
    }
}

/// Filters each plane's values (in `scale`'s units: `k / 255` or `k` for an image holding
/// bytes) in place with `filter`, and stores them clipped, one plane at a time (a buffer of one
/// plane, not of the image).
pub(crate) fn filter_planes(image: &mut PlanarImage, scale: Scale, filter: impl FnMut(&mut [f64])) {
    filter_planes_between(image, (scale, scale), filter);
}

/// [`filter_planes`] with a filter that reads values in `read`'s units and writes them in
/// `write`'s.
pub(crate) fn filter_planes_between(
    image: &mut PlanarImage,
    (read, write): (Scale, Scale),
    mut filter: impl FnMut(&mut [f64]),
) {
    thread_local! {
        static VALUES: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let unit = Unit::of(image);
    let mut values = take_scratch(&VALUES, image.size().pixel_count());
    for plane in image.planes_mut() {
        for (v, &x) in values.iter_mut().zip(plane.iter()) {
            *v = match read {
                Scale::Unit => unit.unit(x),
                Scale::Bytes => unit.byte(x),
            };
        }
        filter(&mut values);
        store_values(plane, &values, write);
    }
    keep_scratch(&VALUES, values);
}

/// [`filter_planes`] on 8-bit pixels: each channel's values read as `filter_planes` reads
/// those of `PlanarImage::from_rgb8(image)`, filtered, and written back as the bytes
/// `to_rgb8` makes of what it stores, without the planes.
pub(crate) fn filter_planes_rgb8(
    image: &mut drift_core::RgbImage8,
    scale: Scale,
    mut filter: impl FnMut(&mut [f64]),
) {
    thread_local! {
        static VALUES: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut values = take_scratch(&VALUES, image.size().pixel_count());
    let pixels = image.pixels_mut();
    for channel in 0..3 {
        pulp::Arch::new().dispatch(ChannelValues {
            pixels,
            channel,
            scale,
            values: &mut values,
            read: true,
        });
        filter(&mut values);
        pulp::Arch::new().dispatch(ChannelValues {
            pixels,
            channel,
            scale,
            values: &mut values,
            read: false,
        });
    }
    keep_scratch(&VALUES, values);
}

/// One channel of interleaved bytes read into values in `scale`'s units (`k / 255`, computed
/// as `Unit::unit_lanes` computes it, or `k`), or values written back as bytes.
struct ChannelValues<'a> {
    pixels: &'a mut [u8],
    channel: usize,
    scale: Scale,
    values: &'a mut [f64],
    read: bool,
}

impl pulp::WithSimd for ChannelValues<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let bytes = self.pixels.iter_mut().skip(self.channel).step_by(3);
        match (self.read, self.scale) {
            (true, Scale::Unit) => {
                for (v, b) in self.values.iter_mut().zip(bytes) {
                    *v = f64::from(*b) / 255.0;
                }
            }
            (true, Scale::Bytes) => {
                for (v, b) in self.values.iter_mut().zip(bytes) {
                    *v = f64::from(*b);
                }
            }
            (false, scale) => {
                for (&v, b) in self.values.iter().zip(bytes) {
                    *b = rounded_unit_byte_lanes(scale.to_unit(v));
                }
            }
        }
    }
}

/// The byte the chain ends with for a value `v` in `scale`'s units: what `to_rgb8` makes of
/// [`stored`]`(v)` (the package's f64 value rounded half up, clipped), without the f32 between.
#[inline(always)]
pub(crate) fn rounded_byte(v: f64, scale: Scale) -> u8 {
    floor_fast(clip_unit(scale.to_unit(v)) * 255.0 + 0.5) as u8
}

/// [`rounded_byte`] of a value in [`Scale::Unit`], as compares, selects and bit operations,
/// which SIMD lanes have (`f64::max` and Rust's saturating float-to-integer casts keep a loop
/// scalar on x86-64): the same byte for every value, NaN included.
#[inline(always)]
pub(crate) fn rounded_unit_byte_lanes(v: f64) -> u8 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let v = if v > 0.0 { v } else { 0.0 };
    let v = if v < 1.0 { v } else { 1.0 };
    let t = v * 255.0 + 0.5;
    // t + 2^52 rounds t to the nearest integer r, held in the low mantissa bits; the floor is
    // r, or r - 1 where r rounded up.
    let big = t + TWO_52;
    let r = big - TWO_52;
    (big.to_bits() - u64::from(r > t)) as u8
}

/// `np.clip(v, 0, 1)`, NaN to 0 (the byte `to_byte` gives NaN), where `clamp` keeps a NaN.
#[inline(always)]
#[allow(clippy::manual_clamp)]
fn clip_unit(v: f64) -> f64 {
    v.max(0.0).min(1.0)
}

/// `v` (in [0, 1] units) as the f32 our planes hold, chosen among the nearest f32 values so
/// that the chain's final rounding (half up, in f32, `PlanarImage::to_rgb8`) gives the byte the
/// package's f64 output rounds to. The package's floats often sit on exact halves (v + 0.1 is
/// k + 25.5 levels in brightness); the nearest f32 alone rounds those either way. The nudge is
/// a few ulps at most, far below any transform's own float error.
#[inline]
pub(crate) fn stored(v: f64) -> f32 {
    let v = clip_unit(v);
    let want = floor_fast(v * 255.0 + 0.5);
    let mut stored = v as f32;
    for _ in 0..4 {
        // `to_rgb8`'s rounding: half up in f32 (a truncation, the value being positive).
        let got = f64::from((((stored * 255.0).clamp(0.0, 255.0) + 0.5) as u32) as f32);
        if got == want {
            break;
        }
        stored = if got < want {
            stored.next_up()
        } else {
            stored.next_down()
        };
    }
    stored
}

/// Stores `np.clip(values, 0, 1)` (planar, in [0, 1] units) into the image.
pub(crate) fn store_unit(image: &mut PlanarImage, values: &[f64]) {
    store_values(image.data_mut(), values, Scale::Unit);
}

/// The units of values to store.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// [0, 1].
    Unit,
    /// [0, 255], divided by 255 (as [`stored`]`(v / 255)`).
    Bytes,
}

impl Scale {
    /// `v` in [0, 1] units.
    #[inline(always)]
    pub(crate) fn to_unit(self, v: f64) -> f64 {
        match self {
            Scale::Unit => v,
            Scale::Bytes => v / 255.0,
        }
    }
}

/// [`stored`] of every value, compiled for the widest SIMD the CPU has: the nearest f32 of each
/// clipped value, and [`stored`]'s nudge only for the values whose rounding it changes (checked
/// 64 at a time in SIMD, then value by value in a block that has one). The same f32 values as
/// [`stored`].
pub(crate) fn store_values(out: &mut [f32], values: &[f64], scale: Scale) {
    pulp::Arch::new().dispatch(StoreValues { out, values, scale });
}

struct StoreValues<'a> {
    out: &'a mut [f32],
    values: &'a [f64],
    scale: Scale,
}

impl pulp::WithSimd for StoreValues<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        const BLOCK: usize = 64;
        for (out, values) in self.out.chunks_mut(BLOCK).zip(self.values.chunks(BLOCK)) {
            let mut nudge = false;
            for (o, &v) in out.iter_mut().zip(values) {
                let v = clip_unit(self.scale.to_unit(v));
                let s = v as f32;
                let want = (v * 255.0 + 0.5).floor();
                nudge |= f64::from(crate::planar::to_byte(s)) != want;
                *o = s;
            }
            if nudge {
                for (o, &v) in out.iter_mut().zip(values) {
                    let v = self.scale.to_unit(v);
                    let want = (clip_unit(v) * 255.0 + 0.5).floor();
                    if f64::from(crate::planar::to_byte(*o)) != want {
                        *o = stored(v);
                    }
                }
            }
        }
    }
}

/// The index in a planar buffer of value `i` of a field filled in numpy's C order
/// (pixel-major, channel fastest) for an image of `n` pixels.
#[inline]
pub(crate) fn planar_index(i: usize, n: usize) -> usize {
    (i % 3) * n + i / 3
}

/// numpy's `np.sum` of a float64 vector: pairwise summation, 8 accumulators over blocks of at
/// most 128 values (what makes a normalised kernel bit-identical to the package's).
pub(crate) fn numpy_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        let mut sum = -0.0;
        for &v in values {
            sum += v;
        }
        sum
    } else if n <= 128 {
        let mut r: [f64; 8] = values[..8].try_into().expect("8 values");
        let mut i = 8;
        while i + 8 <= n {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += values[i + j];
            }
            i += 8;
        }
        let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &values[i..] {
            sum += v;
        }
        sum
    } else {
        let half = (n / 2) & !7;
        numpy_sum(&values[..half]) + numpy_sum(&values[half..])
    }
}

/// Python's `round()` on a float: half to even.
pub(crate) fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// `np.arange(start, stop, step)` for floats, as numpy fills it: `ceil((stop - start) / step)`
/// values `start + i * ((start + step) - start)`.
pub(crate) fn numpy_arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    if len.is_nan() || len <= 0.0 {
        return Vec::new();
    }
    let delta = (start + step) - start;
    (0..len as usize)
        .map(|i| match i {
            0 => start,
            1 => start + step,
            _ => start + i as f64 * delta,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_places_are_the_set_flags() {
        let flags: Vec<u8> = (0..37).map(|i| u8::from(i % 5 == 0 || i == 36)).collect();
        let want: Vec<usize> = (0..37).filter(|&i| flags[i] == 1).collect();
        assert_eq!(set_places(&flags).collect::<Vec<_>>(), want);
        assert_eq!(set_places(&[]).count(), 0);
    }
    use crate::NoiseRng;
    use rand::SeedableRng;

    /// The Kolmogorov-Smirnov statistic of `values` against `cdf`.
    fn ks(values: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
        values.sort_by(f64::total_cmp);
        let n = values.len() as f64;
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = cdf(v);
                (c - i as f64 / n).abs().max(((i + 1) as f64 / n - c).abs())
            })
            .fold(0.0, f64::max)
    }

    /// The standard normal CDF (Abramowitz and Stegun 7.1.26: error under 1.5e-7).
    fn normal_cdf(x: f64) -> f64 {
        let z = x.abs() / std::f64::consts::SQRT_2;
        let t = 1.0 / (1.0 + 0.3275911 * z);
        let poly = t
            * (0.254829592
                + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        let erf = 1.0 - poly * (-z * z).exp();
        0.5 * (1.0 + erf.copysign(x))
    }

    // Our own draws, through the production seam, at fixed seeds and 5-sigma (or alpha 1e-4)
    // bounds: the distributions the package draws from, not its values.

    #[test]
    fn the_lanes_rounding_gives_rounded_bytes_byte() {
        let mut values = vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            1.0,
            2.0,
        ];
        for k in 0..=255 {
            // Each rounding boundary and its neighbours.
            let edge = (f64::from(k) + 0.5) / 255.0;
            values.extend([edge, edge.next_up(), edge.next_down(), f64::from(k) / 255.0]);
        }
        let mut rng = crate::NoiseRng::seed_from_u64(1);
        values.extend((0..100_000).map(|_| rng.random_range(-0.5..1.5)));
        for v in values {
            assert_eq!(
                rounded_unit_byte_lanes(v),
                rounded_byte(v, Scale::Unit),
                "{v}"
            );
        }
    }

    #[test]
    fn masks_are_counted_at_every_width() {
        use pulp::WithSimd;
        struct Count(f64);
        impl pulp::WithSimd for Count {
            type Output = u32;
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) -> u32 {
                let entries: Vec<f64> = (0..64).map(f64::from).collect();
                let (rows, _) = S::as_simd_f64s(&entries);
                let u = simd.splat_f64s(self.0);
                rows.iter()
                    .map(|&row| passed(simd, simd.less_than_or_equal_f64s(row, u)))
                    .sum()
            }
        }
        for (u, want) in [(-1.0, 0), (0.0, 1), (12.5, 13), (63.0, 64), (99.0, 64)] {
            assert_eq!(Count(u).with_simd(pulp::Scalar::new()), want);
            #[cfg(target_arch = "x86_64")]
            {
                if let Some(simd) = pulp::x86::V3::try_new() {
                    let got = simd.vectorize(|| Count(u).with_simd(simd));
                    assert_eq!(got, want, "AVX2 at {u}");
                }
                if let Some(simd) = pulp::x86::V4::try_new() {
                    let got = simd.vectorize(|| Count(u).with_simd(simd));
                    assert_eq!(got, want, "AVX-512 at {u}");
                }
            }
        }
    }

    #[test]
    fn uniform_draws_are_one_stream_scaled_however_the_calls_cut_it() {
        // The lanes scale whole steps in their loop, the spare values after: the same values
        // as one call of units, each scaled by its call's bounds.
        let lens = [5, 64, 1, 3000, 31, 33, 0, 7];
        let mut a = NoiseRng::seed_from_u64(9);
        let mut units = vec![0.0; lens.iter().sum()];
        RngDraws::new(&mut a).uniform(0.0, 1.0, &mut units);
        let mut b = NoiseRng::seed_from_u64(9);
        let mut draws = RngDraws::new(&mut b);
        let mut units = units.into_iter();
        for (call, len) in lens.into_iter().enumerate() {
            let (low, high) = (-(call as f64) * 1.5, 2.0 + call as f64);
            let mut got = vec![0.0; len];
            draws.uniform(low, high, &mut got);
            for (g, u) in got.into_iter().zip(&mut units) {
                assert_eq!(
                    g.to_bits(),
                    (low + (high - low) * u).to_bits(),
                    "call {call}"
                );
            }
        }
    }

    #[test]
    fn f32_normals_are_the_stream_normal_gives() {
        // The same values, drawn as f64 or as f32, in calls cut anywhere (a step is 32).
        let mut a = NoiseRng::seed_from_u64(8);
        let mut b = NoiseRng::seed_from_u64(8);
        let mut f64_draws = RngDraws::new(&mut a);
        let mut f32_draws = RngDraws::new(&mut b);
        assert!(f32_draws.standard_normals_f32(&mut []));
        for len in [5, 64, 1, 3000, 31, 33, 0, 7] {
            let mut want = vec![0.0; len];
            f64_draws.normal(0.0, 1.0, &mut want);
            let mut got = vec![0.0f32; len];
            assert!(f32_draws.standard_normals_f32(&mut got));
            let got: Vec<f64> = got.into_iter().map(f64::from).collect();
            assert_eq!(got, want, "a call of {len}");
        }
        // numpy's replay has none.
        struct Numpy;
        impl Draws for Numpy {
            fn normal(&mut self, _: f64, _: f64, _: &mut [f64]) {}
            fn uniform(&mut self, _: f64, _: f64, _: &mut [f64]) {}
            fn integers(&mut self, _: i64, _: i64, _: &mut [i64]) {}
            fn poisson(&mut self, _: &[f64], _: &mut [f64]) {}
            fn unit(&mut self, _: &mut [f64]) {}
        }
        assert!(!Numpy.standard_normals_f32(&mut [0.0; 4]));
    }

    #[test]
    fn normal_fields_have_the_packages_distribution() {
        let n = 150_528;
        let mut noise = NoiseRng::seed_from_u64(1);
        let mut values = vec![0.0; n];
        RngDraws::new(&mut noise).normal(0.0, 0.18, &mut values);
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let nf = n as f64;
        assert!(mean.abs() < 5.0 * 0.18 / nf.sqrt(), "{mean}");
        assert!((sd / 0.18 - 1.0).abs() < 5.0 / (2.0 * nf).sqrt(), "{sd}");
        let d = ks(&mut values, |v| normal_cdf(v / 0.18));
        assert!(d < 1.95 / nf.sqrt(), "KS {d}");
    }

    #[test]
    fn uniform_fields_and_integers_have_the_packages_distribution() {
        let mut noise = NoiseRng::seed_from_u64(2);
        let mut values = vec![0.0; 50_000];
        RngDraws::new(&mut noise).uniform(-1.12, 1.12, &mut values);
        assert!(values.iter().all(|v| (-1.12..1.12).contains(v)));
        let d = ks(&mut values, |v| (v + 1.12) / 2.24);
        assert!(d < 1.95 / (50_000f64).sqrt(), "KS {d}");
        // glass_blur's offsets: randint(-d, d) is uniform on -d..d-1, mean -1/2.
        let mut offsets = vec![0i64; 80_000];
        RngDraws::new(&mut noise).integers(-2, 2, &mut offsets);
        let mut counts = [0f64; 4];
        for &o in &offsets {
            counts[(o + 2) as usize] += 1.0;
        }
        let expected = 20_000.0;
        let chi2: f64 = counts
            .iter()
            .map(|c| (c - expected).powi(2) / expected)
            .sum();
        assert!(
            chi2 < 21.1,
            "chi2 {chi2} over 3 degrees of freedom (alpha 1e-4)"
        );
        let mean = offsets.iter().sum::<i64>() as f64 / 80_000.0;
        assert!(
            (mean + 0.5).abs() < 5.0 * (1.25f64 / 80_000.0).sqrt(),
            "{mean}"
        );
    }

    #[test]
    fn poisson_counts_have_mean_and_variance_lambda() {
        let mut noise = NoiseRng::seed_from_u64(3);
        for lam in [0.4, 3.0, 11.5, 12.0, 60.0] {
            let rates = vec![lam; 40_000];
            let mut counts = vec![0.0; rates.len()];
            RngDraws::new(&mut noise).poisson(&rates, &mut counts);
            let n = counts.len() as f64;
            let z = counts.iter().map(|k| k - lam).sum::<f64>() / (n * lam).sqrt();
            let z2 = counts.iter().map(|k| (k - lam).powi(2) - lam).sum::<f64>()
                / (n * (2.0 * lam * lam + lam)).sqrt();
            assert!(
                z.abs() < 5.0 && z2.abs() < 5.0,
                "lambda {lam}: z {z}, z2 {z2}"
            );
        }
        let mut zero = [1.0];
        RngDraws::new(&mut noise).poisson(&[0.0], &mut zero);
        assert_eq!(zero, [0.0]);
    }

    #[test]
    fn poisson_of_bytes_gives_poissons_draws_and_the_exact_distribution() {
        // The flat byte tables and the per-rate samplers walk the same tables from the same
        // uniforms: the same counts, the rejection sampler's included (c = 60).
        let bytes: Vec<u8> = (0..30_000).map(|i| (i * 7 % 256) as u8).collect();
        for c in [60.0, 12.0, 3.0] {
            let rates: [f64; 256] = std::array::from_fn(|k| Unit::of_byte(k) * c);
            let lam: Vec<f64> = bytes.iter().map(|&k| rates[usize::from(k)]).collect();
            let (mut a, mut b) = (vec![0.0; bytes.len()], vec![0.0; bytes.len()]);
            RngDraws::new(&mut NoiseRng::seed_from_u64(9)).poisson(&lam, &mut a);
            RngDraws::new(&mut NoiseRng::seed_from_u64(9)).poisson_of_bytes(&rates, &bytes, &mut b);
            assert_eq!(a, b, "c = {c}");
        }
        // The guide's walk: chi-squared of 200,000 draws at rate 3 against the pmf (counts
        // 0-9 and 10 or more: 10 degrees of freedom, 35.6 is alpha 1e-4).
        let n = 200_000;
        let mut counts = vec![0.0; n];
        RngDraws::new(&mut NoiseRng::seed_from_u64(10)).poisson(&vec![3.0; n], &mut counts);
        let mut observed = [0f64; 11];
        for &k in &counts {
            observed[(k as usize).min(10)] += 1.0;
        }
        let mut pmf = [0f64; 11];
        let mut p = (-3.0f64).exp();
        for (k, slot) in pmf.iter_mut().enumerate().take(10) {
            *slot = p;
            p *= 3.0 / (k + 1) as f64;
        }
        pmf[10] = 1.0 - pmf[..10].iter().sum::<f64>();
        let chi2: f64 = observed
            .iter()
            .zip(pmf)
            .map(|(o, p)| (o - p * n as f64).powi(2) / (p * n as f64))
            .sum();
        assert!(chi2 < 35.6, "chi2 {chi2}");
    }

    #[test]
    fn kept_buffers_are_handed_back_up_to_the_limit() {
        thread_local! {
            static SLOT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let small = take_scratch(&SLOT, 1000);
        assert_eq!(small.len(), 1000);
        keep_scratch(&SLOT, small);
        assert!(SLOT.with(|kept| kept.borrow().capacity()) >= 1000);
        // Taken while in use: a second taker gets a buffer of its own.
        let first = take_scratch(&SLOT, 10);
        assert_eq!(SLOT.with(|kept| kept.borrow().capacity()), 0);
        keep_scratch(&SLOT, first);
        let large = take_scratch(&SLOT, KEEP_AT_MOST + 1);
        keep_scratch(&SLOT, large);
        assert_eq!(
            SLOT.with(|kept| kept.borrow().capacity()),
            0,
            "too large to keep"
        );
    }

    #[test]
    fn numpy_arange_has_the_packages_lengths() {
        // The zoom lists of zoom_blur's five severities (IMAGENET-C.md 2.9).
        for (stop, step, len) in [
            (1.11, 0.01, 12),
            (1.16, 0.01, 16),
            (1.21, 0.02, 11),
            (1.26, 0.02, 13),
            (1.31, 0.03, 11),
        ] {
            assert_eq!(numpy_arange(1.0, stop, step).len(), len, "{stop}");
        }
        assert!(numpy_arange(1.0, 1.0, 0.01).is_empty());
    }

    #[test]
    fn stored_values_round_as_the_f64_value_does() {
        for k in 0..255 {
            for v in [
                (f64::from(k) + 0.5) / 255.0,
                f64::from(k) / 255.0 + 0.1,
                f64::from(k) / 255.0 * 0.3,
            ] {
                let want = (v.clamp(0.0, 1.0) * 255.0 + 0.5).floor();
                let s = stored(v);
                assert_eq!(f64::from((s * 255.0 + 0.5).floor()), want, "{v}");
                assert!((f64::from(s) - v.clamp(0.0, 1.0)).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn bulk_stores_are_the_scalar_stores() {
        // Ties (k + 0.5) / 255 and values off them, in both scales, beyond the clip and NaN.
        let mut values: Vec<f64> = (0..=255)
            .flat_map(|k| {
                let k = f64::from(k);
                [
                    (k + 0.5) / 255.0,
                    k / 255.0 + 0.1,
                    k / 255.0 * 0.3,
                    k / 255.0,
                ]
            })
            .collect();
        values.extend([-0.2, 1.7, f64::NAN, 1.0, 0.0, -0.0]);
        let mut out = vec![0.0f32; values.len()];
        store_values(&mut out, &values, Scale::Unit);
        for (o, &v) in out.iter().zip(&values) {
            assert_eq!(o.to_bits(), stored(v).to_bits(), "{v}");
        }
        let bytes: Vec<f64> = values.iter().map(|v| v * 255.0).collect();
        store_values(&mut out, &bytes, Scale::Bytes);
        for (o, &v) in out.iter().zip(&bytes) {
            assert_eq!(o.to_bits(), stored(v / 255.0).to_bits(), "{v}");
        }
    }

    #[test]
    fn rounded_bytes_are_the_stored_values_bytes() {
        // Ties, values off them, both scales, beyond the clip, NaN: the byte path's rounding is
        // the planar path's stored value through `to_rgb8`'s rounding.
        let mut values: Vec<f64> = (0..=255)
            .flat_map(|k| {
                let k = f64::from(k);
                [k + 0.5, k + 0.5 - 1e-13, k * 0.7 + 25.5, k / 3.0]
            })
            .collect();
        values.extend([-3.0, 300.0, f64::NAN, 255.0, 0.0]);
        for &v in &values {
            assert_eq!(
                rounded_byte(v, Scale::Bytes),
                crate::planar::to_byte(stored(v / 255.0)),
                "{v}"
            );
            assert_eq!(
                rounded_byte(v / 255.0, Scale::Unit),
                crate::planar::to_byte(stored(v / 255.0)),
                "{v}"
            );
        }
    }

    #[test]
    fn fast_floor_is_floor() {
        for v in [
            -2.5,
            -1.0,
            -0.3,
            -0.0,
            0.0,
            0.3,
            1.0,
            254.999,
            1e15 + 0.5,
            -1e15 - 0.5,
        ] {
            assert_eq!(floor_fast(v), v.floor(), "{v}");
        }
    }

    #[test]
    fn numpy_sum_is_pairwise() {
        let values: Vec<f64> = (0..300).map(|i| 1.0 / f64::from(i + 1)).collect();
        let naive: f64 = values.iter().sum();
        assert!((numpy_sum(&values) - naive).abs() < 1e-12);
        assert_eq!(numpy_sum(&[1.0, 2.0]), 3.0);
    }

    #[test]
    fn recovered_bytes_are_exact() {
        let size = drift_core::ImageSize::new(16, 16).unwrap();
        let bytes: Vec<u8> = (0..=255).flat_map(|v| [v, 255 - v, v / 2]).collect();
        let image =
            PlanarImage::from_rgb8(&drift_core::RgbImage8::from_pixels(size, bytes).unwrap());
        let values = unit_values(&image);
        for (i, v) in values.iter().enumerate().take(256) {
            assert_eq!(*v, i as f64 / 255.0);
        }
    }
}
