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

# every article file's runs; the example images only of the runs whose image the doc shows
for run_dir in runs/article/*/; do
  [ -d "$run_dir" ] || continue
  dir=article/$(basename "$run_dir")
  case $dir in
    article/04-baselines | article/10-attention-6l-5ops | article/10-attention-6l-last-trials | article/01-preliminary)
      copy_runs "$dir" docs/reproduction/runs images ;;
    *) copy_runs "$dir" docs/reproduction/runs ;;
  esac
done
# bf16 runs trained again to be measured in float32 (train.sh): docs/reproduction/retrained/article/...
for run_dir in runs/retrained/article/*/; do
  [ -d "$run_dir" ] || continue
  copy_runs "retrained/article/$(basename "$run_dir")" docs/reproduction
done
for dir in quality/loss quality/bf16; do
  copy_runs "$dir" benchmarks/quality/runs
done
for dir in 01-screen 02-q-trials 03-q-variants 04-q-8m 05-qk56-trials; do
  copy_runs "open-question/$dir" docs/open-question/runs
done
du -sh docs/reproduction/runs docs/reproduction/retrained docs/open-question/runs benchmarks/quality/runs 2>/dev/null || true
