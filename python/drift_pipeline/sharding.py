"""Sharded runs for any engine: the steps a driver and its workers take, as public functions.

``drift_pipeline.ray`` is one engine on top of these; Dask, SLURM array jobs or a shell loop can
be others. A run is planned on the driver (:func:`plan_scenario`, :func:`index_dataset`), each
shard is made by a worker (:func:`make_shard`, :func:`evaluate_shard`, :func:`detect_shard`)
into its own folder, and the driver merges the shard folders into what one process writes, byte
for byte (:func:`merge_shards`, :func:`merge_reports`, :func:`merge_detect_reports`). Shards are deterministic and idempotent: a
retried shard replaces a half-made attempt, so any engine's retries are safe.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from drift_pipeline import (
    DetectionResult,
    EvaluationResult,
    SampleResult,
    TransformArg,
    _evaluate_args,
    _is_url,
    _place,
    _native,
    _detect_args,
    _read_detection,
    _read_evaluation,
    _run_keys,
    _scenario_text,
    _transform_specs,
)

__all__ = [
    "ABORT_ENV",
    "ScenarioPlan",
    "detect_arguments",
    "detect_shard",
    "evaluate_arguments",
    "evaluate_shard",
    "generate_scenario",
    "hash_zip",
    "index_dataset",
    "index_shards",
    "make_shard",
    "merge_detect_reports",
    "merge_reports",
    "merge_shards",
    "plan_scenario",
    "read_shard_index",
]

#: The writer's test hook (``DRIFT_PIPELINE_TEST_ABORT_AT``): tests kill a worker mid-shard.
ABORT_ENV = "DRIFT_PIPELINE_TEST_ABORT_AT"


@dataclass(frozen=True)
class ScenarioPlan:
    """A scenario, checked as a run checks it, in the form workers take it."""

    #: The scenario as text: TOML (a file's) or JSON (a dict's).
    text: str
    is_toml: bool
    #: The folder its relative paths are relative to.
    base: str
    #: The input folder (absolute).
    input: str
    skip_bad_images: bool
    embeddings: bool
    #: The embedding device asked for (``cpu``, ``gpu``, ``auto``), or None.
    device: str | None
    #: ``(name, samples, output folder)`` of each segment.
    segments: list[tuple[str, int, str]]


def plan_scenario(scenario: os.PathLike | str | Mapping[str, Any]) -> ScenarioPlan:
    """Reads and checks a scenario (a TOML file or a dict, as
    :func:`drift_pipeline.run_scenario`); raises as a run would."""
    text, is_toml, base = _scenario_text(scenario)
    facts = _native.scenario_facts(text, is_toml, os.fspath(base))
    return ScenarioPlan(
        text=text,
        is_toml=is_toml,
        base=os.fspath(base),
        input=facts["input"],
        skip_bad_images=facts["skip_bad_images"],
        embeddings=facts["embeddings"],
        device=facts["device"],
        segments=[tuple(s) for s in facts["segments"]],
    )


def generate_scenario(
    input_path: os.PathLike | str,
    output_path: os.PathLike | str,
    num_samples: int,
    seed: int | None = None,
    transforms: Sequence[TransformArg] = (),
    *,
    drift: str | None = None,
    segment: str | None = None,
    **keywords: Any,
) -> dict[str, Any]:
    """``ImageDatasetGenerator(seed, input_path, **keywords)`` sampling ``num_samples`` into
    ``output_path`` with ``transforms`` and ``drift``, as a one-segment scenario dict."""
    run = _run_keys(seed=seed, input_path=input_path, **keywords)
    run["segment"] = [
        {
            "name": segment,
            "samples": num_samples,
            "output": os.fspath(_place(output_path)),
            "transforms": _transform_specs(transforms),
            "drift": drift,
        }
    ]
    return {k: v for k, v in run.items() if v is not None}


def index_dataset(input_path: os.PathLike | str, manifest: os.PathLike | str, verify: bool) -> None:
    """Writes a dataset manifest (``drift-pipeline index``): workers then list nothing, and,
    verified, know which images decode without decoding them."""
    _native.index(os.fspath(input_path), os.fspath(manifest), verify)


def make_shard(
    plan: ScenarioPlan,
    shard: str,
    shard_output: os.PathLike | str,
    manifest: os.PathLike | str | None,
) -> list[dict]:
    """Makes shard ``shard`` (``"K/N"``) of the planned run into ``shard_output`` (one
    ``segment-N`` folder per segment); returns each segment's summary."""
    summaries = _native.run_scenario(
        plan.text,
        plan.is_toml,
        plan.base,
        None,
        shard,
        os.fspath(shard_output),
        None if manifest is None else os.fspath(manifest),
    )
    return [dict(s) for s in summaries]


