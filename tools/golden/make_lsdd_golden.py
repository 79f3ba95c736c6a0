"""Goldens for drift-detect's LSDD: alibi-detect 0.13's LSDDDrift (PyTorch backend, CPU) with
every permutation it drew recorded (the kernel centres' split and each window's
permutations), so the Rust tests replay them and compare exactly.

    venv/bin/python tools/golden/make_lsdd_golden.py

in the venv of tools/golden/requirements-detectors.txt. Writes
tests/fixtures/golden/detectors/lsdd.json.
"""

import json
import pathlib

import numpy as np
import torch
from torch_record import recorded_randperm

import alibi_detect
from alibi_detect.cd import LSDDDrift

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/golden/detectors"


def lsdd_case(rng, r, w, d, shift, permutations, seed, sigma=None):
    x_ref = rng.normal(size=(r, d))
    # A few exact zeros, as ReLU features have.
    x_ref[:, 0] = np.maximum(x_ref[:, 0], 0.0)
    x = rng.normal(size=(w, d)) + shift
    x[:, 0] = np.maximum(x[:, 0], 0.0)
    torch.manual_seed(seed)
    with recorded_randperm() as recorded:
        kwargs = {} if sigma is None else {"sigma": np.array([sigma])}
        cd = LSDDDrift(x_ref, backend="pytorch", p_val=0.05, n_permutations=permutations,
                       **kwargs)
        pred = cd.predict(x, return_p_val=True, return_distance=True)["data"]
    det = cd._detector
    sigma32 = det.kernel.sigma.detach()
    return {
        "r": r,
        "w": w,
        "d": d,
        "shift": shift,
        "sigma_given": sigma,
        "x_ref": x_ref.tolist(),
        "x": x.tolist(),
        "centers": det.n_kernel_centers,
        "sigma": float(sigma32.item()),
        "gamma": float((1.0 / (2.0 * sigma32 ** 2)).item()),
        "H": det.H.tolist(),
        "lsdd": float(pred["distance"]),
        "p_val": float(pred["p_val"]),
        "distance_threshold": float(pred["distance_threshold"]),
        "is_drift": int(pred["is_drift"]),
        # randperm calls in order: the centres' split (r), then one per permutation.
        "center_permutation": recorded[0],
        "permutations": recorded[1:],
    }


def main():
    rng = np.random.default_rng(20261206)
    cases = [
        lsdd_case(rng, 200, 50, 6, 0.0, 100, 1),
        lsdd_case(rng, 200, 50, 6, 0.4, 100, 2),
        lsdd_case(rng, 120, 40, 16, 0.0, 60, 3),
        lsdd_case(rng, 400, 100, 8, 0.25, 100, 4),
        lsdd_case(rng, 200, 30, 6, 0.3, 50, 5, sigma=2.5),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "lsdd.json").write_text(json.dumps(
        {"alibi_detect": alibi_detect.__version__, "torch": torch.__version__, "cases": cases}
    ) + "\n")
    print([(c["lsdd"], c["p_val"]) for c in cases])


if __name__ == "__main__":
    main()
