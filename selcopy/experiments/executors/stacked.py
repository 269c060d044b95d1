"""`stacked`: the runs of a grid that differ only in their trial (seed) train as one stacked model
(`selcopy run --stack`), a stack of at most `stack_max` runs per process; with `--jobs N`, N
stacks (or runs) side by side, each in a process of its own. Runs that cannot stack (alone in
their settings, or a model that torch.func.vmap cannot run as it runs alone) train as before.

Every member of a stack writes its own run folder as a run alone does (`Recorder`, `finish`):
the same metrics lines, TensorBoard, examples, checkpoints and result.json, so that `results`,
`eval`, `--skip-existing` and a later resume without `--stack` work on it. While a stack trains,
it holds every member's lock. A killed stack resumes each member from its own checkpoint; a
member ahead of the others (a kill between their checkpoints) resumes from its previous one, so
that the stack stays whole and ends as an uninterrupted one would.

`train_group(unit, grid)` trains one stack wherever it is called (here, a job process, a
cluster's task).
"""

from __future__ import annotations

import contextlib
import json
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from selcopy.experiments.executors.base import Executor, Outcome, RunJob
from selcopy.experiments.executors.processes import Processes, Unit
from selcopy.experiments.recorder import FLUSH, THREADS, Recorder, finish, record_failure
from selcopy.experiments.runner import (
    GridSettings,
    check_run,
    ready_to_resume,
    run_one,
    run_threads,
    start_process,
    train_from,
)
from selcopy.experiments.spec import RunSpec
from selcopy.experiments.store import RunBusy, RunStore
from selcopy.train import checkpoint
from selcopy.train.loop import Trainer
from selcopy.train.stacked import StackedTrainer, stack_refusal

STACK_MAX = 16  # runs per stack unless `--stack-max` says otherwise


class Stacked(Executor):
    name = "stacked"
    description = "runs that differ only in their trial train as one stacked model (torch.func.vmap)"

    def __init__(self, grid: GridSettings, jobs: int = 1, stack_max: int = STACK_MAX):
        super().__init__(grid, jobs)
        self.stack_max = stack_max

    def run(self, runs: list[RunJob]) -> list[Outcome]:
        grid = self.grid
        todo, settled = [], {}
        for job in runs:  # finished runs to skip and folders to refuse take no part in a stack
            checked, _ = check_run(job.spec, RunStore(grid.root, job.spec.name), grid.skip_existing, grid.log,
                                   job.prefix)
            if checked is None:
                todo.append(job)
            else:
                settled[job.spec.name] = checked
        units = plan(todo, grid.device, self.stack_max, self.jobs, grid.log)
        if grid.device.type == "cpu" and any(len(unit) > 1 for unit in units):
            grid.log("note: on a CPU a stack trains slower than its runs one after the other (benchmarks/"
                     "RESULTS.md); runs side by side (--jobs without --stack) are the faster way there")
        if self.jobs > 1:
            outcomes = Processes(grid, self.jobs).run_units(units, train_unit)
            settled.update((outcome.name, outcome.ok) for outcome in outcomes)
        else:
            start_process(grid.device)
            for unit in units:
                settled.update((job.spec.name, ok) for job, ok in zip(unit, train_unit(unit, grid, bar=True)))
        return [Outcome(job.spec.name, settled[job.spec.name]) for job in runs]


def stack_key(spec: RunSpec) -> str:
    """Runs with equal keys differ only in their trial or seed, and can train as one stack."""
    train = {k: v for k, v in spec.train.items() if k != "seed"}
    return json.dumps([spec.task, spec.model, train], sort_keys=True, default=str)


def plan(runs: list[RunJob], device: torch.device, stack_max: int, jobs: int, log: Any) -> list[Unit]:
    """The units that train: stacks of at most `stack_max` runs of one key (where the model can
    stack), the rest alone; with `jobs` > 1, stacks are halved until every job has a unit."""
    groups: dict[str, list[RunJob]] = {}
    for job in runs:
        groups.setdefault(stack_key(job.spec), []).append(job)
    units: list[Unit] = []
    for group in groups.values():
        reason = None
        if len(group) > 1:
            spec = group[0].spec
            reason = stack_refusal(spec.build_model(), spec.task_shape().max_length, spec.train_config(), device)
        if reason:
            model = group[0].spec.model["name"]
            log(f"{len(group)} runs of model '{model}' train one at a time, not stacked: {reason}")
            units += [[job] for job in group]
        else:
            units += [group[i:i + stack_max] for i in range(0, len(group), stack_max)]
    while len(units) < jobs and any(len(unit) > 1 for unit in units):  # idle jobs: split the largest stack
        largest = max(units, key=len)
        half = (len(largest) + 1) // 2
        units[units.index(largest):units.index(largest) + 1] = [largest[:half], largest[half:]]
    return units