def merge_shards(
    folders: Sequence[os.PathLike | str],
    output_path: os.PathLike | str | None,
    overwrite: bool,
    zip_hasher: Callable[[str], str] | None = None,
) -> tuple[list[SampleResult], list[str]]:
    """Merges shard folders into ``output_path`` (a one-segment run) or each segment's own
    folder; returns the merged outputs, read back, and the merge's warnings.

    With shards and outputs on object storage the merged zip is assembled by the store and
    only its SHA-256 needs its bytes read: ``zip_hasher`` is then given each merged zip's hash
    job (a JSON string) and returns the hash, e.g. by running :func:`hash_zip` elsewhere (the
    Ray driver runs it as a task); without one this process reads the zip."""
    merged = _native.merge(
        [os.fspath(f) for f in folders],
        None if output_path is None else os.fspath(output_path),
        overwrite,
        zip_hasher,
    )
    moved = {
        "merge_zip_bytes": merged["zip_bytes"],
        "merge_downloaded_bytes": merged["downloaded_bytes"],
        "merge_copied_bytes": merged["copied_bytes"],
        "merge_hashed_bytes": merged["hashed_bytes"],
    }
    results = [
        SampleResult.read(folder, {"samples": samples, **moved})
        for folder, samples in merged["outputs"]
    ]
    return results, list(merged["warnings"])


def index_shards(
    folders: Sequence[os.PathLike | str],
    output_path: os.PathLike | str,
    overwrite: bool = False,
) -> dict[str, Any]:
    """The no-merge layout: checks the shard folders as a merge would and commits
    ``shard-index.json`` into ``output_path`` (a folder or an object-store prefix), listing the
    shard outputs in sample order with their files' sizes and SHA-256; returns the index.
    Read the run as one dataset from it, e.g. with polars::

        index = drift_pipeline.sharding.read_shard_index("s3://bucket/run")
        outputs = [s["output"] for s in index["segments"][0]["shards"]]
        rows = pl.concat([pl.read_parquet(f"{o}/input_mapping.parquet") for o in outputs])
    """
    text = _native.write_shard_index(
        [os.fspath(f) for f in folders], os.fspath(output_path), overwrite
    )
    return json.loads(text)


def read_shard_index(location: os.PathLike | str) -> dict[str, Any]:
    """The ``shard-index.json`` that :func:`index_shards` committed into ``location`` (a folder
    or an object-store prefix)."""
    place = os.fspath(location)
    if _is_url(place):
        return json.loads(_native.read_object(place.rstrip("/") + "/shard-index.json"))
    return json.loads(Path(place, "shard-index.json").read_text())


def hash_zip(job: str) -> str:
    """Runs a merged zip's hash job (from :func:`merge_shards`'s ``zip_hasher``): reads the
    zip assembled on object storage once, checks each shard's zip against its record on the
    way, and returns the zip's SHA-256."""
    sha256, _read = _native.hash_assembled_zip(job)
    return sha256


def evaluate_arguments(
    input_path: os.PathLike | str,
    output_path: os.PathLike | str,
    transforms: Sequence[Any] = ("default",),
    levels: Sequence[float] | None = None,
    *,
    num_samples: int | None = None,
    seed: int | None = None,
    input_dim: int | tuple[int, int] | str | None = None,
    batch_size: int | None = None,
    weights: os.PathLike | str | None = None,
    normalize: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    overwrite: bool = False,
) -> tuple:
    """:func:`drift_pipeline.evaluate`'s keywords as the opaque arguments of
    :func:`evaluate_shard` (picklable, for any engine)."""
    return _evaluate_args(
        input_path, output_path, transforms, levels, num_samples, seed, input_dim,
        batch_size, weights, normalize, device, threads, overwrite,
    )


def evaluate_shard(arguments: tuple, shard: str) -> str:
    """Measures shard ``shard`` (``"K/N"``) of a sweep's batches into the report folder the
    arguments name; returns that folder."""
    return _native.evaluate(*arguments, None, shard)


def merge_reports(
    folders: Sequence[os.PathLike | str], output_path: os.PathLike | str, overwrite: bool
) -> EvaluationResult:
    """Joins a sweep's shard reports into the report one process writes, read back."""
    folder = _native.merge_reports(
        [os.fspath(f) for f in folders], os.fspath(output_path), overwrite
    )
    return _read_evaluation(Path(folder))


def detect_arguments(
    reference: os.PathLike | str,
    stream: os.PathLike | str | Sequence[os.PathLike | str],
    output_path: os.PathLike | str,
    detectors: Sequence[str] = ("mmd",),
    *,
    window: int = 100,
    stride: int | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    threads: int | None = None,
    overwrite: bool = False,
) -> tuple:
    """:func:`drift_pipeline.detect`'s keywords as the opaque arguments of
    :func:`detect_shard` (picklable, for any engine)."""
    return _detect_args(
        reference, stream, output_path, detectors, window, stride, alpha, seed, threads,
        overwrite,
    )


def detect_shard(arguments: tuple, shard: str) -> str:
    """Tests shard ``shard`` (``"K/N"``) of a stream's windows into the report folder the
    arguments name; returns that folder."""
    return _native.detect(*arguments, shard)


def merge_detect_reports(
    folders: Sequence[os.PathLike | str], output_path: os.PathLike | str, overwrite: bool
) -> DetectionResult:
    """Joins a detect run's shard reports into the report one process writes, read back."""
    folder = _native.merge_detect_reports(
        [os.fspath(f) for f in folders], os.fspath(output_path), overwrite
    )
    return _read_detection(Path(folder))
