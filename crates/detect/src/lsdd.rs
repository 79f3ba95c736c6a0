//! The least-squares density difference detector as alibi-detect's `LSDDDrift` (PyTorch
//! backend) runs it: the reference standardised per feature (its mean and unbiased standard
//! deviation), a Gaussian RBF kernel with the median-heuristic bandwidth on the standardised
//! reference (stored in f32 as alibi stores it), kernel centres split off the reference by a
//! random permutation, the regularisation chosen per window from its permutations (the largest
//! of 1/4^i, i = 0..9, whose mean relative difference is below `lambda_rd_max`), the statistic
//! h^T H_lambda^-1 h, and a permutation test whose p-value is b/B (b: permuted statistics at
//! least the observed one).

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::DenseSolveCore;
use faer::{Accum, Mat, MatMut, MatRef, Par};

use crate::mmd::{Bandwidth, squared_distances};

/// The candidate regularisations, largest first (alibi's `1/(4**i) for i in range(10)`).
fn candidate_lambdas() -> impl Iterator<Item = f64> {
    (0..10).map(|i| 1.0 / 4f64.powi(i))
}

/// What LSDD keeps of the reference between windows.
#[derive(Debug, Clone)]
pub struct LsddReference {
    features: usize,
    means: Vec<f64>,
    /// Standard deviation + 1e-12, per feature.
    scales: Vec<f64>,
    bandwidth: Bandwidth,
    /// The kernel's gamma as alibi applies it: f32 for an inferred sigma, f64 for a given one.
    gamma: f64,
    centers: Vec<f64>,
    center_count: usize,
    /// k(x, c) of the effective reference (the reference less its centres), row-major.
    k_xc: Vec<f64>,
    reference_count: usize,
    /// H = k'(c_i, c_j) with the bandwidth sqrt(2) sigma, C x C row-major.
    h: Vec<f64>,
    lambda_rd_max: f64,
}

/// One window's LSDD outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct LsddOutcome {
    /// h^T H_lambda^-1 h.
    pub statistic: f64,
    /// b: permuted statistics at least the observed one.
    pub exceed: usize,
    /// B.
    pub permutations: usize,
    /// alibi's `distance_threshold`: the permuted statistics sorted in decreasing order, at
    /// index floor(alpha B).
    pub threshold: f64,
    /// The regularisation chosen for the window.
    pub lambda: f64,
}

impl LsddOutcome {
    /// alibi's p-value, b/B.
    pub fn p_value(&self) -> f64 {
        self.exceed as f64 / self.permutations as f64
    }
}

/// A window LSDD cannot test.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "no regularisation keeps LSDD's relative difference below {lambda_rd_max} (the smallest \
     gives {smallest_rd}): too many repeated embeddings? (alibi: \"try using MMD-based \
     detection instead\")"
)]
pub struct LsddError {
    lambda_rd_max: f64,
    smallest_rd: f64,
}

/// The reference's per-feature mean and unbiased standard deviation plus 1e-12 (alibi's
/// `torch.std` and `eps`).
fn standardisation(rows: &[f64], features: usize) -> (Vec<f64>, Vec<f64>) {
    let count = rows.len() / features;
    let mut means = vec![0.0; features];
    for row in rows.chunks_exact(features) {
        for (m, v) in means.iter_mut().zip(row) {
            *m += v;
        }
    }
    means.iter_mut().for_each(|m| *m /= count as f64);
    let mut scales = vec![0.0; features];
    for row in rows.chunks_exact(features) {
        for ((s, v), m) in scales.iter_mut().zip(row).zip(&means) {
            *s += (v - m) * (v - m);
        }
    }
    scales
        .iter_mut()
        .for_each(|s| *s = (*s / (count as f64 - 1.0)).sqrt() + 1e-12);
    (means, scales)
}

