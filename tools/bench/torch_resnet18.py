"""PyTorch's ResNet18 (fc removed) throughput on this machine, the yardstick of the embedder.

Called by `cargo xtask bench` when DRIFT_BENCH_TORCH_PYTHON names a Python with torch and
torchvision (tools/golden/requirements.txt). Prints one JSON line. Weights do not change the
speed, so the network is built without them (no download).

    python tools/bench/torch_resnet18.py --threads 2 --batch 32 --batches 6
"""

import argparse
import json
import time

import torch
import torchvision


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()
    x = torch.rand(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        model(x)  # warm-up: allocator and oneDNN primitive caches
        started = time.perf_counter()
        for _ in range(args.batches):
            model(x)
        seconds = time.perf_counter() - started
    print(json.dumps({
        "torch": torch.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "images_per_s": args.batch * args.batches / seconds,
    }))


if __name__ == "__main__":
    main()
