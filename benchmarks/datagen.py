"""Generated training samples per second: selcopy's batch generator vs a per-sample Python one.

Both produce what training consumes: token ids and masked ids as tensors, no repeated
question within the set, nothing from the validation set. selcopy's side is the real
training path (`DataSplit.epoch`); the reference is a straightforward generator written
for comparison: one Python string per sample, a `set` for duplicates, encoding at the end.

    python benchmarks/datagen.py [--count 100000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import string
import time
from functools import partial

import torch

from selcopy.tasks import make_task
from selcopy.tasks.split import DataSplit

SETTINGS = {
    "5 items, 2-5 swaps": {"input_length": 5, "num_operations": [2, 5], "operators": {">": 1}},
    "2-5 items, 1-5 ops with stack": {"input_length": [2, 5], "num_operations": [1, 5]},
}


def reference_sample(rng: random.Random, cfg: dict) -> str:
    """One sample, the plain way (an independent implementation of DESIGN.md's rules)."""
    lo, hi = cfg["input_length"] if isinstance(cfg["input_length"], list) else [cfg["input_length"]] * 2
    olo, ohi = cfg["num_operations"]
    weights = cfg.get("operators", {">": 1, "-": 1 / 3, "+": 1 / 3})
    letters = rng.sample(string.ascii_uppercase, hi)[: rng.randint(lo, hi)]
    cells, stack, ops = list(letters), [], []
    for _ in range(rng.randint(olo, ohi)):
        if not cells:
            break
        while True:
            op = rng.choices(list(weights), list(weights.values()))[0]
            if (op == ">" and len(cells) >= 2) or op == "-" or (op == "+" and stack):
                break
        if op == ">":
            x, y = rng.sample(range(len(cells)), 2)
            cells[x], cells[y] = cells[y], cells[x]
            ops.append(f"{x + 1}>{y + 1}")
        elif op == "-":
            x = rng.randrange(len(cells))
            stack.append(cells.pop(x))
            ops.append(f"-{x + 1}")
        else:
            x = rng.randrange(len(cells))
            cells.insert(x, stack.pop())
            ops.append(f"+{x + 1}")
    return f"{''.join(letters)}:{' '.join(ops)}:{''.join(cells).ljust(hi)}"


def reference_epoch(cfg: dict, count: int, validation: set[str], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = random.Random(seed)
    hi = cfg["input_length"][1] if isinstance(cfg["input_length"], list) else cfg["input_length"]
    seen: set[str] = set()
    texts = []
    while len(texts) < count:
        text = reference_sample(rng, cfg)
        question = text[:-hi]
        if question in seen or question in validation:
            continue
        seen.add(question)
        texts.append(text)
    width = max(len(t) for t in texts)
    ids = torch.tensor([list(t.encode().ljust(width)) for t in texts])
    masked = ids.clone()
    for row, t in zip(masked, texts):
        row[len(t) - hi : len(t)] = 0
    return ids, masked


def rate(fn, count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def measure(count: int, repeat: int) -> list[dict]:
    """Per setting: samples/s of selcopy's epoch of `count` samples and of the reference's, best of `repeat`."""
    rows = []
    for label, cfg in SETTINGS.items():
        task = make_task("program", cfg)
        split = DataSplit(task, task, count, validation_count=10_000, validation_seed=23)
        validation = {t.rsplit(":", 1)[0] + ":" for t in split.validation.texts()}
        ours = rate(partial(split.epoch, seed=1), count, repeat)
        ref_count = max(count // 10, 1000)
        ref = rate(partial(reference_epoch, cfg, ref_count, validation, 1), ref_count, repeat)
        rows.append({"setting": label, "selcopy_samples_per_s": ours, "reference_samples_per_s": ref,
                     "ratio": ours / ref, "threads": torch.get_num_threads()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="samples per epoch (the article's 100,000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.count, args.repeat)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'setting':<32} {'selcopy/s':>12} {'per-sample/s':>13} {'ratio':>7}")
    for r in rows:
        print(f"{r['setting']:<32} {r['selcopy_samples_per_s']:>12,.0f} {r['reference_samples_per_s']:>13,.0f} "
              f"{r['ratio']:>6.1f}x")
    print(f"(torch threads: {torch.get_num_threads()}; best of {args.repeat}; selcopy: DataSplit.epoch of "
          f"{args.count:,}, reference: {max(args.count // 10, 1000):,} samples)")


if __name__ == "__main__":
    main()
