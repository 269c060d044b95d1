"""`processes`: `jobs` runs at a time on this machine, each in a fresh process of its own, the
cores divided between them (`selcopy run --jobs N`)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from selcopy.experiments.executors.base import Executor, Outcome, RunJob
from selcopy.experiments.recorder import record_failure
from selcopy.experiments.runner import GridSettings, check_run, log_line, run_one, start_process
from selcopy.experiments.store import RunBusy, RunStore

Unit = list[RunJob]  # runs that one process trains: one, or a stack (`stacked`)
UnitTarget = Callable[[Unit, GridSettings], list[bool]]  # trains a unit in a job process: ok per run


class Processes(Executor):
    name = "processes"
    description = "N runs at a time, each in a process of its own, the cores divided between them"

    def run(self, runs: list[RunJob]) -> list[Outcome]:
        return self.run_units([[job] for job in runs], train_alone)

    def run_units(self, units: list[Unit], target: UnitTarget) -> list[Outcome]:
        """Each unit in a process of its own, `jobs` at a time: `target(unit, grid)`, a module-level
        function, trains it there. Runs to skip or refuse are settled here, without a process.
        Ctrl-C, SIGTERM or any error here stops every job (as a kill would: each resumes from its
        last checkpoint)."""
        import multiprocessing
        from multiprocessing.connection import wait

        grid = self.grid
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads or CUDA state
        pending, running, started, failed = [], {}, [], set()
        for unit in units:
            todo = []
            for job in unit:
                checked, _ = check_run(job.spec, RunStore(grid.root, job.spec.name), grid.skip_existing, grid.log,
                                       job.prefix)
                if checked is None:
                    todo.append(job)
                elif not checked:
                    failed.add(job.spec.name)
            if todo:
                pending.append(todo)
        threads = grid.threads or max(1, torch.get_num_threads() // max(1, min(self.jobs, len(pending))))
        terminated = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _interrupt)  # stopped from outside: stop the jobs first
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    unit = pending.pop(0)
                    reader, writer = context.Pipe(duplex=False)
                    process = context.Process(target=_job, name=unit[0].spec.name, args=(
                        unit, target, str(grid.root), str(grid.device), grid.skip_existing, threads,
                        grid.every_example, os.getpid(), writer))
                    started.append(process)
                    process.start()
                    writer.close()  # the job's end of the pipe: it is closed here, so a dead job reads as EOF
                    running[process.sentinel] = (process, unit, reader)
                for sentinel in wait(list(running)):
                    process, unit, reader = running.pop(sentinel)
                    oks = _received(reader)
                    process.join()
                    if oks is None:  # killed, or crashed below Python: nothing recorded it
                        oks = [False] * len(unit)
                        for job in unit:
                            self._record_death(job, process.exitcode)
                    failed.update(job.spec.name for job, ok in zip(unit, oks) if not ok)
        finally:
            signal.signal(signal.SIGTERM, terminated)
            _stop(started)
        return [Outcome(job.spec.name, job.spec.name not in failed) for unit in units for job in unit]

    def _record_death(self, job: RunJob, exitcode: int | None) -> None:
        how = f"its process {_ending(exitcode)}"
        store = RunStore(self.grid.root, job.spec.name)
        try:
            with store.lock():  # not into a folder that another process has taken since
                record_failure(store, job.spec, how, "", self.grid.log, job.prefix)
        except RunBusy:
            pass
        self.grid.log(f"{job.prefix}: failed: {how}")



def _stop(started: list[Any]) -> None:
    """Terminate every job still running, give each time to remove its temporary files, then kill."""
    for process in started:
        if process.is_alive():
            process.terminate()
    for process in started:
        if process.pid is not None:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()


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


def _job(unit: Unit, target: UnitTarget, root: str, device: str, skip_existing: bool, threads: int,
         every_example: bool, parent: int, results: Any) -> None:
    """A unit in a process of its own: sends whether each run finished, then exits 0 (all did) or 1."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops the jobs
    signal.signal(signal.SIGTERM, _terminated)  # as an exception: temporary files are removed on the way out
    _end_with_parent(parent)
    grid = GridSettings(Path(root), torch.device(device), skip_existing, threads, log_line, every_example)
    start_process(grid.device, threads)
    try:
        oks = target(unit, grid)
    except Exception as error:  # outside a run's own failure handling: say so in one line
        for job in unit:
            log_line(f"{job.prefix}: failed: {type(error).__name__}: {error}")
        oks = [False] * len(unit)
    results.send(oks)
    sys.exit(0 if all(oks) else 1)


def train_alone(unit: Unit, grid: GridSettings) -> list[bool]:
    """The unit of one run: `run_one` it, without a progress bar (runs side by side log lines)."""
    return [run_one(job.spec, grid, job.prefix, bar=False) for job in unit]


def _received(reader: Any) -> list[bool] | None:
    """What a job sent before it ended, or None if it sent nothing (it died first)."""
    try:
        return reader.recv() if reader.poll() else None
    except (EOFError, OSError):
        return None
    finally:
        reader.close()


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
