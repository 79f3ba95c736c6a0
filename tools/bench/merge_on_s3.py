"""Measures a merge on object storage: how many bytes pass through the merging process.

A local S3 API (moto's server, pinned in python/tests/requirements.txt) on 127.0.0.1; a
sharded run of noisy 1024-pixel images (incompressible PNGs, ~3 MB each) written to it by
`drift-pipeline generate --shard K/N`; `drift-pipeline merge` into an output there. The merged
output is read back with boto3 and compared byte for byte with a one-process local run.

    python tools/bench/merge_on_s3.py [--samples 80] [--shards 4] [--binary PATH]
        [--hash-elsewhere]

Prints the zip's size, what the merge downloaded, what the store copied, what the hash pass
read, and the seconds each step took. With --hash-elsewhere the merge runs through the Python
API (`drift_pipeline.sharding.merge_shards`, the installed package) with the merged zip's hash
job sent to another process, as the Ray driver sends it to a task: the merging process then
reads no image bytes at all.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

BUCKET = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=80)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--binary", default="target/release/drift-pipeline")
    parser.add_argument("--hash-elsewhere", action="store_true")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = dict(
        os.environ,
        AWS_ENDPOINT=endpoint,
        AWS_ALLOW_HTTP="true",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_REGION="us-east-1",
    )
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="bench",
        aws_secret_access_key="bench-secret", region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)

    def run(*command: str) -> str:
        started = time.perf_counter()
        done = subprocess.run(
            [args.binary, *command], env=env, check=True, capture_output=True, text=True
        )
        print(f"  {command[0]}: {time.perf_counter() - started:.1f} s")
        return done.stdout

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        per_class = max(2, args.samples // 4 + 1)
        run("demo", str(root / "demo"), "--images-per-class", str(per_class), "--quiet")
        dataset = str(root / "demo" / "dataset")
        common = [
            "--num-samples", str(args.samples), "--seed", "7", "--size", str(args.size),
            "--transform", "gaussian_noise=1.0", "--quiet",
        ]
        run("generate", "--input", dataset, "--output", str(root / "one"), *common)
        manifest = f"s3://{BUCKET}/run/manifest.parquet"
        run("index", dataset, "--output", manifest, "--quiet")
        shards = [f"s3://{BUCKET}/run/shard-{k}" for k in range(args.shards)]
        for k, shard in enumerate(shards):
            run(
                "generate", "--input", dataset, "--output", shard, "--manifest", manifest,
                "--shard", f"{k}/{args.shards}", *common,
            )
        if args.hash_elsewhere:
            merge_hashing_elsewhere(shards, env)
        else:
            report = run("merge", "--output", f"s3://{BUCKET}/merged", *shards)
            print("  " + report.strip().replace("\n", "\n  "))
        for name in sorted(p.name for p in (root / "one").iterdir()):
            if name.startswith(".drift-pipeline"):
                continue
            want = (root / "one" / name).read_bytes()
            got = client.get_object(Bucket=BUCKET, Key=f"merged/{name}")["Body"].read()
            same = "identical" if got == want else "DIFFERENT"
            digest = hashlib.sha256(got).hexdigest()[:16]
            print(f"  {name}: {len(got)} bytes, sha256 {digest}..., {same} to one process")
    server.stop()


def merge_hashing_elsewhere(shards: list[str], env: dict) -> None:
    """The merge through the Python API, its hash job run by another Python process."""
    os.environ.update(env)
    from drift_pipeline import sharding

    def hasher(job: str) -> str:
        code = "import sys; from drift_pipeline import sharding; print(sharding.hash_zip(sys.stdin.read()))"
        done = subprocess.run(
            [sys.executable, "-c", code], input=job, env=env, check=True,
            capture_output=True, text=True,
        )
        return done.stdout.strip()

    started = time.perf_counter()
    results, _ = sharding.merge_shards(shards, f"s3://{BUCKET}/merged", False, hasher)
    summary = results[0].summary
    print(f"  merge (Python, hash in another process): {time.perf_counter() - started:.1f} s")
    for key in ("merge_zip_bytes", "merge_downloaded_bytes", "merge_copied_bytes",
                "merge_hashed_bytes"):
        print(f"  {key}: {summary[key]}")


if __name__ == "__main__":
    main()
