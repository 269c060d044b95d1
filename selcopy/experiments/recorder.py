"""What a run leaves in its folder: the trainer's reports as it trains, and its outcome.

The trainer knows nothing about files; `Recorder.validated` is its `on_validation` hook. The
outcome of a run (`result.json`) is written by `finish` or `record_failure`, by whichever
process trains the run or, for a job that died, by the one that started it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from selcopy.errors import SelcopyError
from selcopy.experiments.spec import RunSpec
from selcopy.experiments.store import RunStore
from selcopy.report.examples import EXAMPLES, write_examples
from selcopy.train import checkpoint
from selcopy.train.loop import MEASURED, Trainer
from selcopy.train.metrics import summarize

Log = Callable[[str], None]
THREADS = "threads"  # the checkpoint's record of the torch threads the run trains with


class Recorder:
    """Writes what the trainer reports: metrics log, TensorBoard, checkpoints, example images.

    At a validation the best checkpoint is written before `latest.pt`: a kill between the two
    resumes from the checkpoint before, redoes that validation and writes `best.pt` again, so
    `best.pt` always holds the state that `result.json`'s `best` names.
    """

    def __init__(self, store: RunStore, trainer: Trainer, log: Log | None = None, every_example: bool = False):
        from torch.utils.tensorboard import SummaryWriter

        self.store = store
        self.writer = SummaryWriter(str(store.tensorboard), purge_step=trainer.inputs + 1)
        self.log = log  # one line per validation, where no progress bar shows how the run goes
        self.every_example = every_example
        self._calls = 0

    def validated(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        step = int(metrics["inputs"])
        self.store.append_metrics(metrics)  # log first: a kill before the checkpoint is truncated away
        if self.log:
            self.log(f"{step:,} of {trainer.config.max_inputs:,} inputs, validation sample error "
                     f"{metrics['validation_sample_error%']:.3f}%")
        for key, value in metrics.items():
            if key not in ("inputs", "is_best"):
                self.writer.add_scalar(key, value, step)
        best = bool(metrics.get("is_best"))
        batch = trainer.split.validation.select(slice(0, min(EXAMPLES, len(trainer.split.validation))))
        write_examples(batch, trainer.predict(batch).cpu(), self.store.examples, self.writer, step, best,
                       self.every_example)
        self.writer.flush()
        state = {**trainer.state_dict(), THREADS: torch.get_num_threads()}
        if best:
            checkpoint.save(self.store.checkpoints / "best.pt", state)
        checkpoint.save_rotating(self.store.checkpoints, state)

    def progress_to(self, bar: tqdm) -> Callable[[int, torch.Tensor], None]:
        def update(n: int, stats: torch.Tensor) -> None:
            bar.update(n)
            self._calls += 1
            if self._calls % 50 == 0:  # a device sync: only now and then
                m = summarize(stats, "")
                bar.set_postfix(loss=f"{m['loss']:.4f}", error=f"{m['error%']:.2f}%",
                                sample_error=f"{m['sample_error%']:.1f}%", refresh=False)
        return update

    def close(self) -> None:
        self.writer.close()


def repair_best(store: RunStore, state: dict[str, Any], warn: Log) -> None:
    """Make `best.pt` the state the resumed checkpoint names as best, where it can: a kill between
    the two writes (in that order, before this version) left `best.pt` behind `latest.pt`."""
    best_inputs = state.get("best", {}).get("inputs")
    path = store.checkpoints / "best.pt"
    try:
        held = int(checkpoint.load(path)["inputs"]) if path.exists() else None
    except (checkpoint.CorruptCheckpoint, OSError, KeyError, TypeError, ValueError):
        held = None
    if best_inputs is None or held == best_inputs or held is not None and held > int(state["inputs"]):
        return  # consistent, or newer than the checkpoint: the validation that wrote it is redone
    if best_inputs == state["inputs"]:
        checkpoint.save(path, state)
        warn(f"best.pt was behind the best validation ({best_inputs:,} inputs); written again from latest.pt")
    else:
        warn(f"best.pt holds {held or 0:,} inputs, not the best validation at {best_inputs:,}: "
             "it cannot be written again (no checkpoint of that validation is left)")


def finish(spec: RunSpec, store: RunStore, trainer: Trainer, device: torch.device) -> dict[str, Any]:
    """Write the finished `result.json` from the last line of the metrics log."""
    final = store.metrics()[-1]
    result = {"status": "finished", "run": spec.name, "variables": spec.variables, "metrics": final,
              "best": trainer.best, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "device": str(device), "threads": torch.get_num_threads(),  # the numbers depend on both
              "precision": {"training": trainer.config.precision, "measurement": MEASURED}}
    store.write_result(result)
    return result


def record_failure(store: RunStore, spec: RunSpec, error: str, trace: str, log: Log, prefix: str) -> None:
    """Write a failed result.json, unless the folder holds a finished one or is another
    settings' (it failed before the folder was moved aside), whose result is kept."""
    try:
        if store.finished() or store.other_settings(spec.config_dict()):
            return
    except SelcopyError:  # an unreadable config.yaml: not this run's to write into
        return
    try:
        store.write_result({"status": "failed", "run": spec.name, "error": error, "traceback": trace})
    except OSError as again:
        log(f"{prefix}: its failure could not be recorded either: {again}")
