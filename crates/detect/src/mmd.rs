//! The maximum mean discrepancy detector as alibi-detect's `MMDDrift` (PyTorch backend) runs it:
//! a Gaussian RBF kernel whose bandwidth comes from the median heuristic on the reference
//! (stored as alibi stores it, in f32), the unbiased MMD^2 of the reference against a window,
//! and a permutation test whose p-value is b/B with b the permuted statistics at least the
//! observed one, compared in f32 as alibi compares them.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// Squared distances |x_i - y_j|^2 of the rows of `x` (nx x d) and `y` (ny x d), row-major, as
/// alibi computes them (`y2 - 2 x y^T + x2`, floored at 1e-30).
pub(crate) fn squared_distances(x: &[f64], y: &[f64], d: usize) -> Vec<f64> {
    let (nx, ny) = (x.len() / d, y.len() / d);
    let mut gram = vec![0.0; nx * ny];
    matmul(
        MatMut::from_row_major_slice_mut(&mut gram, nx, ny),
        Accum::Replace,
        MatRef::from_row_major_slice(x, nx, d),
        MatRef::from_row_major_slice(y, ny, d).transpose(),
        1.0,
        Par::Seq,
    );
    let x2 = squared_norms(x, d);
    let y2 = squared_norms(y, d);
    for (i, row) in gram.chunks_exact_mut(ny.max(1)).enumerate() {
        for (j, g) in row.iter_mut().enumerate() {
            *g = ((y2[j] - 2.0 * *g) + x2[i]).max(1e-30);
        }
    }
    gram
}

fn squared_norms(x: &[f64], d: usize) -> Vec<f64> {
    x.chunks_exact(d)
        .map(|row| row.iter().map(|v| v * v).sum())
        .collect()
}

/// The kernel's bandwidth: sigma, and gamma = 1/(2 sigma^2) as alibi's `GaussianRBF` computes it
/// (log sigma stored in an f32 parameter, sigma and gamma in f32).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bandwidth {
    /// sigma in f64, as the median heuristic (or the user) gave it.
    pub sigma: f64,
    /// gamma, an f32 value.
    pub gamma: f32,
}

impl Bandwidth {
    /// The bandwidth for a given sigma, rounded as alibi rounds an inferred one.
    pub fn from_sigma(sigma: f64) -> Self {
        let log_sigma = sigma.ln() as f32;
        let sigma32 = f64::from(log_sigma).exp() as f32;
        let gamma = 1.0f32 / (2.0f32 * (sigma32 * sigma32));
        Self { sigma, gamma }
    }

    /// alibi's median heuristic on the reference's squared distances `dist` (n x n, x = y):
    /// sigma = sqrt(dist.sorted()[n + (n^2 - n)/2 - 1] / 2), i.e. half the lower median of the
    /// distinct pairs' squared distances once the n diagonal entries sort first.
    pub fn median_heuristic(dist: &[f64], n: usize) -> Self {
        let mut values = dist.to_vec();
        let index = n + (n * n - n) / 2 - 1;
        let (_, median, _) = values.select_nth_unstable_by(index, f64::total_cmp);
        Self::from_sigma((0.5 * *median).sqrt())
    }

    /// exp(-gamma d): the kernel of a squared distance.
    pub(crate) fn kernel(self, dist: f64) -> f64 {
        (-(f64::from(self.gamma) * dist)).exp()
    }
}

/// What MMD keeps of the reference between windows.
#[derive(Debug, Clone)]
pub struct MmdReference {
    rows: Vec<f64>,
    features: usize,
    count: usize,
    bandwidth: Bandwidth,
    /// k(x_i, x_j) of the reference, diagonal zero, row-major.
    kernel_xx: Vec<f64>,
}

/// One window's MMD outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct MmdOutcome {
    /// The unbiased MMD^2.
    pub statistic: f64,
    /// b: permuted statistics at least the observed one (compared in f32).
    pub exceed: usize,
    /// B.
    pub permutations: usize,
    /// alibi's `distance_threshold`: the permuted statistics (f32) sorted in decreasing order,
    /// at index floor(alpha B).
    pub threshold: f32,
}

