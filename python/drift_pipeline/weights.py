"""ResNet18 weights for ``compute_embeddings``: where the cache is, and seeded test weights."""

from __future__ import annotations

import os
from pathlib import Path

from drift_pipeline import _native

__all__ = ["cache_dir", "find_cached", "write_test_weights"]


def cache_dir() -> Path | None:
    """The weights cache directory (``drift-pipeline weights fetch`` downloads into it)."""
    directory, _ = _native.weights_cache()
    return None if directory is None else Path(directory)


def find_cached() -> Path | None:
    """The cached torchvision ResNet18 weights file, if there is one."""
    _, cached = _native.weights_cache()
    return None if cached is None else Path(cached)


def write_test_weights(path: os.PathLike | str, seed: int = 18) -> Path:
    """Writes seeded random ResNet18 weights (safetensors) to ``path``: for tests and trials
    without a download, never for measuring drift."""
    _native.write_test_weights(seed, os.fspath(path))
    return Path(path)
