"""The worker's side of the `ray` executor (`ray.py`): the driver's mailbox (`Post`), the class of
a run's actor, and what the actor runs on its node: a run trained in memory from the start the
driver answers, every validation sent back to be stored before it trains on."""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

import torch

import selcopy
from selcopy.errors import SelcopyError
from selcopy.experiments.recorder import Validation
from selcopy.experiments.runner import run_threads, start_process
from selcopy.experiments.spec import RunSpec
from selcopy.train import checkpoint
from selcopy.train.device import flushing_denormals, pick_device, processor
from selcopy.train.loop import Trainer


def versions() -> dict[str, str]:
    """What a worker must have as the driver has it: the numbers of a run depend on both."""
    return {"selcopy": selcopy.__version__, "torch": torch.__version__}


class WorkerMismatch(SelcopyError):
    """A worker's node has another selcopy or torch than the driver."""


class Post:
    """The driver's mailbox, an actor on the driver's node: a worker's request waits here until the
    driver has collected it and answered."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.waiting: dict[int, asyncio.Future] = {}
        self.numbers = itertools.count()

    async def send(self, run: str, attempt: int, kind: str, payload: Any) -> Any:
        number = next(self.numbers)
        self.waiting[number] = asyncio.get_running_loop().create_future()
        self.inbox.put_nowait((number, run, attempt, kind, payload))
        try:
            return await self.waiting[number]
        finally:
            self.waiting.pop(number, None)

    async def collect(self, timeout: float) -> list[tuple]:
        """The requests waiting, as soon as there is one, or none after `timeout` seconds."""
        try:
            requests = [await asyncio.wait_for(self.inbox.get(), timeout)]
        except asyncio.TimeoutError:
            return []
        while not self.inbox.empty():
            requests.append(self.inbox.get_nowait())
        return requests

    async def answer(self, number: int, value: Any) -> None:
        future = self.waiting.get(number)
        if future is not None and not future.done():
            future.set_result(value)


def worker_class() -> type:
    """The class of a run's actor, sent by value: it names nothing of selcopy, so that a node that
    cannot import selcopy fails the run in one line that says so."""

    class SelcopyRun:
        def train(self, module: str, wanted: dict[str, str], *args: Any) -> dict[str, Any]:
            import importlib
            import socket

            try:
                worker = importlib.import_module(module)
            except ImportError as error:
                needs = " and ".join(f"{name} {version}" for name, version in wanted.items())
                raise ImportError(f"node {socket.gethostname()} cannot import selcopy ({error}): install {needs} "
                                  "there, as on the driver") from None
            return worker.train_on_worker(wanted, *args)

        def train_stack(self, module: str, wanted: dict[str, str], *args: Any) -> dict[str, Any]:
            import importlib

            return importlib.import_module(module).train_stack_on_worker(wanted, *args)

    return SelcopyRun


class Sender:
    """A worker's requests to the driver, for one attempt of one run or stack; each waits for its answer."""

    def __init__(self, post: Any, run: str):
        self.post, self.run, self.attempt = post, run, 0

    def __call__(self, kind: str, payload: Any) -> Any:
        import ray

        answer = ray.get(self.post.send.remote(self.run, self.attempt, kind, payload))
        if answer is None:
            raise RuntimeError("the driver no longer takes this attempt's reports")
        return answer


def here_checked(wanted: dict[str, str]) -> dict[str, Any]:
    """Where this worker runs (host, node, pid); WorkerMismatch unless it has the driver's versions."""
    import ray

    where = {"host": ray.util.get_node_ip_address(), "node": ray.get_runtime_context().get_node_id(),
             "pid": os.getpid()}
    have = versions()
    if have != wanted:
        differ = ", ".join(f"{name} {have[name]}, not {wanted[name]}" for name in wanted if have[name] != wanted[name])
        raise WorkerMismatch(f"node {where['host']} has {differ} as on the driver: install the driver's versions there")
    return where


def train_on_worker(wanted: dict[str, str], post: Any, run: str, spec: dict[str, Any], device_name: str,
                    threads: int) -> dict[str, Any]:
    """Train one run on this worker, from the start the driver answers, reporting every validation."""
    where = here_checked(wanted)
    send = Sender(post, run)
    attempt, data = send("resume", where)
    send.attempt = attempt
    state = checkpoint.decode(data, f"{run}'s checkpoint") if data is not None else None
    spec = RunSpec(**spec)
    device = pick_device(device_name)
    start_process(device, threads)
    with run_threads(state, lambda message: send("log", message)):
        trainer = Trainer(spec.build_model(), spec.build_split(), spec.train_config(), spec.seed, device)
        if state is not None:
            trainer.load_state_dict(state)
        trainer.on_validation = lambda at, metrics: send("validation", Validation.of(at, metrics))
        trainer.fit()
        return ended(trainer, device)


def ended(trainer: Trainer, device: torch.device) -> dict[str, Any]:
    """What the driver writes a finished run's result.json from."""
    return {"best": trainer.best, "device": str(device), "threads": torch.get_num_threads(),
            "precision": trainer.config.precision, "flushed": flushing_denormals() and device.type == "cpu",
            "processor": processor(device)}


def train_stack_on_worker(wanted: dict[str, str], post: Any, key: str, device_name: str,
                          threads: int) -> dict[str, dict[str, Any]]:
    """Train the members of a stack the driver answers (its runs at one step: a stage) as one stacked
    model on this worker, each from its own state, reporting each member's validations and failure;
    what each member that finished ended with, by run name. Members that this device cannot stack
    (`stack_refusal`) train one after the other."""
    from selcopy.experiments.executors.stacked import stack_trainers
    from selcopy.train.stacked import StackedTrainer, stack_refusal

    where = here_checked(wanted)
    send = Sender(post, key)
    send.attempt, stage = send("resume", where)
    device = pick_device(device_name)
    start_process(device, threads)
    stage = [(name, RunSpec(**spec), checkpoint.decode(data, f"{name}'s checkpoint") if data is not None else None)
             for name, spec, data in stage]
    with run_threads(stage[0][2], lambda message: send("log", message)):
        first = stage[0][1]
        reason = len(stage) > 1 and stack_refusal(first.build_model(), first.task_shape().max_length,
                                                  first.train_config(), device)
        trainers, rngs = stack_trainers([(spec, state) for _, spec, state in stage], device)
        names = {id(trainer): name for trainer, (name, _, _) in zip(trainers, stage)}
        for trainer in trainers:
            trainer.on_validation = lambda at, metrics: send("validation", (names[id(at)], Validation.of(at, metrics)))
        if len(trainers) == 1 or reason:
            if len(trainers) > 1:
                send("log", f"its {len(trainers)} runs train one after the other on {device}, not stacked: {reason}")
            for trainer in trainers:
                trainer.fit()
            return {names[id(trainer)]: ended(trainer, device) for trainer in trainers}
        failed = lambda trainer, why: send("failed", (names[id(trainer)], why))  # noqa: E731
        group = StackedTrainer(trainers, rngs, on_failure=failed)
        group.fit()
        return {names[id(trainer)]: ended(trainer, device) for trainer in group.members}
