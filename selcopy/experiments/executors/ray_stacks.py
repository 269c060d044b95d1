"""What the Ray driver holds for a run or a stack out on the cluster (`Out`, `StackOut`), and its
side of `--stack` (`executors/ray.py` has the whole picture): a stack is one
actor that trains its members as one stacked model; the driver locks every member, answers the
actor's start with the members of one step (`stages`) and their checkpoints, stores each
member's validations as a run's, fails a member alone, and sends a later step's members to the
same actor."""

from __future__ import annotations

import contextlib
import dataclasses
import traceback
from typing import Any

from selcopy.experiments.executors.base import RunJob
from selcopy.experiments.executors.processes import Unit
from selcopy.experiments.executors.ray_worker import WorkerMismatch, versions
from selcopy.experiments.executors.stacked import Member, readable_checkpoints, stages
from selcopy.experiments.recorder import THREADS, Recorder, record_failure, write_finished
from selcopy.experiments.runner import check_run, move_aside, ready_to_resume
from selcopy.experiments.store import RunBusy, RunStore
from selcopy.train import checkpoint

RETRIES = 3  # Ray restarts a run's actor this many times when its worker process or node dies
WORKER_MODULE = "selcopy.experiments.executors.ray_worker"  # what a worker imports to train a run


@dataclasses.dataclass
class Out:
    """A run out on the cluster: its actor, the lock held for it, the recorder of its current attempt."""

    job: RunJob
    store: RunStore
    lock: contextlib.ExitStack
    actor: Any = None
    ref: Any = None  # of its `train` call
    attempt: int = 0
    recorder: Recorder | None = None
    where: dict[str, Any] = dataclasses.field(default_factory=dict)  # node, host and pid of the attempt

    def say(self, log: Any, message: str) -> None:
        log(f"{self.job.prefix}: {message}")


@dataclasses.dataclass
class StackOut(Out):
    """A stack out on the cluster, known by its first run's name (`job`, `store`): its members,
    those its current call trains (a stage: one step), their recorders, the threads it asked for."""

    members: list[Member] = dataclasses.field(default_factory=list)
    stage: list[Member] = dataclasses.field(default_factory=list)
    recorders: dict[str, Recorder] = dataclasses.field(default_factory=dict)
    threads: int = 1
    tries: int = 0  # attempts at the current stage

    def member(self, name: str) -> Member:
        return next(member for member in self.members if member.job.spec.name == name)

    def unsettled(self, members: list[Member] | None = None) -> list[Member]:
        return [member for member in (self.members if members is None else members) if member.ok is None]


