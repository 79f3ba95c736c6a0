"""Sharded runs on a Ray cluster: the same bytes as one process, made by many.

A run is split into ``num_shards`` deterministic shards (``--shard K/N``: contiguous sample ids
of every segment). Each shard is one ``ray.remote`` task that writes a complete, transactional
shard folder; a failed task is retried (a shard is idempotent: its retry replaces a half-made
attempt). The driver then merges the shards (``drift-pipeline merge``) into the outputs one
process would have written, byte for byte. Embeddings are byte-identical only when every
shard ran on the same CPU kind; the merge warns otherwise.

Every worker must see the input, the shard folders and the outputs at the same places: paths
on a shared file system, or object-store URLs (``s3://``, ``gs://``, ``az://``), which need
no shared file system at all. With URLs a worker writes its shard to local scratch space and
publishes it to the store; the driver merges without downloading the images: the store
assembles each merged zip from the shards' zips (ranged part copies, plus the rebuilt central
directory), the driver re-encodes the tables, and one more task reads the merged zip beside
the store to hash it for ``drift.json`` (checking every shard's zip on the way). Workers read their store's configuration from the environment: pass it with
``ray.init(runtime_env={"env_vars": {...}})`` or the cluster's own (IAM roles, IRSA). The
steps are :mod:`drift_pipeline.sharding`'s, which any other engine can use.

``import drift_pipeline.ray`` needs the ``ray`` package (``pip install "drift-pipeline[ray]"``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

try:
    import ray as _ray
except ImportError as error:  # pragma: no cover - the tests have Ray
    raise ImportError(
        "drift_pipeline.ray needs Ray: pip install 'drift-pipeline[ray]'"
    ) from error

from . import DetectionResult, EvaluationResult, SampleResult, TransformArg, _native, _place, sharding
from .errors import InvalidRunError

__all__ = ["detect", "evaluate", "generate", "run_scenario"]


def _check_num_shards(num_shards: Any) -> None:
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise InvalidRunError(
            f"keyword 'num_shards': must be an int of at least 1, got {num_shards!r}"
        )


def _join(root: Path | str, name: str) -> Path | str:
    return f"{root}/{name}" if isinstance(root, str) else root / name


def _shard_root(shard_dir: os.PathLike | str | None, output: Path | str) -> Path | str:
    """Where the shards go: ``shard_dir``, or ``.drift-shards`` beside ``output``; a local one
    is created."""
    if shard_dir is not None:
        root = _place(shard_dir)
    elif isinstance(output, str):
        root = f"{output.rsplit('/', 1)[0]}/.drift-shards"
    else:
        root = output.parent / ".drift-shards"
    if isinstance(root, Path):
        root.mkdir(parents=True, exist_ok=True)
    return root


def _remove_shards(root: Path | str) -> None:
    if isinstance(root, str):
        _native.delete_remote_folder(root)
    else:
        shutil.rmtree(root, ignore_errors=True)


def _shard_task(function: Any, num_cpus: float, num_gpus: float, max_retries: int) -> Any:
    """``function`` as a Ray task that a failure or a dead worker retries: shards are
    idempotent, and a retry's lock recovers what the failed attempt staged."""
    return _ray.remote(
        num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries, retry_exceptions=True
    )(function)


def _make_shard(
    plan: sharding.ScenarioPlan,
    shard: str,
    shard_output: str,
    manifest: str | None,
    fail_once: str | None,
) -> list[dict]:
    """One shard, on a worker. ``fail_once`` (tests only) names a marker file: the first
    attempt that finds it missing creates it and kills its worker after staging, so the retry
    must recover the half-made shard folder."""
    if fail_once is not None and not os.path.exists(fail_once):
        Path(fail_once).touch()
        os.environ[sharding.ABORT_ENV] = "staged"
    try:
        return sharding.make_shard(plan, shard, shard_output, manifest)
    finally:
        os.environ.pop(sharding.ABORT_ENV, None)


def _zip_hasher(num_cpus: float, max_retries: int) -> Any:
    """Hashes merged zips in a Ray task: the driver moves no image bytes."""
    task = _ray.remote(
        num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=True
    )(sharding.hash_zip)
    return lambda job: _ray.get(task.remote(job))


