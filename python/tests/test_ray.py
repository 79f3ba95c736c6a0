"""The Ray driver on a local cluster (two CPUs): sharded runs merged are the same bytes as one
process's, a worker killed mid-shard is retried with the same result, and bad shard sets are
refused. Files are compared byte for byte with hashlib, independently of the package."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray

import drift_pipeline
import drift_pipeline.ray as dray
from drift_pipeline import _native, weights


@pytest.fixture(scope="module")
def cluster():
    # Ray's notice that a future version stops setting CUDA_VISIBLE_DEVICES for CPU tasks.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The demo dataset (4 classes x 8 images) plus one unreadable image."""
    root = tmp_path_factory.mktemp("demo")
    script = Path(sys.executable).with_name("drift-pipeline")
    subprocess.run(
        [str(script), "demo", str(root), "--images-per-class", "8", "--quiet"], check=True
    )
    (root / "dataset" / "forest" / "zz_unreadable.png").write_text("not a png")
    return root / "dataset"


@pytest.fixture(scope="module")
def test_weights(tmp_path_factory) -> Path:
    return weights.write_test_weights(tmp_path_factory.mktemp("w") / "t.safetensors", seed=4)


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if not p.name.startswith(".")
    }


def scenario(dataset: Path, weights_file: Path, out: Path) -> dict:
    return {
        "input": str(dataset),
        "seed": 3,
        "size": "32",
        "skip_bad_images": True,
        "embeddings": True,
        "weights": str(weights_file),
        "batch_size": 3,
        "threads": 1,
        "segment": [
            {
                "name": "drifted",
                "samples": 13,
                "output": str(out / "drifted"),
                "transforms": ["gaussian_blur=0.4", "gaussian_noise=0.3"],
                "drift": "gradual:width=5",
            },
            {
                "name": "label shift",
                "samples": 8,
                "output": str(out / "shifted"),
                "class_weights": {"forest": 2.0, "sky": 1.0, "sunset": 1.0, "city_night": 1.0},
            },
        ],
    }


def test_four_shards_on_ray_merge_to_the_single_process_bytes(
    cluster, dataset, test_weights, tmp_path
):
    drift_pipeline.run_scenario(scenario(dataset, test_weights, tmp_path / "one"))
    results = dray.run_scenario(scenario(dataset, test_weights, tmp_path / "ray"), num_shards=4)
    assert [r.output_path.name for r in results] == ["drifted", "shifted"]
    for name in ["drifted", "shifted"]:
        want = digests(tmp_path / "one" / name)
        assert "embeddings.parquet" in want
        assert digests(tmp_path / "ray" / name) == want, name
    # A merged record is a whole output's: no shard record, the segment's whole range.
    assert "shard" not in results[1].record
    assert results[1].record["sample_id"] == {"first": 13, "last": 20}
    assert not (tmp_path / "ray" / ".drift-shards").exists(), "shards removed after the merge"


def test_a_worker_killed_mid_shard_is_retried_and_the_bytes_do_not_change(
    cluster, dataset, tmp_path
):
    keywords = dict(input_dim=24, skip_bad_images=True)
    transforms = ["rotate=0.5", drift_pipeline.TransformInfo("gaussian_blur", 0.2)]
    reference = drift_pipeline.ImageDatasetGenerator(5, dataset, **keywords)
    reference.add_drift(transforms, "incremental:from=0,to=1")
    reference.sample(20, tmp_path / "one")
    result = dray.generate(
        input_path=dataset,
        output_path=tmp_path / "ray",
        num_samples=20,
        seed=5,
        transforms=transforms,
        drift="incremental:from=0,to=1",
        num_shards=4,
        shard_dir=tmp_path / "shards",
        keep_shards=True,
        _fail_once=[1, 2],
        **keywords,
    )
    # The killed attempts ran: their markers exist. The retries recovered their folders.
    assert (tmp_path / "shards" / ".fail-once-1").exists()
    assert (tmp_path / "shards" / ".fail-once-2").exists()
    assert digests(result.output_path) == digests(tmp_path / "one")
    assert result.drift_log.height == 20

    # merge refuses a missing shard, a duplicated one, and one of another run.
    shards = sorted(p for p in (tmp_path / "shards").iterdir() if p.name.startswith("shard-"))
    assert len(shards) == 4
    target = tmp_path / "again"
    with pytest.raises(ValueError, match="is missing"):
        _native.merge([str(p) for p in shards[:3]], str(target))
    with pytest.raises(ValueError, match="given twice"):
        _native.merge([str(p) for p in shards + shards[:1]], str(target))
    foreign = dray.generate(
        input_path=dataset,
        output_path=tmp_path / "other",
        num_samples=20,
        seed=6,
        num_shards=4,
        shard_dir=tmp_path / "other-shards",
        keep_shards=True,
        **keywords,
    )
    assert foreign.drift_log.height == 20
    other = sorted((tmp_path / "other-shards").glob("shard-*"))
    with pytest.raises(ValueError, match="not of the same run"):
        _native.merge([str(p) for p in shards[:3] + other[3:]], str(target))
    assert not target.exists()


