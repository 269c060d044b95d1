#!/usr/bin/env bash
# What the precision of the measurement alone changes: each finished run under runs/retrained/
# (bf16 runs trained again, train.sh) measured from its last checkpoint on its own validation
# set in float32 (as training now validates) and in bfloat16 autocast (as the first bf16 runs
# were measured), the same weights both times. Needs the checkpoints, so it runs where the runs
# trained (a run without them is named and passed over); its output is kept beside the doc:
#   bash docs/reproduction/measure-precision.sh > docs/reproduction/measure-precision.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
SELCOPY=${SELCOPY:-.venv/bin/selcopy}
AGAIN=${AGAIN:-runs/retrained}
for result in "$AGAIN"/article/*/*/result.json; do
  run=$(dirname "$result")
  grep -q '"status": "finished"' "$result" || continue
  [ -f "$run/checkpoints/latest.pt" ] || { echo "# $run: no checkpoint here (trained on another machine)"; continue; }
  for precision in float32 bfloat16; do
    echo "\$ selcopy eval $run --checkpoint latest --threads 1 --precision $precision"
    "$SELCOPY" eval "$run" --checkpoint latest --threads 1 --precision "$precision"
  done
done
