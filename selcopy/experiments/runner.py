"""Run every run of a grid, resumably; a run that fails is recorded and the others go on."""

from __future__ import annotations

import contextlib
import os
import signal
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
from selcopy.experiments.store import RunBusy, RunStore
from selcopy.report.examples import write_examples
from selcopy.train import checkpoint
from selcopy.train.loop import Trainer
from selcopy.train.metrics import summarize

Log = Callable[[str], None]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_grid(
    runs: list[RunSpec], root: Path, device: torch.device, skip_existing: bool = False, log: Log = _log,
    jobs: int = 1, threads: int = 0,
) -> int:
    """Train each run under `root`, `jobs` of them at a time (each in a process of its own with
    `threads` torch threads, 0: the cores divided between the jobs); 0 if all finished, 1 if any
    failed."""
    named = [(f"[{i}/{len(runs)}] {spec.name}", spec) for i, spec in enumerate(runs, 1)]
    if jobs > 1:
        failed = side_by_side(named, root, device, skip_existing, jobs, threads, log)
    else:
        failed = [spec.name for prefix, spec in named if not run_one(spec, root, device, skip_existing, log, prefix)]
    if failed:
        log(f"{len(failed)} of {len(runs)} runs failed: {', '.join(failed)}")
    return 1 if failed else 0


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


def run_one(spec: RunSpec, root: Path, device: torch.device, skip_existing: bool, log: Log, prefix: str,
            bar: bool = True) -> bool:
    """Train (or skip) one run of a grid, holding its lock; False if it failed, which is logged
    and, where its folder holds no finished result, recorded in its result.json."""
    store = RunStore(root, spec.name)
    checked, _ = check_run(spec, store, skip_existing, log, prefix)  # skips and refusals need no lock
    if checked is not None:
        return checked
    try:
        with store.lock():
            return _run_locked(spec, store, device, skip_existing, log, prefix, bar)
    except RunBusy as error:
        log(f"{prefix}: failed: {error}")
        return False


def _run_locked(spec: RunSpec, store: RunStore, device: torch.device, skip_existing: bool, log: Log, prefix: str,
                bar: bool) -> bool:
    checked, other = check_run(spec, store, skip_existing, log, prefix)  # again: the folder may have changed
    if checked is not None:
        return checked
    try:
        if other:  # earlier settings that failed before they trained
            log(f"{prefix}: {store.folder} held other settings and no training; moved to {store.backup()}")
        elif store.finished():
            log(f"{prefix}: finished before, previous results moved to {store.backup()}")
        train_run(spec, store, device, log, prefix, bar)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # isolate the failure, record it, go on with the next run
        log(f"{prefix}: failed: {type(e).__name__}: {e}")
        record_failure(store, spec, f"{type(e).__name__}: {e}", traceback.format_exc(), log, prefix)
        return False
    return True


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


