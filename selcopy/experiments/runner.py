"""One run's lifecycle, wherever it trains: check its folder, take its lock, train or resume
it, record how it ended. Executors (`selcopy.experiments.executors`) decide where and when."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from selcopy.errors import SelcopyError
from selcopy.experiments.recorder import FLUSH, THREADS, Recorder, finish, record_failure, repair_best
from selcopy.experiments.spec import RunSpec
from selcopy.experiments.store import RunBusy, RunStore
from selcopy.train import checkpoint
from selcopy.train.device import flush_denormals, flushing_denormals, keep_freed_memory
from selcopy.train.loop import Trainer

Log = Callable[[str], None]


def log_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class GridSettings:
    """What every run of one `selcopy run` shares: where runs are stored, the device, whether
    finished runs are skipped, torch threads per run (0: the process's own count), where
    progress lines go, and whether every validation's example image is kept."""

    root: Path
    device: torch.device
    skip_existing: bool = False
    threads: int = 0
    log: Log = log_line
    every_example: bool = False


def start_process(device: torch.device, threads: int = 0) -> None:
    """Set up a process that trains runs: its torch threads and, on the CPU, malloc keeping freed
    memory (no page faults for the tensors every step allocates anew; `keep_freed_memory`)."""
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cpu":
        keep_freed_memory()


def available_cores() -> int:
    """The cores this process may run on."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_run(
    spec: RunSpec, store: RunStore, skip_existing: bool, log: Log, prefix: str
) -> tuple[bool | None, str | None]:
    """What the run's folder allows, before anything is written: None train it, True skip it
    (finished before), False it failed (logged: a folder of other settings, or unreadable);
    with why the folder holds other settings, if it does (then nothing trained in it)."""
    try:
        other = store.other_settings(spec.config_dict())
    except SelcopyError as error:
        log(f"{prefix}: failed: {error}; move that folder away")
        return False, None
    if other and store.trained():
        log(f"{prefix}: failed: {other}; rename the experiment or move that folder away")
        return False, other
    if store.finished() and skip_existing and not other:
        log(f"{prefix}: finished before, skipped")
        return True, None
    return None, other


def run_one(spec: RunSpec, grid: GridSettings, prefix: str, bar: bool = True) -> bool:
    """Train (or skip) one run of a grid, holding its lock; False if it failed, which is logged
    and, where its folder holds no finished result, recorded in its result.json."""
    store = RunStore(grid.root, spec.name)
    checked, _ = check_run(spec, store, grid.skip_existing, grid.log, prefix)  # skips and refusals need no lock
    if checked is not None:
        return checked
    try:
        with store.lock():
            return _run_locked(spec, store, grid, prefix, bar)
    except RunBusy as error:
        grid.log(f"{prefix}: failed: {error}")
        return False


def _run_locked(spec: RunSpec, store: RunStore, grid: GridSettings, prefix: str, bar: bool) -> bool:
    log = grid.log
    checked, other = check_run(spec, store, grid.skip_existing, log, prefix)  # again: the folder may have changed
    if checked is not None:
        return checked
    try:
        move_aside(store, other, log, prefix)
        train_run(spec, store, grid.device, log, prefix, bar, grid.every_example)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # isolate the failure, record it, go on with the next run
        reason = f"{type(e).__name__}: {e}"
        log(f"{prefix}: failed: {reason}")
        record_failure(store, spec, reason, traceback.format_exc(), log, prefix)
        return False
    return True


def move_aside(store: RunStore, other: str | None, log: Log, prefix: str) -> None:
    """Under the run's lock, before it trains: a folder of `other` settings (that failed before they
    trained) or a finished run's results are moved aside (`<slug>.prev-N`), never overwritten."""
    if other:
        log(f"{prefix}: {store.folder} held other settings and no training; moved to {store.backup()}")
    elif store.finished():
        log(f"{prefix}: finished before, previous results moved to {store.backup()}")


