"""Executors, by name: where and how many at a time a grid's runs train."""

from __future__ import annotations

from typing import Any

from selcopy.experiments.executors.base import Executor, Outcome, RunJob
from selcopy.experiments.executors.processes import Processes
from selcopy.experiments.executors.ray import Ray
from selcopy.experiments.executors.serial import Serial
from selcopy.experiments.executors.stacked import Stacked
from selcopy.experiments.runner import GridSettings
from selcopy.experiments.spec import RunSpec
from selcopy.registry import Registry

EXECUTORS: Registry[type[Executor]] = Registry("executor", {e.name: e for e in (Serial, Processes, Stacked, Ray)})


def run_grid(runs: list[RunSpec], grid: GridSettings, executor: str = "serial", jobs: int = 1, **options: Any) -> int:
    """Train every run with the named executor (given its `options`, e.g. Ray's address or `stack_max`); 0 if all
    finished (or were skipped), 1 if any failed."""
    named = [RunJob(spec, f"[{i}/{len(runs)}] {spec.name}") for i, spec in enumerate(runs, 1)]
    outcomes = EXECUTORS[executor](grid, jobs, **options).run(named)
    failed = [outcome.name for outcome in outcomes if not outcome.ok]
    if failed:
        grid.log(f"{len(failed)} of {len(runs)} runs failed: {', '.join(failed)}")
    return 1 if failed else 0


__all__ = ["EXECUTORS", "Executor", "GridSettings", "Outcome", "RunJob", "run_grid"]
