"""Goldens for `drift-pipeline score`: exact (Clopper-Pearson) binomial intervals, the power
table's bands, as scipy gives them and as their definition gives them (binomial sums in mpmath at 60 digits) (scipy's beta
quantiles are off by up to a few parts in 1e9 at one success).

    python -m venv venv && venv/bin/pip install scipy==1.14.1 numpy==1.26.4 mpmath==1.3.0
    venv/bin/python tools/golden/make_score_golden.py

(the pins are those of tools/golden/requirements-detectors.txt). Writes
tests/fixtures/golden/detectors/clopper_pearson.json.
"""

import json
import pathlib

import mpmath
import scipy
import scipy.stats

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/golden/detectors"


mpmath.mp.dps = 60


def binomial_tail_at_least(k, n, x):
    """P(Bin(n, x) >= k), summed over the shorter side at 40 digits."""
    term = lambda j: mpmath.binomial(n, j) * x**j * (1 - x) ** (n - j)
    if k <= n - k:
        return 1 - mpmath.fsum(term(j) for j in range(k))
    return mpmath.fsum(term(j) for j in range(k, n + 1))


def solve(f, target):
    """x in (0, 1) with f(x) = target for an increasing f, by bisection."""
    lo, hi = mpmath.mpf(0), mpmath.mpf(1)
    for _ in range(140):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return float((lo + hi) / 2)


def exact_interval(k, n, confidence):
    """The Clopper-Pearson ends from their definition, P(X >= k | low) = P(X <= k | high) =
    tail; None where a side's sum would exceed 2,000 terms."""
    if min(k, n - k) > 2000:
        return None, None
    tail = (1 - mpmath.mpf(confidence)) / 2
    low = 0.0 if k == 0 else solve(lambda x: binomial_tail_at_least(k, n, x), tail)
    # P(X <= k | x) decreases in x: solve P(X >= k + 1 | x) = 1 - tail.
    high = 1.0 if k == n else solve(lambda x: binomial_tail_at_least(k + 1, n, x), 1 - tail)
    return low, high


def main():
    cases = []
    for n in [1, 2, 3, 5, 8, 10, 20, 37, 50, 100, 500, 2000, 100000]:
        ks = sorted({0, 1, 2, n // 20, n // 3, n // 2, n - 2, n - 1, n})
        for k in ks:
            if not 0 <= k <= n:
                continue
            for confidence in [0.9, 0.95, 0.99]:
                ci = scipy.stats.binomtest(k, n).proportion_ci(
                    confidence_level=confidence, method="exact"
                )
                low, high = exact_interval(k, n, confidence)
                cases.append([k, n, confidence, float(ci.low), float(ci.high), low, high])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "clopper_pearson.json").write_text(
        json.dumps(
            {
                "scipy": scipy.__version__,
                "mpmath": mpmath.__version__,
                "columns": ["k", "n", "confidence", "scipy_low", "scipy_high", "exact_low", "exact_high"],
                "cases": cases,
            },
            indent=0,
        ) + "\n"
    )
    print(f"{len(cases)} cases")


if __name__ == "__main__":
    main()
