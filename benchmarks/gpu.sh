#!/usr/bin/env bash
# The throughput benchmarks on a CUDA machine, meant to take under 5 minutes (not yet run on one):
#   bash benchmarks/gpu.sh | tee benchmarks/gpu-$(date +%F).txt
# then record the figures, with the card, in benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script is for a GPU machine')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
$PY benchmarks/datagen.py --repeat 3
for precision in float32 bfloat16; do
  $PY benchmarks/throughput.py --device cuda --steps 200 --warmup 30 --repeat 2 --precision "$precision" --json
done
# Stacked trials (issue 22): N conv6 trials as one model (N = 1, 4, 16, 64), against one at a
# time; --jobs 1: one card. A precision that cannot stack on the device trains its stacks in float32
# (the row's ways say which).
for precision in float32 bfloat16; do
  $PY benchmarks/throughput.py --device cuda --grid --trials 1 4 16 64 --jobs 1 --steps 200 --warmup 30 --repeat 2 \
    --precision "$precision" --json
done
# Where the 6-layer conv's step goes on the card (kernels against the rest); last, so that a
# profiler problem cannot cost the figures above.
$PY benchmarks/throughput.py --device cuda --models conv6 --steps 100 --warmup 30 --repeat 2 --precision bfloat16 \
  --breakdown --validation \
  || echo "breakdown failed (the figures above stand)"