def side_by_side(named: list[tuple[str, RunSpec]], root: Path, device: torch.device, skip_existing: bool,
                 jobs: int, threads: int, log: Log) -> list[str]:
    """Run `run_one` for each (prefix, run), `jobs` at a time, each in a fresh process; the names
    of the runs that failed, in grid order. Runs to skip or refuse are settled here, without a
    process. Ctrl-C, SIGTERM or any error here stops every job (as a kill would: each resumes)."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads or CUDA state
    pending, running, started, failed = [], {}, [], set()
    for prefix, spec in named:
        checked, _ = check_run(spec, RunStore(root, spec.name), skip_existing, log, prefix)
        if checked is None:
            pending.append((prefix, spec))
        elif not checked:
            failed.add(spec.name)
    threads = threads or max(1, torch.get_num_threads() // max(1, min(jobs, len(pending))))  # cores divided
    terminated = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)  # stopped from outside: stop the jobs first
    try:
        while pending or running:
            while pending and len(running) < jobs:
                prefix, spec = pending.pop(0)
                process = context.Process(target=_job, name=spec.name, args=(
                    spec, str(root), str(device), skip_existing, threads, prefix, os.getpid()))
                started.append(process)
                process.start()
                running[process.sentinel] = (process, prefix, spec)
            for sentinel in wait(list(running)):
                process, prefix, spec = running.pop(sentinel)
                process.join()
                if process.exitcode != 0:
                    failed.add(spec.name)
                if process.exitcode not in (0, 1):  # killed, or crashed below Python: nothing recorded it
                    how = f"its process {_ending(process.exitcode)}"
                    store = RunStore(root, spec.name)
                    try:
                        with store.lock():  # not into a folder that another process has taken since
                            record_failure(store, spec, how, "", log, prefix)
                    except RunBusy:
                        pass
                    log(f"{prefix}: failed: {how}")
    finally:
        signal.signal(signal.SIGTERM, terminated)
        for process in started:
            if process.is_alive():
                process.terminate()
        for process in started:
            if process.pid is not None:
                process.join(timeout=60)  # time to remove its temporary files
                if process.is_alive():
                    process.kill()
                    process.join()
    return [spec.name for _, spec in named if spec.name in failed]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _ending(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-exitcode).name}"
    if exitcode is not None and exitcode > 128:  # a job ends SIGTERM as exit status 128 + 15
        with contextlib.suppress(ValueError):
            return f"was stopped by {signal.Signals(exitcode - 128).name}"
    return f"ended with exit status {exitcode}"


def _end_with_parent(parent: int) -> None:
    """On Linux, have the kernel end this process (as SIGTERM) when the one that started it ends,
    even killed; and end now if it already has. No job may go on writing its run folder unseen."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _job(spec: RunSpec, root: str, device: str, skip_existing: bool, threads: int, prefix: str, parent: int) -> None:
    """One run in a process of its own (`side_by_side`): exit status 0 done, 1 failed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops the jobs
    signal.signal(signal.SIGTERM, _terminated)  # as an exception: temporary files are removed on the way out
    _end_with_parent(parent)
    if threads:
        torch.set_num_threads(threads)
    try:
        ok = run_one(spec, Path(root), torch.device(device), skip_existing, _log, prefix, bar=False)
    except Exception as error:  # outside a run's own failure handling: say so in one line
        _log(f"{prefix}: failed: {type(error).__name__}: {error}")
        ok = False
    sys.exit(0 if ok else 1)


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def train_run(spec: RunSpec, store: RunStore, device: torch.device, log: Log = _log, prefix: str = "",
              bar: bool = True) -> dict:
    """Train one run to the end, resuming from its newest good checkpoint. Without a progress
    `bar` (runs side by side), each validation is logged in one line instead."""
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
    elif not bar:
        log(f"{prefix}: started")
    store.truncate_metrics(trainer.inputs, warn=lambda m: log(f"{prefix}: {m}"))  # logged after the checkpoint: redone
    recorder = Recorder(store, trainer, None if bar else lambda m: log(f"{prefix}: {m}"))
    trainer.on_validation = recorder.validated
    if bar:
        with tqdm(total=cfg.max_inputs, initial=trainer.inputs, desc=prefix, unit="in", unit_scale=True,
                  dynamic_ncols=True, leave=False, disable=None) as progress:
            trainer.progress = recorder.progress_to(progress)
            trainer.fit()
    else:  # no tqdm at all: its lock would be one more thing to leave behind when the job is stopped
        trainer.fit()
    recorder.close()
    final = store.metrics()[-1]
    result = {"status": "finished", "run": spec.name, "variables": spec.variables, "metrics": final,
              "best": trainer.best, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "device": str(device), "threads": torch.get_num_threads()}  # the numbers depend on both
    store.write_result(result)
    log(f"{prefix}: validation sample error {final['validation_sample_error%']:.3f}% "
        f"({final['throughput']:,.0f} inputs/s)")
    return result


class Recorder:
    """Writes what the trainer reports: metrics log, TensorBoard, checkpoints, example images."""

    def __init__(self, store: RunStore, trainer: Trainer, log: Log | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.store = store
        self.writer = SummaryWriter(str(store.tensorboard), purge_step=trainer.inputs + 1)
        self.log = log  # one line per validation, where no progress bar shows how the run goes
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