def train_unit(unit: Unit, grid: GridSettings, bar: bool = False) -> list[bool]:
    """A unit of one run trains alone (`run_one`), a larger one as a stack (`train_group`)."""
    if len(unit) == 1:
        return [run_one(unit[0].spec, grid, unit[0].prefix, bar=bar)]
    return train_group(unit, grid, bar)


@dataclass
class Member:
    """One run of a stack: its job, folder, readable checkpoints by inputs, and how it ended."""

    job: RunJob
    store: RunStore
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    ok: bool | None = None  # None while it is not settled; True finished (or skipped), False failed

    def said(self, grid: GridSettings):
        return lambda message: grid.log(f"{self.job.prefix}: {message}")


def train_group(unit: Unit, grid: GridSettings, bar: bool = False) -> list[bool]:
    """Train the runs of `unit` (of one `stack_key`) as one stack, holding each one's lock;
    whether each finished (or was skipped as finished before). A run's own failure (its folder,
    a NaN loss) is recorded in its result.json and leaves the others training."""
    members = [Member(job, RunStore(grid.root, job.spec.name)) for job in unit]
    with contextlib.ExitStack() as locks:
        ready = [m for m in members if _prepare(m, grid, locks)]
        for stage in stages(ready):
            _train_stage(stage, grid, bar)
    return [m.ok is True for m in members]


def _prepare(member: Member, grid: GridSettings, locks: contextlib.ExitStack) -> bool:
    """Check the member's folder and take its lock, as `run_one` does; its readable checkpoints.
    False if it needs no training (skipped: ok) or cannot train (failed, logged)."""
    spec, store, prefix, said = member.job.spec, member.store, member.job.prefix, member.said(grid)
    checked, _ = check_run(spec, store, grid.skip_existing, grid.log, prefix)
    if checked is not None:
        member.ok = checked
        return False
    try:
        locks.enter_context(store.lock())
    except RunBusy as error:
        grid.log(f"{prefix}: failed: {error}")
        member.ok = False
        return False
    checked, other = check_run(spec, store, grid.skip_existing, grid.log, prefix)  # again: the folder may have changed
    if checked is not None:
        member.ok = checked
        return False
    try:
        if other:
            said(f"{store.folder} held other settings and no training; moved to {store.backup()}")
        elif store.finished():
            said(f"finished before, previous results moved to {store.backup()}")
        member.states = readable_checkpoints(store, said)
        store.write_config(spec.config_dict())
    except Exception as error:  # this run's own failure: record it, the others go on
        _failed(member, grid, f"{type(error).__name__}: {error}", traceback.format_exc())
        return False
    return True


def readable_checkpoints(store: RunStore, said: Any) -> dict[int, dict[str, Any]]:
    """The run's readable rotating checkpoints by inputs (latest first where both hold the same).
    Progress that no checkpoint can resume is moved aside whole, and the run starts over."""
    states: dict[int, dict[str, Any]] = {}
    for name in checkpoint.ROTATING:
        path = store.checkpoints / name
        if path.exists():
            try:
                state = checkpoint.load_state(path)
                states.setdefault(int(state["inputs"]), state)
            except (checkpoint.CorruptCheckpoint, OSError, KeyError, TypeError, ValueError) as error:
                said(f"skipping checkpoint: {error}")
    if not states and any((store.checkpoints / name).exists() for name in checkpoint.ROTATING):
        said(f"no readable checkpoint; {store.folder} moved to {store.backup()}, starting over")
    return states


def stages(members: list[Member]) -> list[list[tuple[Member, dict[str, Any] | None]]]:
    """Members grouped by the checkpoint each resumes from, so that each group is at one step
    (and thread count and denormal mode: the numbers depend on them). The least advanced members set the step, and
    every member with a checkpoint at that step joins them, from its previous checkpoint if it
    is one validation ahead (a kill between the members' checkpoints); the rest form the next."""
    left, out = list(members), []
    while left:
        step = min(max(m.states, default=0) for m in left)
        stage = [(m, m.states.get(step)) for m in left if (step in m.states if step else not m.states)]
        modes = {_mode(state) for _, state in stage}
        if len(modes) > 1:  # the members first recorded with the most common count and mode, the others later
            common = max(modes, key=lambda t: sum(_mode(s) == t for _, s in stage))
            stage = [(m, s) for m, s in stage if _mode(s) == common]
        out.append(stage)
        chosen = {id(m) for m, _ in stage}
        left = [m for m in left if id(m) not in chosen]
    return out


