#!/usr/bin/env bash
# Sharded on one machine (2 shard processes, 1 thread each) against one process (2 threads),
# and the merge's own throughput; checks that the merge is byte-identical to the one process.
# usage: tools/bench/shards_vs_one.sh BINARY [IMAGES_PER_CLASS] [SAMPLES]
set -euo pipefail
binary=$(realpath "$1"); per_class=${2:-500}; samples=${3:-2000}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"
"$binary" demo d --images-per-class "$per_class" -q >/dev/null
run=(--input d/dataset --num-samples "$samples" --transform gaussian_blur=0.3 --transform rotate=0.3 -q)
now() { date +%s.%N; }
t0=$(now); "$binary" generate "${run[@]}" --output one --threads 2 >/dev/null; t1=$(now)
"$binary" generate "${run[@]}" --output s0 --shard 0/2 --threads 1 >/dev/null &
"$binary" generate "${run[@]}" --output s1 --shard 1/2 --threads 1 >/dev/null
wait; t2=$(now)
"$binary" merge s0 s1 --output merged -q; t3=$(now)
for f in one/*; do cmp "$f" "merged/$(basename "$f")"; done
zip=$(stat -c %s one/sampled_images.zip)
python3 - "$t0" "$t1" "$t2" "$t3" "$samples" "$zip" <<'PY'
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:5]); n, zip_bytes = int(sys.argv[5]), int(sys.argv[6])
one, sharded, merge = t1 - t0, t2 - t1, t3 - t2
print(f"one process: {one:.2f} s ({n / one:.0f} images/s)")
print(f"2 shards in parallel: {sharded:.2f} s ({n / sharded:.0f} images/s, {one / sharded:.2f}x)")
print(f"merge: {merge:.2f} s, {zip_bytes / 1e6:.1f} MB zip ({zip_bytes / 1e6 / merge:.0f} MB/s); identical")
PY
