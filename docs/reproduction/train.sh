#!/usr/bin/env bash
# Train what docs/reproduction.md still lacks, most valuable first, on every core: LANES lanes
# (default 2, one per core of this project's machine), each one selcopy process with one CPU
# thread, walk the same list. A run that another lane holds is passed over (its lock), a
# finished one is skipped, a started one resumes from its checkpoint: stop the script at any
# time and start it again, with the same LANES (a run keeps the thread count it began with).
#   nohup bash docs/reproduction/train.sh > train.log 2>&1 &
# Then `bash docs/reproduction/collect.sh` copies the finished runs' small files into docs/.
set -uo pipefail
cd "$(dirname "$0")/../.."
SELCOPY=${SELCOPY:-.venv/bin/selcopy}
LANES=${LANES:-2}
RUNS=${RUNS:-runs}
AGAIN=${AGAIN:-$RUNS/retrained}  # bf16 runs trained again, to be measured in float32

step() {  # step LANE FILE [selcopy run flags]: train (or skip) the file's runs; a --runs in the flags wins
  local lane=$1 file=experiments/article/$2.yml; shift 2
  echo "lane $lane: $file $*"
  if ! "$SELCOPY" run "$file" --runs "$RUNS" --threads 1 --skip-existing "$@"; then
    echo "lane $lane: $file: not every run trained (held by another lane, or failed: see above)"
  fi
}

lane() {
  local n=$1
  # issue 23: the article's Mamba and its float32 control; table 10's last-layer row over 8M samples
  step "$n" 04-baselines-mamba-linear-dt
  step "$n" 10-attention-6l-last-float32-8m
  # issue 23: the bf16 runs the doc compares with the article, trained again (same files, seeds
  # and thread count) now that validation is measured in float32, into a folder of their own
  step "$n" 04-baselines --runs "$AGAIN" --where '${model}["name"] != "mamba"'
  step "$n" 10-attention-6l-5ops --runs "$AGAIN" --where '${attn} == [0, 0, 0, 0, 0, true]'
  step "$n" 10-attention-6l-last-trials --runs "$AGAIN"
  # issue 26: every table, in its order of value (table 5 trial by trial, as its file lists them)
  step "$n" 05-attention-invention
  step "$n" 09-attention-5l-5ops
  step "$n" 10-attention-6l-5ops
  step "$n" 07-attention-position-3l
  step "$n" 08-attention-position-5l
  step "$n" 06-attention-activation
  step "$n" 00-selective-copy
  step "$n" 01-preliminary
  step "$n" 02-ops-vs-layers
  echo "lane $n: done"
}

for n in $(seq 1 "$LANES"); do
  lane "$n" &
  sleep 5  # the first lane takes the first run before the next lane looks
done
wait
