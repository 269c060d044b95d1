"""`serial`: one run after another, in this process."""

from __future__ import annotations

from selcopy.experiments.executors.base import Executor, Outcome, RunJob
from selcopy.experiments.runner import run_one, start_process


class Serial(Executor):
    name = "serial"
    description = "one run after another, in this process (with its progress bar)"

    def run(self, runs: list[RunJob]) -> list[Outcome]:
        start_process(self.grid.device)
        return [Outcome(job.spec.name, run_one(job.spec, self.grid, job.prefix)) for job in runs]
