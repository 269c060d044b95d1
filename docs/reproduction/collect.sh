#!/usr/bin/env bash
# Copy the small result files of finished or running runs (config, metrics log, result, last
# validation example image) out of runs/ into the repository, so that the tables and plots
# of docs/reproduction.md and benchmarks/RESULTS.md can be rebuilt without training:
#   selcopy results FILE --runs docs/reproduction/runs --unfinished
set -euo pipefail
cd "$(dirname "$0")/../.."

copy_runs() {  # copy_runs EXPERIMENT_FOLDER DESTINATION_ROOT [images]: runs/<name>/<slug> -> DESTINATION_ROOT/<name>/<slug>
  local dir=$1 root=$2 images=${3:-}
  [ -d "runs/$dir" ] || return 0
  for run in "runs/$dir"/*/; do
    case "$run" in *.prev-*) continue ;; esac
    local target="$root/$dir/$(basename "$run")"
    mkdir -p "$target"
    for f in config.yaml metrics.jsonl result.json; do
      [ -f "$run/$f" ] && cp "$run/$f" "$target/"
    done
    if [ -n "$images" ] && [ -f "$run/examples/validation-latest.png" ]; then
      cp "$run/examples/validation-latest.png" "$target/"
    fi
  done
}

copy_runs article/03-easy-examples docs/reproduction/runs
copy_runs article/03-easy-examples-12l-trials docs/reproduction/runs
copy_runs article/04-baselines docs/reproduction/runs images
copy_runs article/10-attention-6l-5ops docs/reproduction/runs images
copy_runs article/10-attention-6l-last-trials docs/reproduction/runs images
copy_runs article/10-attention-6l-last-float32 docs/reproduction/runs
copy_runs article/05-attention-invention docs/reproduction/runs
for dir in quality/loss quality/bf16; do
  copy_runs "$dir" benchmarks/quality/runs
done
du -sh docs/reproduction/runs benchmarks/quality/runs 2>/dev/null || true
copy_runs article/10-attention-6l-last-float32-trials docs/reproduction/runs
copy_runs article/04-baselines-mamba-linear-dt docs/reproduction/runs
copy_runs open-question/01-screen docs/open-question/runs
copy_runs open-question/02-q-trials docs/open-question/runs
copy_runs open-question/03-q-variants docs/open-question/runs
copy_runs open-question/04-q-8m docs/open-question/runs
copy_runs open-question/05-qk56-trials docs/open-question/runs