def run_scenario(
    scenario: os.PathLike | str | Mapping[str, Any],
    num_shards: int,
    *,
    shard_dir: os.PathLike | str | None = None,
    output_path: os.PathLike | str | None = None,
    manifest: os.PathLike | str | None = None,
    num_cpus: float = 1,
    num_gpus: float | None = None,
    max_retries: int = 3,
    overwrite: bool = False,
    keep_shards: bool = False,
    merge: bool = True,
    _fail_once: Sequence[int] = (),
) -> list[SampleResult] | dict[str, Any]:
    """Runs a scenario (a TOML file or a dict, as :func:`drift_pipeline.run_scenario`) as
    ``num_shards`` Ray tasks and merges them; returns each segment's merged output, read back.

    ``shard_dir`` holds the shard folders and the dataset manifest (default: a hidden folder
    ``.drift-shards`` beside the first segment's output); it is removed after the merge unless
    ``keep_shards``. ``output_path`` places a one-segment run's output (a scenario's segments
    go where it says). ``manifest``: a dataset manifest to use (default: one is made on the
    driver, verified when the run skips bad images, so no worker lists the dataset again).
    Each task asks Ray for ``num_cpus`` CPUs and, when the scenario's device is ``gpu``,
    ``num_gpus`` GPUs (default 1). ``num_shards`` is lowered to the smallest segment's size.
    ``merge=False`` keeps the shards and commits ``shard-index.json`` listing them into
    ``output_path`` (default: the first segment's output) instead, and returns that index (the
    no-merge layout: see :func:`drift_pipeline.sharding.index_shards`).
    """
    _check_num_shards(num_shards)
    plan = sharding.plan_scenario(scenario)
    segments = plan.segments
    num_shards = min(num_shards, min(samples for _, samples, _ in segments))
    first_output = _place(output_path or segments[0][2])
    shards_root = _shard_root(shard_dir, first_output)
    if manifest is None:
        manifest_path = _join(shards_root, "manifest.parquet")
        sharding.index_dataset(plan.input, manifest_path, plan.skip_bad_images)
    else:
        manifest_path = _place(manifest)
    if num_gpus is None:
        num_gpus = 1 if plan.embeddings and plan.device == "gpu" else 0
    task = _shard_task(_make_shard, num_cpus, num_gpus, max_retries)
    folders = [_join(shards_root, f"shard-{k}-of-{num_shards}") for k in range(num_shards)]
    pending = [
        task.remote(
            plan,
            f"{k}/{num_shards}",
            os.fspath(folder),
            os.fspath(manifest_path),
            os.fspath(_join(shards_root, f".fail-once-{k}")) if k in _fail_once else None,
        )
        for k, folder in enumerate(folders)
    ]
    _ray.get(pending)
    if not merge:
        return sharding.index_shards(folders, first_output, overwrite)
    single = output_path is not None and len(segments) == 1
    results, warnings = sharding.merge_shards(
        folders,
        output_path if single else None,
        overwrite,
        _zip_hasher(num_cpus, max_retries),
    )
    for warning in warnings:
        import warnings as _warnings

        _warnings.warn(warning, UserWarning, stacklevel=2)
    if not keep_shards:
        _remove_shards(shards_root)
    return results


def generate(
    input_path: os.PathLike | str,
    output_path: os.PathLike | str,
    num_samples: int,
    seed: int | None = None,
    transforms: Sequence[TransformArg] = (),
    num_shards: int = 2,
    *,
    drift: str | None = None,
    segment: str | None = None,
    shard_dir: os.PathLike | str | None = None,
    manifest: os.PathLike | str | None = None,
    num_cpus: float = 1,
    num_gpus: float | None = None,
    max_retries: int = 3,
    keep_shards: bool = False,
    merge: bool = True,
    _fail_once: Sequence[int] = (),
    **keywords: Any,
) -> SampleResult | dict[str, Any]:
    """``drift-pipeline generate`` as ``num_shards`` Ray tasks, merged: the same bytes as
    ``ImageDatasetGenerator(seed, input_path, **keywords)`` with ``transforms`` (strings such
    as ``"gaussian_blur=0.3"`` or :class:`TransformInfo`) and ``drift`` (a shape) sampling
    ``num_samples`` into ``output_path``. ``keywords`` are the generator's (``input_dim``,
    ``compute_embeddings``, ``weights``, ``skip_bad_images``, ``overwrite``, ...).
    ``merge=False``: the shards stay and ``output_path`` gets ``shard-index.json`` listing
    them; the index is returned (see :func:`run_scenario`)."""
    overwrite = bool(keywords.get("overwrite", False))
    scenario = sharding.generate_scenario(
        input_path, output_path, num_samples, seed, transforms,
        drift=drift, segment=segment, **keywords,
    )
    results = run_scenario(
        scenario,
        num_shards,
        shard_dir=shard_dir,
        output_path=output_path,
        manifest=manifest,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        max_retries=max_retries,
        overwrite=overwrite,
        keep_shards=keep_shards,
        merge=merge,
        _fail_once=_fail_once,
    )
    return results[0] if merge else results


