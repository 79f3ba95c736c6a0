#!/usr/bin/env bash
# Byte-identity across versions: every output file of an earlier binary (OLD) and this one
# (NEW), compared whole with cmp, on: generate (transforms with random parameters, seeded
# weights' embeddings), a scenario with label shift and a drift shape, a sharded run merged,
# and an evaluate sweep, whole and sharded then merged. Each case runs OLD, then NEW, in the
# same folder (moved aside after), so the absolute paths inside drift.json are the same. The
# shard folders are compared too (their drift.json carries the settings hash).
# WEIGHTS: seeded ResNet18 weights (`cargo xtask test-weights FILE`).
# Build OLD in a target directory of its own: cargo names a workspace's artifacts by paths
# relative to its root, so a second checkout (a git worktree) building into the same target
# directory overwrites them, and a later build here may take the old ones as up to date.
set -euo pipefail
OLD=${OLD:?set OLD to the earlier drift-pipeline binary}
NEW=${NEW:?set NEW to the drift-pipeline binary of this version}
WEIGHTS=${WEIGHTS:?set WEIGHTS to a safetensors file from cargo xtask test-weights}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$NEW" demo "$W/demo" --images-per-class 12 --quiet >/dev/null
IN=$W/demo/dataset
cat > "$W/scenario.toml" <<TOML
input = "$IN"
seed = 11
size = "64x48"
overwrite = true
[[segment]]
name = "reference"
samples = 12
output = "$W/run/reference"
[[segment]]
name = "shifted"
samples = 16
output = "$W/run/shifted"
transforms = ["rotate=0.5", "gaussian_noise=0.4"]
drift = "gradual:width=6"
class_dirichlet = 0.7
with_replacement = true
TOML
G="generate --input $IN --quiet"
E="--embeddings --weights $WEIGHTS --batch-size 4"
cases=(
  "gen-plain|$G --output $W/run/out --num-samples 20"
  "gen-drift|$G --output $W/run/out --num-samples 20 --transform rotate=0.4 --transform gaussian_noise=0.3 --size 64x48 --drift recurring:period=4,duty=0.5 --seed 7"
  "gen-colour|$G --output $W/run/out --num-samples 24 --transform brightness=0.7 --transform contrast=0.6 --transform saturation=0.8 --transform hue=0.4 --transform default=0.5 --size 96x64 --seed 3"
  "gen-embed|$G --output $W/run/out --num-samples 10 --transform hue=0.3 --size 64x64 $E"
  # Each transform alone (the byte paths), at an odd size.
  "gen-rotate|$G --output $W/run/out --num-samples 16 --transform rotate=0.8 --size 97x61 --seed 5"
  "gen-brightness|$G --output $W/run/out --num-samples 16 --transform brightness=0.9 --size 97x61 --seed 5"
  "gen-contrast|$G --output $W/run/out --num-samples 16 --transform contrast=0.9 --size 97x61 --seed 5"
  "gen-saturation|$G --output $W/run/out --num-samples 16 --transform saturation=0.9 --size 97x61 --seed 5"
  "gen-hue|$G --output $W/run/out --num-samples 16 --transform hue=0.9 --size 97x61 --seed 5"
  "gen-blur|$G --output $W/run/out --num-samples 16 --transform gaussian_blur=0.9 --size 97x61 --seed 5"
  "gen-noise|$G --output $W/run/out --num-samples 16 --transform gaussian_noise=0.9 --size 97x61 --seed 5"
  "gen-default|$G --output $W/run/out --num-samples 16 --transform default=0.8 --size 97x61 --seed 5"
  # rotate first (now on bytes), then a corruption.
  "gen-rotate-corruption|$G --output $W/run/out --num-samples 16 --transform rotate=0.5 --transform imagenet_c:contrast@3 --size 64x64 --seed 5"
  "scenario|run $W/scenario.toml --quiet"
  "shards|SHARDS"
  "evaluate|evaluate --input $IN --output $W/run/report --transform gaussian_blur --levels 0.2,0.6 --num-samples 16 --size 64x64 --weights $WEIGHTS --batch-size 4 --quiet"
  "evaluate-shards|EVAL_SHARDS"
)
run_case() { # BIN NAME COMMAND
  local bin=$1 cmd=$3
  rm -rf "$W/run"; mkdir -p "$W/run"
  case $cmd in
    SHARDS)
      for k in 0 1 2; do
        "$bin" run "$W/scenario.toml" --quiet --shard $k/3 --output "$W/run/shard-$k" >/dev/null
      done
      "$bin" merge "$W/run/shard-0" "$W/run/shard-1" "$W/run/shard-2" --quiet >/dev/null
      ;;
    EVAL_SHARDS)
      for k in 0 1; do
        "$bin" evaluate --input "$IN" --output "$W/run/part-$k" --transform hue --levels 0.3,0.9 \
          --num-samples 16 --size 64x64 --weights "$WEIGHTS" --batch-size 4 --quiet --shard $k/2 >/dev/null
      done
      "$bin" merge "$W/run/part-0" "$W/run/part-1" --output "$W/run/report" --quiet >/dev/null
      ;;
    *) "$bin" $cmd >/dev/null;;
  esac
}
status=0
for entry in "${cases[@]}"; do
  name=${entry%%|*}; cmd=${entry#*|}
  run_case "$OLD" "$name" "$cmd"; rm -rf "$W/old"; mv "$W/run" "$W/old"
  run_case "$NEW" "$name" "$cmd"; rm -rf "$W/new"; mv "$W/run" "$W/new"
  files=$(cd "$W/old" && find . -type f ! -name '.drift-pipeline.lock' | sort)
  newfiles=$(cd "$W/new" && find . -type f ! -name '.drift-pipeline.lock' | sort)
  if [ "$files" != "$newfiles" ]; then
    echo "$name: DIFFERENT FILE LISTS"; diff <(echo "$files") <(echo "$newfiles") || true; status=1; continue
  fi
  same=0; differ=0
  for f in $files; do
    if cmp -s "$W/old/$f" "$W/new/$f"; then same=$((same+1)); else differ=$((differ+1)); echo "$name: $f DIFFERS"; fi
  done
  echo "$name: $same files identical, $differ differ"
  [ $differ -eq 0 ] || status=1
done
exit $status
