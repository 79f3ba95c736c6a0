//! The package's `plasma_fractal` (fog's height map): diamond-square on a torus of
//! `size x size` (a power of two), in f64, operation by operation. Each level fills the squares'
//! centres, then the diamonds' (first those on the corner rows, then those on the corner
//! columns), each value `sum / 4 + wibble * U(-wibble, wibble)` with one `uniform` draw per
//! level and kind, in C order: `size^2 - 1` draws in all. `wibble` starts at 100 and is divided
//! by `decay` after each level; the map is then shifted to a minimum of 0 and divided by its
//! maximum.

use super::{Draws, in_lanes, keep_scratch, take_scratch};

thread_local! {
    static MAP: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives a map from [`plasma_fractal`] back to the thread's buffer (see `take_scratch`).
pub(crate) fn keep_plasma(map: Vec<f64>) {
    keep_scratch(&MAP, map);
}

/// `plasma_fractal(mapsize=size, wibbledecay=decay)`: `size x size` values, row-major.
/// The map is a buffer kept per thread: give it back with [`keep_plasma`].
pub(crate) fn plasma_fractal(size: usize, decay: f64, draws: &mut dyn Draws) -> Vec<f64> {
    let mut map = take_scratch(&MAP, size * size);
    let extremes = match raw_plasma(size, decay, draws) {
        Some(plasma) => {
            interleave(plasma.k, plasma.grids(), &mut map);
            let extremes = plasma.extremes;
            plasma.keep();
            extremes
        }
        // One value, 0; normalised, 0 / 0 as in the package.
        None => {
            map[0] = 0.0;
            Extremes {
                min: 0.0,
                range: 0.0,
            }
        }
    };
    in_lanes(
        #[inline(always)]
        || {
            for v in map.iter_mut() {
                *v = extremes.normalised(*v);
            }
        },
    );
    map
}

/// The least value of a map and its largest difference from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extremes {
    pub(crate) min: f64,
    pub(crate) range: f64,
}

impl Extremes {
    /// A value of the map as `map -= map.min(); map /= map.max()` leaves it.
    #[inline(always)]
    pub(crate) fn normalised(self, v: f64) -> f64 {
        (v - self.min) / self.range
    }
}

/// [`plasma_fractal`]'s map before its last two lines, held as its last level's four grids (the
/// map's even rows are `C R C R ...`, its odd rows `Q M Q M ...`), with what those lines would
/// subtract and divide by: a caller reads the values it needs where they lie, without the
/// map's interleaved copy.
pub(crate) struct RawPlasma {
    /// Six `k x k` regions: two of corners (one is the level's), the centres, the diamonds on
    /// the corner rows and on the corner columns, the draws.
    buffer: Vec<f64>,
    k: usize,
    /// Which of regions 0 and 4 holds the corners.
    corners: usize,
    pub(crate) extremes: Extremes,
}

impl RawPlasma {
    /// The corners `C`, the diamonds on their rows `R` and columns `Q`, the centres `M`.
    fn grids(&self) -> [&[f64]; 4] {
        last_grids(&self.buffer, self.k, self.corners)
    }

    /// Row `y` of the map as two rows of half its width: its even columns, then its odd ones.
    pub(crate) fn row(&self, y: usize) -> [&[f64]; 2] {
        let [c, r, q, m] = self.grids();
        let (i, k) = (y / 2, self.k);
        let (even, odd) = if y.is_multiple_of(2) { (c, r) } else { (q, m) };
        [&even[i * k..][..k], &odd[i * k..][..k]]
    }

    /// Gives the buffer back to the thread's scratch.
    pub(crate) fn keep(self) {
        keep_scratch(&GRIDS, self.buffer);
    }
}

/// The last level's grids in the six `k x k` regions of `buffer`, the corners in region
/// `corners`: `C`, `R`, `Q`, `M`.
fn last_grids(buffer: &[f64], k: usize, corners: usize) -> [&[f64]; 4] {
    let n = k * k;
    let region = |r: usize| &buffer[r * n..][..n];
    [region(corners), region(2), region(3), region(1)]
}

thread_local! {
    static GRIDS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`plasma_fractal`]'s map before its last two lines, as its last level's grids; `None` for a