@contextlib.contextmanager
def run_threads(state: dict[str, Any] | None, log: Log) -> Iterator[None]:
    """Torch's thread count and the CPU's denormal mode while a run trains. The count is the one
    its checkpoint was written with, when it resumes (a run's numbers depend on it: the order of
    float sums), whatever the resuming command asks. Subnormal floats are flushed to zero (a float32
    run on the CPU slows down up to ten-fold as its activations and gradients reach them), except
    in a run that resumes from a checkpoint written without (before selcopy flushed them), which
    goes on as it began. The process's own count and mode are restored after."""
    now, flushed = torch.get_num_threads(), flushing_denormals()
    recorded = int(state.get(THREADS) or 0) if state else 0
    if recorded and recorded != now:
        cores = available_cores()
        if recorded > cores:
            raise SelcopyError(f"it trained with {recorded} torch threads, more than the {cores} "
                               f"core{'s' * (cores != 1)} here: resume it on a machine with {recorded} cores, "
                               "or move its folder away to start over")
        log(f"resumes with the {recorded} thread{'s' * (recorded != 1)} it trained with, not {now}: "
            "its numbers depend on the count")
        torch.set_num_threads(recorded)
    flush_denormals(bool(state.get(FLUSH)) if state else True)
    try:
        yield
    finally:
        torch.set_num_threads(now)
        flush_denormals(flushed)


def train_run(spec: RunSpec, store: RunStore, device: torch.device, log: Log = log_line, prefix: str = "",
              bar: bool = True, every_example: bool = False) -> dict:
    """Train one run to the end, resuming from its newest good checkpoint. Without a progress
    `bar` (runs side by side), each validation is logged in one line instead."""
    said = lambda m: log(f"{prefix}: {m}")  # noqa: E731
    state = resume_state(spec, store, said)
    with run_threads(state, said):
        return train_from(spec, store, device, state, said, prefix, bar, every_example)


def resume_state(spec: RunSpec, store: RunStore, said: Log) -> dict[str, Any] | None:
    """The state a run (re)starts from, its newest good checkpoint (None: the start), with its folder
    made ready for it: progress that no checkpoint can resume moved aside, config.yaml written,
    best.pt made the state the checkpoint names as best, the metrics log cut back to the checkpoint."""
    state = checkpoint.load_newest(store.checkpoints, warn=said)
    if state is None and any((store.checkpoints / name).exists() for name in checkpoint.ROTATING):
        # progress that no checkpoint can resume: keep all of it aside and start over
        said(f"no readable checkpoint; {store.folder} moved to {store.backup()}, starting over")
    store.write_config(spec.config_dict())
    ready_to_resume(store, state, said)
    return state


def ready_to_resume(store: RunStore, state: dict[str, Any] | None, said: Log) -> None:
    """Make a run's folder ready to go on from `state` (None: the start): best.pt made the state
    the checkpoint names as best, the metrics log cut back to the checkpoint."""
    if state is not None:
        repair_best(store, state, said)
    store.truncate_metrics(int(state["inputs"]) if state else 0, warn=said)  # logged after it: redone


def train_from(spec: RunSpec, store: RunStore, device: torch.device, state: dict[str, Any] | None, said: Log,
               prefix: str, bar: bool, every_example: bool) -> dict:
    """Train one run to the end from `state` (a checkpoint of it; None: from the start), its folder
    ready for it (`resume_state`, `ready_to_resume`) and its thread count set (`run_threads`)."""
    cfg = spec.train_config()
    trainer = Trainer(spec.build_model(), spec.build_split(), cfg, spec.seed, device)
    if state is not None:
        trainer.load_state_dict(state)
        said(f"resuming at {trainer.inputs:,} inputs")
    elif not bar:
        said("started")
    recorder = Recorder(store, trainer.inputs, None if bar else said, every_example)
    trainer.on_validation = recorder.validated
    if bar:
        with tqdm(total=cfg.max_inputs, initial=trainer.inputs, desc=prefix, unit="in", unit_scale=True,
                  dynamic_ncols=True, leave=False, disable=None) as progress:
            trainer.progress = recorder.progress_to(progress)
            trainer.fit()
    else:  # no tqdm at all: its lock would be one more thing to leave behind when the job is stopped
        trainer.fit()
    recorder.close()
    result = finish(spec, store, trainer, device)
    final = result["metrics"]
    said(f"validation sample error {final['validation_sample_error%']:.3f}% ({final['throughput']:,.0f} inputs/s)")
    return result