impl LsddReference {
    /// The reference (rows of `features` values, row-major): standardised, its bandwidth
    /// (`sigma` given, or the median heuristic), and its first `center_count` rows in the order
    /// of `center_permutation` (a permutation of the reference's rows, as alibi's
    /// `torch.randperm`) as kernel centres.
    pub fn new(
        rows: &[f64],
        features: usize,
        sigma: Option<f64>,
        center_permutation: &[usize],
        center_count: usize,
        lambda_rd_max: f64,
    ) -> Self {
        let count = rows.len() / features;
        let (means, scales) = standardisation(rows, features);
        let standardised: Vec<f64> = rows
            .chunks_exact(features)
            .flat_map(|row| {
                row.iter()
                    .zip(means.iter().zip(&scales))
                    .map(|(v, (m, s))| (v - m) / s)
            })
            .collect();
        let bandwidth = match sigma {
            Some(sigma) => Bandwidth::from_sigma(sigma),
            None => Bandwidth::median_heuristic(
                &squared_distances(&standardised, &standardised, features),
                count,
            ),
        };
        let (gamma, h_gamma) = kernel_gammas(sigma, bandwidth);
        let gather = |indices: &[usize]| -> Vec<f64> {
            indices
                .iter()
                .flat_map(|&i| &standardised[i * features..(i + 1) * features])
                .copied()
                .collect()
        };
        let centers = gather(&center_permutation[..center_count]);
        let effective = gather(&center_permutation[center_count..]);
        let kernel = |x: &[f64], y: &[f64], gamma: f64| -> Vec<f64> {
            squared_distances(x, y, features)
                .iter()
                .map(|&d| (-(gamma * d)).exp())
                .collect()
        };
        let k_xc = kernel(&effective, &centers, gamma);
        let h = kernel(&centers, &centers, h_gamma);
        Self {
            features,
            means,
            scales,
            bandwidth,
            gamma,
            centers,
            center_count,
            k_xc,
            reference_count: count - center_count,
            h,
            lambda_rd_max,
        }
    }

    /// The bandwidth in use.
    pub fn bandwidth(&self) -> Bandwidth {
        self.bandwidth
    }

    /// Reference rows that are not centres.
    pub fn effective_len(&self) -> usize {
        self.reference_count
    }

    /// Kernel centres.
    pub fn centers(&self) -> usize {
        self.center_count
    }

    /// H (C x C, row-major).
    pub fn h_matrix(&self) -> &[f64] {
        &self.h
    }

    /// The LSDD of a window (rows of the same features), tested with `permutations`: each a
    /// permutation of 0..N (N = effective reference + window) whose first entries index the
    /// permuted reference, as `torch.randperm` indexes alibi's kernel rows.
    pub fn test(
        &self,
        window: &[f64],
        permutations: &[Vec<usize>],
        alpha: f64,
    ) -> Result<LsddOutcome, LsddError> {
        let (d, c, r) = (self.features, self.center_count, self.reference_count);
        let standardised: Vec<f64> = window
            .chunks_exact(d)
            .flat_map(|row| {
                row.iter()
                    .zip(self.means.iter().zip(&self.scales))
                    .map(|(v, (m, s))| (v - m) / s)
            })
            .collect();
        let gamma = self.gamma;
        let k_yc: Vec<f64> = squared_distances(&standardised, &self.centers, d)
            .iter()
            .map(|&dist| (-(gamma * dist)).exp())
            .collect();
        let all: Vec<&[f64]> = self
            .k_xc
            .chunks_exact(c)
            .chain(k_yc.chunks_exact(c))
            .collect();
        // h of the real split and of each permutation: mean k(x, c) - mean k(y, c).
        let h_of = |reference: &[usize], test: &[usize]| -> Vec<f64> {
            let mean = |rows: &[usize]| -> Vec<f64> {
                let mut sum = vec![0.0; c];
                for &i in rows {
                    sum.iter_mut().zip(all[i]).for_each(|(s, k)| *s += k);
                }
                sum.iter().map(|s| s / rows.len() as f64).collect()
            };
            mean(reference)
                .iter()
                .zip(mean(test))
                .map(|(x, y)| x - y)
                .collect()
        };
        let h_permuted: Vec<Vec<f64>> = permutations
            .iter()
            .map(|p| h_of(&p[..r], &p[r..]))
            .collect();
        let identity: Vec<usize> = (0..all.len()).collect();
        let h_observed = h_of(&identity[..r], &identity[r..]);
        let (lambda, h_lambda_inverse) = self.regularise(&h_permuted)?;
        let quadratic = |h: &[f64]| -> f64 {
            let mut product = vec![0.0; c];
            mat_vec(&h_lambda_inverse, h, &mut product);
            h.iter().zip(&product).map(|(a, b)| a * b).sum()
        };
        let statistic = quadratic(&h_observed);
        let mut permuted: Vec<f64> = h_permuted.iter().map(|h| quadratic(h)).collect();
        let exceed = permuted.iter().filter(|&&p| statistic <= p).count();
        permuted.sort_by(|a, b| b.total_cmp(a));
        let index =
            ((alpha * permuted.len() as f64) as usize).min(permuted.len().saturating_sub(1));
        Ok(LsddOutcome {
            statistic,
            exceed,
            permutations: permutations.len(),
            threshold: permuted.get(index).copied().unwrap_or(f64::NAN),
            lambda,
        })
    }

