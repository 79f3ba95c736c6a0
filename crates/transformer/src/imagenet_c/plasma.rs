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
    assert!(size.is_power_of_two(), "the map's side is a power of two");
    let mut map = take_scratch(&MAP, size * size);
    map.fill(0.0);
    let mut step = size;
    let mut wibble = 100.0;
    let mut noise = Vec::new();
    // The K x K grid of values `step` apart, starting at (row, column) `(top, left)`.
    let at = |top: usize, left: usize, i: usize, j: usize, step: usize| {
        (top + i * step) * size + left + j * step
    };
    while step >= 2 {
        let half = step / 2;
        let k = size / step;
        // k is a power of two: (n / k, n % k) by a shift and a mask, not two divisions.
        let shift = k.trailing_zeros();
        // The neighbour on the torus (a remainder would divide per value).
        let next = |i: usize| if i + 1 == k { 0 } else { i + 1 };
        let previous = |i: usize| if i == 0 { k - 1 } else { i - 1 };
        noise.resize(k * k, 0.0);
        // Squares: the four corners, `c + roll(c, -1, 0)` then that plus its roll along axis 1.
        let corner = |map: &[f64], i: usize, j: usize| map[at(0, 0, i, j, step)];
        let mut rows = Vec::with_capacity(k * k);
        for i in 0..k {
            for j in 0..k {
                rows.push(corner(&map, i, j) + corner(&map, next(i), j));
            }
        }
        draws.uniform(-wibble, wibble, &mut noise);
        for (n, &u) in noise.iter().enumerate() {
            let (i, j) = (n >> shift, n & (k - 1));
            let sum = rows[n] + rows[i * k + next(j)];
            map[at(half, half, i, j, step)] = sum / 4.0 + wibble * u;
        }
        // Diamonds on the corner rows: `dr + roll(dr, 1, 0)` plus `ul + roll(ul, -1, 1)`.
        let centre = |map: &[f64], i: usize, j: usize| map[at(half, half, i, j, step)];
        draws.uniform(-wibble, wibble, &mut noise);
        for (n, &u) in noise.iter().enumerate() {
            let (i, j) = (n >> shift, n & (k - 1));
            let down = centre(&map, i, j) + centre(&map, previous(i), j);
            let across = corner(&map, i, j) + corner(&map, i, next(j));
            map[at(0, half, i, j, step)] = (down + across) / 4.0 + wibble * u;
        }
        // Diamonds on the corner columns: `dr + roll(dr, 1, 1)` plus `ul + roll(ul, -1, 0)`.
        draws.uniform(-wibble, wibble, &mut noise);
        for (n, &u) in noise.iter().enumerate() {
            let (i, j) = (n >> shift, n & (k - 1));
            let across = centre(&map, i, j) + centre(&map, i, previous(j));
            let down = corner(&map, i, j) + corner(&map, next(i), j);
            map[at(half, 0, i, j, step)] = (across + down) / 4.0 + wibble * u;
        }
        step /= 2;
        wibble /= decay;
    }
    normalise(&mut map);
    map
}

/// `map -= map.min(); map /= map.max()`, in one pass for both extremes and one for the rest:
/// a subtraction is monotonic, so the largest difference is the largest value's. In SIMD
/// lanes (a fold with `f64::min` stays scalar); the values are those of the two numpy lines.
fn normalise(map: &mut [f64]) {
    const LANES: usize = 8;
    in_lanes(|| {
        let (mut low, mut high) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES]);
        let mut chunks = map.chunks_exact(LANES);
        for chunk in &mut chunks {
            for ((l, h), &v) in low.iter_mut().zip(&mut high).zip(chunk) {
                *l = if v < *l { v } else { *l };
                *h = if v > *h { v } else { *h };
            }
        }
        for &v in chunks.remainder() {
            low[0] = if v < low[0] { v } else { low[0] };
            high[0] = if v > high[0] { v } else { high[0] };
        }
        let min = low.into_iter().fold(f64::INFINITY, f64::min);
        let range = high.into_iter().fold(f64::NEG_INFINITY, f64::max) - min;
        for v in map.iter_mut() {
            *v = (*v - min) / range;
        }
    });
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
            let mut got = values;
            normalise(&mut got);
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
