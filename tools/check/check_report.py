"""Check a drift-pipeline `evaluate` report with readers that share no code with it.

Usage: check_report.py REPORT_DIR --levels L --batches B

Reads kl.parquet with polars, pyarrow and DuckDB (schema, one row per level and batch, in order),
recomputes summary.csv from it with polars' own quantile and standard deviation, and checks that
the plots are PNGs and SVGs (parsed as XML) of the same size. Exits non-zero on the first
mismatch.
"""

import argparse
import json
import math
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ARROW = [("transforms", pa.string()), ("drift_level", pa.float64()), ("batch", pa.int64()),
         ("images", pa.int64()), ("kl", pa.float64())]
DUCKDB = [("transforms", "VARCHAR"), ("drift_level", "DOUBLE"), ("batch", "BIGINT"),
          ("images", "BIGINT"), ("kl", "DOUBLE")]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("report", type=Path)
    parser.add_argument("--levels", type=int, required=True)
    parser.add_argument("--batches", type=int, required=True)
    args = parser.parse_args()
    table_path = args.report / "kl.parquet"

    schema = pq.read_schema(table_path)
    assert [(f.name, f.type) for f in schema] == ARROW, schema
    duck = duckdb.sql(f"DESCRIBE SELECT * FROM '{table_path}'").fetchall()
    assert [(row[0], row[1]) for row in duck] == DUCKDB, duck

    kl = pl.read_parquet(table_path)
    assert kl.height == args.levels * args.batches, kl.height
    assert kl["kl"].min() >= 0.0
    levels = kl["drift_level"].unique(maintain_order=True).to_list()
    assert levels == sorted(levels) and len(levels) == args.levels, levels
    for level in levels:
        batches = kl.filter(pl.col("drift_level") == level)["batch"].to_list()
        assert batches == list(range(args.batches)), (level, batches)

    # summary.csv against polars' statistics (linear quantiles, ddof=1) of kl.parquet.
    summary = pl.read_csv(args.report / "summary.csv")
    assert summary.columns == ["drift_level", "batches", "median", "p25", "p75", "mean", "sd"]
    assert summary.height == args.levels
    for row in summary.iter_rows(named=True):
        values = kl.filter(pl.col("drift_level") == row["drift_level"])["kl"]
        assert row["batches"] == values.len()
        expected = {
            "median": values.median(),
            "p25": values.quantile(0.25, interpolation="linear"),
            "p75": values.quantile(0.75, interpolation="linear"),
            "mean": values.mean(),
            "sd": values.std(ddof=1),
        }
        for key, value in expected.items():
            assert close(row[key], value), (row["drift_level"], key, row[key], value)

    record = json.loads((args.report / "evaluation.json").read_text())
    assert record["levels"] == levels, record["levels"]

    for stem in ["kl_by_batch", "kl_by_level"]:
        png = (args.report / f"{stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n", f"{stem}.png is not a PNG"
        width, height = struct.unpack(">II", png[16:24])
        svg = ET.parse(args.report / f"{stem}.svg").getroot()
        assert svg.tag.endswith("svg"), svg.tag
        assert (int(svg.get("width")), int(svg.get("height"))) == (width, height), stem
        texts = " ".join(t.text.strip() for t in svg.iter() if t.tag.endswith("text") and t.text)
        assert "KL divergence" in texts, texts
    print(f"ok: {args.report} ({kl.height} rows, {summary.height} levels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
