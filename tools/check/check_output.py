"""Check a drift-pipeline output folder with readers that share no code with it.

Usage: check_output.py OUTPUT_DIR [--samples N] [--organize-by-class] [--embeddings]

Asserts SPEC's exact file names, column names and types as polars, pyarrow and DuckDB see them,
row order, and that every zip entry is a stored 8-bit RGB PNG named as input_mapping says.
Exits non-zero with a message on the first mismatch.
"""

import argparse
import hashlib
import json
import struct
import sys
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

EXPECTED_ARROW = {
    "input_mapping.parquet": [("sample_id", pa.int64()), ("timestamp", pa.float64()), ("file_name", pa.string())],
    "target.parquet": [("sample_id", pa.int64()), ("timestamp", pa.float64()), ("label", pa.int64())],
}
EMBEDDINGS_ARROW = [("sample_id", pa.int64()), ("timestamp", pa.float64()),
                    ("embedding", pa.list_(pa.float64(), 512))]
EMBEDDINGS_POLARS = {"sample_id": pl.Int64, "timestamp": pl.Float64, "embedding": pl.Array(pl.Float64, 512)}
# Parquet has no fixed-size list: DuckDB reads the column as a list (its length is checked below);
# pyarrow and polars restore FixedSizeList / Array from the Arrow schema stored in the file.
EMBEDDINGS_DUCKDB = [("sample_id", "BIGINT"), ("timestamp", "DOUBLE"), ("embedding", "DOUBLE[]")]

EXPECTED_POLARS = {
    "input_mapping.parquet": {"sample_id": pl.Int64, "timestamp": pl.Float64, "file_name": pl.String},
    "target.parquet": {"sample_id": pl.Int64, "timestamp": pl.Float64, "label": pl.Int64},
}
EXPECTED_DUCKDB = {
    "input_mapping.parquet": [("sample_id", "BIGINT"), ("timestamp", "DOUBLE"), ("file_name", "VARCHAR")],
    "target.parquet": [("sample_id", "BIGINT"), ("timestamp", "DOUBLE"), ("label", "BIGINT")],
}


