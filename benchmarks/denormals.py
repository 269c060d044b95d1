"""Training samples/s of a float32 run on the CPU with subnormal floats kept and flushed to zero.

A float32 conv trained on the CPU slows down as it learns: its activations and gradients reach
subnormal values (below 1.2e-38), which x86 CPUs compute in microcode, many times slower. selcopy
therefore trains with the CPU flushing them to zero (`run_threads`, `flush_denormals`). This
script shows the effect on a run's own state: the train step of a checkpoint (or of a run
trained here for `--inputs` samples, subnormals kept, as it would have trained before), timed
with the subnormals kept and flushed, with the share of subnormal values among the float32
results of one step's ops and the ops that make most of them.

    python benchmarks/denormals.py [--experiment FILE] [--run N] [--checkpoint PATH | --inputs 400000]
                                   [--steps 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from selcopy.experiments import load_experiment
from selcopy.train import checkpoint
from selcopy.train.device import flush_denormals, keep_freed_memory
from selcopy.train.loop import Trainer

ROOT = Path(__file__).parents[1]
EXPERIMENT = ROOT / "experiments/article/10-attention-6l-last-float32-trials.yml"
TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32


class Subnormals(TorchDispatchMode):
    """Counts the subnormal values among the float32 results of every op, by op."""

    def __init__(self):
        super().__init__()
        self.values = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if torch.is_tensor(t) and t.dtype == torch.float32 and t.numel():
                a = t.detach().abs()
                found = int(((a > 0) & (a < TINY)).sum())
                self.values += t.numel()
                if found:
                    name = func.__name__.split(".")[0]
                    self.by_op[name] = self.by_op.get(name, 0) + found
        return out


def subnormals_of_a_step(trainer: Trainer) -> tuple[float, dict[str, int]]:
    """The share of subnormal values among the float32 results of one train step, and the ops
    that made the most of them."""
    batch = trainer.stream.next()
    with Subnormals() as seen:
        trainer._train_step(batch)
    top = dict(sorted(seen.by_op.items(), key=lambda kv: -kv[1])[:4])
    return sum(seen.by_op.values()) / max(seen.values, 1), top


def rate(trainer: Trainer, steps: int) -> float:
    batch = trainer.stream.next()
    for _ in range(3):
        trainer._train_step(batch)
    start = time.perf_counter()
    for _ in range(steps):
        trainer._train_step(batch)
    return steps * trainer.config.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", type=Path, default=EXPERIMENT)
    parser.add_argument("--run", type=int, default=0, help="which run of the experiment (default: its first)")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint of that run to time the step of")
    parser.add_argument("--inputs", type=int, default=400_000, help="without --checkpoint: train this far first")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    spec = load_experiment(args.experiment).runs[args.run]
    state = checkpoint.load(args.checkpoint) if args.checkpoint else None
    if state is None:  # train as a run did before selcopy flushed subnormals
        flush_denormals(False)
        config = spec.train_config().model_copy(update={"max_inputs": args.inputs, "validate_every": args.inputs})
        trainer = Trainer(spec.build_model(), spec.build_split(), config, spec.seed, torch.device("cpu"))
        started = time.perf_counter()
        trainer.fit()
        print(f"trained {args.inputs:,} inputs, subnormals kept, in {time.perf_counter() - started:.0f} s")
        state = trainer.state_dict()
    row = {"run": spec.name, "inputs": int(state["inputs"]), "threads": 1}
    for mode in ("kept", "flushed"):
        flush_denormals(mode == "flushed")
        trainer = Trainer(spec.build_model(), spec.build_split(), spec.train_config(), spec.seed, torch.device("cpu"))
        trainer.load_state_dict(state)
        row[f"{mode}_samples_per_s"] = round(rate(trainer, args.steps), 1)
        share, ops = subnormals_of_a_step(trainer)
        row[f"{mode}_subnormal_share"], row[f"{mode}_subnormals_by_op"] = round(share, 6), ops
    flush_denormals(False)
    row["ratio"] = round(row["flushed_samples_per_s"] / row["kept_samples_per_s"], 2)
    if args.json:
        print(json.dumps(row, indent=1))
    else:
        print(f"{row['run']} at {row['inputs']:,} inputs, 1 thread: subnormals kept {row['kept_samples_per_s']:,.0f}"
              f"/s ({row['kept_subnormal_share']:.3%} of a step's float32 values subnormal, most from "
              f"{row['kept_subnormals_by_op']}), flushed {row['flushed_samples_per_s']:,.0f}/s: {row['ratio']}x")


if __name__ == "__main__":
    main()
