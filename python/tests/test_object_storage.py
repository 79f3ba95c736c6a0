"""Datasets and outputs on a real S3 API: moto's server on 127.0.0.1 at a free port, started
here and stopped afterwards. The binary reads and writes through its own S3 client; this test
reads back with boto3, independently, and compares bytes and SHA-256 with hashlib."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

BUCKET = "drift-test"
SECRET = "s3cr3t-value-that-must-not-leak"


@pytest.fixture(scope="module")
def s3():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = dict(
        os.environ,
        AWS_ENDPOINT=f"http://{host}:{port}",
        AWS_ALLOW_HTTP="true",
        AWS_ACCESS_KEY_ID="testing-key-id",
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_REGION="us-east-1",
    )
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="testing-key-id",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield client, env
    server.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    cli("demo", str(root), "--images-per-class", "4", "--quiet")
    return root / "dataset"


def cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("drift-pipeline")
    return subprocess.run(
        [str(script), *args], env=env, check=check, capture_output=True, text=True
    )


def generate_args(input_path: str, output: str, seed: int = 4) -> list[str]:
    return [
        "generate", "--input", input_path, "--output", output, "--num-samples", "10",
        "--seed", str(seed), "--size", "24", "--transform", "rotate=0.4", "--quiet",
    ]


def upload(client, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.put_object(
                Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(folder)}", Body=path.read_bytes()
            )


def objects(client, prefix: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])
    return {
        o["Key"][len(prefix) + 1 :]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listed
    }


def complete_output(client, prefix: str) -> dict[str, bytes]:
    """The prefix's output files, checked against its drift.json (sizes and SHA-256)."""
    files = {k: v for k, v in objects(client, prefix).items() if not k.startswith(".drift")}
    record = json.loads(files["drift.json"])
    listed = {f["name"] for f in record["files"]} | {"drift.json"}
    assert set(files) == listed, (sorted(files), sorted(listed))
    for entry in record["files"]:
        data = files[entry["name"]]
        assert len(data) == entry["bytes"], entry["name"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]
    return files


def assert_equal_but_drift_json(remote: dict[str, bytes], folder: Path) -> dict[str, bytes]:
    """Checks that ``remote`` holds the local output ``folder``'s files, each byte for byte
    but drift.json (it names the input); returns the local files."""
    local = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    local = {k: v for k, v in local.items() if not k.startswith(".")}
    assert sorted(remote) == sorted(local)
    for name in local:
        if name != "drift.json":
            assert remote[name] == local[name], name
    return local


def test_generate_to_and_from_s3_equals_a_local_run(s3, dataset, tmp_path):
    client, env = s3
    cli(*generate_args(str(dataset), str(tmp_path / "local")), env=env)
    upload(client, dataset, "datasets/demo")
    run = cli(*generate_args(f"s3://{BUCKET}/datasets/demo", f"s3://{BUCKET}/runs/one"), env=env)
    remote = complete_output(client, "runs/one")
    local = assert_equal_but_drift_json(remote, tmp_path / "local")
    # drift.json differs only in the input's spelling.
    remote_record, local_record = json.loads(remote["drift.json"]), json.loads(local["drift.json"])
    assert remote_record["stream"]["input"] == f"s3://{BUCKET}/datasets/demo"
    local_record["stream"]["input"] = remote_record["stream"]["input"]
    assert remote_record == local_record
    # Nothing staged is left; the lock stays, free.
    keys = objects(client, "runs/one")
    assert not [k for k in keys if k.startswith(".drift-pipeline.staging")]
    assert json.loads(keys[".drift-pipeline.lock"])["state"] == "free"
    # The secret is nowhere: not in an object, not in what the binary printed.
    assert all(SECRET.encode() not in data for data in keys.values())
    assert SECRET not in run.stderr + run.stdout


def test_errors_name_the_url_and_never_the_secret(s3, dataset):
    client, env = s3
    missing = cli(
        *generate_args(f"s3://{BUCKET}/no/such/dataset", f"s3://{BUCKET}/runs/x"),
        env=env, check=False,
    )
    assert missing.returncode != 0
    assert f"s3://{BUCKET}/no/such/dataset does not exist" in missing.stderr, missing.stderr
    no_bucket = cli(
        *generate_args(str(dataset), "s3://no-such-bucket/run"), env=env, check=False
    )
    assert no_bucket.returncode != 0
    assert "s3://no-such-bucket" in no_bucket.stderr, no_bucket.stderr
    for result in (missing, no_bucket):
        assert SECRET not in result.stderr + result.stdout
        assert "panicked" not in result.stderr


