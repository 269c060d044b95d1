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
from selcopy.train.device import pick_device
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

    return SelcopyRun


def train_on_worker(wanted: dict[str, str], post: Any, run: str, spec: dict[str, Any], device_name: str,
                    threads: int) -> dict[str, Any]:
    """Train one run on this worker, from the start the driver answers, reporting every validation."""
    import ray

    where = {"host": ray.util.get_node_ip_address(), "node": ray.get_runtime_context().get_node_id(),
             "pid": os.getpid()}
    have = versions()
    if have != wanted:
        differ = ", ".join(f"{name} {have[name]}, not {wanted[name]}" for name in wanted if have[name] != wanted[name])
        raise WorkerMismatch(f"node {where['host']} has {differ} as on the driver: install the driver's versions there")
    attempt = 0

    def send(kind: str, payload: Any) -> Any:
        answer = ray.get(post.send.remote(run, attempt, kind, payload))
        if answer is None:
            raise RuntimeError("the driver no longer takes this attempt's reports")
        return answer

    attempt, data = send("resume", where)
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
        return {"best": trainer.best, "device": str(device), "threads": torch.get_num_threads(),
                "precision": trainer.config.precision}
