"""The compiled module (PyO3). Use the package's API; this is its plumbing."""

from typing import Any, Callable, Optional

__version__: str
#: The defaults every front end shares (seed, input_dim, sample_delta_timestamp, batch_size,
#: levels, ...), from the Rust run spec.
DEFAULTS: dict[str, Any]

Progress = Optional[Callable[[int, int], Any]]

class Generator:
    def __init__(self, run: str) -> None: ...
    def sample(
        self, segment: str, organize_by_class: bool, overwrite: bool, progress: Progress = None
    ) -> dict[str, Any]: ...
    @property
    def remaining(self) -> int: ...
    @property
    def next_sample_id(self) -> int: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def dataset_fingerprint(self) -> str: ...
    @property
    def embedding_description(self) -> Optional[str]: ...

def run_scenario(
    run: str,
    is_toml: bool,
    base: str,
    progress: Progress = None,
    shard: Optional[str] = None,
    shard_output: Optional[str] = None,
    manifest: Optional[str] = None,
) -> list[dict[str, Any]]: ...
def evaluate(
    input: str,
    output: str,
    transforms: list[str],
    levels: Optional[list[float]],
    run: str,
    seed: Optional[int] = None,
    size: Optional[str] = None,
    num_samples: Optional[int] = None,
    threads: Optional[int] = None,
    overwrite: bool = False,
    progress: Progress = None,
    shard: Optional[str] = None,
    target_kl: Optional[float] = None,
    target_tolerance: float = 0.01,
) -> str: ...
def preview(
    output: str,
    transforms: list[str],
    levels: Optional[list[float]],
    image: Optional[str] = None,
    input: Optional[str] = None,
    samples: int = 1,
    size: Optional[str] = None,
    seed: Optional[int] = None,
) -> str: ...
def detect(
    reference: str,
    stream: list[str],
    output: str,
    detectors: list[str],
    window: int,
    stride: Optional[int] = None,
    alpha: float = 0.05,
    seed: int = 0,
    threads: Optional[int] = None,
    overwrite: bool = False,
    shard: Optional[str] = None,
) -> str: ...
def score(
    stream: list[str],
    output: str,
    detections: list[str],
    alarms: list[str],
    windows: list[str],
    settings: str,
    overwrite: bool = False,
) -> str: ...
def index(
    input: str, output: str, verify: bool = False, threads: int = 0
) -> tuple[int, list[tuple[str, str]]]: ...
def merge(
    shards: list[str], output: Optional[str] = None, overwrite: bool = False
) -> dict[str, Any]: ...
def delete_remote_folder(url: str) -> int: ...
def read_object(url: str) -> bytes: ...
def merge_reports(shards: list[str], output: str, overwrite: bool = False) -> str: ...
def merge_detect_reports(shards: list[str], output: str, overwrite: bool = False) -> str: ...
def scenario_facts(run: str, is_toml: bool, base: str) -> dict[str, Any]: ...
def cpu_kind() -> str: ...
def inspect(path: str) -> tuple[list[tuple[str, int, int]], int, list[str]]: ...
def transforms() -> list[tuple[str, str | None, str, str]]: ...
def write_test_weights(seed: int, path: str) -> None: ...
def weights_cache() -> tuple[Optional[str], Optional[str]]: ...
def cli_main(argv: list[str]) -> int: ...