    /// The regularisation of a window (alibi's `permed_lsdds` without `H_lam_inv`): for each
    /// candidate lambda, omega = (H + lambda I)^-1 h per permutation and the mean relative
    /// difference 1 - omega^T H omega / h^T omega; the first candidate below `lambda_rd_max`,
    /// and H_lambda^-1 = 2 M - M^T H M with M = (H + lambda I)^-1.
    fn regularise(&self, h_permuted: &[Vec<f64>]) -> Result<(f64, Vec<f64>), LsddError> {
        let c = self.center_count;
        let mut smallest_rd = f64::INFINITY;
        for lambda in candidate_lambdas() {
            let regularised = Mat::from_fn(c, c, |i, j| {
                self.h[i * c + j] + if i == j { lambda } else { 0.0 }
            });
            let inverse = regularised.partial_piv_lu().inverse();
            let m: Vec<f64> = (0..c * c).map(|k| inverse[(k / c, k % c)]).collect();
            let mut rd_sum = 0.0;
            let (mut omega, mut h_omega_h) = (vec![0.0; c], vec![0.0; c]);
            for h in h_permuted {
                mat_vec(&m, h, &mut omega);
                mat_vec(&self.h, &omega, &mut h_omega_h);
                let omega_h_omega: f64 = omega.iter().zip(&h_omega_h).map(|(a, b)| a * b).sum();
                let h_omega: f64 = h.iter().zip(&omega).map(|(a, b)| a * b).sum();
                rd_sum += 1.0 - omega_h_omega / h_omega;
            }
            let rd = rd_sum / h_permuted.len() as f64;
            smallest_rd = smallest_rd.min(rd);
            if rd < self.lambda_rd_max {
                // 2 M - M^T H M.
                let mut hm = vec![0.0; c * c];
                let mut mhm = vec![0.0; c * c];
                product(&self.h, &m, c, &mut hm, false);
                product(&m, &hm, c, &mut mhm, true);
                let h_lambda_inverse = m.iter().zip(&mhm).map(|(a, b)| 2.0 * a - b).collect();
                return Ok((lambda, h_lambda_inverse));
            }
        }
        Err(LsddError {
            lambda_rd_max: self.lambda_rd_max,
            smallest_rd,
        })
    }
}

/// The gammas of alibi's two kernels, k (sigma) and H's (sqrt(2) sigma). An inferred sigma
/// lives in an f32 parameter (log sigma), so both are f32 computations: sqrt(2) sigma is an f32
/// product, its log stored in f32 again. A given sigma keeps its f64 dtype throughout.
fn kernel_gammas(sigma: Option<f64>, bandwidth: Bandwidth) -> (f64, f64) {
    match sigma {
        Some(sigma) => {
            let gamma_of = |s: f64| {
                let s = s.ln().exp();
                1.0 / (2.0 * (s * s))
            };
            let s = sigma.ln().exp();
            (gamma_of(sigma), gamma_of(std::f64::consts::SQRT_2 * s))
        }
        None => {
            // As Bandwidth::from_sigma: f32 logarithms and exponentials correctly rounded.
            let sigma32 = f64::from(bandwidth.sigma.ln() as f32).exp() as f32;
            let scaled = sigma32 * std::f32::consts::SQRT_2;
            let scaled = f64::from(f64::from(scaled).ln() as f32).exp() as f32;
            let h_gamma = 1.0f32 / (2.0f32 * (scaled * scaled));
            (f64::from(bandwidth.gamma), f64::from(h_gamma))
        }
    }
}

/// `out = a v` (a: n x n row-major).
fn mat_vec(a: &[f64], v: &[f64], out: &mut [f64]) {
    let n = v.len();
    for (o, row) in out.iter_mut().zip(a.chunks_exact(n)) {
        *o = row.iter().zip(v).map(|(x, y)| x * y).sum();
    }
}

/// `out = a b` (or `a^T b` with `transpose_a`), n x n row-major, sequential.
fn product(a: &[f64], b: &[f64], n: usize, out: &mut [f64], transpose_a: bool) {
    let a = MatRef::from_row_major_slice(a, n, n);
    matmul(
        MatMut::from_row_major_slice_mut(out, n, n),
        Accum::Replace,
        if transpose_a { a.transpose() } else { a },
        MatRef::from_row_major_slice(b, n, n),
        1.0,
        Par::Seq,
    );
}
