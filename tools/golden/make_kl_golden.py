"""Golden fixture for SPEC's drift measure: PyTorch's KLDivLoss(reduction='batchmean').

For a batch with clean embeddings E and drifted embeddings D (rows of 512 features), SPEC's KL is
(1/B) sum_i sum_j P_ij (ln P_ij - ln Q_ij) with P = softmax(D), Q = softmax(E), which is
`KLDivLoss(reduction='batchmean', log_target=True)(log_softmax(E), log_softmax(D))`. This script
draws a few seeded batches shaped like ResNet18 features (non-negative, some rows large), stores
them as float32 values and PyTorch's KL computed in float64, for `tests/kl_golden.rs`.

Writes tests/fixtures/golden/kl/kl_golden.json. Re-run (from the repository root):
    python3 -m venv /tmp/golden && /tmp/golden/bin/pip install -r tools/golden/requirements.txt
    /tmp/golden/bin/python tools/golden/make_kl_golden.py
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fixtures/golden/kl"
DIM = 512


def features(generator, rows, scale):
    """ReLU'd, average-pooled-looking features: non-negative, mostly small, a few large."""
    return (torch.randn(rows, DIM, generator=generator).relu() * scale).float()


def kl_batchmean(drifted, clean):
    loss = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)
    log_q = F.log_softmax(clean.double(), dim=1)
    log_p = F.log_softmax(drifted.double(), dim=1)
    return loss(log_q, log_p).item()


def main():
    generator = torch.Generator().manual_seed(2024)
    cases = []
    for name, rows, scale, shift in [
        ("small_drift", 4, 1.5, 0.2),
        ("strong_drift", 4, 1.5, 1.5),
        ("large_values", 2, 60.0, 20.0),
        ("single_row", 1, 2.0, 0.7),
    ]:
        clean = features(generator, rows, scale)
        noise = torch.randn(rows, DIM, generator=generator) * shift
        drifted = (clean + noise).relu().float()
        cases.append({"name": name, "clean": clean, "drifted": drifted})
    same = features(generator, 2, 1.5)
    cases.append({"name": "identical", "clean": same, "drifted": same.clone()})

    OUT.mkdir(parents=True, exist_ok=True)
    record = {
        "generator": "tools/golden/make_kl_golden.py",
        "reference": "torch.nn.KLDivLoss(reduction='batchmean', log_target=True) in float64",
        "torch": torch.__version__,
        "cases": [
            {
                "name": case["name"],
                "kl": kl_batchmean(case["drifted"], case["clean"]),
                # float32 values written as Python floats: exact, so Rust reads the same bits.
                "clean": case["clean"].tolist(),
                "drifted": case["drifted"].tolist(),
            }
            for case in cases
        ],
    }
    (OUT / "kl_golden.json").write_text(json.dumps(record) + "\n")
    for case in record["cases"]:
        print(f"{case['name']}: KL {case['kl']:.10f}")


if __name__ == "__main__":
    main()
