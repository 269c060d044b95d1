"""`processes`: `jobs` runs at a time on this machine, each in a fresh process of its own, the
cores divided between them (`selcopy run --jobs N`)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch

from selcopy.experiments.executors.base import Executor, Outcome, RunJob
from selcopy.experiments.recorder import record_failure
from selcopy.experiments.runner import GridSettings, check_run, log_line, run_one, start_process
from selcopy.experiments.store import RunBusy, RunStore


class Processes(Executor):
    name = "processes"
    description = "N runs at a time, each in a process of its own, the cores divided between them"

    def run(self, runs: list[RunJob]) -> list[Outcome]:
        """Runs to skip or refuse are settled here, without a process. Ctrl-C, SIGTERM or any error
        here stops every job (as a kill would: each resumes from its last checkpoint)."""
        import multiprocessing
        from multiprocessing.connection import wait

        grid = self.grid
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads or CUDA state
        pending, running, started, failed = [], {}, [], set()
        for job in runs:
            checked, _ = check_run(job.spec, RunStore(grid.root, job.spec.name), grid.skip_existing, grid.log,
                                   job.prefix)
            if checked is None:
                pending.append(job)
            elif not checked:
                failed.add(job.spec.name)
        threads = grid.threads or max(1, torch.get_num_threads() // max(1, min(self.jobs, len(pending))))
        terminated = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _interrupt)  # stopped from outside: stop the jobs first
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    job = pending.pop(0)
                    process = context.Process(target=_job, name=job.spec.name, args=(
                        job, str(grid.root), str(grid.device), grid.skip_existing, threads, grid.every_example,
                        os.getpid()))
                    started.append(process)
                    process.start()
                    running[process.sentinel] = (process, job)
                for sentinel in wait(list(running)):
                    process, job = running.pop(sentinel)
                    process.join()
                    if process.exitcode != 0:
                        failed.add(job.spec.name)
                    if process.exitcode not in (0, 1):  # killed, or crashed below Python: nothing recorded it
                        self._record_death(job, process.exitcode)
        finally:
            signal.signal(signal.SIGTERM, terminated)
            _stop(started)
        return [Outcome(job.spec.name, job.spec.name not in failed) for job in runs]

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


def _job(job: RunJob, root: str, device: str, skip_existing: bool, threads: int, every_example: bool,
         parent: int) -> None:
    """One run in a process of its own: exit status 0 done, 1 failed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops the jobs
    signal.signal(signal.SIGTERM, _terminated)  # as an exception: temporary files are removed on the way out
    _end_with_parent(parent)
    grid = GridSettings(Path(root), torch.device(device), skip_existing, threads, log_line, every_example)
    start_process(grid.device, threads)
    try:
        ok = run_one(job.spec, grid, job.prefix, bar=False)
    except Exception as error:  # outside a run's own failure handling: say so in one line
        log_line(f"{job.prefix}: failed: {type(error).__name__}: {error}")
        ok = False
    sys.exit(0 if ok else 1)


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
