"""What glibc's malloc settings cost a model step on the CPU: `keep_freed_memory` or not.

Each measurement runs in a fresh process (the setting is process-wide and cannot be undone):
the bare model step of `throughput.py` (forward, loss, backward, optimizer on one batch made
beforehand), its best time per step over `--repeat` rounds, and the minor page faults per step
(`getrusage`) over those rounds.

    python benchmarks/allocator.py [--models conv6 lstm] [--steps 40] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import MODELS, bare_step  # noqa: E402

PRECISIONS = ("float32", "bfloat16")


def measure(model: str, precision: str, keep: bool, steps: int, warmup: int, repeat: int) -> dict:
    """ms per step (best round) and minor page faults per step of the bare model step."""
    step = bare_step(MODELS[model], torch.device("cpu"), "token", precision, keep_memory=keep)
    for _ in range(warmup):
        step()
    best, faults = float("inf"), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"step_ms": round(best / steps * 1e3, 2), "page_faults_per_step": round(faults / (steps * repeat), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["conv6"], choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=40, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds; the best counts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    spawn = multiprocessing.get_context("spawn")
    for model in args.models:
        for precision in PRECISIONS:
            row = {"model": model, "precision": precision}
            for keep, name in ((False, "default"), (True, "keep_freed_memory")):
                with ProcessPoolExecutor(1, mp_context=spawn) as fresh:  # one process per measurement
                    row[name] = fresh.submit(measure, model, precision, keep, args.steps, args.warmup,
                                             args.repeat).result()
            row["speed_up"] = round(row["default"]["step_ms"] / row["keep_freed_memory"]["step_ms"], 2)
            rows.append(row)
            if not args.json:
                d, k = row["default"], row["keep_freed_memory"]
                print(f"{model:<12} {precision:<9} default malloc {d['step_ms']:6.2f} ms/step "
                      f"({d['page_faults_per_step']:>7,.0f} page faults)   keep_freed_memory {k['step_ms']:6.2f} "
                      f"ms/step ({k['page_faults_per_step']:>7,.0f})   {row['speed_up']:.2f}x", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"(cpu, {torch.get_num_threads()} threads, batch 64, best of {args.repeat} x {args.steps} steps, "
              "each figure from a fresh process)")


if __name__ == "__main__":
    main()
