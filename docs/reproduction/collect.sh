#!/usr/bin/env bash
# Copy the small result files of the reproduction runs (config, metrics log, result, last
# example image) from runs/ to docs/reproduction/runs/, so that the tables and plots of
# docs/reproduction.md can be rebuilt from the repository:
#   selcopy results FILE --runs docs/reproduction/runs --where ...
set -euo pipefail
cd "$(dirname "$0")/../.."
for dir in runs/article/04-baselines runs/article/05-attention-invention \
           runs/article/10-attention-6l-5ops; do
  [ -d "$dir" ] || continue
  for run in "$dir"/*/; do
    case "$run" in *.prev-*) continue ;; esac
    target="docs/reproduction/$run"
    mkdir -p "$target"
    for f in config.yaml metrics.jsonl result.json; do
      [ -f "$run/$f" ] && cp "$run/$f" "$target/"
    done
    [ -f "$run/examples/validation-latest.png" ] && cp "$run/examples/validation-latest.png" "$target/"
  done
done
du -sh docs/reproduction/runs
