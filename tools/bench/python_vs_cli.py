"""A Python `sample` call against the `drift-pipeline generate` binary, same settings.

    python tools/bench/python_vs_cli.py --binary target/release/drift-pipeline \
        --input out/dataset --samples 200 [--embeddings WEIGHTS] [--repeats 5]

Run it with the python of a venv where the package is installed from a release wheel
(`maturin build --release`, then `pip install target/wheels/drift_pipeline-*.whl`), and a
release binary (`cargo build --release`). Each repeat writes a fresh output folder; the report
is the median wall time of each and the ratio (Python / CLI). The outputs are also compared
byte for byte, so the two ran the same work.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from drift_pipeline import ImageDatasetGenerator


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, type=Path)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--embeddings", type=Path, help="weights file: embed too")
    parser.add_argument("--transform", default="default=0.5")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="py-vs-cli-"))
    cli_times, py_times = [], []
    flags = ["--num-samples", str(args.samples), "--transform", args.transform, "--quiet"]
    if args.embeddings:
        flags += ["--embeddings", "--weights", str(args.embeddings)]
    for repeat in range(args.repeats):
        cli_out, py_out = scratch / f"cli{repeat}", scratch / f"py{repeat}"
        started = time.perf_counter()
        subprocess.run(
            [str(args.binary), "generate", "--input", str(args.input), "--output", str(cli_out),
             *flags],
            check=True,
        )
        cli_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        generator = ImageDatasetGenerator(
            input_path=args.input,
            compute_embeddings=args.embeddings is not None,
            weights=args.embeddings,
            progress=False,
        )
        generator.add_abrupt_drift([args.transform])
        generator.sample(args.samples, py_out)
        py_times.append(time.perf_counter() - started)
        assert folder_bytes(cli_out) == folder_bytes(py_out), "the two wrote different bytes"
    shutil.rmtree(scratch)
    cli, py = statistics.median(cli_times), statistics.median(py_times)
    print(f"cpu: {cpu_model()}")
    print(f"samples {args.samples}, embeddings {'on' if args.embeddings else 'off'}, "
          f"transform {args.transform}, {args.repeats} repeats (median wall time, process start "
          "and generator set-up included in both)")
    print(f"cli    {cli:.3f} s  {args.samples / cli:.1f} samples/s")
    print(f"python {py:.3f} s  {args.samples / py:.1f} samples/s")
    print(f"python / cli time: {py / cli:.3f}")


if __name__ == "__main__":
    main()
