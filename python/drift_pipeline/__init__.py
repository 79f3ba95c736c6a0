"""drift_pipeline: image datasets with controlled, synthetic drift.

The API of the Python tool this package replaces, verbatim, on the Rust pipeline::

    from drift_pipeline import ImageDatasetGenerator, TransformInfo, ImageTransform

    g = ImageDatasetGenerator(seed=42, input_path="data/places", compute_embeddings=True)
    g.add_abrupt_drift(transform_list=[
        TransformInfo(transf_type=ImageTransform.ROTATE, drift_level=0.9),
    ])
    info = g.sample(1000, "out/production")
    info.input_mapping  # a polars DataFrame

Every call builds the same validated run spec as the ``drift-pipeline`` command line and
scenario files (one set of defaults and checks), and writes the same bytes. Successive
``sample`` calls continue one stream: sample ids, timestamps and images go on, no image comes
twice while unused ones remain.
"""

from __future__ import annotations

import enum
import functools
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import polars as pl

from drift_pipeline import _native, errors

__version__: str = _native.__version__

__all__ = [
    "DEFAULTS",
    "DataCategory",
    "EvaluationResult",
    "ImageDatasetGenerator",
    "ImageTransform",
    "SampleResult",
    "TransformInfo",
    "DetectionResult",
    "ScoreResult",
    "PreviewResult",
    "detect",
    "evaluate",
    "score",
    "inspect",
    "preview",
    "errors",
    "run_scenario",
    "sharding",
    "weights",
]

def _transform_members() -> list[tuple[str, str]]:
    # `imagenet_c:motion_blur` is IMAGENET_C_MOTION_BLUR, and MOTION_BLUR too where the bare
    # name is free (an alias member of the same value).
    members = []
    for name, alias, _, _ in _native.transforms():
        members.append((name.replace(":", "_").upper(), name))
        if alias is not None:
            members.append((alias.upper(), name))
    return members


ImageTransform = enum.Enum(  # type: ignore[misc]
    "ImageTransform",
    _transform_members(),
    module=__name__,
    qualname="ImageTransform",
)
ImageTransform.__doc__ = (
    "The registered transforms (the original tool's ROTATE, BRIGHTNESS, CONTRAST, SATURATION, "
    "HUE, GAUSSIAN_BLUR, GAUSSIAN_NOISE, DEFAULT, then the ImageNet-C corruptions as "
    "IMAGENET_C_<NAME>, with the bare <NAME> too where SPEC's transforms do not use it). Each "
    "value is the transform's name on the command line; strings such as "
    "'imagenet_c:fog=0.4' or 'motion_blur@3' (severity 3, level 0.6) work too.\n\n"
    + "\n".join(
        f"{name.replace(':', '_').upper()} ({family}): {text}"
        for name, _, family, text in _native.transforms()
    )
)

ProgressArg = Union[bool, Callable[[int, int], Any], None]


@dataclass(frozen=True)
class TransformInfo:
    """One transform of a drift and its drift level in [0, 1] (the original tool's type)."""

    transf_type: Any
    drift_level: float

    def spec(self) -> str:
        """``NAME=LEVEL``, as the command line's ``--transform`` takes it."""
        kind = self.transf_type
        name = kind.value if isinstance(kind, ImageTransform) else str(kind)
        return f"{name}={float(self.drift_level)!r}"


TransformArg = Union[TransformInfo, str]


def _transform_specs(transform_list: Sequence[TransformArg]) -> list[str]:
    if isinstance(transform_list, (str, TransformInfo)):
        transform_list = [transform_list]
    specs = []
    for item in transform_list:
        if isinstance(item, TransformInfo):
            specs.append(item.spec())
        elif isinstance(item, str):
            specs.append(item)
        else:
            raise TypeError(
                f"transform_list: expected TransformInfo or 'name=level' strings, got {item!r}"
            )
    return specs


def _size(input_dim: Any) -> str | None:
    if input_dim is None:
        return None
    if isinstance(input_dim, int):
        return str(input_dim)
    if isinstance(input_dim, str):
        return input_dim
    width, height = input_dim
    return f"{int(width)}x{int(height)}"


def _path(value: Any) -> str | None:
    return None if value is None else os.fspath(value)


