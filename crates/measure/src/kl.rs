//! SPEC's drift measure: for a batch of B images with clean embeddings E and drifted
//! embeddings D, P = softmax(D) and Q = softmax(E) row-wise, and
//! KL = (1/B) * sum_i sum_j P_ij (ln P_ij - ln Q_ij),
//! which is PyTorch's `KLDivLoss(reduction='batchmean')(log Q, P)`.

use crate::MeasureError;

/// `ln softmax(row)`, in f64, written into `out`: the maximum is subtracted before
/// exponentiating, so rows of large values (ResNet features reach the hundreds) neither overflow
/// nor lose the small entries.
fn log_softmax_into(row: &[f32], out: &mut Vec<f64>) {
    out.clear();
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
    let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
    let log_sum = max + sum.ln();
    out.extend(row.iter().map(|&x| f64::from(x) - log_sum));
}

/// KL(softmax(drifted) || softmax(clean)) of one pair of rows, in nats. Both rows must have the
/// same, non-zero length and finite values.
pub fn kl_divergence(drifted: &[f32], clean: &[f32]) -> Result<f64, MeasureError> {
    let mut scratch = Scratch::default();
    scratch.row_kl(drifted, clean, 0)
}

/// The mean over a batch of [`kl_divergence`] of its rows: SPEC's per-batch KL. `drifted[i]`
/// and `clean[i]` are the embeddings of the same image.
pub fn batch_kl<D: AsRef<[f32]>, C: AsRef<[f32]>>(
    drifted: &[D],
    clean: &[C],
) -> Result<f64, MeasureError> {
    if drifted.len() != clean.len() {
        return Err(MeasureError::BatchMismatch {
            drifted: drifted.len(),
            clean: clean.len(),
        });
    }
    if drifted.is_empty() {
        return Err(MeasureError::EmptyBatch);
    }
    let mut scratch = Scratch::default();
    let mut total = 0.0;
    for (row, (d, c)) in drifted.iter().zip(clean).enumerate() {
        total += scratch.row_kl(d.as_ref(), c.as_ref(), row)?;
    }
    Ok(total / drifted.len() as f64)
}

#[derive(Default)]
struct Scratch {
    log_p: Vec<f64>,
    log_q: Vec<f64>,
}

impl Scratch {
    fn row_kl(&mut self, drifted: &[f32], clean: &[f32], row: usize) -> Result<f64, MeasureError> {
        if drifted.len() != clean.len() || drifted.is_empty() {
            return Err(MeasureError::RowMismatch {
                row,
                drifted: drifted.len(),
                clean: clean.len(),
            });
        }
        if !drifted.iter().chain(clean).all(|x| x.is_finite()) {
            return Err(MeasureError::NotFinite { row });
        }
        log_softmax_into(drifted, &mut self.log_p);
        log_softmax_into(clean, &mut self.log_q);
        let kl: f64 = self
            .log_p
            .iter()
            .zip(&self.log_q)
            .map(|(&lp, &lq)| lp.exp() * (lp - lq))
            .sum();
        // KL is never negative; rounding can leave -1e-17 when P == Q.
        Ok(kl.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        // Q = (1/2, 1/2), P = (3/4, 1/4): KL = 3/4 ln(3/2) + 1/4 ln(1/2).
        let kl = kl_divergence(&[3f32.ln(), 0.0], &[0.0, 0.0]).unwrap();
        let expected = 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln();
        assert!((kl - expected).abs() < 1e-7, "{kl} vs {expected}");
        // Softmax ignores a shift of the whole row, so KL does too.
        let shifted = kl_divergence(&[3f32.ln() + 100.0, 100.0], &[-7.0, -7.0]).unwrap();
        assert!((shifted - expected).abs() < 1e-6);
        // Identical rows: exactly zero.
        assert_eq!(
            kl_divergence(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).unwrap(),
            0.0
        );
    }

    #[test]
    fn stays_finite_for_large_and_very_different_rows() {
        // Naive exp(1000) overflows; the shifted form does not.
        let kl = kl_divergence(&[1000.0, 0.0], &[0.0, 1000.0]).unwrap();
        assert!((kl - 1000.0).abs() < 1e-9, "{kl}");
    }

    #[test]
    fn batch_is_the_mean_of_its_rows() {
        let drifted = [vec![1.0f32, 0.0, 0.5], vec![0.0, 0.0, 2.0]];
        let clean = [vec![0.0f32, 1.0, 0.5], vec![0.3, 0.0, 0.0]];
        let rows: f64 = (0..2)
            .map(|i| kl_divergence(&drifted[i], &clean[i]).unwrap())
            .sum();
        assert!((batch_kl(&drifted, &clean).unwrap() - rows / 2.0).abs() < 1e-15);
    }

    #[test]
    fn refuses_bad_batches() {
        let row = vec![0.0f32; 4];
        assert!(matches!(
            batch_kl(std::slice::from_ref(&row), &[row.clone(), row.clone()]),
            Err(MeasureError::BatchMismatch { .. })
        ));
        assert!(matches!(
            batch_kl::<Vec<f32>, Vec<f32>>(&[], &[]),
            Err(MeasureError::EmptyBatch)
        ));
        assert!(matches!(
            batch_kl(&[row.clone(), vec![0.0; 3]], &[row.clone(), row.clone()]),
            Err(MeasureError::RowMismatch { row: 1, .. })
        ));
        assert!(matches!(
            batch_kl(&[vec![f32::NAN; 4]], &[row]),
            Err(MeasureError::NotFinite { row: 0 })
        ));
    }
}
