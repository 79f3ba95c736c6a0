//! The two-sample Cramér-von Mises test as scipy 1.14's `cramervonmises_2samp` computes it with
//! its asymptotic method (the one scipy's `auto` takes once either sample has more than 20
//! values): the statistic T from average ranks, standardised by Anderson's (1962) mean and
//! variance, and p = 1 - the limiting CDF of Csörgő and Faraway (1996), summed term by term until
//! a term falls below 1e-7 as scipy sums it. alibi-detect's `CVMDrift` runs it per feature and
//! corrects as its KS detector does (`ks::feature_tests`).

use std::f64::consts::PI;

/// The smallest sample size (of the larger sample) for which scipy's `auto` uses the
/// asymptotic method; at or below it scipy computes the exact distribution, not ported here.
pub const EXACT_UP_TO: usize = 20;

/// (T, p) of two sorted samples, as `cramervonmises_2samp(a, b, method='asymptotic')`.
pub fn cvm_test(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (nx, ny) = (a.len(), b.len());
    // Ranks in the joint sample, ties averaged; u = nx sum (r_x - i)^2 + ny sum (r_y - j)^2.
    // Every rank is a multiple of 1/2 and every sum here stays below 2^50, so u is exact.
    let (mut i, mut j) = (0usize, 0usize);
    let (mut sum_x, mut sum_y) = (0.0f64, 0.0f64);
    while i < nx || j < ny {
        let value = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        let (start_i, start_j) = (i, j);
        while i < nx && a[i] == value {
            i += 1;
        }
        while j < ny && b[j] == value {
            j += 1;
        }
        // The tied block holds joint positions start_i + start_j + 1 ..= i + j.
        let rank = ((start_i + start_j + 1) + (i + j)) as f64 / 2.0;
        for position in start_i..i {
            let d = rank - (position + 1) as f64;
            sum_x += d * d;
        }
        for position in start_j..j {
            let d = rank - (position + 1) as f64;
            sum_y += d * d;
        }
    }
    let u = nx as f64 * sum_x + ny as f64 * sum_y;
    let k = (nx * ny) as u128;
    let n = (nx + ny) as u128;
    let t = u / (k * n) as f64 - ratio(4 * k - 1, 6 * n);
    let et = (1.0 + 1.0 / n as f64) / 6.0;
    let squares = (nx * nx + ny * ny) as u128;
    let vt = ratio(
        (n + 1) * (4 * k * n - 3 * squares - 2 * k),
        45 * n * n * 4 * k,
    );
    let tn = 1.0 / 6.0 + (t - et) / (45.0 * vt).sqrt();
    let p = if tn < 0.003 {
        1.0
    } else {
        (1.0 - cdf_cvm_inf(tn)).max(0.0)
    };
    (t, p)
}

/// numerator / denominator of two exact integers, correctly rounded, as Python's `int / int`.
fn ratio(numerator: u128, denominator: u128) -> f64 {
    const EXACT: u128 = 1 << 53;
    if numerator <= EXACT && denominator <= EXACT {
        return numerator as f64 / denominator as f64;
    }
    if numerator == 0 {
        return 0.0;
    }
    // Scale so that the integer quotient has at least 55 bits, then let its last bit carry
    // whether anything was left over (a sticky bit below the rounding position).
    let shift = (55 + denominator.ilog2() as i32 - numerator.ilog2() as i32).max(0) as u32;
    let scaled = numerator << shift;
    let (quotient, remainder) = (scaled / denominator, scaled % denominator);
    let sticky = u128::from(remainder != 0);
    (quotient | sticky) as f64 * 2f64.powi(-(shift as i32))
}

/// The limiting CDF of the Cramér-von Mises statistic (scipy's `_cdf_cvm_inf`): terms added
/// until one is below 1e-7 in absolute value (that term included).
fn cdf_cvm_inf(x: f64) -> f64 {
    let mut total = 0.0;
    // Gamma(k + 1/2) / Gamma(k + 1), from sqrt(pi) at k = 0.
    let mut gamma_ratio = PI.sqrt();
    let mut k = 0u32;
    loop {
        let u = gamma_ratio / (PI.powf(1.5) * x.sqrt());
        let y = f64::from(4 * k + 1);
        let q = y * y / (16.0 * x);
        let term = u * y.sqrt() * (-q).exp() * bessel_k_quarter(q);
        total += term;
        if term.abs() < 1e-7 {
            return total;
        }
        gamma_ratio *= (f64::from(k) + 0.5) / (f64::from(k) + 1.0);
        k += 1;
    }
}