impl MmdOutcome {
    /// alibi's p-value, b/B.
    pub fn p_value(&self) -> f64 {
        self.exceed as f64 / self.permutations as f64
    }
}

impl MmdReference {
    /// The reference (`count` rows of `features` values, row-major) and its kernel, with sigma
    /// given or else from the median heuristic.
    pub fn new(rows: Vec<f64>, features: usize, sigma: Option<f64>) -> Self {
        let count = rows.len() / features;
        let dist = squared_distances(&rows, &rows, features);
        let bandwidth = match sigma {
            Some(sigma) => Bandwidth::from_sigma(sigma),
            None => Bandwidth::median_heuristic(&dist, count),
        };
        let mut kernel_xx: Vec<f64> = dist.iter().map(|&d| bandwidth.kernel(d)).collect();
        for i in 0..count {
            kernel_xx[i * count + i] = 0.0;
        }
        Self {
            rows,
            features,
            count,
            bandwidth,
            kernel_xx,
        }
    }

    /// The bandwidth in use.
    pub fn bandwidth(&self) -> Bandwidth {
        self.bandwidth
    }

    /// Features per row.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Row `i` of the reference.
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        &self.rows[i * self.features..(i + 1) * self.features]
    }

    /// k(x_i, x_j) of the reference, diagonal zero, row-major.
    pub(crate) fn kernel_xx(&self) -> &[f64] {
        &self.kernel_xx
    }

    /// Rows in the reference.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the reference is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The joint kernel matrix of [reference; window] (N x N, row-major), diagonal zero.
    fn joint_kernel(&self, window: &[f64]) -> Vec<f64> {
        let (r, d) = (self.count, self.features);
        let w = window.len() / d;
        let n = r + w;
        let xy = squared_distances(&self.rows, window, d);
        let yy = squared_distances(window, window, d);
        let mut joint = vec![0.0; n * n];
        for i in 0..r {
            joint[i * n..i * n + r].copy_from_slice(&self.kernel_xx[i * r..(i + 1) * r]);
            for j in 0..w {
                let k = self.bandwidth.kernel(xy[i * w + j]);
                joint[i * n + r + j] = k;
                joint[(r + j) * n + i] = k;
            }
        }
        for i in 0..w {
            for j in 0..w {
                joint[(r + i) * n + r + j] = if i == j {
                    0.0
                } else {
                    self.bandwidth.kernel(yy[i * w + j])
                };
            }
        }
        joint
    }

    /// MMD^2 of a window (`window`: rows of the same features), tested with `permutations`:
    /// each a permutation of 0..N (N = reference + window) whose last W entries form the
    /// permuted window, as `torch.randperm` indexes alibi's kernel matrix.
    pub fn test(&self, window: &[f64], permutations: &[Vec<usize>], alpha: f64) -> MmdOutcome {
        let r = self.count;
        let w = window.len() / self.features;
        let n = r + w;
        let joint = self.joint_kernel(window);
        let row_sums: Vec<f64> = joint.chunks_exact(n).map(|row| row.iter().sum()).collect();
        // Column b of `masks` marks the window of permutation b; column B the real window.
        let columns = permutations.len() + 1;
        let mut masks = vec![0.0; n * columns];
        for (b, permutation) in permutations.iter().enumerate() {
            for &i in &permutation[r..] {
                masks[i * columns + b] = 1.0;
            }
        }
        for i in r..n {
            masks[i * columns + permutations.len()] = 1.0;
        }
        // Column b of `sums`: each row's kernel sum over the window of column b of `masks`.
        let mut sums = vec![0.0; n * columns];
        matmul(
            MatMut::from_row_major_slice_mut(&mut sums, n, columns),
            Accum::Replace,
            MatRef::from_row_major_slice(&joint, n, n),
            MatRef::from_row_major_slice(&masks, n, columns),
            1.0,
            Par::Seq,
        );
        let statistic_of = |b: usize| {
            let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
            for i in 0..n {
                let to_window = sums[i * columns + b];
                if masks[i * columns + b] == 1.0 {
                    yy += to_window;
                    xy += row_sums[i] - to_window;
                } else {
                    xx += row_sums[i] - to_window;
                }
            }
            let (rf, wf) = (r as f64, w as f64);
            xx / (rf * (rf - 1.0)) + yy / (wf * (wf - 1.0)) - 2.0 * (xy / (rf * wf))
        };
        let statistic = statistic_of(permutations.len());
        let mut permuted: Vec<f32> = (0..permutations.len())
            .map(|b| statistic_of(b) as f32)
            .collect();
        let observed = statistic as f32;
        let exceed = permuted.iter().filter(|&&p| observed <= p).count();
        permuted.sort_by(|a, b| b.total_cmp(a));
        let threshold_index = (alpha * permuted.len() as f64) as usize;
        MmdOutcome {
            statistic,
            exceed,
            permutations: permutations.len(),
            // No permutations (the statistic alone): no threshold.
            threshold: permuted
                .get(threshold_index.min(permuted.len().saturating_sub(1)))
                .copied()
                .unwrap_or(f32::NAN),
        }
    }
}