def evaluate(
    input_path: os.PathLike | str,
    output_path: os.PathLike | str,
    transforms: Sequence[Any] = ("default",),
    levels: Sequence[float] | None = None,
    num_shards: int = 2,
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
    shard_dir: os.PathLike | str | None = None,
    num_cpus: float = 1,
    num_gpus: float | None = None,
    max_retries: int = 3,
    keep_shards: bool = False,
) -> EvaluationResult:
    """:func:`drift_pipeline.evaluate` as ``num_shards`` Ray tasks, each measuring a shard of
    the batches of every level, merged on the driver into the report one process writes, byte
    for byte. ``shard_dir`` (default: ``.drift-shards`` beside the report) holds the shard
    reports until the merge."""
    _check_num_shards(num_shards)
    output = Path(output_path).absolute()
    root = _shard_root(shard_dir, output)
    if num_gpus is None:
        num_gpus = 1 if device == "gpu" else 0
    task = _shard_task(sharding.evaluate_shard, num_cpus, num_gpus, max_retries)
    folders = [root / f"report-{k}-of-{num_shards}" for k in range(num_shards)]
    pending = [
        task.remote(
            sharding.evaluate_arguments(
                input_path, folder, transforms, levels,
                num_samples=num_samples, seed=seed, input_dim=input_dim,
                batch_size=batch_size, weights=weights, normalize=normalize,
                device=device, threads=threads, overwrite=True,
            ),
            f"{k}/{num_shards}",
        )
        for k, folder in enumerate(folders)
    ]
    _ray.get(pending)
    result = sharding.merge_reports(folders, output, overwrite)
    if not keep_shards:
        shutil.rmtree(root, ignore_errors=True)
    return result


def detect(
    reference: os.PathLike | str,
    stream: os.PathLike | str | Sequence[os.PathLike | str],
    output_path: os.PathLike | str,
    detectors: Sequence[str] = ("mmd",),
    num_shards: int = 2,
    *,
    window: int = 100,
    stride: int | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    threads: int | None = None,
    overwrite: bool = False,
    shard_dir: os.PathLike | str | None = None,
    num_cpus: float = 1,
    max_retries: int = 3,
    keep_shards: bool = False,
) -> DetectionResult:
    """:func:`drift_pipeline.detect` as ``num_shards`` Ray tasks, each testing a contiguous
    range of the stream's windows, merged on the driver into the report one process writes,
    byte for byte (window detectors only: an online detector reads the stream in order).
    ``shard_dir`` (default: ``.drift-shards`` beside the report) holds the shard reports until
    the merge."""
    _check_num_shards(num_shards)
    output = Path(output_path).absolute()
    root = _shard_root(shard_dir, output)
    task = _shard_task(sharding.detect_shard, num_cpus, 0, max_retries)
    folders = [root / f"detect-{k}-of-{num_shards}" for k in range(num_shards)]
    pending = [
        task.remote(
            sharding.detect_arguments(
                reference, stream, folder, detectors, window=window, stride=stride,
                alpha=alpha, seed=seed, threads=threads, overwrite=True,
            ),
            f"{k}/{num_shards}",
        )
        for k, folder in enumerate(folders)
    ]
    _ray.get(pending)
    result = sharding.merge_detect_reports(folders, output, overwrite)
    if not keep_shards:
        shutil.rmtree(root, ignore_errors=True)
    return result