/// map of one value (no level).
///
/// Each level works on compact grids, `k x k` values a row after another, so that its loops
/// run over contiguous rows (SIMD lanes) instead of the map's strided cells: the corners `C`
/// (every `step`-th cell), the centres `M`, the diamonds on the corner rows `R` and on the
/// corner columns `Q`. The next level's corners interleave them: rows `C R C R ...` and
/// `Q M Q M ...`. Each value's operations are the package's, in its order.
pub(crate) fn raw_plasma(size: usize, decay: f64, draws: &mut dyn Draws) -> Option<RawPlasma> {
    assert!(size.is_power_of_two(), "the map's side is a power of two");
    if size == 1 {
        return None;
    }
    let last = size / 2;
    let quarter = last * last;
    // The six grids, then a row of `last + 1` values for the kernels' wrapped rows.
    let mut buffer = take_scratch(&GRIDS, 6 * quarter + last + 1);
    let mut corners_at = 0;
    buffer[0] = 0.0;
    let mut k = 1;
    let mut wibble = 100.0;
    loop {
        let n = k * k;
        let (grids, row) = buffer.split_at_mut(6 * quarter);
        let [first, centres, row_diamonds, column_diamonds, second, noise]: [&mut [f64]; 6] = {
            let mut regions = grids.chunks_exact_mut(quarter);
            std::array::from_fn(|_| regions.next().expect("six regions"))
        };
        let (c, next) = if corners_at == 0 {
            (first, second)
        } else {
            (second, first)
        };
        let c = &c[..n];
        // Squares: `c + roll(c, -1, 0)`, plus its roll along axis 1, / 4, + wibble U.
        draws.uniform(-wibble, wibble, &mut noise[..n]);
        squares(k, wibble, c, row, &noise[..n], &mut centres[..n]);
        let m = &centres[..n];
        draws.uniform(-wibble, wibble, &mut noise[..n]);
        diamonds_on_rows(k, wibble, (c, m), row, &noise[..n], &mut row_diamonds[..n]);
        draws.uniform(-wibble, wibble, &mut noise[..n]);
        diamonds_on_columns(
            k,
            wibble,
            (c, m),
            row,
            &noise[..n],
            &mut column_diamonds[..n],
        );
        if k == last {
            break;
        }
        // The next level's corners, 2k x 2k, into the other corners' region.
        let (r, q) = (&row_diamonds[..n], &column_diamonds[..n]);
        interleave(k, [c, r, q, m], &mut next[..4 * n]);
        corners_at = 4 - corners_at;
        k *= 2;
        wibble /= decay;
    }
    let extremes = extremes(last_grids(&buffer, last, corners_at));
    Some(RawPlasma {
        buffer,
        k: last,
        corners: corners_at,
        extremes,
    })
}

/// `row` then its first value again, in `wrapped` (`k + 1` values): a row's neighbour on the
/// right of its last value is its first (`roll` along axis 1), and with the row wrapped so, each
/// loop below runs over all `k` values, a multiple of the lanes from k = 8 on (a loop over
/// `k - 1` left its last 31 values to a scalar remainder).
#[inline(always)]
fn wrap(row: &[f64], wrapped: &mut [f64]) {
    let k = row.len();
    wrapped[..k].copy_from_slice(row);
    wrapped[k] = row[0];
}

/// The squares' centres of a level of `k x k` corners `c`: with `s = c + roll(c, -1, 0)`,
/// `s + roll(s, -1, 1)`, / 4, + `wibble` times the draws `u`. `row` is scratch of `k + 1`
/// values, where each row of `s` is wrapped.
fn squares(k: usize, wibble: f64, c: &[f64], row: &mut [f64], u: &[f64], m: &mut [f64]) {
    in_lanes(
        #[inline(always)]
        || {
            for i in 0..k {
                let below = (i + 1) % k;
                let (top, bottom) = (&c[i * k..][..k], &c[below * k..][..k]);
                let s = &mut row[..=k];
                for ((s, &a), &b) in s.iter_mut().zip(top).zip(bottom) {
                    *s = a + b;
                }
                s[k] = s[0];
                let (u, out) = (&u[i * k..][..k], &mut m[i * k..][..k]);
                let pairs = s[..k].iter().zip(&s[1..]);
                for ((o, &u), (&left, &right)) in out.iter_mut().zip(u).zip(pairs) {
                    *o = (left + right) / 4.0 + wibble * u;
                }
            }
        },
    );
}