/// K_{1/4}(x), the modified Bessel function of the second kind of order 1/4, for x > 0: Temme's
/// series below x = 2 and Steed's continued fraction above (the method of Numerical Recipes'
/// `bessik`), accurate to about 1e-15.
fn bessel_k_quarter(x: f64) -> f64 {
    const MU: f64 = 0.25;
    const EPS: f64 = 1e-16;
    // Gamma(1 + mu) and Gamma(1 - mu), to the nearest f64.
    const GAMMA_5_4: f64 = 0.906_402_477_055_477;
    const GAMMA_3_4: f64 = 1.225_416_702_465_177_6;
    if x <= 0.0 {
        return f64::INFINITY;
    }
    if x < 2.0 {
        let (gam_plus, gam_minus) = (1.0 / GAMMA_5_4, 1.0 / GAMMA_3_4);
        let gam1 = (gam_minus - gam_plus) / (2.0 * MU);
        let gam2 = (gam_minus + gam_plus) / 2.0;
        let half = 0.5 * x;
        let pimu = PI * MU;
        let fact = pimu / pimu.sin();
        let d = -half.ln();
        let e = MU * d;
        let fact2 = e.sinh() / e;
        let mut ff = fact * (gam1 * e.cosh() + gam2 * fact2 * d);
        let mut sum = ff;
        let e = e.exp();
        let mut p = 0.5 * e / gam_plus;
        let mut q = 0.5 / (e * gam_minus);
        let mut c = 1.0;
        let d = half * half;
        for i in 1..10_000 {
            let i = f64::from(i);
            ff = (i * ff + p + q) / (i * i - MU * MU);
            c *= d / i;
            p /= i - MU;
            q /= i + MU;
            let term = c * ff;
            sum += term;
            if term.abs() < sum.abs() * EPS {
                break;
            }
        }
        return sum;
    }
    let mut b = 2.0 * (1.0 + x);
    let mut d = 1.0 / b;
    let mut delh = d;
    let (mut q1, mut q2) = (0.0, 1.0);
    let a1 = 0.25 - MU * MU;
    let mut q = a1;
    let mut c = a1;
    let mut a = -a1;
    let mut s = 1.0 + q * delh;
    for i in 2..10_000 {
        let i = f64::from(i);
        a -= 2.0 * (i - 1.0);
        c = -a * c / i;
        let q_next = (q1 - b * q2) / a;
        q1 = q2;
        q2 = q_next;
        q += c * q_next;
        b += 2.0;
        d = 1.0 / (b + a * d);
        delh *= b * d - 1.0;
        let dels = q * delh;
        s += dels;
        if (dels / s).abs() < EPS {
            break;
        }
    }
    (PI / (2.0 * x)).sqrt() * (-x).exp() / s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ratios_are_correctly_rounded() {
        assert_eq!(ratio(1, 3), 1.0 / 3.0);
        // Beyond 2^53 the operands are not exact f64s; the quotient still is rounded once.
        let (n, d) = ((1u128 << 60) + 1, 3u128 << 58);
        assert_eq!(ratio(n, d), 4.0 / 3.0);
        assert_eq!(ratio(3 << 70, 1 << 70), 3.0);
    }

    #[test]
    fn bessel_k_quarter_matches_known_values() {
        // mpmath.besselk(0.25, x) at 30 digits (mpmath 1.3). scipy's kv (AMOS) is off by up to
        // 7e-14 relative at these points (0.4307397744485814 at 1, 0.11537827684084918 at 2),
        // which moves the CvM p-values far less than the 1e-10 they are held to.
        for (x, expected) in [
            (0.1, 2.685_156_871_876_059),
            (1.0, 0.430_739_774_448_585_5),
            (2.0, 0.115_378_276_840_856_76),
            (5.0, 0.003_712_302_732_031_840_7),
        ] {
            let ours = bessel_k_quarter(x);
            assert!(
                ((ours - expected) / expected).abs() < 1e-14,
                "K_1/4({x}) = {ours}, mpmath {expected}"
            );
        }
    }
}
