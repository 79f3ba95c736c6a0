#!/usr/bin/env bash
# Byte-identity across versions: runs an earlier binary (OLD) and this one (NEW) on the same
# demo dataset and settings and compares every output file. The drift log is compared with
# columns the new registry added dropped (they must be all null), drift.json without its file
# hashes (the drift log's changes). PY: a python with pyarrow (cargo xtask test's check venv).
set -euo pipefail
OLD=${OLD:?set OLD to the earlier drift-pipeline binary}
NEW=${NEW:-$HOME/.cache/drift-pipeline/target/debug/drift-pipeline}
PY=${PY:-$HOME/.cache/drift-pipeline/target/check-venv/bin/python}
W=$(mktemp -d)
$NEW demo $W/demo --images-per-class 12 --quiet >/dev/null
IN=$W/demo/dataset
cases=(
  "--num-samples 20"
  "--num-samples 20 --transform rotate=0.4 --transform gaussian_noise=0.3 --size 64x48"
  "--num-samples 24 --transform default=0.8 --transform hue=0.2 --drift gradual:width=10 --organize-by-class --seed 7"
  "--num-samples 16 --transform saturation=0.5 --drift recurring:period=4,duty=0.5 --png-compression high --segment prod"
)
i=0
for c in "${cases[@]}"; do
  i=$((i+1))
  $OLD generate --input $IN --output $W/old$i $c --quiet >/dev/null
  $NEW generate --input $IN --output $W/new$i $c --quiet >/dev/null
  for f in sampled_images.zip input_mapping.parquet target.parquet; do
    cmp -s $W/old$i/$f $W/new$i/$f && echo "case $i $f identical" || echo "case $i $f DIFFERS"
  done
  $PY - $W/old$i $W/new$i <<'PYEOF'
import sys, json, pyarrow.parquet as pq
old, new = sys.argv[1], sys.argv[2]
a = pq.read_table(f"{old}/drift_log.parquet"); b = pq.read_table(f"{new}/drift_log.parquet")
extra = [n for n in b.column_names if n not in a.column_names]
same = b.select(a.column_names).equals(a)
print(f"  drift_log: old columns identical in new: {same}; new columns {extra}, all null: "
      f"{all(b.column(n).null_count == b.num_rows for n in extra)}")
ja = json.load(open(f"{old}/drift.json")); jb = json.load(open(f"{new}/drift.json"))
strip = lambda j: {k: v for k, v in j.items() if k != "files"}
fa = {f["name"]: f["sha256"] for f in ja["files"]}; fb = {f["name"]: f["sha256"] for f in jb["files"]}
print(f"  drift.json: identical but files: {strip(ja) == strip(jb)}; key order same: {list(ja) == list(jb)}; "
      f"file hashes equal except drift_log: {all(fa[k] == fb[k] for k in fa if k != 'drift_log.parquet')}")
PYEOF
done
