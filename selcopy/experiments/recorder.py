"""What a run leaves in its folder: the trainer's reports as it trains, and its outcome.

The trainer knows nothing about files; `Recorder.validated` is its `on_validation` hook. On a
Ray cluster the trainer's process makes a `Validation` (bytes) and the driver, which alone
writes the store, hands it to `Recorder.write`. The outcome of a run (`result.json`) is written
by `finish` or `record_failure`, by whichever process trains the run or, for a job that died
or a run on a cluster, by the one that started it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from selcopy.errors import SelcopyError
from selcopy.experiments.spec import RunSpec
from selcopy.experiments.store import RunStore
from selcopy.files import atomic_write
from selcopy.report.examples import EXAMPLES, examples_png, save_examples
from selcopy.train import checkpoint
from selcopy.train.device import flushing_denormals, processor
from selcopy.train.loop import MEASURED, Trainer
from selcopy.train.metrics import summarize

Log = Callable[[str], None]
THREADS = "threads"  # the checkpoint's record of the torch threads the run trains with
FLUSH = "flush_denormal"  # and of whether it flushes subnormal floats to zero (absent: it did not)


@dataclass(frozen=True)
class Validation:
    """What one validation leaves in the run folder, as plain data that can travel between machines:
    its metrics line, the example image (PNG) and the checkpoint (a file's bytes, `checkpoint.encode`)."""

    metrics: dict[str, Any]
    max_inputs: int
    examples: bytes
    checkpoint: bytes

    @classmethod
    def of(cls, trainer: Trainer, metrics: dict[str, Any]) -> Validation:
        batch = trainer.split.validation.select(slice(0, min(EXAMPLES, len(trainer.split.validation))))
        png = examples_png(batch, trainer.predict(batch).cpu(), int(metrics["inputs"]))
        state = {**trainer.state_dict(), THREADS: torch.get_num_threads(), FLUSH: flushing_denormals()}
        return cls(dict(metrics), trainer.config.max_inputs, png, checkpoint.encode(state))


class Recorder:
    """Writes what the trainer reports: metrics log, TensorBoard, checkpoints, example images.

    At a validation the best checkpoint is written before `latest.pt`: a kill between the two
    resumes from the checkpoint before, redoes that validation and writes `best.pt` again, so
    `best.pt` always holds the state that `result.json`'s `best` names. `inputs`: where the run
    (re)starts; TensorBoard drops what an earlier attempt logged after it.
    """

    def __init__(self, store: RunStore, inputs: int, log: Log | None = None, every_example: bool = False):
        from torch.utils.tensorboard import SummaryWriter

        self.store = store
        self.writer = SummaryWriter(str(store.tensorboard), purge_step=inputs + 1)
        self.log = log  # one line per validation, where no progress bar shows how the run goes
        self.every_example = every_example
        self._calls = 0

    def validated(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.write(Validation.of(trainer, metrics))

    def write(self, validation: Validation) -> None:
        metrics = validation.metrics
        step = int(metrics["inputs"])
        self.store.append_metrics(metrics)  # log first: a kill before the checkpoint is truncated away
        if self.log:
            self.log(f"{step:,} of {validation.max_inputs:,} inputs, validation sample error "
                     f"{metrics['validation_sample_error%']:.3f}%")
        for key, value in metrics.items():
            if key not in ("inputs", "is_best"):
                self.writer.add_scalar(key, value, step)
        best = bool(metrics.get("is_best"))
        save_examples(validation.examples, self.store.examples, self.writer, step, best, self.every_example)
        self.writer.flush()
        if best:
            atomic_write(self.store.checkpoints / "best.pt", validation.checkpoint)
        checkpoint.write_rotating(self.store.checkpoints, validation.checkpoint)

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
    return write_finished(spec, store, trainer.best, str(device), torch.get_num_threads(), trainer.config.precision,
                          flushing_denormals() and device.type == "cpu", processor(device))


def write_finished(spec: RunSpec, store: RunStore, best: dict[str, Any], device: str, threads: int,
                   precision: str, flushed: bool, processor_name: str) -> dict[str, Any]:
    """`finish` from what the trainer ended with, wherever it trained: its best validation, the
    device (and what processor it is), torch threads and CPU denormal mode it trained with (the
    numbers depend on them) and its precision."""
    final = store.metrics()[-1]
    result = {"status": "finished", "run": spec.name, "variables": spec.variables, "metrics": final,
              "best": best, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": device,
              "processor": processor_name, "threads": threads,
              "precision": {"training": precision, "measurement": MEASURED},
              "denormals": "flushed to zero" if flushed else "kept"}  # on the CPU; a GPU keeps them
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