def png_header(data: bytes) -> tuple[int, int, int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


DRIFT_LOG_FIXED = [("sample_id", pa.int64()), ("timestamp", pa.float64()), ("segment", pa.string()),
                   ("drifted", pa.bool_()), ("drift_probability", pa.float64()),
                   ("source_path", pa.string()), ("class_name", pa.string()), ("original_label", pa.int64()),
                   ("zip_entry", pa.string()), ("class_prior", pa.float64())]
FIXED = len(DRIFT_LOG_FIXED)


def check_drift_log(path: Path, samples: int) -> None:
    """drift_log.parquet: fixed columns, then the `levels` and `parameters` maps (Utf8 to
    Float64), one row per sample; the queries the README shows agree between polars and DuckDB."""
    schema = pq.read_schema(path)
    fields = [(f.name, f.type) for f in schema]
    assert fields[:FIXED] == DRIFT_LOG_FIXED, f"drift_log: pyarrow sees {fields[:FIXED]}"
    assert [name for name, _ in fields[FIXED:]] == ["levels", "parameters"], fields[FIXED:]
    for name, kind in fields[FIXED:]:
        assert pa.types.is_map(kind), f"{name} is {kind}"
        assert kind.key_type == pa.string() and kind.item_type == pa.float64(), kind
    log = pl.read_parquet(path)
    assert log.height == samples, log.height
    assert log["drift_probability"].is_between(0.0, 1.0).all()
    # A sample not drifted has no level and no parameter; a drifted one has a level.
    clean = log.filter(~pl.col("drifted"))
    assert (clean["levels"].map.len() == 0).all() and (clean["parameters"].map.len() == 0).all()
    drifted = log.filter(pl.col("drifted"))
    assert (drifted["levels"].map.len() >= 1).all()
    # The one-expression filters of the README: polars and DuckDB agree, for every transform a
    # sample got and every parameter key.
    transforms = sorted({key for row in duckdb.sql(f"SELECT map_keys(levels) FROM '{path}'").fetchall() for key in row[0]})
    for name in transforms:
        ours = log.filter(pl.col("levels").map.get(name) > 0.3)["sample_id"].to_list()
        duck = [r[0] for r in duckdb.sql(
            f"SELECT sample_id FROM '{path}' WHERE levels['{name}'] > 0.3 ORDER BY sample_id").fetchall()]
        assert ours == duck, (name, ours, duck)
    keys = sorted({key for row in duckdb.sql(f"SELECT map_keys(parameters) FROM '{path}'").fetchall() for key in row[0]})
    for key in keys:
        transform = key.rsplit(".", 1)[0]
        assert transform in transforms, key
        ours = log.select(pl.col("parameters").map.get(key))["parameters"].to_list()
        duck = [r[0] for r in duckdb.sql(
            f"SELECT parameters['{key}'] FROM '{path}' ORDER BY sample_id").fetchall()]
        assert ours == duck, key
    duck = duckdb.sql(f"SELECT count(*), count(DISTINCT sample_id) FROM '{path}'").fetchall()[0]
    assert duck == (samples, samples), duck


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("output", type=Path)
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--organize-by-class", action="store_true")
    parser.add_argument("--embeddings", action="store_true")
    args = parser.parse_args()
    out: Path = args.output

    if args.embeddings:
        EXPECTED_ARROW["embeddings.parquet"] = EMBEDDINGS_ARROW
        EXPECTED_POLARS["embeddings.parquet"] = EMBEDDINGS_POLARS
        EXPECTED_DUCKDB["embeddings.parquet"] = EMBEDDINGS_DUCKDB
    # The folder's lock file stays by design; anything else hidden (a staging folder) is a defect.
    files = sorted(p.name for p in out.iterdir() if p.name != ".drift-pipeline.lock")
    expected_files = ["drift.json", "drift_log.parquet", "input_mapping.parquet", "sampled_images.zip",
                      "target.parquet"]
    if args.embeddings:
        expected_files.insert(2, "embeddings.parquet")
    assert files == expected_files, files
    record = json.loads((out / "drift.json").read_text())
    assert record["samples"] == args.samples, record
    # drift.json lists every other file with its size and SHA-256: the folder verifies.
    listed = sorted(entry["name"] for entry in record["files"])
    assert listed == [name for name in expected_files if name != "drift.json"], listed
    for entry in record["files"]:
        data = (out / entry["name"]).read_bytes()
        assert len(data) == entry["bytes"], entry
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry

    check_drift_log(out / "drift_log.parquet", args.samples)

    for name, expected in EXPECTED_ARROW.items():
        schema = pq.read_schema(out / name)
        got = [(f.name, f.type) for f in schema]
        assert got == expected, f"{name}: pyarrow sees {got}"
        frame = pl.read_parquet(out / name)
        assert dict(frame.schema) == EXPECTED_POLARS[name], f"{name}: polars sees {frame.schema}"
        assert frame.height == args.samples, f"{name}: {frame.height} rows"
        assert frame["sample_id"].to_list() == list(range(args.samples)), f"{name}: sample_id order"
        assert frame["timestamp"].is_sorted(), f"{name}: timestamps not increasing"
        described = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{out / name}')").fetchall()
        got = [(row[0], row[1]) for row in described]
        assert got == EXPECTED_DUCKDB[name], f"{name}: DuckDB sees {got}"

    if args.embeddings:
        embeddings = pl.read_parquet(out / "embeddings.parquet")
        assert embeddings["timestamp"].to_list() == pl.read_parquet(out / "target.parquet")["timestamp"].to_list()
        assert embeddings.height == args.samples, f"embeddings: {embeddings.height} rows"
        stats = embeddings.select(
            nan=pl.col("embedding").arr.explode().is_nan().any(),
            lowest=pl.col("embedding").arr.min().min(),
            zero_rows=(pl.col("embedding").arr.max() == 0).sum(),
        ).row(0, named=True)
        assert not stats["nan"], "NaN in embeddings"
        assert stats["lowest"] >= 0, "ResNet18 features follow a ReLU: none can be negative"
        assert stats["zero_rows"] == 0, "an all-zero embedding"
        lengths = duckdb.sql(f"SELECT min(len(embedding)), max(len(embedding)) "
                             f"FROM read_parquet('{out / 'embeddings.parquet'}')").fetchall()[0]
        assert lengths == (512, 512), f"DuckDB sees embedding lengths {lengths}"
        first = pq.read_table(out / "embeddings.parquet").column("embedding")[0].as_py()
        assert first == embeddings["embedding"][0].to_list(), "pyarrow and polars disagree"

    mapping = pl.read_parquet(out / "input_mapping.parquet")
    target = pl.read_parquet(out / "target.parquet")
    assert mapping["timestamp"].to_list() == target["timestamp"].to_list()
    with zipfile.ZipFile(out / "sampled_images.zip") as archive:
        assert archive.testzip() is None, "zip CRC mismatch"
        entries = archive.infolist()
        assert len(entries) == args.samples, f"{len(entries)} zip entries"
        by_file = {}
        for entry in entries:
            assert entry.compress_type == zipfile.ZIP_STORED, f"{entry.filename} is deflated"
            parts = entry.filename.split("/")
            assert len(parts) == (2 if args.organize_by_class else 1), entry.filename
            by_file[parts[-1]] = archive.read(entry)
        assert sorted(by_file) == sorted(mapping["file_name"].to_list()), "zip names != file_name"
        # Provenance: the drift log names each sample's exact zip entry, joined on sample_id.
        log = pl.read_parquet(out / "drift_log.parquet").join(mapping, on="sample_id")
        assert sorted(log["zip_entry"].to_list()) == sorted(e.filename for e in entries)
        for row in log.iter_rows(named=True):
            assert row["zip_entry"].endswith(row["file_name"]), row
            if args.organize_by_class:
                assert row["zip_entry"] == f"{row['class_name']}/{row['file_name']}", row
            assert row["source_path"] and not row["source_path"].startswith("/"), row
        for name, data in by_file.items():
            assert name.endswith(".png") and len(name) == 40, name
            width, height, depth, colour = png_header(data)
            assert (depth, colour) == (8, 2), f"{name}: bit depth {depth}, colour type {colour}"
    print(f"ok: {out} ({args.samples} samples) read by polars {pl.__version__}, "
          f"pyarrow {pa.__version__}, duckdb {duckdb.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