def _mode(state: dict[str, Any] | None) -> tuple[int, bool]:
    """The thread count and denormal mode a member resumes with (`run_threads`): one per stack."""
    return (int(state.get(THREADS) or 0), bool(state.get(FLUSH))) if state else (0, True)


def _train_stage(stage: list[tuple[Member, dict[str, Any] | None]], grid: GridSettings, bar: bool) -> None:
    """Train the members of one stage to the end: alone if it is one, else stacked."""
    try:
        with run_threads(stage[0][1], stage[0][0].said(grid)):
            if len(stage) == 1:
                member, state = stage[0]
                spec = member.job.spec
                ready_to_resume(member.store, state, member.said(grid))
                train_from(spec, member.store, grid.device, state, member.said(grid), member.job.prefix, bar,
                           grid.every_example)
                member.ok = True
            else:
                _train_stacked(stage, grid, bar)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # the stack's failure is each of its unfinished members'
        trace = traceback.format_exc()
        for member, _ in stage:
            if member.ok is None:
                _failed(member, grid, f"{type(error).__name__}: {error}", trace)


def stack_trainers(stage: list[tuple[RunSpec, dict[str, Any] | None]], device: torch.device
                   ) -> tuple[list[Trainer], list[torch.Tensor]]:
    """The members of a stack as Trainers, each from its state (None: the start), and each one's
    torch RNG state as its checkpoints would hold it alone (`StackedTrainer`'s `rng_states`)."""
    split = stage[0][0].build_split()  # the members' settings are the same: one validation set for all
    trainers, rngs = [], []
    for spec, state in stage:
        trainer = Trainer(spec.build_model(), split, spec.train_config(), spec.seed, device)
        if state is not None:
            trainer.load_state_dict(state)
        trainers.append(trainer)
        rngs.append(torch.get_rng_state())
    return trainers, rngs


def _train_stacked(stage: list[tuple[Member, dict[str, Any] | None]], grid: GridSettings, bar: bool) -> None:
    trainers, rngs = stack_trainers([(member.job.spec, state) for member, state in stage], grid.device)
    recorders, by_trainer = [], {}
    for (member, state), trainer in zip(stage, trainers):
        said = member.said(grid)
        if state is not None:
            said(f"resuming at {trainer.inputs:,} inputs, stacked")
        elif not bar:
            said("started, stacked")
        ready_to_resume(member.store, state, said)
        recorder = Recorder(member.store, trainer.inputs, None if bar else said, grid.every_example)
        trainer.on_validation = recorder.validated
        recorders.append(recorder)
        by_trainer[id(trainer)] = (member, recorder)

    def failed(trainer: Trainer, reason: str) -> None:
        member, recorder = by_trainer[id(trainer)]
        recorder.close()
        _failed(member, grid, reason, "")

    names = ", ".join(member.job.prefix for member, _ in stage)
    grid.log(f"{len(stage)} runs train stacked: {names}")
    group = StackedTrainer(trainers, rngs, on_failure=failed)
    cfg = trainers[0].config
    with tqdm(total=cfg.max_inputs, initial=group.inputs, desc=f"{stage[0][0].job.prefix} +{len(stage) - 1} stacked",
              unit="in", unit_scale=True, dynamic_ncols=True, leave=False, disable=None if bar else True) as progress:
        group.progress = progress.update
        group.fit()
    for trainer in group.members:
        member, recorder = by_trainer[id(trainer)]
        recorder.close()
        result = finish(member.job.spec, member.store, trainer, grid.device)
        member.ok = True
        final = result["metrics"]
        member.said(grid)(f"validation sample error {final['validation_sample_error%']:.3f}% "
                          f"({final['throughput']:,.0f} inputs/s, {len(stage)} stacked)")


def _failed(member: Member, grid: GridSettings, reason: str, trace: str) -> None:
    grid.log(f"{member.job.prefix}: failed: {reason}")
    record_failure(member.store, member.job.spec, reason, trace, grid.log, member.job.prefix)
    member.ok = False
