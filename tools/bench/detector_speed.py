"""Peers of drift-detect's MMD and KS for `cargo xtask bench`: alibi-detect 0.13's MMDDrift
(PyTorch backend, CPU) and KSDrift, and frouros 0.9's MMD with its permutation test, at the
issue's size: a reference of 1,000 and a window of 500 samples of 512 features, 100
permutations. Prints one JSON line of seconds per window test (the best of three; frouros, which
recomputes the kernel for every permutation, once).

Run with the venv of tools/golden/requirements-detectors.txt:
    venv/bin/python tools/bench/detector_speed.py --threads 2
"""

import argparse
import json
import time
import warnings
from functools import partial

import numpy as np
import torch

warnings.filterwarnings("ignore")


def best(run, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-frouros", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import alibi_detect
    import frouros
    from alibi_detect.cd import KSDrift, MMDDrift
    from frouros.callbacks import PermutationTestDistanceBased
    from frouros.detectors.data_drift import MMD
    from frouros.utils.kernels import rbf_kernel

    rng = np.random.default_rng(0)
    x_ref = rng.normal(size=(1000, 512))
    x = rng.normal(size=(500, 512)) + 0.05
    seconds = {}
    mmd = MMDDrift(x_ref, backend="pytorch", p_val=0.05, n_permutations=100)
    seconds["alibi_mmd"] = best(lambda: mmd.predict(x), 3)
    ks = KSDrift(x_ref, p_val=0.05)
    seconds["alibi_ks"] = best(lambda: ks.predict(x), 3)
    if not args.no_frouros:
        sigma = float(mmd._detector.kernel.sigma.item())
        detector = MMD(
            kernel=partial(rbf_kernel, sigma=sigma),
            callbacks=[PermutationTestDistanceBased(
                num_permutations=100, random_state=0, num_jobs=args.threads,
                method="estimate", name="permutation_test")],
        )
        detector.fit(X=x_ref)
        seconds["frouros_mmd"] = best(lambda: detector.compare(X=x), 1)
    print(json.dumps({"alibi-detect": alibi_detect.__version__, "frouros": frouros.__version__,
                      "torch": torch.__version__, "threads": args.threads,
                      "seconds": seconds}))


if __name__ == "__main__":
    main()
