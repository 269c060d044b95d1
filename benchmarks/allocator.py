"""Does glibc's malloc cost the CPU training step anything? The three paths of `throughput.py`
with glibc's defaults and with freed memory kept for reuse, each in a fresh process.

By default glibc maps blocks above its mmap threshold afresh and returns them on free, so a
step that allocates and frees the same few-MB tensors faults their pages in again each time;
the threshold adapts upwards (to 32 MiB at most) to the blocks a process happens to free, so
one process of a program may fault every step and the next not. `kept` raises the mmap and
trim thresholds with `mallopt` first, so freed blocks are always reused. a process that
trains selcopy runs does so on the CPU (`selcopy.train.device.keep_freed_memory`), and
`throughput.py` runs its reference loop so; `default` here leaves glibc's defaults.
Each measurement is a fresh process; the settings alternate over `--pairs` pairs of them.
Each setting is reported by its slowest and its best process (each process: the best of its
rounds): glibc's defaults slow only some processes, which the best alone would hide. Page faults are
minor faults (`getrusage`) per step over the whole measurement, setup included.

    python benchmarks/allocator.py [--models conv6 lstm] [--paths selcopy reference model_step]
                                   [--steps 60] [--repeat 3] [--pairs 2] [--json]
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
from throughput import BATCH, MODELS, model_step_rate, reference_rate, selcopy_rate  # noqa: E402

from selcopy.train.device import keep_freed_memory  # noqa: E402

PATHS = ("selcopy", "reference", "model_step")
SETTINGS = ("default", "kept")


def measure(path: str, model: str, precision: str, setting: str, steps: int, warmup: int, repeat: int) -> dict:
    """Samples/s of one path (best of `repeat` rounds), its page faults per step and whether
    freed memory was kept in the process."""
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
    return {"samples_per_s": rate, "page_faults_per_step": faults / (warmup + steps * repeat),
            "freed_memory_kept": keep_freed_memory.cache_info().misses > 0}  # whether anything called it


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["conv6"], choices=list(MODELS))
    parser.add_argument("--paths", nargs="*", default=list(PATHS), choices=PATHS)
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"],
                        help="of the selcopy path and the model step (the reference runs float32)")
    parser.add_argument("--steps", type=positive, default=60, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=positive, default=3, help="timed rounds per process")
    parser.add_argument("--pairs", type=positive, default=2, help="fresh processes per path and setting")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if sys.platform != "linux":
        parser.error("glibc's malloc: Linux only")
    spawn = multiprocessing.get_context("spawn")
    rows = []
    for model in args.models:
        for path in args.paths:
            runs: dict[str, list[dict]] = {setting: [] for setting in SETTINGS}
            for _ in range(args.pairs):
                for setting in SETTINGS:
                    with ProcessPoolExecutor(1, mp_context=spawn) as fresh:
                        runs[setting].append(fresh.submit(measure, path, model, args.precision, setting, args.steps,
                                                          args.warmup, args.repeat).result())
            rows.append(summarize(model, path, "float32" if path == "reference" else args.precision, runs))
            if not args.json:
                print(format_row(rows[-1]), flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"(cpu, {torch.get_num_threads()} threads, batch {BATCH}, {args.pairs} fresh processes per setting, "
              f"each the best of {args.repeat} x {args.steps} steps;\n slowest-best process, page faults per step "
              f"of each, kept over default for the slowest / the best)")


def summarize(model: str, path: str, precision: str, runs: dict[str, list[dict]]) -> dict:
    """One row: per setting its best and its slowest process, and kept over default for both."""
    row = {"model": model, "path": path, "precision": precision}
    for setting, got in runs.items():
        best, slowest = max(got, key=lambda r: r["samples_per_s"]), min(got, key=lambda r: r["samples_per_s"])
        row[setting] = {"samples_per_s": round(best["samples_per_s"], 1),
                        "page_faults_per_step": round(best["page_faults_per_step"], 1),
                        "slowest_samples_per_s": round(slowest["samples_per_s"], 1),
                        "slowest_page_faults_per_step": round(slowest["page_faults_per_step"], 1),
                        "freed_memory_kept": all(r["freed_memory_kept"] for r in got),
                        "processes": [{k: v if isinstance(v, bool) else round(v, 1) for k, v in r.items()}
                                      for r in got]}
    kept, default = row["kept"], row["default"]
    row["kept_over_default"] = round(kept["samples_per_s"] / default["samples_per_s"], 2)
    row["slowest_kept_over_default"] = round(kept["slowest_samples_per_s"] / default["slowest_samples_per_s"], 2)
    return row


def format_row(row: dict) -> str:
    """Slowest-best process per setting, their page faults per step, kept over default for each."""
    def setting(s: dict) -> str:
        return (f"{s['slowest_samples_per_s']:>6,.0f}-{s['samples_per_s']:>6,.0f}/s "
                f"({s['slowest_page_faults_per_step']:>5,.0f} / {s['page_faults_per_step']:>5,.0f} faults)")

    return (f"{row['model']:<11} {row['path']:<10} {row['precision']:<8}  default {setting(row['default'])}  "
            f"kept {setting(row['kept'])}  {row['slowest_kept_over_default']:.2f}x / {row['kept_over_default']:.2f}x")


if __name__ == "__main__":
    main()
