"""Goldens for drift-detect's online MMD: alibi-detect 0.13's MMDDriftOnline (PyTorch backend,
CPU) with every permutation it drew recorded (the threshold bootstraps, then the reference
splits it tried), so the Rust tests replay them: each threshold, each step's statistic and the
first alarm compared.

    venv/bin/python tools/golden/make_online_golden.py

in the venv of tools/golden/requirements-detectors.txt. Writes
tests/fixtures/golden/detectors/mmd_online.json.
"""

import json
import pathlib

import numpy as np
import torch
from torch_record import recorded_randperm

import alibi_detect
from alibi_detect.cd import MMDDriftOnline

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/golden/detectors"


def online_case(rng, r, d, window, ert, bootstraps, clean, drifted, shift, seed, sigma=None):
    x_ref = rng.normal(size=(r, d))
    # A few exact zeros, as ReLU features have.
    x_ref[:, 0] = np.maximum(x_ref[:, 0], 0.0)
    stream = np.concatenate([rng.normal(size=(clean, d)), rng.normal(size=(drifted, d)) + shift])
    stream[:, 0] = np.maximum(stream[:, 0], 0.0)
    torch.manual_seed(seed)
    with recorded_randperm() as recorded:
        kwargs = {} if sigma is None else {"sigma": np.array([sigma])}
        cd = MMDDriftOnline(x_ref, ert=ert, window_size=window, backend="pytorch",
                            n_bootstraps=bootstraps, verbose=False, **kwargs)
    det = cd._detector
    sigma32 = det.kernel.sigma.detach()
    statistics, thresholds, alarms = [], [], []
    for x_t in stream:
        pred = cd.predict(x_t, return_test_stat=True)["data"]
        statistics.append(float(pred["test_stat"]))
        thresholds.append(float(pred["threshold"]))
        alarms.append(int(pred["is_drift"]))
    return {
        "r": r,
        "d": d,
        "window": window,
        "ert": ert,
        "bootstraps": bootstraps,
        "sigma_given": sigma,
        "x_ref": x_ref.tolist(),
        "stream": stream.tolist(),
        "sigma": float(sigma32.item()),
        "gamma": float((1.0 / (2.0 * sigma32 ** 2)).item()),
        "thresholds": [float(t) for t in det.thresholds],
        # randperm calls in order: one per bootstrap, then each reference split tried (the
        # last is kept).
        "bootstrap_permutations": recorded[:bootstraps],
        "split_permutations": recorded[bootstraps:],
        "statistics": statistics,
        "step_thresholds": thresholds,
        "alarms": alarms,
    }


def main():
    rng = np.random.default_rng(20261207)
    cases = [
        online_case(rng, 80, 4, 5, 25, 300, 30, 30, 1.0, 1),
        online_case(rng, 200, 8, 20, 50, 500, 60, 60, 0.6, 2),
        online_case(rng, 150, 6, 10, 40, 400, 50, 30, 0.8, 3, sigma=2.0),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mmd_online.json").write_text(json.dumps(
        {"alibi_detect": alibi_detect.__version__, "torch": torch.__version__, "cases": cases}
    ) + "\n")


if __name__ == "__main__":
    main()
