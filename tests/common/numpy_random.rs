//! A test-only replica of numpy's legacy `RandomState` (MT19937 and the legacy algorithms for
//! `normal`, `uniform`, `randint` and `poisson`) and of `Generator(MT19937).random`, so a golden
//! test regenerates the exact fields `imagecorruptions` drew from the seed it stored.

use drift_transformer::Draws;
use rand_mt::Mt;

/// numpy's `np.random.seed(seed)` state: the Mersenne Twister and the cached second Gaussian.
pub struct NumpyRandom {
    mt: Mt,
    gauss: Option<f64>,
    /// Per kind of draw: how many values and their sum (checked against the golden manifest).
    pub record: std::collections::BTreeMap<&'static str, (usize, f64)>,
}

impl NumpyRandom {
    pub fn new(seed: u32) -> Self {
        Self {
            mt: Mt::new(seed),
            gauss: None,
            record: Default::default(),
        }
    }

    /// `random_standard_uniform`: 53 bits from two 32-bit outputs.
    fn double(&mut self) -> f64 {
        let a = self.mt.next_u32() >> 5;
        let b = self.mt.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) / 9_007_199_254_740_992.0
    }

    /// `legacy_gauss`: the polar method, returning the second value and caching the first.
    fn gauss(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.double() - 1.0;
            let x2 = 2.0 * self.double() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `random_poisson`: multiplication below 10, PTRS (Hoermann) from 10.
    fn poisson_one(&mut self, lam: f64) -> f64 {
        if lam >= 10.0 {
            let slam = lam.sqrt();
            let loglam = lam.ln();
            let b = 0.931 + 2.53 * slam;
            let a = -0.059 + 0.02483 * b;
            let invalpha = 1.1239 + 1.1328 / (b - 3.4);
            let vr = 0.9277 - 3.6224 / (b - 2.0);
            loop {
                let u = self.double() - 0.5;
                let v = self.double();
                let us = 0.5 - u.abs();
                let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
                if us >= 0.07 && v <= vr {
                    return k;
                }
                if k < 0.0 || (us < 0.013 && v > us) {
                    continue;
                }
                if v.ln() + invalpha.ln() - (a / (us * us) + b).ln()
                    <= -lam + k * loglam - loggam(k + 1.0)
                {
                    return k;
                }
            }
        } else if lam == 0.0 {
            0.0
        } else {
            let enlam = (-lam).exp();
            let mut x = 0.0;
            let mut prod = 1.0;
            loop {
                prod *= self.double();
                if prod > enlam {
                    x += 1.0;
                } else {
                    return x;
                }
            }
        }
    }

    fn note(&mut self, kind: &'static str, values: impl Iterator<Item = f64>) {
        let entry = self.record.entry(kind).or_default();
        for v in values {
            entry.0 += 1;
            entry.1 += v;
        }
    }
}

/// numpy's `random_loggam`: log Gamma(x) by Stirling's series with its coefficients.
fn loggam(x: f64) -> f64 {
    const A: [f64; 10] = [
        8.333333333333333e-02,
        -2.777777777777778e-03,
        7.936507936507937e-04,
        -5.952380952380952e-04,
        8.417508417508418e-04,
        -1.917526917526918e-03,
        6.41025641025641e-03,
        -2.955065359477124e-02,
        1.796443723688307e-01,
        -1.39243221690590e+00,
    ];
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    let n = if x < 7.0 { (7.0 - x) as i64 } else { 0 };
    let mut x0 = x + n as f64;
    let x2 = (1.0 / x0) * (1.0 / x0);
    let lg2pi = 1.8378770664093453e+00;
    let mut gl0 = A[9];
    for k in (0..9).rev() {
        gl0 *= x2;
        gl0 += A[k];
    }
    let mut gl = gl0 / x0 + 0.5 * lg2pi + (x0 - 0.5) * x0.ln() - x0;
    if x < 7.0 {
        for _ in 1..=n {
            gl -= (x0 - 1.0).ln();
            x0 -= 1.0;
        }
    }
    gl
}

impl Draws for NumpyRandom {
    fn normal(&mut self, loc: f64, scale: f64, out: &mut [f64]) {
        for v in out.iter_mut() {
            *v = loc + scale * self.gauss();
        }
        self.note("normal", out.iter().copied());
    }

    fn uniform(&mut self, low: f64, high: f64, out: &mut [f64]) {
        let range = high - low;
        for v in out.iter_mut() {
            *v = low + range * self.double();
        }
        self.note("uniform", out.iter().copied());
    }

    fn integers(&mut self, low: i64, high: i64, out: &mut [i64]) {
        let range = (high - low - 1) as u32;
        let mask = if range == 0 {
            0
        } else {
            u32::MAX >> range.leading_zeros()
        };
        for v in out.iter_mut() {
            *v = if range == 0 {
                low
            } else {
                loop {
                    let candidate = self.mt.next_u32() & mask;
                    if candidate <= range {
                        break low + i64::from(candidate);
                    }
                }
            };
        }
        self.note("randint", out.iter().map(|&v| v as f64));
    }

    fn poisson(&mut self, lam: &[f64], out: &mut [f64]) {
        for (v, &l) in out.iter_mut().zip(lam) {
            *v = self.poisson_one(l);
        }
        self.note("poisson", out.iter().copied());
    }

    fn unit(&mut self, out: &mut [f64]) {
        for v in out.iter_mut() {
            *v = self.double();
        }
        self.note("unit", out.iter().copied());
    }
}