class StackDriving:
    """`ray.Driver`'s methods for stacks (it has `ray`, `grid`, `executor`, `worker`, `post`,
    `out`, `failed`, `_fail` and `_release`)."""

    def _submit_stack(self, unit: Unit) -> None:
        """Lock every member, check each under its lock, and send the stack to the cluster."""
        log = self.grid.log
        first = unit[0]
        out = StackOut(first, RunStore(self.grid.root, first.spec.name), contextlib.ExitStack())
        self.out[first.spec.name] = out  # from here on, an interrupt releases it
        for job in unit:
            member = Member(job, RunStore(self.grid.root, job.spec.name))
            try:
                out.lock.enter_context(member.store.lock())
            except RunBusy as error:
                log(f"{job.prefix}: failed: {error}")
                self.failed.add(job.spec.name)
                continue
            checked, other = check_run(job.spec, member.store, self.grid.skip_existing, log, job.prefix)
            if checked is not None:
                self.failed.update([job.spec.name] * (not checked))
                continue
            out.members.append(member)
            try:
                move_aside(member.store, other, log, job.prefix)
                member.store.write_config(job.spec.config_dict())
                member.states = readable_checkpoints(member.store, member.said(self.grid))
            except Exception as error:
                self._fail_member(out, member, f"{type(error).__name__}: {error}", traceback.format_exc())
        if not out.unsettled():
            self._release(out)
            return
        recorded = [int(state.get(THREADS) or 0) for m in out.unsettled() for state in m.states.values()]
        out.threads = max(recorded, default=0) or self.executor.threads  # a stage resumes with its count
        if out.threads > self.executor.largest:
            self._fail(out, f"it trained with {out.threads} torch threads, and no node of the cluster has "
                            f"{out.threads} CPUs (the largest: {self.executor.largest:g}): resume it where one "
                            "has, or move its folder away to start over", "")
            return
        out.actor = self.worker.options(num_cpus=out.threads, num_gpus=self.executor.gpus, max_restarts=RETRIES,
                                        max_task_retries=RETRIES).remote()
        self._send_stage(out)

    def _send_stage(self, out: StackOut) -> None:
        out.tries = 0
        out.ref = out.actor.train_stack.remote(WORKER_MODULE, versions(), self.post, out.job.spec.name,
                                               self.executor.device, out.threads)

    def _stack_request(self, out: StackOut, kind: str, payload: Any) -> Any:
        """A stack's worker asks for its start, stores a member's validation, reports a member's
        failure or a line to log; the answer, None where the member is no longer training."""
        if kind == "resume":
            return self._resume_stack(out, payload)
        if kind == "log":
            out.say(self.grid.log, payload)
            return True
        name, what = payload
        member = out.member(name)
        if member.ok is not None or member not in out.stage:
            return None
        if kind == "validation":
            out.recorders[name].write(what)
        else:  # "failed": its loss diverged; the others train on
            self._fail_member(out, member, what, "")
        return True

    def _resume_stack(self, out: StackOut, where: dict[str, Any]) -> tuple[int, list[tuple]]:
        """A stack's call starts (again): its members of the earliest step the store holds, and
        their checkpoints as bytes (None: from the start)."""
        out.attempt += 1
        out.tries += 1
        out.where = where
        for recorder in out.recorders.values():
            recorder.close()
        out.recorders = {}
        left = out.unsettled()
        for member in left:
            member.states = readable_checkpoints(member.store, member.said(self.grid))
            member.store.write_config(member.job.spec.config_dict())
        stage = stages(left)[0]
        out.stage = [member for member, _ in stage]
        again = f", attempt {out.tries} of {RETRIES + 1}" if out.tries > 1 else ""
        answer = []
        for member, state in stage:
            said, spec = member.said(self.grid), member.job.spec
            ready_to_resume(member.store, state, said)
            inputs = int(state["inputs"]) if state else 0
            out.recorders[spec.name] = Recorder(member.store, inputs, said, self.grid.every_example)
            start = f"resuming at {inputs:,} inputs" if state else "started"
            said(f"{start}, stacked with {len(stage) - 1} more on {where['host']}{again}")
            answer.append((spec.name, dataclasses.asdict(spec), checkpoint.encode(state) if state else None))
        return out.attempt, answer

    def _stage_ended(self, out: StackOut) -> None:
        """A stack's call returned: its members that finished get their result.json, those of a
        failed call fail; the members of a later step go out next, to the same actor."""
        ray = self.ray
        reason, trace = "its stack ended without it", ""
        try:
            ended = ray.get(out.ref)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            known = isinstance(cause, (WorkerMismatch, ImportError))
            reason, trace, ended = str(cause) if known else f"{type(cause).__name__}: {cause}", str(error), {}
        except ray.exceptions.RayError as error:
            reason = f"its Ray worker died {RETRIES + 1} times; the last time: {str(error).splitlines()[0]}"
            trace, ended = str(error), {}
        for member in out.unsettled(out.stage):
            name = member.job.spec.name
            out.recorders.pop(name).close()
            if name not in ended:
                self._fail_member(out, member, reason, trace)
                continue
            try:
                run = ended[name]
                result = write_finished(member.job.spec, member.store, run["best"], run["device"], run["threads"],
                                        run["precision"], run["flushed"], run["processor"])
            except Exception as error:
                self._fail_member(out, member, f"{type(error).__name__}: {error}", traceback.format_exc())
                continue
            member.ok = True
            final = result["metrics"]
            member.said(self.grid)(f"validation sample error {final['validation_sample_error%']:.3f}% "
                                   f"({final['throughput']:,.0f} inputs/s, {len(out.stage)} stacked)")
        out.stage = []
        if out.unsettled():
            self._send_stage(out)
        else:
            self._release(out)

    def _fail_member(self, out: StackOut, member: Member, reason: str, trace: str) -> None:
        where = f" (on {out.where['host']})" if out.where else ""
        recorder = out.recorders.pop(member.job.spec.name, None)
        if recorder is not None:
            recorder.close()
        member.said(self.grid)(f"failed: {reason}{where}")
        record_failure(member.store, member.job.spec, reason + where, trace, self.grid.log, member.job.prefix)
        member.ok = False
        self.failed.add(member.job.spec.name)
