"""`ray`: every run of a grid a Ray actor on whatever node of a Ray cluster has room, the run
store staying on this machine (`selcopy run FILE --executor ray [--address auto|HOST:PORT]`).

    this command (the driver)                     the run's actor, any node
    settles skips and refusals, locks each run
    sends the run: threads CPUs, a GPU share  ──► asks for its start: "resume"
    reads the newest good checkpoint the store ◄─
    holds, cuts the log back to it, answers ───► trains from it, in memory (no files there)
                                               ◄─ at each validation: its metrics line, example
    writes them as a local run does, answers ──►  image and checkpoint (bytes); waits for the answer
    writes result.json, unlocks the run       ◄─ returns: best validation, device, threads

Only this process writes the store, so no node needs a shared file system and the run's lock
(`RunStore.lock`, held here while the run is out) holds across machines. Workers reach this
process through `Post` (ray_worker.py), an actor on this node. A worker waits for its validation to be stored
before it trains on, so a worker or node that dies costs at most the work since the run's last
checkpoint: Ray restarts the actor and calls it again (`RETRIES`) on any node with room, it asks
for its start again and resumes from what the store holds, and ends with the numbers of an
uninterrupted run. A run is an actor, not a task, because a task that waits for an answer
(`ray.get`) lends its CPUs back to Ray meanwhile, which starts another run on them; an actor
holds its CPUs and GPU share until the driver ends it.

With `--stack`, the runs that differ only in their trial go out as stacks (`executors/stacked.py`:
`plan`, at most `--stack-max` runs each): a stack is one actor, asking for what one run asks for
(`--threads` CPUs, `--gpus-per-run` of a GPU), that trains its members as one stacked model.
The driver holds every member's lock and answers the actor's start with the members that resume
from one step (`stages`) and their checkpoints; each member's validations come back and are
stored as a run's, a member whose loss diverges fails alone, and a worker that dies resumes the
stack from what the store holds, as a local stack does. Members of a later step go out next, to
the same actor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import socket
import threading
import traceback
from typing import Any

from selcopy.errors import SelcopyError
from selcopy.experiments.executors.base import Executor, Outcome, RunJob
from selcopy.experiments.executors.processes import Unit
from selcopy.experiments.executors.ray_stacks import RETRIES, WORKER_MODULE, Out, StackDriving, StackOut
from selcopy.experiments.executors.ray_worker import Post, WorkerMismatch, versions, worker_class
from selcopy.experiments.executors.stacked import plan
from selcopy.experiments.recorder import THREADS, Recorder, Validation, record_failure, write_finished
from selcopy.experiments.runner import GridSettings, check_run, move_aside, resume_state
from selcopy.experiments.store import RunBusy, RunStore
from selcopy.train import checkpoint

POLL_S = 0.2  # the longest the driver waits for the workers' requests before it looks at ended runs


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SelcopyError("--executor ray: Ray is not installed; pip install 'selcopy[ray]'") from None
    return ray


class Ray(Executor):
    name = "ray"
    description = "every run a Ray actor on whatever node of a Ray cluster has room; the store stays here"
    local = False

    def __init__(self, grid: GridSettings, jobs: int = 1, address: str | None = None, gpus_per_run: float = 0.0,
                 device: str = "auto", stack_max: int = 0):
        super().__init__(grid, jobs)
        self.address, self.gpus, self.device = address, gpus_per_run, device
        self.stack_max = stack_max  # 0: every run alone; else runs of one shape go out as stacks of at most this
        self.threads = grid.threads or 1
        self.largest = float("inf")  # CPUs of the cluster's largest node, once connected

    @classmethod
    def options(cls, args: Any) -> dict[str, Any]:
        import_ray()
        if args.gpus_per_run < 0:
            raise SelcopyError(f"--gpus-per-run {args.gpus_per_run:g}: a share of a GPU is 0 or more, e.g. 0.25")
        if args.jobs > 1:
            raise SelcopyError("--jobs: not with --executor ray, which runs as many runs as the cluster has room for")
        stack_max = args.stack_max if getattr(args, "stack", False) else 0
        return {"address": args.address, "gpus_per_run": args.gpus_per_run, "device": args.device,
                "stack_max": stack_max}

    def run(self, runs: list[RunJob]) -> list[Outcome]:
        ray = import_ray()
        failed, todo = set(), []
        for job in runs:  # skips and refusals are settled here, before anything is sent
            checked, _ = check_run(job.spec, RunStore(self.grid.root, job.spec.name), self.grid.skip_existing,
                                   self.grid.log, job.prefix)
            if checked is None:
                todo.append(job)
            elif not checked:
                failed.add(job.spec.name)
        if todo:
            joined = ray.is_initialized()  # a caller's connection is left as it was
            if not joined:
                self._connect(ray)
            try:
                self._survey(ray)
                failed |= Driver(ray, self).run(self._units(todo))
            finally:
                if not joined:
                    ray.shutdown()
        return [Outcome(job.spec.name, job.spec.name not in failed) for job in runs]

    def _connect(self, ray: Any) -> None:
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        where = f"--address {self.address}" if self.address else "--executor ray"
        try:
            if self.address is None:  # a Ray of its own on this machine, for this command
                # not one `ray start` runs here; its workers at the priority of `--jobs`' processes, not
                # Ray's default niceness of 15, under which any other work on the machine starves them
                ray.init(address="local", include_dashboard=False, _system_config={"worker_niceness": 0}, **quiet)
            else:
                _answers(self.address)
                ray.init(address=self.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise SelcopyError(f"{where}: cannot start or reach Ray: {str(error).splitlines()[0]}") from None
        except OSError as error:
            raise SelcopyError(f"{where}: nothing answers there ({error.strerror or error}); is the cluster's "
                               "head started (`ray start --head`)?") from None

    def _units(self, todo: list[RunJob]) -> list[Unit]:
        """What goes out: each run alone, or with `--stack`, the stacks `plan` makes of them (checked
        on this machine's device of the kind the workers use: a GPU where each asks for a share)."""
        if not self.stack_max:
            return [[job] for job in todo]
        import torch

        kind = "cuda" if self.gpus and torch.cuda.is_available() else "cpu"
        return plan(todo, torch.device(kind), self.stack_max, 1, self.grid.log)

    def _survey(self, ray: Any) -> None:
        """Say what the cluster has; SelcopyError if no node can take a run as asked."""
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        cpus, gpus = (max((node.get(key, 0) for node in nodes), default=0) for key in ("CPU", "GPU"))
        self.largest = cpus  # the most CPUs a run can ask for
        asked = f"{self.threads} CPU{'s' * (self.threads != 1)}" + f" and {self.gpus:g} GPU" * bool(self.gpus)
        each = "each run or stack" if self.stack_max else "each run"
        if cpus < self.threads or gpus < self.gpus:
            flags = f"--threads {self.threads}" + f" --gpus-per-run {self.gpus:g}" * bool(self.gpus)
            raise SelcopyError(f"{flags}: {each} asks Ray for {asked}; the largest node of the cluster has "
                               f"{cpus:g} CPUs and {gpus:g} GPUs")
        total = ray.cluster_resources()
        self.grid.log(f"Ray: {len(nodes)} node{'s' * (len(nodes) != 1)}, {total.get('CPU', 0):g} CPUs, "
                      f"{total.get('GPU', 0):g} GPUs; {each} asks for {asked}")


class Driver(StackDriving):
    """One `Ray.run`: locks and submits the runs, answers their workers, records how each ended."""

    def __init__(self, ray: Any, executor: Ray):
        self.ray, self.executor, self.grid = ray, executor, executor.grid
        self.out: dict[str, Out] = {}
        self.failed: set[str] = set()

    def run(self, units: list[Unit]) -> set[str]:
        ray = self.ray
        here = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)
        self.post = ray.remote(Post).options(num_cpus=0, scheduling_strategy=here).remote()
        self.worker = ray.remote(worker_class())
        terminated = None
        if threading.current_thread() is threading.main_thread():  # stopped from outside: end the runs first
            terminated = signal.signal(signal.SIGTERM, _interrupt)
        try:
            for unit in units:
                if len(unit) == 1:
                    self._submit(unit[0])
                else:
                    self._submit_stack(unit)
            while self.out:
                for request in ray.get(self.post.collect.remote(POLL_S)):
                    self._answer(*request)
                ended, _ = ray.wait([out.ref for out in self.out.values()], num_returns=len(self.out), timeout=0)
                for out in [out for out in self.out.values() if out.ref in ended]:
                    self._ended(out)
        finally:
            if terminated is not None:
                signal.signal(signal.SIGTERM, terminated)
            for out in list(self.out.values()):  # Ctrl-C or an error here: every run stops, the store resumes
                self._release(out)
            with contextlib.suppress(Exception):
                ray.kill(self.post)
        return self.failed

    def _submit(self, job: RunJob) -> None:
        """Lock the run, check it again under the lock, and send it to the cluster."""
        spec, store, log = job.spec, RunStore(self.grid.root, job.spec.name), self.grid.log
        out = Out(job, store, contextlib.ExitStack())
        try:
            out.lock.enter_context(store.lock())
        except RunBusy as error:
            log(f"{job.prefix}: failed: {error}")
            self.failed.add(spec.name)
            return
        self.out[spec.name] = out  # from here on, an interrupt releases it
        checked, other = check_run(spec, store, self.grid.skip_existing, log, job.prefix)  # it may have changed
        if checked is not None:
            self.failed.update([spec.name] * (not checked))
            self._release(out)
            return
        try:
            move_aside(store, other, log, job.prefix)
            state = checkpoint.load_newest(store.checkpoints, warn=lambda message: None)  # said when it resumes
        except Exception as error:
            self._fail(out, f"{type(error).__name__}: {error}", traceback.format_exc())
            return
        threads = int(state.get(THREADS) or 0) if state else 0  # a run resumes with the count it trained with
        threads = threads or self.executor.threads
        if threads > self.executor.largest:  # Ray would wait for such a node for ever
            self._fail(out, f"it trained with {threads} torch threads, and no node of the cluster has {threads} CPUs "
                            f"(the largest: {self.executor.largest:g}): resume it where one has, or move its folder "
                            "away to start over", "")
            return
        out.actor = self.worker.options(num_cpus=threads, num_gpus=self.executor.gpus, max_restarts=RETRIES,
                                        max_task_retries=RETRIES).remote()
        out.ref = out.actor.train.remote(WORKER_MODULE, versions(), self.post, spec.name, dataclasses.asdict(spec),
                                         self.executor.device, threads)

    def _answer(self, number: int, run: str, attempt: int, kind: str, payload: Any) -> None:
        """A worker's request: its start, a validation to store, a line to log."""
        out = self.out.get(run)
        if out is None or kind != "resume" and attempt != out.attempt:  # ended, or an attempt Ray gave up on
            self.post.answer.remote(number, None)
            return
        try:
            if isinstance(out, StackOut):
                answer = self._stack_request(out, kind, payload)
            elif kind == "resume":
                answer = self._resume(out, payload)
            elif kind == "validation":
                answer = self._validated(out, payload)
            else:
                out.say(self.grid.log, payload)
                answer = True
        except Exception as error:  # the store refused (a full disk, a folder moved away): the run fails
            self.post.answer.remote(number, None)
            self._fail(out, f"{type(error).__name__}: {error}", traceback.format_exc())
            return
        self.post.answer.remote(number, answer)

    def _resume(self, out: Out, where: dict[str, Any]) -> tuple[int, bytes | None]:
        """An attempt starts: the newest checkpoint the store holds (None: from the start), as bytes."""
        said = lambda message: out.say(self.grid.log, message)  # noqa: E731
        out.attempt += 1
        out.where = where
        if out.recorder is not None:
            out.recorder.close()
        state = resume_state(out.job.spec, out.store, said)
        inputs = int(state["inputs"]) if state else 0
        out.recorder = Recorder(out.store, inputs, said, self.grid.every_example)
        again = f", attempt {out.attempt} of {RETRIES + 1}" if out.attempt > 1 else ""
        said(f"{f'resuming at {inputs:,} inputs' if state else 'started'} on {where['host']}{again}")
        return out.attempt, checkpoint.encode(state) if state else None

    def _validated(self, out: Out, validation: Validation) -> bool:
        """Store a validation as a local run does; the worker trains on once this returns."""
        out.recorder.write(validation)
        return True

    def _ended(self, out: Out) -> None:
        if isinstance(out, StackOut):
            self._stage_ended(out)
            return
        ray, spec = self.ray, out.job.spec
        try:
            ended = ray.get(out.ref)
        except ray.exceptions.RayTaskError as error:  # raised by the run's own code on the worker
            cause = error.cause
            known = isinstance(cause, (WorkerMismatch, ImportError))
            self._fail(out, str(cause) if known else f"{type(cause).__name__}: {cause}", str(error))
            return
        except ray.exceptions.RayError as error:  # its worker or node died once more than Ray restarts it
            reason = f"its Ray worker died {RETRIES + 1} times; the last time: {str(error).splitlines()[0]}"
            self._fail(out, reason, str(error))
            return
        try:
            result = write_finished(spec, out.store, ended["best"], ended["device"], ended["threads"],
                                    ended["precision"], ended["flushed"], ended["processor"])
        except Exception as error:
            self._fail(out, f"{type(error).__name__}: {error}", traceback.format_exc())
            return
        final = result["metrics"]
        out.say(self.grid.log, f"validation sample error {final['validation_sample_error%']:.3f}% "
                               f"({final['throughput']:,.0f} inputs/s)")
        self._release(out)

    def _fail(self, out: Out, reason: str, trace: str) -> None:
        if isinstance(out, StackOut):  # every member not yet settled
            for member in out.unsettled():
                self._fail_member(out, member, reason, trace)
            self._release(out)
            return
        where = f" (on {out.where['host']})" if out.where else ""
        out.say(self.grid.log, f"failed: {reason}{where}")
        record_failure(out.store, out.job.spec, reason + where, trace, self.grid.log, out.job.prefix)
        self.failed.add(out.job.spec.name)
        self._release(out)

    def _release(self, out: Out) -> None:
        """End the run's actor (its process; its CPUs go to the next run), close its files, unlock it."""
        if out.actor is not None:
            with contextlib.suppress(Exception):
                self.ray.cancel(out.ref)  # first, or Ray reports the kill below as a failure it will retry
                self.ray.kill(out.actor)
        if out.recorder is not None:
            out.recorder.close()
        if isinstance(out, StackOut):
            for recorder in out.recorders.values():
                recorder.close()
        out.lock.close()
        self.out.pop(out.job.spec.name, None)


def _answers(address: str) -> None:
    """OSError unless something takes connections at a HOST:PORT address (Ray would try for minutes)."""
    host, _, port = address.rpartition(":")
    if host and port.isdigit() and "://" not in address:
        socket.create_connection((host, int(port)), timeout=10).close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