def _progress(progress: ProgressArg) -> Callable[[int, int], Any] | None:
    """A callback ``(done, total)``: the given one, a tqdm bar (terminal or Jupyter), a line on
    a terminal, or none."""
    if progress is False:
        return None
    if callable(progress):
        return progress
    try:
        from tqdm.auto import tqdm  # optional: a bar in Jupyter and on terminals
    except ImportError:
        tqdm = None
    in_jupyter = "ipykernel" in sys.modules
    if tqdm is not None and (in_jupyter or sys.stderr.isatty()):
        return _TqdmProgress(tqdm)
    if sys.stderr.isatty():
        return _LineProgress()
    return None


class _TqdmProgress:
    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None or self._bar.total != total:
            if self._bar is not None:
                self._bar.close()
            self._bar = self._tqdm(total=total, unit="samples")
        self._bar.update(done - self._bar.n)
        if done >= total:
            self._bar.close()
            self._bar = None


class _LineProgress:
    def __call__(self, done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{done}/{total} samples{end}")
        sys.stderr.flush()


def _is_url(value: os.PathLike | str) -> bool:
    """Whether ``value`` is an object-store URL (``s3://``, ``gs://``, ``az://``...) rather
    than a path."""
    if not isinstance(value, str):
        return False
    scheme, separator, _ = value.partition("://")
    return bool(separator) and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()


def _place(path: os.PathLike | str) -> Path | str:
    """A local path made absolute, or an object-store URL as it is (without a trailing /)."""
    text = os.fspath(path)
    return text.rstrip("/") if _is_url(text) else Path(text).absolute()


class SampleResult:
    """What ``sample`` wrote. The original tool's fields (``input_folder``, ``input_mapping``,
    ``target``, ``input_embedding_file_path``) plus ours (``drift_log``, ``embeddings``,
    ``record``, ``summary``). The tables are read from the files on first access (polars), so a
    call that only writes pays nothing for them."""

    def __init__(self, output_path: os.PathLike | str, summary: dict | None = None) -> None:
        #: The output folder (a ``str`` URL for an output on object storage).
        self.output_path: Path | str
        if _is_url(output_path):
            url = os.fspath(output_path).rstrip("/")
            self.output_path = url
            #: The zip of PNGs (the original tool's name for it).
            self.input_folder: str = f"{url}/sampled_images.zip"
            listed = {entry["name"] for entry in self.record["files"]}
            embeddings: str | None = (
                f"{url}/embeddings.parquet" if "embeddings.parquet" in listed else None
            )
        else:
            folder = Path(output_path)
            self.output_path = folder
            self.input_folder = str(folder / "sampled_images.zip")
            local = folder / "embeddings.parquet"
            embeddings = str(local) if local.exists() else None
        #: ``embeddings.parquet``, or None without embeddings.
        self.input_embedding_file_path: str | None = embeddings
        #: Samples, first sample id, timestamps, images skipped, zip bytes, time taken.
        self.summary: dict = dict(summary or {})

    def _bytes(self, name: str) -> bytes:
        """File ``name`` of the output, from disk or from object storage."""
        if isinstance(self.output_path, str):
            return _native.read_object(f"{self.output_path}/{name}")
        return (self.output_path / name).read_bytes()

    def _table(self, name: str) -> pl.DataFrame:
        if isinstance(self.output_path, str):
            return pl.read_parquet(io.BytesIO(self._bytes(name)))
        return pl.read_parquet(self.output_path / name)

    @classmethod
    def read(cls, output_path: os.PathLike | str, summary: dict | None = None) -> "SampleResult":
        """An output folder (``generate``'s, a scenario segment's or ``sample``'s)."""
        return cls(output_path, summary)

    @functools.cached_property
    def input_mapping(self) -> pl.DataFrame:
        """``input_mapping.parquet``: sample_id, timestamp, file_name."""
        return self._table("input_mapping.parquet")

    @functools.cached_property
    def target(self) -> pl.DataFrame:
        """``target.parquet``: sample_id, timestamp, label."""
        return self._table("target.parquet")

    @functools.cached_property
    def drift_log(self) -> pl.DataFrame:
        """``drift_log.parquet``: per sample, what was applied and where it came from.

        ``levels`` and ``parameters`` are maps (transform -> level, ``transform.parameter`` ->
        value): ``log.filter(pl.col("levels").map.get("imagenet_c:zoom_blur") > 0.3)`` (polars 2;
        polars 1 reads them as lists of key-value structs).
        """
        return self._table("drift_log.parquet")

    @functools.cached_property
    def embeddings(self) -> pl.DataFrame | None:
        """``embeddings.parquet`` (sample_id, timestamp, embedding), or None without it."""
        if self.input_embedding_file_path is None:
            return None
        return self._table("embeddings.parquet")

    @functools.cached_property
    def record(self) -> dict:
        """``drift.json``."""
        return json.loads(self._bytes("drift.json"))

    def __repr__(self) -> str:
        return f"SampleResult({str(self.output_path)!r}, samples={self.summary.get('samples')})"


#: The original tool's name for what ``sample`` returns.
DataCategory = SampleResult


def _run_keys(
    seed: int | None = None,
    input_path: os.PathLike | str | None = None,
    input_dim: int | tuple[int, int] | str | None = None,
    batch_size: int | None = None,
    organize_by_class: bool = False,
    sample_delta_timestamp: float | None = None,
    compute_embeddings: bool = False,
    weights: os.PathLike | str | None = None,
    normalize: str | None = None,
    device: str | None = None,
    cpu_backend: str | None = None,
    threads: int | None = None,
    png_compression: str | None = None,
    start_timestamp: float | None = None,
    alpha: str | None = None,
    class_mapping: os.PathLike | str | None = None,
    skip_bad_images: bool = False,
    overwrite: bool = False,
    continue_from: os.PathLike | str | None = None,
) -> dict[str, Any]:
    """The generator's keywords as the run keys (a scenario file's) the native layer checks."""
    run: dict[str, Any] = {
        "input": _path(input_path),
        "continue_from": _path(continue_from),
        "seed": seed,
        "size": _size(input_dim),
        "start_timestamp": start_timestamp,
        "delta_timestamp": sample_delta_timestamp,
        "organize_by_class": bool(organize_by_class),
        "class_mapping": _path(class_mapping),
        "skip_bad_images": bool(skip_bad_images),
        "overwrite": bool(overwrite),
        "png_compression": png_compression,
        "alpha": alpha,
        "embeddings": bool(compute_embeddings),
        "threads": threads,
    }
    if compute_embeddings:
        run.update(
            weights=_path(weights),
            normalize=normalize,
            device=device,
            cpu_backend=cpu_backend,
            batch_size=batch_size,
        )
    return run


class ImageDatasetGenerator:
    """A seeded sample stream over one class-folder dataset (one sub-folder per class).

    The original tool's keywords: ``seed``, ``input_path``, ``input_dim`` (int or (W, H)),
    ``batch_size`` (images per embedding forward pass;
    transforms are drawn per image, so without embeddings it has no effect),
    ``organize_by_class``, ``sample_delta_timestamp`` (seconds between samples),
    ``shuffle`` (must stay True: samples always come in the seeded permutation's order) and
    ``compute_embeddings``.

    Ours, as keywords: ``weights`` (ResNet18 ``.pth`` or safetensors; default: the cache),
    ``normalize`` (``none`` or ``imagenet``), ``device`` (``auto``, ``cpu``, ``gpu``),
    ``cpu_backend``, ``threads`` (0 or None: one per core), ``png_compression`` (``fast``,
    ``balanced``, ``high``), ``start_timestamp``, ``alpha`` (``drop``, ``white``, ``black`` or
    ``#RRGGBB``), ``class_mapping`` (JSON or TOML file), ``skip_bad_images``, ``overwrite``,
    ``continue_from`` (an earlier output whose stream this one continues: its seed, input, size
    and clock are then the defaults) and ``progress`` (False for none, a callable
    ``(done, total)``, or None: a tqdm bar where tqdm is installed and a terminal or Jupyter is
    there, a line on a terminal, else nothing).

    A keyword left out (or None) takes the default every front end shares (the Rust run spec's,
    listed in :data:`DEFAULTS`: seed 42, 224x224, 1800 s between samples, batch 32, ...).

    Errors are :mod:`drift_pipeline.errors` exceptions, each also the built-in one code caught
    before (``InvalidRunError`` is a ``ValueError`` whose message names the keyword;
    ``InputNotFoundError``, ``InputNotADirectoryError``, ``OutputExistsError`` when an output
    exists and ``overwrite`` is off, ``StorageError`` an ``OSError``), with the command line's
    messages. Ctrl-C during a call raises ``KeyboardInterrupt`` and leaves every output folder
    as it was.
    """

    def __init__(
        self,
        seed: int | None = None,
        input_path: os.PathLike | str | None = None,
        input_dim: int | tuple[int, int] | str | None = None,
        batch_size: int | None = None,
        organize_by_class: bool = False,
        sample_delta_timestamp: float | None = None,
        shuffle: bool = True,
        compute_embeddings: bool = False,
        *,
        weights: os.PathLike | str | None = None,
        normalize: str | None = None,
        device: str | None = None,
        cpu_backend: str | None = None,
        threads: int | None = None,
        png_compression: str | None = None,
        start_timestamp: float | None = None,
        alpha: str | None = None,
        class_mapping: os.PathLike | str | None = None,
        skip_bad_images: bool = False,
        overwrite: bool = False,
        continue_from: os.PathLike | str | None = None,
        progress: ProgressArg = None,
    ) -> None:
        if not shuffle:
            raise errors.InvalidRunError(
                "keyword 'shuffle': shuffle=False is not supported: samples come in the seeded "
                "permutation's order, which is what makes a stream reproducible and continuable"
            )
        run = _run_keys(
            seed=seed,
            input_path=input_path,
            input_dim=input_dim,
            batch_size=batch_size,
            organize_by_class=organize_by_class,
            sample_delta_timestamp=sample_delta_timestamp,
            compute_embeddings=compute_embeddings,
            weights=weights,
            normalize=normalize,
            device=device,
            cpu_backend=cpu_backend,
            threads=threads,
            png_compression=png_compression,
            start_timestamp=start_timestamp,
            alpha=alpha,
            class_mapping=class_mapping,
            skip_bad_images=skip_bad_images,
            overwrite=overwrite,
            continue_from=continue_from,
        )
        self._native = _native.Generator(json.dumps(run))
        self._organize_by_class = bool(organize_by_class)
        self._overwrite = bool(overwrite)
        self._progress = progress
        self._transforms: list[str] = []
        self._shape: str | None = None
        self._label_shift: dict[str, Any] = {}
        self._class_mapping: str | None = None

    # The drift of later `sample` calls.

    def add_abrupt_drift(self, transform_list: Sequence[TransformArg]) -> None:
        """Applies the transforms, in order, to every sample of later ``sample`` calls (until
        ``reset`` or the next drift, which replaces it). Items are ``TransformInfo`` or
        ``"name=level"`` strings."""
        self.add_drift(transform_list, "abrupt")

    def add_drift(self, transform_list: Sequence[TransformArg], shape: str = "abrupt") -> None:
        """As ``add_abrupt_drift``, in a drift shape over each later call's samples:
        ``abrupt``, ``gradual:width=N[,center=K][,ramp=linear]``,
        ``incremental:from=A,to=B`` or ``recurring:period=N,duty=F`` (see the README)."""
        specs = _transform_specs(transform_list)
        if not specs:
            raise errors.InvalidRunError("keyword 'transform_list': give at least one transform")
        self._transforms = specs
        self._shape = shape

    def add_gradual_drift(
        self, transform_list: Sequence[TransformArg], width: int, center: int | None = None
    ) -> None:
        """A gradual drift: the probability of drifting rises over ``width`` samples."""
        shape = f"gradual:width={int(width)}"
        if center is not None:
            shape += f",center={int(center)}"
        self.add_drift(transform_list, shape)

    def add_incremental_drift(
        self, transform_list: Sequence[TransformArg], start: float = 0.0, end: float = 1.0
    ) -> None:
        """An incremental drift: every sample drifts, levels scaled from ``start`` to ``end``."""
        self.add_drift(transform_list, f"incremental:from={start!r},to={end!r}")

    def add_recurring_drift(
        self, transform_list: Sequence[TransformArg], period: int, duty: float = 0.5
    ) -> None:
        """A recurring drift: on for ``duty`` of every ``period`` samples."""
        self.add_drift(transform_list, f"recurring:period={int(period)},duty={duty!r}")

    def reset(self) -> None:
        """Removes the drift: later samples are clean."""
        self._transforms = []
        self._shape = None

    def set_label_shift(
        self,
        class_weights: Mapping[str, float] | None = None,
        *,
        dirichlet: float | None = None,
        with_replacement: bool = False,
    ) -> None:
        """Label shift for later calls: classes drawn with these relative weights (by class
        name), or with priors from a symmetric Dirichlet of concentration ``dirichlet``. With no
        arguments, classes come as in the dataset again."""
        self._label_shift = {
            "class_weights": dict(class_weights) if class_weights is not None else None,
            "class_dirichlet": dirichlet,
            "with_replacement": bool(with_replacement),
        }
        if class_weights is None and dirichlet is None:
            self._label_shift = {}

    def set_class_mapping(self, path: os.PathLike | str) -> None:
        """A concept change: labels published through this mapping file from the next call
        on."""
        self._class_mapping = os.fspath(path)

    # The stream.

    @property
    def remaining(self) -> int:
        """Images not yet sampled."""
        return self._native.remaining

    @property
    def next_sample_id(self) -> int:
        """The id the next sample gets."""
        return self._native.next_sample_id

    @property
    def classes(self) -> list[str]:
        """Class names in label order."""
        return self._native.classes

    def sample(
        self,
        num_samples: int | None = None,
        output_path: os.PathLike | str | None = None,
        organize_by_class: bool | None = None,
        *,
        segment: str | None = None,
        overwrite: bool | None = None,
        progress: ProgressArg = None,
    ) -> SampleResult:
        """Writes the next ``num_samples`` samples (default: every image not yet sampled) to
        ``output_path`` in the SPEC layout and returns them read back. ``organize_by_class``
        and ``overwrite`` default to the constructor's. The original tool's README called
        ``sample(output_path=..., organize_by_class=...)`` with no count, which its own
        signature refused; both forms work here."""
        if output_path is None:
            raise TypeError("sample() needs output_path")
        if num_samples is None:
            num_samples = self.remaining
            if num_samples == 0:
                raise errors.InvalidRunError(
                    "keyword 'num_samples': every image of the dataset is already sampled"
                )
        if isinstance(num_samples, bool) or not isinstance(num_samples, int):
            raise TypeError(f"num_samples must be an int, got {num_samples!r}")
        if num_samples < 0:  # the run spec checks the rest; it cannot hold a negative count
            raise errors.InvalidRunError(
                f"keyword 'num_samples': must be at least 1, got {num_samples}"
            )
        raw = {
            "name": segment,
            "samples": num_samples,
            "output": os.fspath(output_path),
            "transforms": self._transforms,
            "drift": self._shape if self._transforms else None,
            "class_mapping": self._class_mapping,
            **self._label_shift,
        }
        organize = self._organize_by_class if organize_by_class is None else organize_by_class
        replace = self._overwrite if overwrite is None else overwrite
        callback = _progress(self._progress if progress is None else progress)
        summary = self._native.sample(json.dumps(raw), bool(organize), bool(replace), callback)
        self._class_mapping = None  # it stays in effect in the stream
        return SampleResult.read(summary["output"], summary)


def _scenario_text(scenario: os.PathLike | str | Mapping[str, Any]) -> tuple[str, bool, Path]:
    """A scenario's text, whether it is TOML (a file) or JSON (a dict), and the folder its
    relative paths are relative to (a dict's: the working directory)."""
    if isinstance(scenario, Mapping):
        return json.dumps(dict(scenario)), False, Path.cwd()
    path = Path(scenario).absolute()
    try:
        return path.read_text(), True, path.parent
    except FileNotFoundError:
        raise errors.InputNotFoundError(f"scenario {path}: no such file") from None


def run_scenario(
    scenario: os.PathLike | str | Mapping[str, Any], progress: ProgressArg = None
) -> list[SampleResult]:
    """Runs a scenario: a TOML file (``docs/scenario.toml``) or a dict with the same keys
    (``segment`` a list of dicts). All segments are staged, then committed together. Relative
    paths are relative to the file's folder (a dict's: the working directory)."""
    text, is_toml, base = _scenario_text(scenario)
    summaries = _native.run_scenario(text, is_toml, os.fspath(base), _progress(progress))
    return [SampleResult.read(s["output"], s) for s in summaries]


@dataclass
class EvaluationResult:
    """An ``evaluate`` report, read back."""

    output_path: Path
    #: One row per (drift level, batch): the KL of drifted against clean embeddings.
    kl: pl.DataFrame
    #: Per level: batches, median, quartiles, mean, sd.
    summary: pl.DataFrame
    #: ``kl_by_batch`` and ``kl_by_level``, PNG and SVG.
    plots: dict[str, Path]
    #: ``evaluation.json``.
    record: dict = field(repr=False)

    @property
    def target_kl(self) -> dict | None:
        """With ``target_kl=``: the level found (``level``, its ``median``, the bracket's
        ``below`` and ``below_median``)."""
        return self.record.get("target_kl")


def evaluate(
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
    progress: ProgressArg = None,
    target_kl: float | None = None,
    target_tolerance: float = 0.01,
) -> EvaluationResult:
    """How strong a drift is: the KL between drifted and clean ResNet18 embeddings, per batch,
    at each drift level (``drift-pipeline evaluate``). ``transforms`` are names or
    ``ImageTransform`` members, all applied at each level. Keywords left out take the shared
    defaults (:data:`DEFAULTS`: levels 0.1 to 1.0, seed 42, 224x224, one thread per core).
    ``target_kl=X`` finds the level whose median KL reaches X (``result.target_kl``), to
    ``target_tolerance`` in level."""
    args = _evaluate_args(
        input_path, output_path, transforms, levels, num_samples, seed, input_dim,
        batch_size, weights, normalize, device, threads, overwrite,
    )
    folder = _native.evaluate(
        *args, _progress(progress), target_kl=target_kl, target_tolerance=target_tolerance
    )
    return _read_evaluation(Path(folder))


def _evaluate_args(
    input_path: os.PathLike | str,
    output_path: os.PathLike | str,
    transforms: Sequence[Any],
    levels: Sequence[float] | None,
    num_samples: int | None,
    seed: int | None,
    input_dim: int | tuple[int, int] | str | None,
    batch_size: int | None,
    weights: os.PathLike | str | None,
    normalize: str | None,
    device: str | None,
    threads: int | None,
    overwrite: bool,
) -> tuple:
    """``_native.evaluate``'s arguments before ``progress``, from ``evaluate``'s keywords."""
    names = [t.value if isinstance(t, ImageTransform) else str(t) for t in transforms]
    run = {
        "weights": _path(weights),
        "normalize": normalize,
        "device": device,
        "batch_size": batch_size,
    }
    return (
        os.fspath(input_path),
        os.fspath(output_path),
        names,
        None if levels is None else [float(level) for level in levels],
        json.dumps(run),
        seed,
        _size(input_dim),
        num_samples,
        threads,
        overwrite,
    )


def _read_evaluation(folder: Path) -> EvaluationResult:
    """An ``evaluate`` report folder, read back."""
    plots = {
        f"{stem}.{ext}": folder / f"{stem}.{ext}"
        for stem in ("kl_by_batch", "kl_by_level")
        for ext in ("png", "svg")
    }
    return EvaluationResult(
        output_path=folder,
        kl=pl.read_parquet(folder / "kl.parquet"),
        summary=pl.read_csv(folder / "summary.csv"),
        plots=plots,
        record=json.loads((folder / "evaluation.json").read_text()),
    )


@dataclass(frozen=True)
class PreviewResult:
    """A contact sheet written by :func:`preview`."""

    #: The PNG file.
    path: Path
    #: The sheet as a ``PIL.Image.Image`` when Pillow is installed, else ``None``.
    image: Any = field(default=None, repr=False)

    @property
    def svg_path(self) -> Path:
        """The SVG file beside the PNG (each cell an embedded PNG, the labels text)."""
        return self.path.with_suffix(".svg")


def preview(
    image: os.PathLike | str | None = None,
    output_path: os.PathLike | str = "preview.png",
    transforms: Sequence[Any] | None = None,
    levels: Sequence[float] | None = None,
    *,
    input_path: os.PathLike | str | None = None,
    samples: int = 1,
    input_dim: int | tuple[int, int] | str | None = None,
    seed: int | None = None,
) -> PreviewResult:
    """What a drift looks like (``drift-pipeline preview``): a contact sheet with a row per
    transform and a column per drift level, the original first, each cell what a generator
    with the same ``seed`` and ``input_dim`` writes for that image (sample 0, 1, ...).

    Give an ``image`` file, or a dataset as ``input_path`` and how many of its images as
    ``samples``. ``transforms`` are names or ``ImageTransform`` members; ``None`` draws the
    whole catalog (every registered transform). ``levels`` default to 0.2, 0.4, ..., 1.0.
    Writes ``output_path`` as PNG and SVG (``result.svg_path``); returns the PNG's path, and the
    sheet as a PIL image when Pillow is installed."""
    names = [] if transforms is None else [
        t.value if isinstance(t, ImageTransform) else str(t) for t in transforms
    ]
    if transforms is not None and not names:
        raise errors.InvalidRunError("invalid preview: no transform (name one, or pass None)")
    path = Path(
        _native.preview(
            os.fspath(output_path),
            names,
            None if levels is None else [float(level) for level in levels],
            image=_path(image),
            input=_path(input_path),
            samples=int(samples),
            size=_size(input_dim),
            seed=seed,
        )
    )
    try:
        from PIL import Image  # optional: the sheet as an image in notebooks
    except ImportError:
        return PreviewResult(path)
    with Image.open(path) as sheet:
        sheet.load()
        return PreviewResult(path, sheet.copy())


@dataclass
class DetectionResult:
    """A ``detect`` report, read back."""

    output_path: Path
    #: One row per detector and window: statistic, p-value, b and B, threshold, alarm.
    windows: pl.DataFrame
    #: One row per alarm: ``detector``, ``sample_id``, ``timestamp`` (what ``score`` reads).
    alarms: pl.DataFrame
    #: One row per online detector and stream sample: ``t``, statistic, threshold, alarm.
    online: pl.DataFrame
    #: ``detect.json``: inputs, settings and each detector's resolved parameters.
    record: dict = field(repr=False)


def _paths(value: os.PathLike | str | Sequence[os.PathLike | str] | None) -> list[str]:
    """One path or several, as strings."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


def detect(
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
    shard: str | None = None,
) -> DetectionResult:
    """Would a detector catch this drift: drift detectors (``"mmd"``, ``"lsdd"``,
    ``"ks:correction=fdr"``, ``"cvm"``, ``"mmd-online:ert=500,window=50"``; alibi-detect's
    definitions and defaults) over the stream's embeddings (``stream``: output folders in stream
    order) against a clean ``reference`` output, window by window, or sample by sample for online
    detectors (``drift-pipeline detect``). ``shard="K/N"`` tests only shard K's contiguous range
    of the windows (:func:`drift_pipeline.ray.detect` runs every shard and merges them)."""
    arguments = _detect_args(
        reference, stream, output_path, detectors, window, stride, alpha, seed, threads,
        overwrite,
    )
    return _read_detection(Path(_native.detect(*arguments, shard)))


def _detect_args(
    reference: os.PathLike | str,
    stream: os.PathLike | str | Sequence[os.PathLike | str],
    output_path: os.PathLike | str,
    detectors: str | Sequence[str],
    window: int,
    stride: int | None,
    alpha: float,
    seed: int,
    threads: int | None,
    overwrite: bool,
) -> tuple:
    """:func:`detect`'s arguments as ``_native.detect`` takes them (all but ``shard``)."""
    if isinstance(detectors, str):
        detectors = [detectors]
    return (
        os.fspath(reference), _paths(stream), os.fspath(output_path),
        [str(d) for d in detectors], window, stride, alpha, seed, threads, overwrite,
    )


