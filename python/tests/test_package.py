"""The Python package on real files: the original tool's README workflow, byte identity with
the command line, stream continuation, errors, Ctrl-C, scenarios, evaluate and inspect.

Outputs are read back with readers independent of the package where it matters (zipfile, json,
hashlib); polars is what the package returns, so its frames are checked against those."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import polars as pl
import pytest

import drift_pipeline
from drift_pipeline import (
    ImageDatasetGenerator,
    ImageTransform,
    SampleResult,
    TransformInfo,
    weights,
)

OUTPUT_FILES = [
    "drift.json",
    "drift_log.parquet",
    "input_mapping.parquet",
    "sampled_images.zip",
    "target.parquet",
]


def cli() -> list[str]:
    """The command line: the wheel's script, beside this interpreter."""
    script = Path(sys.executable).with_name("drift-pipeline")
    assert script.exists(), "the wheel installs the drift-pipeline command"
    return [str(script)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*cli(), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """The demo dataset: 4 classes x 6 images, sides 160-480."""
    root = tmp_path_factory.mktemp("demo")
    run_cli("demo", str(root), "--images-per-class", "6", "--quiet")
    return root / "dataset"


@pytest.fixture(scope="session")
def test_weights(tmp_path_factory) -> Path:
    return weights.write_test_weights(tmp_path_factory.mktemp("w") / "test.safetensors", seed=18)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def test_the_original_tools_readme_workflow_runs_unchanged(dataset, test_weights, tmp_path):
    # The original README's steps, verbatim but for the paths and the test weights keyword.
    img_path = str(dataset)
    seed = 42
    compute_embeddings = True
    image_generator = ImageDatasetGenerator(
        seed=seed, input_path=img_path, compute_embeddings=compute_embeddings,
        weights=test_weights,
    )
    transform_list = [
        TransformInfo(transf_type=ImageTransform.ROTATE, drift_level=0.9),
        TransformInfo(transf_type=ImageTransform.BRIGHTNESS, drift_level=0.3),
        TransformInfo(transf_type=ImageTransform.CONTRAST, drift_level=0.1),
        TransformInfo(transf_type=ImageTransform.HUE, drift_level=0.1),
        TransformInfo(transf_type=ImageTransform.SATURATION, drift_level=0.5),
        TransformInfo(transf_type=ImageTransform.GAUSSIAN_BLUR, drift_level=0.1),
        TransformInfo(transf_type=ImageTransform.GAUSSIAN_NOISE, drift_level=1.0),
    ]
    image_generator.add_abrupt_drift(transform_list=transform_list)
    output_path = str(tmp_path / "places_drifted")
    organize_by_class = True
    data_category = image_generator.sample(
        output_path=output_path,
        organize_by_class=organize_by_class,
    )

    folder = Path(output_path)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        OUTPUT_FILES + ["embeddings.parquet"]
    )
    assert data_category.input_folder == str(folder / "sampled_images.zip")
    assert data_category.input_embedding_file_path == str(folder / "embeddings.parquet")
    # No count: every image of the dataset, once.
    mapping = data_category.input_mapping
    assert mapping.columns == ["sample_id", "timestamp", "file_name"]
    assert mapping["sample_id"].to_list() == list(range(24))
    with zipfile.ZipFile(data_category.input_folder) as archive:
        entries = archive.namelist()
    assert len(entries) == 24
    by_name = {entry.split("/")[1]: entry.split("/")[0] for entry in entries}
    assert set(by_name) == set(mapping["file_name"].to_list())
    classes = sorted(p.name for p in dataset.iterdir())
    labels = dict(zip(data_category.target["sample_id"], data_category.target["label"]))
    for sample_id, name in zip(mapping["sample_id"], mapping["file_name"]):
        assert classes[labels[sample_id]] == by_name[name], "label matches the class folder"
    assert data_category.embeddings.schema["embedding"] == pl.Array(pl.Float64, 512)
    assert data_category.embeddings.height == 24
    record = json.loads((folder / "drift.json").read_text())
    assert [t["name"] for t in record["transforms"]] == [
        "rotate", "brightness", "contrast", "hue", "saturation", "gaussian_blur", "gaussian_noise"
    ]
    assert {t["family"] for t in record["transforms"]} == {"torchvision"}
    # The returned frames are the files, and drift.json's hashes are the files' hashes.
    for frame, name in [
        (data_category.input_mapping, "input_mapping.parquet"),
        (data_category.target, "target.parquet"),
        (data_category.drift_log, "drift_log.parquet"),
        (data_category.embeddings, "embeddings.parquet"),
    ]:
        assert frame.equals(pl.read_parquet(folder / name))
    for entry in record["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_imagenet_c_corruptions_are_members_and_strings(dataset, tmp_path):
    # IMAGENET_C_<NAME> for every corruption, the bare name as an alias where SPEC leaves it
    # free; strings take imagenet_c:NAME=LEVEL and the severity shorthand NAME@k.
    assert ImageTransform.MOTION_BLUR is ImageTransform.IMAGENET_C_MOTION_BLUR
    assert ImageTransform.IMAGENET_C_MOTION_BLUR.value == "imagenet_c:motion_blur"
    assert ImageTransform.BRIGHTNESS.value == "brightness"
    assert ImageTransform.IMAGENET_C_BRIGHTNESS.value == "imagenet_c:brightness"
    generator = ImageDatasetGenerator(seed=3, input_path=str(dataset))
    generator.add_abrupt_drift(
        transform_list=[
            TransformInfo(transf_type=ImageTransform.IMAGENET_C_CONTRAST, drift_level=0.4),
            "imagenet_c:glass_blur=0.3",
            "motion_blur@3",
        ]
    )
    result = generator.sample(4, str(tmp_path / "out"))
    record = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert [(t["name"], t["family"], t["drift_level"]) for t in record["transforms"]] == [
        ("imagenet_c:contrast", "imagenet_c", 0.4),
        ("imagenet_c:glass_blur", "imagenet_c", 0.3),
        ("imagenet_c:motion_blur", "imagenet_c", 0.6),
    ]
    log = result.drift_log
    assert (log["levels"].map.get("imagenet_c:motion_blur") == 0.6).all()
    angles = log["parameters"].map.get("imagenet_c:motion_blur.angle")
    assert angles.is_between(-45, 45).all() and angles.n_unique() == 4
    assert (log["parameters"].map.get("imagenet_c:glass_blur.iterations") == 2.0).all()


def test_python_and_the_command_line_write_the_same_bytes_and_continue_alike(
    dataset, test_weights, tmp_path
):
    generator = ImageDatasetGenerator(
        seed=7, input_path=dataset, input_dim=(40, 32), compute_embeddings=True,
        weights=test_weights, batch_size=4, sample_delta_timestamp=60.0,
    )
    generator.add_abrupt_drift([TransformInfo(ImageTransform.GAUSSIAN_BLUR, 0.3), "hue=0.2"])
    first = generator.sample(10, tmp_path / "py1")
    second = generator.sample(6, tmp_path / "py2")
    common = ["--seed", "7", "--size", "40x32", "--embeddings", "--weights", str(test_weights),
              "--batch-size", "4", "--transform", "gaussian_blur=0.3", "--transform", "hue=0.2",
              "--quiet"]
    run_cli("generate", "--input", str(dataset), "--output", str(tmp_path / "cli1"),
            "--num-samples", "10", "--delta-timestamp", "60", *common)
    run_cli("generate", "--continue-from", str(tmp_path / "cli1"),
            "--output", str(tmp_path / "cli2"), "--num-samples", "6", *common)
    assert folder_bytes(tmp_path / "py1") == folder_bytes(tmp_path / "cli1")
    assert folder_bytes(tmp_path / "py2") == folder_bytes(tmp_path / "cli2")
    assert second.input_mapping["sample_id"].to_list() == list(range(10, 16))
    assert second.input_mapping["timestamp"][0] == 1_717_232_400.0 + 600.0
    assert second.summary["first_sample_id"] == 10
    sources = first.drift_log["source_path"].to_list() + second.drift_log["source_path"].to_list()
    assert len(set(sources)) == 16, "no image comes twice in one stream"
    assert generator.remaining == 8
    assert generator.next_sample_id == 16


def test_a_stream_continues_from_an_earlier_output(dataset, tmp_path):
    first = ImageDatasetGenerator(input_path=dataset, input_dim=16)
    first.sample(5, tmp_path / "a")
    later = ImageDatasetGenerator(continue_from=tmp_path / "a")
    result = later.sample(3, tmp_path / "b")
    assert result.input_mapping["sample_id"].to_list() == [5, 6, 7]
    assert later.remaining == 24 - 8
    with pytest.raises(ValueError, match="differs from the seed of the stream"):
        ImageDatasetGenerator(continue_from=tmp_path / "a", seed=1)


def test_label_shift_and_drift_shapes_go_through(dataset, tmp_path):
    generator = ImageDatasetGenerator(input_path=dataset, input_dim=16, seed=3)
    generator.set_label_shift({"forest": 1.0}, with_replacement=True)
    shifted = generator.sample(8, tmp_path / "shift")
    assert set(shifted.drift_log["class_name"].to_list()) == {"forest"}
    generator.set_label_shift()
    generator.add_gradual_drift(["brightness=0.5"], width=4)
    gradual = generator.sample(6, tmp_path / "gradual", segment="ramp")
    assert gradual.record["drift"].startswith("gradual")
    assert set(gradual.drift_log["segment"].to_list()) == {"ramp"}
    generator.add_gradual_drift(["rotate=0.5"], width=50)
    with pytest.warns(UserWarning, match="gradual width 50 is more than its 3 samples"):
        generator.sample(3, tmp_path / "wide")


def test_errors_are_one_hierarchy_that_keeps_the_builtin_exceptions(dataset, tmp_path):
    from drift_pipeline import errors

    with pytest.raises(errors.InputNotFoundError) as missing:
        ImageDatasetGenerator(input_path=tmp_path / "missing")
    assert isinstance(missing.value, FileNotFoundError)
    assert isinstance(missing.value, errors.DriftPipelineError)
    with pytest.raises(errors.InvalidRunError) as invalid:
        ImageDatasetGenerator(input_path=dataset, input_dim="0x5")
    assert isinstance(invalid.value, ValueError)
    generator = ImageDatasetGenerator(input_path=dataset, input_dim=16)
    generator.sample(2, tmp_path / "once")
    with pytest.raises(errors.OutputExistsError, match="pass overwrite=True") as exists:
        generator.sample(2, tmp_path / "once")
    assert isinstance(exists.value, FileExistsError)
    # A run spec that finds the output first (a scenario) raises the same kind.
    scenario = {
        "input": str(dataset),
        "size": "16x16",
        "segment": [{"samples": 2, "output": str(tmp_path / "once")}],
    }
    with pytest.raises(errors.OutputExistsError, match="set overwrite = true"):
        drift_pipeline.run_scenario(scenario)
    # Shards that do not belong together: data, not a bad keyword.
    with pytest.raises(errors.DataError, match="not a shard"):
        drift_pipeline.sharding.merge_shards([tmp_path / "once"], tmp_path / "merged", False)
    # The defaults are the run spec's, exported once from Rust.
    assert drift_pipeline.DEFAULTS["seed"] == 42
    assert drift_pipeline.DEFAULTS["input_dim"] == "224x224"
    assert drift_pipeline.DEFAULTS["levels"] == [round(0.1 * i, 1) for i in range(1, 11)]


def test_errors_are_python_exceptions_with_the_command_lines_messages(dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist|not found|no such"):
        ImageDatasetGenerator(input_path=tmp_path / "missing")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError):
        ImageDatasetGenerator(input_path=a_file)
    with pytest.raises(ValueError, match="keyword 'input_dim'"):
        ImageDatasetGenerator(input_path=dataset, input_dim="0x5")
    with pytest.raises(ValueError, match="keyword 'batch_size'"):
        ImageDatasetGenerator(input_path=dataset, compute_embeddings=True, batch_size=0)
    with pytest.raises(ValueError, match="keyword 'shuffle'"):
        ImageDatasetGenerator(input_path=dataset, shuffle=False)
    with pytest.raises(ValueError, match="keyword 'input_path'"):
        ImageDatasetGenerator()
    generator = ImageDatasetGenerator(input_path=dataset, input_dim=16)
    generator.add_abrupt_drift(["gausian_blur=0.3"])
    with pytest.raises(ValueError, match="did you mean 'gaussian_blur'"):
        generator.sample(2, tmp_path / "typo")
    generator.reset()
    with pytest.raises(ValueError, match="asked for 99 samples"):
        generator.sample(99, tmp_path / "many")
    generator.sample(2, tmp_path / "once")
    with pytest.raises(FileExistsError, match=r"pass overwrite=True"):
        generator.sample(2, tmp_path / "once")
    before = folder_bytes(tmp_path / "once")
    replaced = generator.sample(2, tmp_path / "once", overwrite=True)
    assert replaced.input_mapping["sample_id"].to_list() == [2, 3]
    assert folder_bytes(tmp_path / "once") != before
    with pytest.raises(ValueError, match="inside the input dataset|is the input dataset"):
        generator.sample(1, dataset / "forest" / "out")
    # A refused call leaves the stream where it was.
    assert generator.next_sample_id == 4
    # The command line's words, through the wheel's script.
    result = subprocess.run(
        [*cli(), "generate", "--input", str(dataset), "--output", str(tmp_path / "x"),
         "--num-samples", "1", "--transform", "gausian_blur=0.3"],
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "did you mean 'gaussian_blur'" in result.stderr


def test_interrupting_a_call_raises_keyboard_interrupt_and_writes_nothing(
    dataset, test_weights, tmp_path
):
    generator = ImageDatasetGenerator(
        input_path=dataset, compute_embeddings=True, weights=test_weights, batch_size=2,
        threads=1,
    )
    # A callback that raises is what Ctrl-C is to the waiting loop: the run is cancelled.
    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generator.sample(24, tmp_path / "stopped", progress=stop)
    assert not (tmp_path / "stopped" / "drift.json").exists()
    assert [p.name for p in (tmp_path / "stopped").iterdir()] in ([], [".drift-pipeline.lock"])
    # A real SIGINT during the call, sent once the first samples are written (a timer could
    # fire after a fast machine finished the call).
    sent = []

    def interrupt(done: int, total: int) -> None:
        if done < total and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGINT)

    # Python's own SIGINT handler, whatever the runner left (a shell's background job starts
    # with SIGINT ignored, and Python then installs none).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            generator.sample(24, tmp_path / "signalled", progress=interrupt)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sent, "the call ended before it reported progress"
    assert time.monotonic() - started < 30
    assert not (tmp_path / "signalled" / "drift.json").exists()
    # The stream did not move: the next call starts at 0 and succeeds.
    assert generator.next_sample_id == 0
    assert generator.sample(2, tmp_path / "after", progress=False).summary["samples"] == 2


def test_the_gil_is_released_while_a_call_works(dataset, test_weights, tmp_path):
    generator = ImageDatasetGenerator(
        input_path=dataset, compute_embeddings=True, weights=test_weights, threads=1
    )
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    started = time.monotonic()
    generator.sample(12, tmp_path / "out", progress=False)
    elapsed = time.monotonic() - started
    done.set()
    counter.join()
    # A Python thread that got no time would count nothing; with the GIL free it counts
    # millions of times per second.
    assert ticks > 10_000 * elapsed, (ticks, elapsed)


def test_scenarios_from_a_file_and_a_dict(dataset, tmp_path):
    scenario = {
        "input": str(dataset),
        "seed": 5,
        "size": "16",
        "segment": [
            {"name": "reference", "samples": 6, "output": str(tmp_path / "d" / "reference")},
            {"name": "production", "samples": 6, "output": str(tmp_path / "d" / "production"),
             "transforms": ["default=0.5"]},
        ],
    }
    from_dict = drift_pipeline.run_scenario(scenario)
    assert [r.record["segment"] for r in from_dict] == ["reference", "production"]
    assert from_dict[1].input_mapping["sample_id"][0] == 6
    toml = tmp_path / "scenario.toml"
    toml.write_text(
        f'input = "{dataset}"\nseed = 5\nsize = "16"\n'
        '[[segment]]\nname = "reference"\nsamples = 6\noutput = "f/reference"\n'
        '[[segment]]\nname = "production"\nsamples = 6\noutput = "f/production"\n'
        'transforms = ["default=0.5"]\n'
    )
    drift_pipeline.run_scenario(toml)
    for name in ["reference", "production"]:
        assert folder_bytes(tmp_path / "f" / name) == folder_bytes(tmp_path / "d" / name)
    with pytest.raises(ValueError, match="segment 2 \\(production\\), key 'transforms'"):
        bad = dict(scenario, segment=[scenario["segment"][0],
                                      dict(scenario["segment"][1], transforms=["nope=1"])])
        drift_pipeline.run_scenario(bad)


def test_detect_and_score_return_their_tables(dataset, test_weights, tmp_path):
    segments = [("ref", None), ("clean", None), ("noisy", ["gaussian_noise=0.9"])]
    drift_pipeline.run_scenario({
        "input": str(dataset), "seed": 3, "size": "32", "embeddings": True,
        "weights": str(test_weights),
        "segment": [
            {"name": name, "samples": 8, "output": str(tmp_path / name),
             **({"transforms": t} if t else {})}
            for name, t in segments
        ],
    })
    stream = [tmp_path / "clean", tmp_path / "noisy"]
    detection = drift_pipeline.detect(
        tmp_path / "ref", stream, tmp_path / "detect", ["mmd", "ks:correction=fdr"], window=4,
        seed=1,
    )
    assert detection.windows.equals(pl.read_parquet(tmp_path / "detect" / "windows.parquet"))
    assert detection.windows["detector"].unique(maintain_order=True).to_list() == [
        "mmd", "ks:correction=fdr"]
    assert detection.windows.height == 2 * 4
    assert detection.record["window"] == 4
    assert detection.online.height == 0
    # An online detector: one row per stream sample, its alarms in the alarms table.
    online = drift_pipeline.detect(
        tmp_path / "ref", stream, tmp_path / "online", "mmd-online:ert=4,window=2,bootstraps=100",
        seed=1,
    )
    assert online.online["sample_id"].to_list() == list(range(8, 24))
    assert online.windows.height == 0
    assert online.alarms["sample_id"].to_list() == (
        online.online.filter(pl.col("alarm"))["sample_id"].to_list())
    assert len(online.record["detectors"][0]["online"]["thresholds"]) == 2
    report = drift_pipeline.score(
        stream, tmp_path / "score", detections=tmp_path / "detect", max_delay=4
    )
    assert report.summary["detector"].to_list() == [
        "mmd", "ks:correction=fdr", "always", "periodic:40"]
    # One abrupt episode (noisy's first sample) per detector.
    assert report.episodes.height == 4
    assert set(report.episodes["start_sample_id"].to_list()) == {16}
    always = report.summary.filter(pl.col("detector") == "always").row(0, named=True)
    assert always["n_alarms"] == 4 and always["detected"] == 1 and always["mdt"] == 3
    assert report.power.filter(pl.col("transforms") == "none")["n_windows"].to_list() == [2, 2]
    assert all(path.exists() for path in report.plots.values())
    # A user's alarms in CSV, named by the file.
    (tmp_path / "mine.csv").write_text("sample_id\n17\n")
    mine = drift_pipeline.score(stream, tmp_path / "mine", alarms=tmp_path / "mine.csv")
    row = mine.summary.filter(pl.col("detector") == "mine").row(0, named=True)
    assert (row["tp_alarms"], row["mdt"], row["source"]) == (1, 1.0, "file")
    (tmp_path / "far.csv").write_text("sample_id\n999\n")
    with pytest.raises(drift_pipeline.errors.DataError, match="alarm 0 is at sample 999"):
        drift_pipeline.score(stream, tmp_path / "far", alarms=tmp_path / "far.csv")
    with pytest.raises(drift_pipeline.errors.InvalidRunError, match="unknown detector"):
        drift_pipeline.detect(tmp_path / "ref", stream, tmp_path / "bad", ["nope"])
    with pytest.raises(drift_pipeline.errors.OutputExistsError):
        drift_pipeline.score(stream, tmp_path / "mine", alarms=tmp_path / "mine.csv")


def test_evaluate_returns_the_kl_table_and_inspect_the_classes(dataset, test_weights, tmp_path):
    report = drift_pipeline.evaluate(
        dataset, tmp_path / "report", transforms=[ImageTransform.GAUSSIAN_BLUR],
        levels=[0.5, 1.0], weights=test_weights, batch_size=8, input_dim=32, progress=False,
    )
    assert report.kl.equals(pl.read_parquet(tmp_path / "report" / "kl.parquet"))
    assert sorted(report.kl["drift_level"].unique().to_list()) == [0.5, 1.0]
    assert report.kl.height == 2 * 3  # 24 images in batches of 8, at each level
    assert all(path.exists() for path in report.plots.values())
    assert report.record["transforms"] == ["gaussian_blur"]
    classes = drift_pipeline.inspect(dataset)
    assert classes["class"].to_list() == sorted(p.name for p in dataset.iterdir())
    assert classes["images"].to_list() == [6, 6, 6, 6]


def test_every_registered_transform_is_an_image_transform():
    names = [member.value for member in ImageTransform]
    for original in ["rotate", "brightness", "contrast", "saturation", "hue", "gaussian_blur",
                     "gaussian_noise", "default"]:
        assert original in names
    assert "imagenet_c:pixelate" in names and "imagenet_c:jpeg_compression" in names
    assert ImageTransform.PIXELATE is ImageTransform.IMAGENET_C_PIXELATE
    assert len(names) == len(drift_pipeline._native.transforms())
    assert "ROTATE" in ImageTransform.__doc__
    assert "seed" in ImageDatasetGenerator.__doc__
    assert SampleResult is drift_pipeline.DataCategory


def test_preview_writes_the_sheet_the_cli_writes(dataset, tmp_path):
    import struct

    result = drift_pipeline.preview(
        output_path=tmp_path / "sheet.png",
        transforms=["imagenet_c:fog", ImageTransform.ROTATE],
        levels=[0.5, 1.0],
        input_path=dataset,
        samples=2,
        input_dim=48,
        seed=3,
    )
    data = result.path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    svg = result.svg_path.read_text()
    assert svg.count("<image ") == 4 * 3 and svg.rstrip().endswith("</svg>")
    width, height = struct.unpack(">II", data[16:24])
    # 2 transforms x 2 images = 4 rows of 48-px cells, 3 columns (the original, 2 levels).
    assert height == 60 + 4 * (48 + 6)
    assert width > 3 * (48 + 6)
    try:
        import PIL  # noqa: F401
    except ImportError:
        assert result.image is None
    else:
        assert result.image.size == (width, height)
    cli_sheet = tmp_path / "cli.png"
    run_cli(
        "preview", "--input", str(dataset), "--samples", "2", "--transform", "fog",
        "--transform", "rotate", "--levels", "0.5,1", "--size", "48", "--seed", "3",
        "--output", str(cli_sheet),
    )
    assert cli_sheet.read_bytes() == data
    assert (tmp_path / "cli.svg").read_text() == svg
    with pytest.raises(drift_pipeline.errors.InvalidRunError, match="1.5"):
        drift_pipeline.preview(
            output_path=tmp_path / "bad.png", transforms=["fog"], levels=[1.5],
            input_path=dataset,
        )
    assert not (tmp_path / "bad.png").exists()