/// The diamonds on the corner rows: `(m + roll(m, 1, 0)) + (c + roll(c, -1, 1))`, / 4, +
/// `wibble` times the draws `u`. `row` is scratch of `k + 1` values.
fn diamonds_on_rows(
    k: usize,
    wibble: f64,
    (c, m): (&[f64], &[f64]),
    row: &mut [f64],
    u: &[f64],
    r: &mut [f64],
) {
    in_lanes(
        #[inline(always)]
        || {
            for i in 0..k {
                let above = (i + k - 1) % k;
                let (mi, ma) = (&m[i * k..][..k], &m[above * k..][..k]);
                let ci = &mut row[..=k];
                wrap(&c[i * k..][..k], ci);
                let (u, out) = (&u[i * k..][..k], &mut r[i * k..][..k]);
                let across = ci[..k].iter().zip(&ci[1..]);
                let down = mi.iter().zip(ma);
                for ((o, &u), ((&left, &right), (&here, &up))) in
                    out.iter_mut().zip(u).zip(across.zip(down))
                {
                    *o = ((here + up) + (left + right)) / 4.0 + wibble * u;
                }
            }
        },
    );
}

/// The diamonds on the corner columns: `(m + roll(m, 1, 1)) + (c + roll(c, -1, 0))`, / 4, +
/// `wibble` times the draws `u`. `row` is scratch of `k + 1` values.
fn diamonds_on_columns(
    k: usize,
    wibble: f64,
    (c, m): (&[f64], &[f64]),
    row: &mut [f64],
    u: &[f64],
    q: &mut [f64],
) {
    in_lanes(
        #[inline(always)]
        || {
            for i in 0..k {
                let below = (i + 1) % k;
                let (ci, cb) = (&c[i * k..][..k], &c[below * k..][..k]);
                // `m + roll(m, 1, 1)`: each value plus the one on its left, the first's left
                // the last; so the row wrapped the other way, its last value first.
                let mi = &m[i * k..][..k];
                let shifted = &mut row[..=k];
                shifted[0] = mi[k - 1];
                shifted[1..].copy_from_slice(mi);
                let (u, out) = (&u[i * k..][..k], &mut q[i * k..][..k]);
                let across = shifted[1..].iter().zip(&shifted[..k]);
                let down = ci.iter().zip(cb);
                for ((o, &u), ((&here, &left), (&a, &b))) in
                    out.iter_mut().zip(u).zip(across.zip(down))
                {
                    *o = ((here + left) + (a + b)) / 4.0 + wibble * u;
                }
            }
        },
    );
}

/// The next level's `2k x 2k` corners from a level's grids: rows `c r c r ...` and
/// `q m q m ...`.
fn interleave(k: usize, [c, r, q, m]: [&[f64]; 4], next: &mut [f64]) {
    in_lanes(
        #[inline(always)]
        || {
            for i in 0..k {
                let (top, bottom) = next[4 * i * k..][..4 * k].split_at_mut(2 * k);
                let pairs = top
                    .chunks_exact_mut(2)
                    .zip(&c[i * k..][..k])
                    .zip(&r[i * k..][..k]);
                for ((pair, &a), &b) in pairs {
                    (pair[0], pair[1]) = (a, b);
                }
                let pairs = bottom
                    .chunks_exact_mut(2)
                    .zip(&q[i * k..][..k])
                    .zip(&m[i * k..][..k]);
                for ((pair, &a), &b) in pairs {
                    (pair[0], pair[1]) = (a, b);
                }
            }
        },
    );
}

/// The extremes `map -= map.min(); map /= map.max()` use, in one pass for both, over the map's
/// values wherever they lie: a subtraction is monotonic, so the largest difference is the
/// largest value's.
fn extremes(parts: [&[f64]; 4]) -> Extremes {
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for part in parts {
        let (low, high) = pulp::Arch::new().dispatch(FindExtremes(part));
        (min, max) = (min.min(low), max.max(high));
    }
    Extremes {
        min,
        range: max - min,
    }
}

/// [`extremes`] in SIMD vectors, four each way (one alone waits on its last compare), through
/// `pulp`'s min and max (a fold with `f64::min` stays scalar, and arrays of lanes updated in
/// place stayed on the stack). The map holds no NaN.
struct FindExtremes<'a>(&'a [f64]);

impl pulp::WithSimd for FindExtremes<'_> {
    type Output = (f64, f64);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> (f64, f64) {
        let (vectors, rest) = S::as_simd_f64s(self.0);
        let mut low = [simd.splat_f64s(f64::INFINITY); 4];
        let mut high = [simd.splat_f64s(f64::NEG_INFINITY); 4];
        let mut fours = vectors.chunks_exact(4);
        for four in &mut fours {
            for ((l, h), &v) in low.iter_mut().zip(&mut high).zip(four) {
                *l = simd.min_f64s(*l, v);
                *h = simd.max_f64s(*h, v);
            }
        }
        for &v in fours.remainder() {
            low[0] = simd.min_f64s(low[0], v);
            high[0] = simd.max_f64s(high[0], v);
        }
        let low = simd.min_f64s(simd.min_f64s(low[0], low[1]), simd.min_f64s(low[2], low[3]));
        let high = simd.max_f64s(
            simd.max_f64s(high[0], high[1]),
            simd.max_f64s(high[2], high[3]),
        );
        let min = rest
            .iter()
            .copied()
            .fold(simd.reduce_min_f64s(low), f64::min);
        let max = rest
            .iter()
            .copied()
            .fold(simd.reduce_max_f64s(high), f64::max);
        (min, max)
    }
}