def test_a_shard_on_a_changed_dataset_refuses_to_start(cluster, dataset, tmp_path):
    changed = tmp_path / "changed"
    subprocess.run(["cp", "-r", str(dataset), str(changed)], check=True)
    manifest = tmp_path / "manifest.parquet"
    images, undecodable = _native.index(str(changed), str(manifest), True)
    assert images == 33 and len(undecodable) == 1
    for image in sorted(changed.rglob("*.png")) + sorted(changed.rglob("*.jpg")):
        image.write_bytes(image.read_bytes() + b"\0")
    with pytest.raises(Exception, match="changed since the dataset's manifest"):
        dray.generate(
            input_path=changed,
            output_path=tmp_path / "out",
            num_samples=8,
            num_shards=2,
            manifest=manifest,
            max_retries=0,
            skip_bad_images=True,
        )
    assert not (tmp_path / "out").exists()


def test_evaluate_sharded_on_ray_is_the_single_process_report(
    cluster, dataset, test_weights, tmp_path
):
    keywords = dict(
        transforms=["gaussian_blur"], levels=[0.3, 0.9], num_samples=14, input_dim=32,
        batch_size=4, weights=test_weights, seed=2,
    )
    # Without the unreadable image: evaluate stops on one, as the command line does.
    clean = tmp_path / "clean"
    subprocess.run(["cp", "-r", str(dataset), str(clean)], check=True)
    (clean / "forest" / "zz_unreadable.png").unlink()
    one = drift_pipeline.evaluate(clean, tmp_path / "one", **keywords)
    sharded = dray.evaluate(clean, tmp_path / "ray", num_shards=3, **keywords)
    assert sharded.kl.height == 2 * 4
    assert digests(sharded.output_path) == digests(one.output_path)


def test_detect_sharded_on_ray_is_the_single_process_report(
    cluster, dataset, test_weights, tmp_path
):
    clean = tmp_path / "clean"
    subprocess.run(["cp", "-r", str(dataset), str(clean)], check=True)
    (clean / "forest" / "zz_unreadable.png").unlink()
    drift_pipeline.run_scenario({
        "input": str(clean), "seed": 5, "size": "32", "embeddings": True,
        "weights": str(test_weights), "threads": 1,
        "segment": [
            {"name": "ref", "samples": 12, "output": str(tmp_path / "ref")},
            {"name": "noisy", "samples": 18, "output": str(tmp_path / "noisy"),
             "transforms": ["gaussian_noise=0.8"]},
        ],
    })
    keywords = dict(detectors=["mmd", "ks", "mmd:null=calibrated,draws=50"], window=3, seed=7)
    one = drift_pipeline.detect(tmp_path / "ref", tmp_path / "noisy", tmp_path / "one", **keywords)
    sharded = dray.detect(
        tmp_path / "ref", tmp_path / "noisy", tmp_path / "ray", num_shards=4, **keywords
    )
    assert sharded.windows.height == 3 * 6
    assert "shard" not in sharded.record
    assert digests(sharded.output_path) == digests(one.output_path)
    # An online detector reads the stream in order: it cannot be sharded.
    with pytest.raises(drift_pipeline.errors.InvalidRunError, match="online detector"):
        dray.detect(
            tmp_path / "ref", tmp_path / "noisy", tmp_path / "bad", num_shards=2,
            detectors=["mmd-online:ert=4,window=2,bootstraps=50"], max_retries=0,
        )
