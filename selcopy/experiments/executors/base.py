"""The executor interface: where a grid's runs train.

An executor receives the runs of a grid (each with the prefix its log lines carry) and returns
one `Outcome` per run, in the same order. A run's own lifecycle (its folder, lock, training,
result) is `selcopy.experiments.runner.run_one`, wherever it is called; a new executor (a
cluster, a stacked group) is one subclass in one file, registered in `executors/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from selcopy.errors import SelcopyError
from selcopy.experiments.runner import GridSettings
from selcopy.experiments.spec import RunSpec


@dataclass(frozen=True)
class RunJob:
    """One run to train, and the prefix of its log lines (`[2/6] article/x/trial-1`)."""

    spec: RunSpec
    prefix: str


@dataclass(frozen=True)
class Outcome:
    """How a run ended: `ok` finished (or was skipped as finished before); otherwise it failed,
    and its failure was logged and, where its folder allowed, recorded in its result.json."""

    name: str
    ok: bool


class Executor(ABC):
    """Trains the runs it receives, up to `jobs` at a time where it can run several."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    local: ClassVar[bool] = True  # runs train on this machine, on the device `--device` picks here

    def __init__(self, grid: GridSettings, jobs: int = 1):
        self.grid = grid
        self.jobs = jobs

    @classmethod
    def options(cls, args: Any) -> dict[str, Any]:
        """What the executor takes from `selcopy run`'s flags (its constructor's keywords beyond the
        grid and `jobs`); SelcopyError, one line, if it cannot run as asked."""
        for flag in ("address", "gpus_per_run"):  # a cluster's flags: not silently ignored here
            if getattr(args, flag, None):
                raise SelcopyError(f"--{flag.replace('_', '-')}: only with --executor ray")
        return {}

    @abstractmethod
    def run(self, runs: list[RunJob]) -> list[Outcome]:
        """Train (or skip) every run; one outcome per run, in order. Ctrl-C (KeyboardInterrupt)
        stops every run it started, each resumable from its last checkpoint, and propagates."""
