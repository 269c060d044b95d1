#!/usr/bin/env bash
# Rebuild the tables and curves of docs/open-question.md from the stored results in
# docs/open-question/runs/ (copied there from runs/ by docs/reproduction/collect.sh):
#   bash docs/open-question/build.sh            # tables to stdout, PNGs under docs/open-question/
set -euo pipefail
cd "$(dirname "$0")/../.."
SELCOPY=${SELCOPY:-.venv/bin/selcopy}
R=${RUNS:-docs/open-question/runs}
OUT=${OUT:-docs/open-question}
Q=experiments/open-question
table() { echo; echo "\$ selcopy results $(printf '%q ' "$@")--runs $R --unfinished"; "$SELCOPY" results "$@" --runs "$R" --unfinished; }
have() { [ -d "$R/open-question/$1" ]; }

# 0. parameter counts of every candidate (nothing is trained by show)
for f in 01-screen 03-q-variants 04-q-8m 05-qk56-trials; do
  echo; echo "\$ selcopy show $Q/$f.yml"; "$SELCOPY" show "$Q/$f.yml"
done
# 1. the screen: five attentions in the last layer within the 6-layer budget, one run each
table $Q/01-screen.yml --include train_sample_error%_ops1 train_sample_error%_ops3 \
  train_sample_error%_ops5
"$SELCOPY" plot $Q/01-screen.yml --runs "$R" --out "$OUT/screen.png"
# 2. the best screened candidate with other seeds
if have 02-q-trials; then
  table $Q/02-q-trials.yml --average '' --include train_sample_error%_ops5
  table $Q/02-q-trials.yml --std validation_mask_error%
  "$SELCOPY" plot $Q/02-q-trials.yml --runs "$R" --out "$OUT/q-trials.png"
fi
# 2b. the screen's other good candidate (QK, 56 channels) with other seeds
if have 05-qk56-trials; then
  table $Q/05-qk56-trials.yml --average '' --include train_sample_error%_ops5
  table $Q/05-qk56-trials.yml --std validation_mask_error%
fi
# 3. the best candidate with one change each (DPFP, positions); 4. with twice the budget
if have 03-q-variants; then
  table $Q/03-q-variants.yml --include train_sample_error%_ops4 train_sample_error%_ops5
fi
if have 04-q-8m; then
  table $Q/04-q-8m.yml --include train_sample_error%_ops5
  "$SELCOPY" plot $Q/04-q-8m.yml --runs "$R" --out "$OUT/q-8m.png"
fi
