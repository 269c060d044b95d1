#!/usr/bin/env bash
# Rebuild the tables and curves of docs/open-question.md from the stored results in
# docs/open-question/runs/ (copied there from runs/ by docs/reproduction/collect.sh):
#   bash docs/open-question/build.sh            # tables to stdout, PNGs under docs/open-question/
set -euo pipefail
cd "$(dirname "$0")/../.."
SELCOPY=${SELCOPY:-.venv/bin/selcopy}
R=${RUNS:-docs/open-question/runs}
OUT=${OUT:-docs/open-question}
table() { echo; echo "\$ selcopy results $* --runs $R --unfinished"; "$SELCOPY" results "$@" --runs "$R" --unfinished; }

# 1. the screen: five attentions in the last layer within the 6-layer budget, one run each
table experiments/open-question/01-screen.yml --include train_sample_error%_ops1 train_sample_error%_ops3 \
  train_sample_error%_ops5
# 2. the best screened candidate with other seeds
if [ -d "$R/open-question/02-q-trials" ]; then
  table experiments/open-question/02-q-trials.yml --std validation_mask_error%
fi
"$SELCOPY" plot experiments/open-question/01-screen.yml --runs "$R" --out "$OUT/screen.png"