def test_of_concurrent_writers_exactly_one_wins_every_time(s3, dataset):
    client, env = s3
    for attempt in range(20):
        prefix = f"race/{attempt}"
        script = Path(sys.executable).with_name("drift-pipeline")
        racers = [
            subprocess.Popen(
                [str(script), *generate_args(str(dataset), f"s3://{BUCKET}/{prefix}", seed)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for seed in (1, 2, 3)
        ]
        results = [(p.wait(), p.stderr.read()) for p in racers]
        winners = [seed for seed, (code, _) in zip((1, 2, 3), results) if code == 0]
        assert len(winners) == 1, (attempt, results)
        for code, stderr in results:
            if code != 0:
                assert "being written by another run" in stderr or "already exists" in stderr, (
                    stderr
                )
        files = complete_output(client, prefix)
        assert json.loads(files["drift.json"])["seed"] == winners[0]


def test_a_writer_killed_while_publishing_leaves_the_old_output_or_the_new(s3, dataset):
    client, env = s3
    prefix = "killed/run"
    url = f"s3://{BUCKET}/{prefix}"
    cli(*generate_args(str(dataset), url, seed=1), env=env)
    old = complete_output(client, prefix)

    # Killed with its files staged but the commit undecided: the old output stays whole, and
    # the next writer removes what the dead one staged.
    dying = cli(
        *generate_args(str(dataset), url, seed=2), "--overwrite",
        env=dict(env, DRIFT_PIPELINE_TEST_ABORT_AT="remote-staged"), check=False,
    )
    assert dying.returncode != 0
    assert complete_output(client, prefix) == old
    assert [k for k in objects(client, prefix) if k.startswith(".drift-pipeline.staging")]
    again = cli(*generate_args(str(dataset), url, seed=2), "--overwrite", env=env)
    assert "removed" in again.stderr and "staged file(s)" in again.stderr, again.stderr
    new = complete_output(client, prefix)
    assert new != old

    # Killed half-way through the commit: the next writer completes it first.
    dying = cli(
        *generate_args(str(dataset), url, seed=3), "--overwrite",
        env=dict(env, DRIFT_PIPELINE_TEST_ABORT_AT="remote-mid-commit"), check=False,
    )
    assert dying.returncode != 0
    assert "drift.json" not in objects(client, prefix), "the marker goes first"
    verify = cli(*generate_args(str(dataset), url, seed=3), "--overwrite", env=env)
    assert "completed the commit" in verify.stderr, verify.stderr
    final = complete_output(client, prefix)
    assert json.loads(final["drift.json"])["seed"] == 3
    assert not [k for k in objects(client, prefix) if k.startswith(".drift-pipeline.staging")]


def test_a_merge_killed_while_assembling_leaves_no_upload_behind(s3, dataset, tmp_path):
    """The merged zip is a multipart upload assembled in the output's staging area; a merge
    killed before completing it leaves the upload open, and the next writer aborts it (its id
    is in the lock) and merges to the one-process bytes."""
    client, env = s3
    cli(*generate_args(str(dataset), str(tmp_path / "one"), seed=6), env=env)
    shards = [f"s3://{BUCKET}/assembling/shard-{k}" for k in range(2)]
    for k, shard in enumerate(shards):
        cli(*generate_args(str(dataset), shard, seed=6), "--shard", f"{k}/2", env=env)
    out = f"s3://{BUCKET}/assembling/out"
    uploads = lambda: client.list_multipart_uploads(
        Bucket=BUCKET, Prefix="assembling/out/"
    ).get("Uploads", [])
    dying = cli(
        "merge", "--output", out, *shards,
        env=dict(env, DRIFT_PIPELINE_TEST_ABORT_AT="remote-assembling"), check=False,
    )
    assert dying.returncode != 0
    assert "drift.json" not in objects(client, "assembling/out")
    left = uploads()
    assert len(left) == 1 and left[0]["Key"].endswith("/sampled_images.zip"), left
    merged = cli("merge", "--output", out, *shards, env=env)
    assert uploads() == [], "the dead merge's upload was aborted"
    assert_equal_but_drift_json(complete_output(client, "assembling/out"), tmp_path / "one")


@contextlib.contextmanager
def ray_cluster(env: dict):
    """A local Ray with 2 CPUs whose workers get the store's configuration, shut down after."""
    import ray

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={"env_vars": {key: env[key] for key in AWS_KEYS}},
    )
    try:
        yield
    finally:
        ray.shutdown()


AWS_KEYS = ("AWS_ENDPOINT", "AWS_ALLOW_HTTP", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")


def test_ray_without_a_shared_folder_equals_one_process(s3, dataset, tmp_path, monkeypatch):
    """Input, shards and output all on S3: no path is shared between the driver and the two
    workers (each writes to its own private temporary folder), and the merged output is the
    one process's bytes."""
    import drift_pipeline
    import drift_pipeline.ray as dray

    client, env = s3
    for key in AWS_KEYS:
        monkeypatch.setenv(key, env[key])
    upload(client, dataset, "ray/dataset")
    # Noisy 1024-pixel images: each shard's zip is over S3's 5 MiB part minimum, so the merge
    # copies every image in the store, as it does at scale.
    transforms = ["gaussian_noise=1.0", "brightness=0.3"]
    reference = drift_pipeline.ImageDatasetGenerator(5, dataset, input_dim=1024)
    reference.add_drift(transforms, "abrupt")
    reference.sample(16, tmp_path / "one")

    with ray_cluster(env):
        result = dray.generate(
            input_path=f"s3://{BUCKET}/ray/dataset",
            output_path=f"s3://{BUCKET}/ray/out",
            num_samples=16, seed=5, transforms=transforms, drift="abrupt",
            num_shards=2, input_dim=1024,
        )
    remote = complete_output(client, "ray/out")
    assert_equal_but_drift_json(remote, tmp_path / "one")
    assert not objects(client, "ray/.drift-shards"), "shards removed after the merge"
    # The result reads its tables from the store.
    assert result.output_path == f"s3://{BUCKET}/ray/out"
    assert result.input_mapping.height == 16
    assert result.record["samples"] == 16
    # The store copied the images; the driver downloaded the shards' tables, records and zip
    # directories only, and a task hashed the merged zip.
    zip_bytes = len(remote["sampled_images.zip"])
    tables = sum(len(v) for k, v in remote.items() if k != "sampled_images.zip")
    downloaded = result.summary["merge_downloaded_bytes"]
    copied = result.summary["merge_copied_bytes"]
    print(
        f"driver downloaded {downloaded} bytes for a {zip_bytes}-byte zip (tables and record "
        f"{tables} bytes); the store copied {copied}"
    )
    assert zip_bytes > 2 * 5 * 2**20
    assert copied > 0.99 * zip_bytes
    assert result.summary["merge_hashed_bytes"] == 0
    assert downloaded <= 0.02 * zip_bytes + 2 * tables


def test_the_no_merge_layout_reads_as_one_dataset(s3, dataset, tmp_path, monkeypatch):
    """Ray with ``merge=False``: the shards stay on S3 and ``shard-index.json`` lists them;
    reading the shards' tables in the index's order with polars gives one process's tables,
    and each listed hash is the object's."""
    import polars as pl

    import drift_pipeline.ray as dray
    from drift_pipeline import sharding

    client, env = s3
    for key in AWS_KEYS:
        monkeypatch.setenv(key, env[key])
    cli(*generate_args(str(dataset), str(tmp_path / "one"), seed=8), env=env)
    with ray_cluster(env):
        returned = dray.generate(
            input_path=str(dataset), output_path=f"s3://{BUCKET}/nomerge/out",
            num_samples=10, seed=8, transforms=["rotate=0.4"], num_shards=3, input_dim=24,
            shard_dir=f"s3://{BUCKET}/nomerge/shards", merge=False,
        )
    index = sharding.read_shard_index(f"s3://{BUCKET}/nomerge/out")
    assert index == returned
    listed = index["segments"][0]["shards"]
    assert [s["shard"] for s in listed] == ["0/3", "1/3", "2/3"]
    for shard in listed:
        prefix = shard["output"][len(f"s3://{BUCKET}/"):]
        for file in shard["files"]:
            body = client.get_object(Bucket=BUCKET, Key=f"{prefix}/{file['name']}")["Body"].read()
            assert hashlib.sha256(body).hexdigest() == file["sha256"]
    # The README's recipe: the run as one table, in sample order.
    storage = {"aws_endpoint_url": env["AWS_ENDPOINT"], "aws_allow_http": "true",
               "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
               "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"], "aws_region": "us-east-1"}
    for table in ("input_mapping", "target"):
        rows = pl.concat([
            pl.read_parquet(f"{s['output']}/{table}.parquet", storage_options=storage)
            for s in listed
        ])
        assert rows.equals(pl.read_parquet(tmp_path / "one" / f"{table}.parquet")), table