/// numpy's reading of `next_power_of_2(x)` in the package: 1 for 0, else `2 ** (x - 1).bit_length()`.
pub(crate) fn next_power_of_two(x: usize) -> usize {
    x.max(1).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imagenet_c::RngDraws;
    use rand::SeedableRng;

    #[test]
    fn the_map_spans_zero_to_one_and_draws_size_squared_minus_one() {
        struct Counting<'a>(RngDraws<'a, crate::NoiseRng>, usize);
        impl Draws for Counting<'_> {
            fn normal(&mut self, loc: f64, scale: f64, out: &mut [f64]) {
                self.0.normal(loc, scale, out);
            }
            fn uniform(&mut self, low: f64, high: f64, out: &mut [f64]) {
                self.1 += out.len();
                self.0.uniform(low, high, out);
            }
            fn integers(&mut self, low: i64, high: i64, out: &mut [i64]) {
                self.0.integers(low, high, out);
            }
            fn poisson(&mut self, lam: &[f64], out: &mut [f64]) {
                self.0.poisson(lam, out);
            }
            fn unit(&mut self, out: &mut [f64]) {
                self.0.unit(out);
            }
        }
        let mut rng = crate::NoiseRng::seed_from_u64(4);
        let mut draws = Counting(RngDraws::new(&mut rng), 0);
        let map = plasma_fractal(64, 2.0, &mut draws);
        assert_eq!(draws.1, 64 * 64 - 1);
        assert_eq!(map.len(), 64 * 64);
        let min = map.iter().copied().fold(f64::INFINITY, f64::min);
        let max = map.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((min, max), (0.0, 1.0));
        // Smooth: neighbours are closer than random pairs on average.
        let neighbours: f64 = map.windows(2).map(|w| (w[0] - w[1]).abs()).sum::<f64>();
        let far: f64 = (0..map.len() - 2048)
            .map(|i| (map[i] - map[i + 2048]).abs())
            .sum::<f64>();
        assert!(neighbours / 4095.0 < far / 2048.0, "{neighbours} {far}");
    }

    #[test]
    fn the_raw_rows_are_the_maps_columns() {
        for size in [2, 4, 32] {
            // The same draws for both.
            let mut rng = crate::NoiseRng::seed_from_u64(size as u64);
            let map = plasma_fractal(size, 1.7, &mut RngDraws::new(&mut rng));
            let mut rng = crate::NoiseRng::seed_from_u64(size as u64);
            let raw = raw_plasma(size, 1.7, &mut RngDraws::new(&mut rng)).unwrap();
            for y in 0..size {
                let [even, odd] = raw.row(y);
                for x in 0..size {
                    let value = [even, odd][x % 2][x / 2];
                    let got = raw.extremes.normalised(value);
                    assert_eq!(got.to_bits(), map[y * size + x].to_bits(), "{size} {y} {x}");
                }
            }
            raw.keep();
            keep_plasma(map);
        }
    }

    #[test]
    fn normalising_in_lanes_gives_the_two_passes_values() {
        for len in [1, 4, 16, 37, 4096] {
            let values: Vec<f64> = (0..len)
                .map(|i| ((i * 7919 % 1009) as f64 - 400.0) * 0.37 + 1e-3 * i as f64)
                .collect();
            let mut want = values.clone();
            let min = want.iter().copied().fold(f64::INFINITY, f64::min);
            for v in &mut want {
                *v -= min;
            }
            let max = want.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for v in &mut want {
                *v /= max;
            }
            let extremes = extremes([&values, &[], &[], &[]]);
            let got: Vec<f64> = values.iter().map(|&v| extremes.normalised(v)).collect();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{len}");
        }
    }

    #[test]
    fn map_sides_follow_the_package() {
        for (side, map) in [(224, 256), (256, 256), (257, 512), (3, 4), (1, 1), (0, 1)] {
            assert_eq!(next_power_of_two(side), map, "{side}");
        }
    }
}