def _read_detection(folder: Path) -> DetectionResult:
    """A detect report folder, read back."""
    return DetectionResult(
        output_path=folder,
        windows=pl.read_parquet(folder / "windows.parquet"),
        alarms=pl.read_parquet(folder / "alarms.parquet"),
        online=pl.read_parquet(folder / "online.parquet"),
        record=json.loads((folder / "detect.json").read_text()),
    )


@dataclass
class ScoreResult:
    """A ``score`` report, read back."""

    output_path: Path
    #: One row per detector and metric set: precision, episode_recall, mdt, far, fpr, power...
    summary: pl.DataFrame
    #: One row per detector and drift episode: its window, first alarm and delay.
    episodes: pl.DataFrame
    #: One row per detector and tested window, with its ground truth (h0, h1, mixed).
    windows: pl.DataFrame
    #: Per detector, transform list and level: windows, alarms, power, Clopper-Pearson band.
    power: pl.DataFrame
    #: ``power_by_level``, ``pvalue_calibration``, ``delay_by_level`` and ``delay_vs_far``,
    #: PNG and SVG.
    plots: dict[str, Path]
    #: ``score.json``: inputs, settings, calibration, minimum detectable levels.
    record: dict = field(repr=False)


def score(
    stream: os.PathLike | str | Sequence[os.PathLike | str],
    output_path: os.PathLike | str,
    *,
    detections: os.PathLike | str | Sequence[os.PathLike | str] | None = None,
    alarms: os.PathLike | str | Sequence[os.PathLike | str] | None = None,
    windows: os.PathLike | str | Sequence[os.PathLike | str] | None = None,
    max_delay: int | None = None,
    max_early: int | None = None,
    rate_unit: int | None = None,
    drifted_min: float | None = None,
    power_target: float | None = None,
    confidence: float | None = None,
    level_bins: int | None = None,
    baselines: Sequence[str] | None = None,
    window: int | None = None,
    alpha: float | None = None,
    overwrite: bool = False,
) -> ScoreResult:
    """Grades detectors against the stream's ground truth (``drift-pipeline score``): the
    alarms of ``detect`` reports (``detections``) or of your own files (``alarms``: Parquet or
    CSV with ``sample_id`` or ``timestamp``; ``windows``: ``first_sample_id``,
    ``last_sample_id``, ``alarm``, optional ``p_value``) matched to the drift episodes, beside
    the ``always`` and ``periodic`` baselines; power per transform and level. Keywords left
    out take the command line's defaults."""
    settings = {
        "max_delay": max_delay,
        "max_early": max_early,
        "rate_unit": rate_unit,
        "drifted_min": drifted_min,
        "power_target": power_target,
        "confidence": confidence,
        "level_bins": level_bins,
        "baselines": None if baselines is None else [str(b) for b in baselines],
        "window": window,
        "alpha": alpha,
    }
    folder = Path(
        _native.score(
            _paths(stream),
            os.fspath(output_path),
            _paths(detections),
            _paths(alarms),
            _paths(windows),
            json.dumps(settings),
            overwrite,
        )
    )
    return ScoreResult(
        output_path=folder,
        # Empty fields are ratios without a denominator (no alarm, no episode): null.
        summary=pl.read_csv(folder / "summary.csv", infer_schema_length=None),
        episodes=pl.read_parquet(folder / "episodes.parquet"),
        windows=pl.read_parquet(folder / "windows_scored.parquet"),
        power=pl.read_parquet(folder / "power.parquet"),
        plots={
            f"{stem}.{ext}": folder / f"{stem}.{ext}"
            for stem in ("power_by_level", "pvalue_calibration", "delay_by_level", "delay_vs_far")
            for ext in ("png", "svg")
        },
        record=json.loads((folder / "score.json").read_text()),
    )


def inspect(input_path: os.PathLike | str) -> pl.DataFrame:
    """A dataset's classes: ``class``, ``label`` and ``images`` per class, in label order, as
    ``ImageFolder`` sees them (``drift-pipeline inspect`` also lists the files it ignores)."""
    classes, _ignored, _examples = _native.inspect(os.fspath(input_path))
    return pl.DataFrame(
        {
            "class": [c[0] for c in classes],
            "label": [c[1] for c in classes],
            "images": [c[2] for c in classes],
        },
        schema={"class": pl.Utf8, "label": pl.Int64, "images": pl.Int64},
    )


#: The defaults every front end shares (from the Rust run spec; never restated here).
DEFAULTS: Mapping[str, Any] = dict(_native.DEFAULTS)

from drift_pipeline import sharding, weights  # noqa: E402  (they use the above; imported last)