/// B random permutations of 0..n drawn from `rng` (Fisher-Yates, rand's `shuffle`).
pub fn draw_permutations(rng: &mut impl rand::Rng, n: usize, count: usize) -> Vec<Vec<usize>> {
    use rand::seq::SliceRandom;
    (0..count)
        .map(|_| {
            let mut p: Vec<usize> = (0..n).collect();
            p.shuffle(rng);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unbiased MMD^2 by its definition, term by term.
    fn naive_mmd2(x: &[Vec<f64>], y: &[Vec<f64>], gamma: f64) -> f64 {
        let k = |a: &[f64], b: &[f64]| {
            let d: f64 = a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum();
            (-gamma * d).exp()
        };
        let (m, n) = (x.len() as f64, y.len() as f64);
        let mut xx = 0.0;
        let mut yy = 0.0;
        let mut xy = 0.0;
        for (i, a) in x.iter().enumerate() {
            for (j, b) in x.iter().enumerate() {
                if i != j {
                    xx += k(a, b);
                }
            }
            for b in y {
                xy += k(a, b);
            }
        }
        for (i, a) in y.iter().enumerate() {
            for (j, b) in y.iter().enumerate() {
                if i != j {
                    yy += k(a, b);
                }
            }
        }
        xx / (m * (m - 1.0)) + yy / (n * (n - 1.0)) - 2.0 * xy / (m * n)
    }

    #[test]
    fn statistic_and_permutations_equal_the_definition() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let d = 5;
        let row = |rng: &mut rand_chacha::ChaCha20Rng, shift: f64| -> Vec<f64> {
            (0..d)
                .map(|_| rand::RngExt::random::<f64>(rng) + shift)
                .collect()
        };
        let x: Vec<Vec<f64>> = (0..30).map(|_| row(&mut rng, 0.0)).collect();
        let y: Vec<Vec<f64>> = (0..12).map(|_| row(&mut rng, 0.3)).collect();
        let reference = MmdReference::new(x.concat(), d, None);
        let gamma = f64::from(reference.bandwidth().gamma);
        let permutations = draw_permutations(&mut rng, 42, 20);
        let outcome = reference.test(&y.concat(), &permutations, 0.05);
        let expected = naive_mmd2(&x, &y, gamma);
        assert!((outcome.statistic - expected).abs() <= 1e-12 * expected.abs().max(1e-3));
        let joint: Vec<Vec<f64>> = x.iter().chain(&y).cloned().collect();
        let mut exceed = 0;
        for p in &permutations {
            let px: Vec<Vec<f64>> = p[..30].iter().map(|&i| joint[i].clone()).collect();
            let py: Vec<Vec<f64>> = p[30..].iter().map(|&i| joint[i].clone()).collect();
            if (outcome.statistic as f32) <= naive_mmd2(&px, &py, gamma) as f32 {
                exceed += 1;
            }
        }
        assert_eq!(outcome.exceed, exceed);
        assert!(outcome.statistic > 0.0);
    }
}
