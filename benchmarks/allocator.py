"""Does glibc's malloc cost the CPU training step anything? The three paths of `throughput.py`
with glibc's defaults and with freed memory kept for reuse, each in a fresh process.

By default glibc maps blocks above its mmap threshold afresh and returns them on free, so a
step that allocates and frees the same few-MB tensors faults their pages in again each time;
the threshold adapts upwards (to 32 MiB at most) once a process frees a larger block. `kept`
raises the mmap and trim thresholds with `mallopt` first, so freed blocks are always reused
(`throughput.py` runs its reference loop so).
Each measurement is a fresh process; the settings alternate over `--pairs` pairs of them, and
each figure is the best of its setting's processes. Page faults are minor faults (`getrusage`) per step over the
whole measurement, setup included.

    python benchmarks/allocator.py [--models conv6 lstm] [--steps 60] [--repeat 3] [--pairs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import BATCH, MODELS, keep_freed_memory, model_step_rate, reference_rate, selcopy_rate  # noqa: E402

PATHS = ("selcopy", "reference", "model_step")
SETTINGS = ("default", "kept")


def measure(path: str, model: str, precision: str, setting: str, steps: int, warmup: int, repeat: int) -> dict:
    """Samples/s of one path (best of `repeat` rounds) and its page faults per step."""
    import resource  # POSIX only: main() refuses other platforms first

    if setting == "kept" and not keep_freed_memory():
        raise RuntimeError("no glibc here, or it refused the thresholds")
    cpu, faults = torch.device("cpu"), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    if path == "selcopy":
        rate = selcopy_rate(MODELS[model], steps, warmup, cpu, "token", False, precision, repeat)
    elif path == "reference":  # float32 always, as the article's trainer
        rate = reference_rate(MODELS[model], steps, warmup, cpu, "token", repeat)
    else:
        rate = model_step_rate(MODELS[model], steps, warmup, cpu, "token", repeat, precision)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"samples_per_s": rate, "page_faults_per_step": faults / (warmup + steps * repeat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["conv6"], choices=list(MODELS))
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"],
                        help="of the selcopy path and the model step (the reference runs float32)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per process")
    parser.add_argument("--pairs", type=int, default=2, help="fresh processes per path and setting")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if sys.platform != "linux":
        parser.error("glibc's malloc: Linux only")
    spawn = multiprocessing.get_context("spawn")
    rows = []
    for model in args.models:
        for path in PATHS:
            best = {setting: {"samples_per_s": 0.0} for setting in SETTINGS}
            for _ in range(args.pairs):
                for setting in SETTINGS:
                    with ProcessPoolExecutor(1, mp_context=spawn) as fresh:
                        got = fresh.submit(measure, path, model, args.precision, setting, args.steps, args.warmup,
                                           args.repeat).result()
                    if got["samples_per_s"] > best[setting]["samples_per_s"]:
                        best[setting] = got
            row = {"model": model, "path": path, "precision": "float32" if path == "reference" else args.precision}
            for setting in SETTINGS:
                row[setting] = {k: round(v, 1) for k, v in best[setting].items()}
            row["kept_over_default"] = round(best["kept"]["samples_per_s"] / best["default"]["samples_per_s"], 2)
            rows.append(row)
            if not args.json:
                d, k = row["default"], row["kept"]
                print(f"{model:<12} {path:<11} {row['precision']:<9} default {d['samples_per_s']:>7,.0f}/s "
                      f"({d['page_faults_per_step']:>6,.0f} page faults per step)   kept {k['samples_per_s']:>7,.0f}/s "
                      f"({k['page_faults_per_step']:>6,.0f})   {row['kept_over_default']:.2f}x", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"(cpu, {torch.get_num_threads()} threads, batch {BATCH}, best of {args.pairs} fresh processes per "
              f"setting, each the best of {args.repeat} x {args.steps} steps)")


if __name__ == "__main__":
    main()
