#!/usr/bin/env bash
# Rebuild the tables and curves of docs/reproduction.md from the stored results in
# docs/reproduction/runs/ (copied there from runs/ by collect.sh), with selcopy itself:
#   bash docs/reproduction/build.sh            # tables to stdout, PNGs under docs/reproduction/
set -euo pipefail
cd "$(dirname "$0")/../.."
SELCOPY=${SELCOPY:-.venv/bin/selcopy}
PYTHON=${PYTHON:-.venv/bin/python}
R=${RUNS:-docs/reproduction/runs}
OUT=${OUT:-docs/reproduction}
shown() {  # the arguments as one could paste them into a shell
  local a; for a in "$@"; do case $a in *[\ \$\"\[]*) printf " '%s'" "$a" ;; *) printf ' %s' "$a" ;; esac; done
}
table() { echo; echo "\$ selcopy results$(shown "$@" --runs "$R" --unfinished)"; "$SELCOPY" results "$@" --runs "$R" --unfinished; }

# progress: how many runs of each article file have finished
echo "\$ selcopy show FILE --runs $R | tail -n 1    # for each FILE in experiments/article/"
for f in experiments/article/*.yml; do
  printf '%-62s %s\n' "$f:" "$("$SELCOPY" show "$f" --runs "$R" | tail -n 1)"
done

# 1. table 3/4 setting: the 6-layer conv fails, attention in the last layer largely solves it (3 trials)
table experiments/article/04-baselines.yml --where '${model}["name"] == "conv"'
# table 3: the same training set, 6 (in float32), 12 and 18 layers without attention
table experiments/article/03-easy-examples.yml
table experiments/article/03-easy-examples-12l-trials.yml --std validation_mask_error%
table experiments/article/10-attention-6l-5ops.yml --where '${attn} == [0, 0, 0, 0, 0, true]'
table experiments/article/10-attention-6l-last-trials.yml --std validation_mask_error%
table experiments/article/10-attention-6l-last-float32.yml
table experiments/article/10-attention-6l-last-float32-trials.yml --std validation_mask_error%
# table 10's last-layer row pooled over its files: trial 0 (bf16 and float32) and the trials files
pooled() {  # pooled LABEL RUN_FOLDER...: the final validation sample error of finished runs
  local label=$1; shift
  echo; echo "pooled, $label:"
  "$PYTHON" - "$@" <<'PY'
import json, statistics, sys
from pathlib import Path
errors = []
for folder in sys.argv[1:]:
    path = Path(folder) / "result.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    if result.get("status") == "finished":
        errors.append(result["metrics"]["validation_sample_error%"])
print(f"  {len(errors)} runs: {', '.join(f'{e:.2f}' for e in errors)}; mean {statistics.mean(errors):.2f}%"
      f" ± {statistics.stdev(errors):.2f} (sample std), from {min(errors):.2f}% to {max(errors):.2f}%")
PY
}
L=$R/article
F32=("$L/10-attention-6l-last-float32/precision-float32" "$L"/10-attention-6l-last-float32-trials/trial-*)
BF16=("$L/10-attention-6l-5ops/attn-0,0,0,0,0,T" "$L"/10-attention-6l-last-trials/trial-*)
pooled "float32, trial 0 and the trials file" "${F32[@]}"
pooled "bfloat16, trial 0 and the trials file" "${BF16[@]}"
pooled "both precisions" "${F32[@]}" "${BF16[@]}"
# the float32 trial 0 over 8 million samples
table experiments/article/10-attention-6l-last-float32-8m.yml

# 2. the attention study: 5 trials of linear and of 8-head QK attention in the last layer
table experiments/article/05-attention-invention.yml --where '${qkv} == "QK" and ${attn} in [[0, 0, true], [0, 0, 8]]' \
  --std validation_mask_error%
# the rest of table 5: every finished run of its file
table experiments/article/05-attention-invention.yml --std validation_mask_error%
# 3. LSTM and Mamba beside the conv of (1); Mamba with the article's initialisation of Δ
table experiments/article/04-baselines.yml
table experiments/article/04-baselines-mamba-linear-dt.yml

# issue 23: the bf16 rows trained again (same files, seeds and thread count) and measured in float32
A=${AGAIN:-docs/reproduction/retrained}
R=$A table experiments/article/04-baselines.yml --where '${model}["name"] != "mamba"'
R=$A table experiments/article/10-attention-6l-5ops.yml --where '${attn} == [0, 0, 0, 0, 0, true]'
R=$A table experiments/article/10-attention-6l-last-trials.yml --std validation_mask_error%
pooled "bfloat16 trained again, trial 0 and the trials file" "$A/article/10-attention-6l-5ops/attn-0,0,0,0,0,T" \
  "$A"/article/10-attention-6l-last-trials/trial-*
echo; echo "each retrained run beside its first training, from their metrics.jsonl (the first measured in bf16, the"
echo "retrained one in float32; where the train losses differ, the training did too):"
"$PYTHON" - "$R" "$A" <<'PY'
import json, sys
from pathlib import Path
first, again = Path(sys.argv[1]), Path(sys.argv[2])
def lines(folder):
    path = folder / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
for result in sorted(again.glob("article/*/*/result.json")):
    run = result.parent
    new, old = lines(run), lines(first / run.relative_to(again))
    if not new or not old or json.loads(result.read_text()).get("status") != "finished":
        continue
    old_by_inputs = {line["inputs"]: line for line in old}
    pairs = [(o["train_loss"], n["train_loss"]) for n in new if (o := old_by_inputs.get(n["inputs"]))]
    equal = sum(a == b for a, b in pairs)
    largest = max(abs(a - b) / abs(a) for a, b in pairs)
    where = json.loads(result.read_text()).get("processor", "a processor it does not record")
    print(f"  {run.relative_to(again)}, trained again on {where}:")
    print(f"    train_loss equal at {equal} of {len(pairs)} validation points (largest relative difference {largest:.1e})")
    for key, name in [("validation_loss", "loss"), ("validation_mask_error%", "mask error%"),
                      ("validation_sample_error%", "sample error%")]:
        print(f"    final validation {name}: first {old[-1][key]:.4f} (bf16), again {new[-1][key]:.4f} (float32)")
PY

# 5. table 9: six of the article's best 5-layer placements (its table 8 ranks 2-7), trained on 1-5 swaps, validated on 5
table experiments/article/09-attention-5l-5ops.yml
# 6. table 7: where linear QK attention goes in the 3-layer conv of (2), 5 trials
table experiments/article/07-attention-position-3l.yml --std validation_mask_error%
# 7. table 8: every placement of linear QK attention in a 5-layer conv, one run each
table experiments/article/08-attention-position-5l.yml
# its trials: other seeds for the placements where our run and the article's differ
table experiments/article/08-attention-position-5l-trials.yml --std validation_mask_error%
# 8. table 10: linear QK attention in the last layer of the 6-layer conv of (1) and in one more, one run each
table experiments/article/10-attention-6l-5ops.yml
# 9. table 6: elu+1 against DPFP as the feature map of the linear attention in the last layer of (2), 5 trials
table experiments/article/06-attention-activation.yml --std validation_mask_error%
# the same config and seeds three times over: table 6's elu+1 trials, table 5's linear QK and table 7's 0,0,T
echo; echo "each trial of linear QK attention in the last layer of (2), in three files (same resolved config and seeds):"
"$PYTHON" - "$R" <<'PY'
import sys
from selcopy.experiments.store import RunStore
copies = [("table 6 elu+1", "article/06-attention-activation/trial-{}_attnact-elu+1"),
          ("table 5 QK", "article/05-attention-invention/trial-{}_qkv-QK_attn-0,0,T"),
          ("table 7 0,0,T", "article/07-attention-position-3l/trial-{}_attn-0,0,T")]
for trial in range(1, 6):
    stores = [(label, RunStore(sys.argv[1], name.format(trial))) for label, name in copies]
    if not all(store.finished() for _, store in stores):
        continue
    runs = [(label, store.result().get("processor", "processor not recorded"), store.metrics()) for label, store in stores]
    print(f"  trial {trial}: " + ", ".join(f"{label} {rows[-1]['validation_sample_error%']:.2f}% ({where})"
                                          for label, where, rows in runs))
    first = runs[0][2]
    for label, _, rows in runs[1:]:
        pairs = [(a, b) for a, b in zip(first, rows) if a["inputs"] == b["inputs"]]
        same = next((i for i, (a, b) in enumerate(pairs)
                     if a["validation_sample_error%"] != b["validation_sample_error%"]), len(pairs))
        equal = sum(a["train_loss"] == b["train_loss"] for a, b in pairs)
        largest = max(abs(a["train_loss"] - b["train_loss"]) / abs(a["train_loss"]) for a, b in pairs)
        print(f"    {label} against table 6: validation sample errors equal at the first {same} of {len(pairs)}"
              f" validation points, train losses at {equal} (largest relative difference {largest:.1e})")
PY
# 10. the Selective Copying setup the article starts from: the 6-layer conv, one run
table experiments/article/00-selective-copy.yml
# 11. table 1: the conv without attention on 2-5 letters and 1-5 operations with stack operations, one run each
table experiments/article/01-preliminary.yml
# 12. table 2: 6, 12 and 18 layers on exactly 2, 3, 4 or 5 swaps, one run each
table experiments/article/02-ops-vs-layers.yml

"$SELCOPY" plot experiments/article/04-baselines.yml --runs "$R" --group-by model --out "$OUT/baselines.png"
"$SELCOPY" plot experiments/article/03-easy-examples.yml --runs "$R" --group-by l --out "$OUT/easy-examples-depth.png"
"$SELCOPY" plot experiments/article/10-attention-6l-5ops.yml --runs "$R" \
  --where '${attn} == [0, 0, 0, 0, 0, true]' --out "$OUT/attention-6l.png"
"$SELCOPY" plot experiments/article/10-attention-6l-last-trials.yml --runs "$R" --out "$OUT/attention-6l-trials.png"
"$SELCOPY" plot experiments/article/05-attention-invention.yml --runs "$R" \
  --where '${qkv} == "QK" and ${attn} in [[0, 0, true], [0, 0, 8]]' --group-by attn --out "$OUT/attention-study.png"
"$SELCOPY" plot experiments/article/05-attention-invention.yml --runs "$R" --group-by qkv --metric sample_error% \
  --out "$OUT/attention-inventions.png"
"$SELCOPY" plot experiments/article/10-attention-6l-last-float32-trials.yml --runs "$R" \
  --out "$OUT/attention-6l-float32-trials.png"
"$SELCOPY" plot experiments/article/10-attention-6l-last-float32.yml experiments/article/10-attention-6l-last-float32-trials.yml \
  experiments/article/10-attention-6l-last-float32-8m.yml --runs "$R" --metric mask_error% sample_error% \
  --out "$OUT/attention-6l-float32-8m.png"
"$SELCOPY" plot experiments/article/04-baselines.yml experiments/article/04-baselines-mamba-linear-dt.yml --runs "$R" \
  --where '${model}["name"] == "mamba"' --where '' --out "$OUT/mamba-dt-init.png"
"$SELCOPY" plot experiments/article/09-attention-5l-5ops.yml --runs "$R" --group-by attn --out "$OUT/attention-5l-5ops.png"
"$SELCOPY" plot experiments/article/07-attention-position-3l.yml --runs "$R" --group-by attn --metric sample_error% \
  --out "$OUT/attention-position-3l.png"
# table 8's 32 placements in two figures (a colour each): without attention in the first layer, and with it
"$SELCOPY" plot experiments/article/08-attention-position-5l.yml --runs "$R" --where '${attn}[0] == 0' --group-by attn \
  --metric sample_error% --out "$OUT/attention-position-5l.png"
"$SELCOPY" plot experiments/article/08-attention-position-5l.yml --runs "$R" --where '${attn}[0] != 0' --group-by attn \
  --metric sample_error% --out "$OUT/attention-position-5l-first.png"
"$SELCOPY" plot experiments/article/10-attention-6l-5ops.yml --runs "$R" --group-by attn --out "$OUT/attention-6l-5ops.png"
"$SELCOPY" plot experiments/article/06-attention-activation.yml --runs "$R" --group-by attnact --metric sample_error% \
  --out "$OUT/attention-activation.png"
"$SELCOPY" plot experiments/article/00-selective-copy.yml --runs "$R" --metric mask_error% sample_error% \
  --out "$OUT/selective-copy.png"
"$SELCOPY" plot experiments/article/01-preliminary.yml --runs "$R" --metric mask_error% --out "$OUT/preliminary.png"
for l in 6 12 18; do  # table 2 as the article draws it: a figure per depth (once one has finished), a colour per number of swaps
  "$SELCOPY" show experiments/article/02-ops-vs-layers.yml --runs "$R" --where "\${l} == $l" | tail -n 1 | grep -q '^0 of' ||
    "$SELCOPY" plot experiments/article/02-ops-vs-layers.yml --runs "$R" --where "\${l} == $l" --group-by nops \
      --metric mask_error% sample_error% --out "$OUT/ops-vs-layers-l$l.png"
done
