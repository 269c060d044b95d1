#!/usr/bin/env bash
# Train what docs/reproduction.md still lacks, most valuable first, on every core: LANES lanes
# (default 2, one per core of this project's machine), each one selcopy process with one CPU
# thread, walk the same list. A run that another lane holds is passed over (its lock), a
# finished one is skipped, a started one resumes from its checkpoint (with the one thread it
# began with), so the script can be stopped and started again at any time:
#   nohup bash docs/reproduction/train.sh > train.log 2>&1 &
#   kill <its pid>     # stops the lanes and their trainings; rerun the line above to go on
# Other trainings running at the same time would share the cores: stop them first. A run that
# fails is recorded as failed and tried again by the next lane that reaches it (the store skips
# only finished runs). Then `bash docs/reproduction/collect.sh` copies the finished runs' small
# files into docs/ (from runs/ and runs/retrained/, the defaults of RUNS and AGAIN).
set -uo pipefail
cd "$(dirname "$0")/../.."
SELCOPY=${SELCOPY:-.venv/bin/selcopy}
LANES=${LANES:-2}
RUNS=${RUNS:-runs}
AGAIN=${AGAIN:-$RUNS/retrained}  # bf16 runs trained again, to be measured in float32
# Files that train in bf16 train only on a CPU where oneDNN has bf16 kernels (AVX-512): without
# them bf16 is emulated, about 12x slower than float32 (benchmarks/RESULTS.md), and their runs
# wait for such a machine. BF16=1 trains them anyway, BF16=0 passes them over.
PYTHON=${PYTHON:-$(sed -n '1s/^#! *//p' "$(command -v "$SELCOPY")" 2> /dev/null)}  # selcopy's own interpreter
BF16=${BF16:-$($PYTHON -c 'import torch; print(int(torch.ops.mkldnn._is_mkldnn_bf16_supported()))' 2> /dev/null \
  || echo "1 (could not ask ${PYTHON:-the python of $SELCOPY}: bf16 files train)")}
echo "bf16 files: BF16=$BF16"
BF16=${BF16%% *}

step() {  # step LANE FILE [selcopy run flags]: train (or skip) the file's runs; a --runs in the flags wins
  local lane=$1 file=experiments/article/$2.yml status; shift 2
  echo "[lane $lane] $file $*"
  "$SELCOPY" run "$file" --runs "$RUNS" --threads 1 --skip-existing "$@" 2>&1 | sed -u "s/^/[lane $lane] /"
  status=$?
  case $status in
    0) ;;
    1) echo "[lane $lane] $file: not every run trained (held by another lane, or failed: see above)" ;;
    130) echo "[lane $lane] interrupted"; exit 130 ;;
    *) echo "[lane $lane] $file: exit status $status (bad input: see above)"; bad=1 ;;
  esac
}

bf16() {  # bf16 LANE FILE [selcopy run flags]: step, where this CPU has bf16 kernels
  if [ "$BF16" = 1 ]; then
    step "$@"
  else
    echo "[lane $1] experiments/article/$2.yml: passed over (BF16=$BF16): it trains in bfloat16, which is slow without AVX-512; train it on a CPU with it, or with BF16=1"
  fi
}

lane() {
  local n=$1 bad=0
  # issue 23: the article's Mamba and its float32 control; table 10's last-layer row over 8M samples
  step "$n" 04-baselines-mamba-linear-dt
  step "$n" 10-attention-6l-last-float32-8m
  # issue 23: the bf16 runs the doc compares with the article, trained again (same files, seeds
  # and thread count) now that validation is measured in float32, into a folder of their own
  bf16 "$n" 04-baselines --runs "$AGAIN" --where '${model}["name"] != "mamba"'
  bf16 "$n" 10-attention-6l-5ops --runs "$AGAIN" --where '${attn} == [0, 0, 0, 0, 0, true]'
  bf16 "$n" 10-attention-6l-last-trials --runs "$AGAIN"
  # issue 26: every table, in its order of value (table 5 trial by trial, as its file lists them)
  step "$n" 05-attention-invention
  step "$n" 09-attention-5l-5ops
  bf16 "$n" 10-attention-6l-5ops
  step "$n" 07-attention-position-3l
  step "$n" 08-attention-position-5l
  step "$n" 08-attention-position-5l-trials  # trials of the placements where our run and the article's differ
  step "$n" 06-attention-activation
  step "$n" 00-selective-copy
  # tables 1 and 2 (4M samples a run), the cheapest runs first so that a session's time ends
  # in finished rows: table 1's 64-channel convs, table 2's by depth, then table 1's 128-channel
  step "$n" 01-preliminary --where '${ch} == 64'
  step "$n" 02-ops-vs-layers --where '${l} == 6'
  step "$n" 02-ops-vs-layers --where '${l} == 12'
  step "$n" 02-ops-vs-layers
  step "$n" 01-preliminary
  echo "[lane $n] done"
  return "$bad"
}

stop() {  # stop PID: the process, then everything it had started
  local child children
  children=$(pgrep -P "$1")
  kill "$1" 2> /dev/null
  for child in $children; do stop "$child"; done
}
lanes=()
trap 'for pid in "${lanes[@]}"; do stop "$pid"; done; exit 130' INT TERM  # the script's end is its trainings' end
for n in $(seq 1 "$LANES"); do
  lane "$n" &
  lanes+=($!)
  sleep 5  # the first lane takes the first run before the next lane looks
done
failed=0
for pid in "${lanes[@]}"; do
  wait "$pid" || failed=1
done
exit "$failed"  # 1 if a file was bad input or a lane was stopped
