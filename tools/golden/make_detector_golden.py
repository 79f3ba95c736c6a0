"""Goldens for drift-detect: scipy's Kolmogorov distribution, two-sample KS and Cramér-von
Mises, alibi-detect's KSDrift, CVMDrift and MMDDrift (PyTorch backend, CPU) and frouros' MMD, with every permutation the
references drew recorded, so the Rust tests replay them and compare exactly.

    python -m venv venv && venv/bin/pip install -r tools/golden/requirements-detectors.txt
    venv/bin/python tools/golden/make_detector_golden.py

Writes tests/fixtures/golden/detectors/detectors.json (a few hundred KB).
"""

import json
import pathlib
from functools import partial

import numpy as np
import scipy
import scipy.stats
import torch
from torch_record import recorded_randperm

import alibi_detect
import frouros
from alibi_detect.cd import CVMDrift, KSDrift, MMDDrift
from frouros.callbacks import PermutationTestDistanceBased
from frouros.detectors.data_drift import MMD
from frouros.utils.kernels import rbf_kernel

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/golden/detectors"


def kolmogorov_cases():
    cases = []
    ns = [1, 2, 3, 5, 10, 37, 67, 100, 140, 141, 200, 333, 454, 1000, 5000, 20000, 150000]
    for n in ns:
        xs = [np.sqrt(c / n) for c in
              [0.1, 0.5, 0.7, 0.76, 1, 2, 2.1, 2.3, 3, 3.9, 4.1, 10, 17, 19, 50, 200, 369, 371]]
        xs += [0.3 / n, 0.7 / n, 1.0 / n, 1.5 / n, 2.5 / n, 0.45, 0.5, 0.6, 0.9, 1 - 0.5 / n]
        for x in xs:
            if 0 < x < 1:
                cases.append([n, float(x), float(scipy.stats.kstwo.sf(x, n))])
    return cases


def features(rng, rows, d, shift):
    """ReLU-like features (exact zeros, so ties) with some columns shifted."""
    x = rng.normal(size=(rows, d)) + shift
    x = np.maximum(x, 0.0)
    x[:, 0] = np.round(x[:, 0], 1)  # many ties inside one sample and across samples
    return x


def ks_case(rng, r, w, d, shift):
    x_ref = features(rng, r, d, 0.0)
    x = features(rng, w, d, shift)
    stats, ps = [], []
    for f in range(d):
        res = scipy.stats.ks_2samp(x_ref[:, f], x[:, f], method="asymp")
        stats.append(float(res.statistic))
        ps.append(float(res.pvalue))
    alibi = {}
    for correction in ["bonferroni", "fdr"]:
        cd = KSDrift(x_ref, p_val=0.05, correction=correction)
        pred = cd.predict(x, return_p_val=True, return_distance=True)["data"]
        alibi[correction] = {
            "is_drift": int(pred["is_drift"]),
            # alibi 0.13 returns every q alpha i / n when no p-value is below its q.
            "threshold": np.asarray(pred["threshold"], dtype=np.float64).tolist(),
            "p_val": [float(p) for p in pred["p_val"]],
            "distance": [float(v) for v in pred["distance"]],
        }
    return {"reference": x_ref.tolist(), "window": x.tolist(), "statistics": stats,
            "p_values": ps, "alibi": alibi}


def cvm_case(rng, r, w, d, shift):
    x_ref = features(rng, r, d, 0.0)
    x = features(rng, w, d, shift)
    stats, ps = [], []
    for f in range(d):
        res = scipy.stats.cramervonmises_2samp(x_ref[:, f], x[:, f], method="asymptotic")
        stats.append(float(res.statistic))
        ps.append(float(res.pvalue))
    alibi = {}
    for correction in ["bonferroni", "fdr"]:
        cd = CVMDrift(x_ref, p_val=0.05, correction=correction)
        pred = cd.predict(x, return_p_val=True, return_distance=True)["data"]
        alibi[correction] = {
            "is_drift": int(pred["is_drift"]),
            "threshold": np.asarray(pred["threshold"], dtype=np.float64).tolist(),
            "p_val": [float(p) for p in pred["p_val"]],
            "distance": [float(v) for v in pred["distance"]],
        }
    return {"reference": x_ref.tolist(), "window": x.tolist(), "statistics": stats,
            "p_values": ps, "alibi": alibi}


def mmd_case(rng, r, w, d, shift, permutations, seed):
    x_ref = rng.normal(size=(r, d))
    x = rng.normal(size=(w, d)) + shift
    # alibi, with torch.randperm recorded.
    torch.manual_seed(seed)
    with recorded_randperm() as recorded:
        cd = MMDDrift(x_ref, backend="pytorch", p_val=0.05, n_permutations=permutations)
        pred = cd.predict(x, return_p_val=True, return_distance=True)["data"]
    kernel = cd._detector.kernel
    sigma32 = kernel.sigma.detach()
    gamma = (1.0 / (2.0 * sigma32 ** 2)).item()
    alibi = {
        "sigma": float(sigma32.item()),
        "gamma": float(gamma),
        "mmd2": float(pred["distance"]),
        "p_val": float(pred["p_val"]),
        "distance_threshold": float(pred["distance_threshold"]),
        "is_drift": int(pred["is_drift"]),
        "permutations": recorded,
    }
    # frouros with the bandwidth alibi inferred, its permutations regenerated from its seed.
    sigma = float(np.sqrt(1.0 / (2.0 * np.float64(gamma))))
    detector = MMD(
        kernel=partial(rbf_kernel, sigma=sigma),
        callbacks=[PermutationTestDistanceBased(
            num_permutations=permutations, random_state=seed, num_jobs=1,
            method="estimate", name="permutation_test")],
    )
    detector.fit(X=x_ref)
    distance, log = detector.compare(X=x)
    np.random.seed(seed)
    frouros_perms = [np.random.permutation(r + w).tolist() for _ in range(permutations)]
    frouros_case = {
        "sigma": sigma,
        "mmd2": float(distance.distance),
        "p_value": float(log["permutation_test"]["p_value"]),
        "permutations": frouros_perms,
    }
    return {"reference": x_ref.tolist(), "window": x.tolist(), "alibi": alibi,
            "frouros": frouros_case}


def main():
    rng = np.random.default_rng(20261206)
    golden = {
        "versions": {"alibi-detect": alibi_detect.__version__, "frouros": frouros.__version__,
                     "scipy": scipy.__version__, "numpy": np.__version__,
                     "torch": torch.__version__},
        "kolmogorov": kolmogorov_cases(),
        "ks": [ks_case(rng, 200, 100, 8, np.array([0, 0, 0.3, 0, 0, 0.6, 0, 0])),
               ks_case(rng, 150, 150, 6, np.zeros(6)),
               ks_case(rng, 1000, 500, 4, np.array([0, 0.1, 0, 0.2]))],
        "mmd": [mmd_case(rng, 60, 40, 8, 0.0, 100, 1),
                mmd_case(rng, 80, 30, 5, 0.4, 100, 2),
                mmd_case(rng, 50, 50, 16, 0.15, 200, 3)],
    }
    # Drawn after the cases above, so that adding them changed none of those.
    golden["cvm"] = [cvm_case(rng, 200, 100, 8, np.array([0, 0, 0.3, 0, 0, 0.6, 0, 0])),
                     cvm_case(rng, 150, 150, 6, np.zeros(6)),
                     cvm_case(rng, 1000, 500, 4, np.array([0, 0.1, 0, 0.2])),
                     cvm_case(rng, 30, 12, 3, np.array([0.0, 1.0, 2.0]))]
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "detectors.json", "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
