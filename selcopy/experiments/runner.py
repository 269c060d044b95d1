"""Run every run of a grid, resumably; a run that fails is recorded and the others go on."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from selcopy.errors import SelcopyError
from selcopy.experiments.spec import RunSpec
from selcopy.experiments.store import RunStore
from selcopy.report.examples import write_examples
from selcopy.train import checkpoint
from selcopy.train.loop import Trainer
from selcopy.train.metrics import summarize

Log = Callable[[str], None]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_grid(
    runs: list[RunSpec], root: Path, device: torch.device, skip_existing: bool = False, log: Log = _log
) -> int:
    """Train each run under `root`; 0 if all finished, 1 if any failed."""
    failed = []
    for i, spec in enumerate(runs, 1):
        store = RunStore(root, spec.name)
        prefix = f"[{i}/{len(runs)}] {spec.name}"
        try:
            other = store.other_settings(spec.config_dict())
        except SelcopyError as error:
            log(f"{prefix}: failed: {error}; move that folder away")
            failed.append(spec.name)
            continue
        if other and store.trained():
            log(f"{prefix}: failed: {other}; rename the experiment or move that folder away")
            failed.append(spec.name)
            continue
        if store.finished() and skip_existing:
            log(f"{prefix}: finished before, skipped")
            continue
        try:
            if other:  # a run of earlier settings that failed before it trained: keep it aside
                log(f"{prefix}: {store.folder} held other settings and no training; moved to {store.backup()}")
            elif store.finished():
                log(f"{prefix}: finished before, previous results moved to {store.backup()}")
            train_run(spec, store, device, log, prefix)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # isolate the failure, record it, go on with the next run
            log(f"{prefix}: failed: {type(e).__name__}: {e}")
            failed.append(spec.name)
            if store.finished():  # it failed before its finished folder was moved aside: keep that result
                continue
            try:
                store.write_result({"status": "failed", "run": spec.name, "error": f"{type(e).__name__}: {e}",
                                    "traceback": traceback.format_exc()})
            except OSError as again:
                log(f"{prefix}: its failure could not be recorded either: {again}")
    if failed:
        log(f"{len(failed)} of {len(runs)} runs failed: {', '.join(failed)}")
    return 1 if failed else 0


def train_run(spec: RunSpec, store: RunStore, device: torch.device, log: Log = _log, prefix: str = "") -> dict:
    """Train one run to the end, resuming from its newest good checkpoint."""
    state = checkpoint.load_newest(store.checkpoints, warn=lambda m: log(f"{prefix}: {m}"))
    if state is None and any((store.checkpoints / name).exists() for name in checkpoint.ROTATING):
        # progress that no checkpoint can resume: keep all of it aside and start over
        log(f"{prefix}: no readable checkpoint; {store.folder} moved to {store.backup()}, starting over")
    store.write_config(spec.config_dict())
    cfg = spec.train_config()
    trainer = Trainer(spec.build_model(), spec.build_split(), cfg, spec.seed, device)
    if state is not None:
        trainer.load_state_dict(state)
        log(f"{prefix}: resuming at {trainer.inputs:,} inputs")
    store.truncate_metrics(trainer.inputs)  # what was logged after the checkpoint (or without one) is redone
    recorder = Recorder(store, trainer)
    trainer.on_validation = recorder.validated
    with tqdm(total=cfg.max_inputs, initial=trainer.inputs, desc=prefix, unit="in", unit_scale=True,
              dynamic_ncols=True, leave=False, disable=None) as bar:
        trainer.progress = recorder.progress_to(bar)
        trainer.fit()
    recorder.close()
    final = store.metrics()[-1]
    result = {"status": "finished", "run": spec.name, "variables": spec.variables, "metrics": final,
              "best": trainer.best, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    store.write_result(result)
    log(f"{prefix}: validation sample error {final['validation_sample_error%']:.3f}% "
        f"({final['throughput']:,.0f} inputs/s)")
    return result


class Recorder:
    """Writes what the trainer reports: metrics log, TensorBoard, checkpoints, example images."""

    def __init__(self, store: RunStore, trainer: Trainer):
        from torch.utils.tensorboard import SummaryWriter

        self.store = store
        self.writer = SummaryWriter(str(store.tensorboard), purge_step=trainer.inputs + 1)
        self._calls = 0

    def validated(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        step = int(metrics["inputs"])
        self.store.append_metrics(metrics)  # log first: a kill before the checkpoint is truncated away
        for key, value in metrics.items():
            if key not in ("inputs", "is_best"):
                self.writer.add_scalar(key, value, step)
        self._write_examples(trainer, step)
        self.writer.flush()
        state = trainer.state_dict()
        checkpoint.save_rotating(self.store.checkpoints, state)
        if metrics.get("is_best"):
            checkpoint.save(self.store.checkpoints / "best.pt", state)

    def _write_examples(self, trainer: Trainer, step: int) -> None:
        write_examples(trainer, self.store.examples, self.writer, step)

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
