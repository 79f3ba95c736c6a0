"""The exceptions ``drift_pipeline`` raises.

Every error is a :class:`DriftPipelineError` and also the built-in exception Python code caught
before this hierarchy existed, so ``except ValueError`` and ``except FileExistsError`` still
work. The compiled module maps every error of the Rust library to one of these (the mapping is
exhaustive: a new kind of error cannot fall through to a generic one). Ctrl-C during a call
raises the built-in ``KeyboardInterrupt`` and leaves every output folder as it was.
"""

from __future__ import annotations

__all__ = [
    "DriftPipelineError",
    "InvalidRunError",
    "InputNotFoundError",
    "InputNotADirectoryError",
    "OutputExistsError",
    "DataError",
    "StorageError",
    "InternalError",
]


class DriftPipelineError(Exception):
    """Any error of ``drift_pipeline``."""


class InvalidRunError(DriftPipelineError, ValueError):
    """A keyword, scenario, transform, drift shape, label shift or option that cannot run as
    given; the message names the keyword or key."""


class InputNotFoundError(DriftPipelineError, FileNotFoundError):
    """The input dataset, or the weights asked for, do not exist."""


class InputNotADirectoryError(DriftPipelineError, NotADirectoryError):
    """The input is a file, not a folder of class folders."""


class OutputExistsError(DriftPipelineError, FileExistsError):
    """An output folder already holds an output and ``overwrite`` is off."""


class DataError(DriftPipelineError, ValueError):
    """Data on disk is not what it must be: an image that does not decode, an output or record
    that was edited, shards that are not of one run, a manifest that does not match."""


class StorageError(DriftPipelineError, OSError):
    """Reading or writing a file failed (permissions, a full disk, a locked folder)."""


class InternalError(DriftPipelineError, RuntimeError):
    """A bug: a worker thread panicked. Please report it with the message."""
