"""Stacked trials: runs of the same shape trained as one model, one forward and backward a step.

Each member is an ordinary `Trainer` (its own model, data stream, best, checkpoints) that the
group does not step itself. The group holds the members' parameters stacked (N, ...) and
trains them with torch.func: the first member's module, called with the stacked parameters
(`functional_call`) under `vmap`, so every op runs once for all members. The loss is the SUM
of the members' losses, so each member's gradient is its own; one AdamW over the stacked
tensors updates each element as the member's own AdamW would (it is elementwise, and the
members share the lr schedule). At every validation the stacked state is copied back into
the members, which validate, report and checkpoint exactly as a run alone does.

A member whose training loss is NaN or infinite at a validation is handed to `on_failure` and
dropped; the others go on as before (nothing mixes the members' numbers).

Dimensions: N members, B batch, L length, V vocabulary (256 bytes), K metric counts.
"""

from __future__ import annotations

import copy
import re
import time
import warnings
from collections import defaultdict
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._python_dispatch import TorchDispatchMode

from selcopy.train.config import TrainConfig
from selcopy.train.loop import Trainer, logits_of
from selcopy.train.metrics import LOSSES, finite_loss, new_stats, stacked_batch_stats
from selcopy.train.schedule import lr_factor
from selcopy.vocab import VOCAB

Failure = Callable[[Trainer, str], None]


class StackedTrainer:
    """Trains `members` (Trainers of one model shape and settings but their seed, all at the same
    step) together to their `max_inputs`. `rng_states`: each member's torch RNG state, set while
    it validates, so that its checkpoint holds what it would alone (nothing draws from it here)."""

    def __init__(self, members: list[Trainer], rng_states: list[torch.Tensor] | None = None,
                 on_failure: Failure | None = None, progress: Callable[[int], None] | None = None):
        check_members(members)
        self.members = list(members)
        self.rng = list(rng_states) if rng_states is not None else [torch.get_rng_state()] * len(members)
        self.config: TrainConfig = members[0].config
        self.device = members[0].device
        self.on_failure = on_failure
        self.progress = progress
        self.loss_fn = LOSSES[self.config.loss]
        self._forward = vmap(self._member_forward, randomness="error")  # a random op is an error, not a guess
        self._stack()

    # --- stacking ---------------------------------------------------------------------
    def _stack(self) -> None:
        """Stacked parameters and optimizer state from the members' own."""
        models = [m.model for m in self.members]
        self.params, self.buffers = stack_module_state(models)  # name -> (N, ...) leaves
        self._template = copy.deepcopy(models[0]).to("meta")  # the module's code; its tensors come per call
        cfg = self.config
        self.optimizer = torch.optim.AdamW(list(self.params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           fused=self.device.type in ("cpu", "cuda"))
        states = [m.optimizer.state_dict()["state"] for m in self.members]
        if states[0]:
            stacked = {j: {key: _stack_value([s[j][key] for s in states]) for key in states[0][j]} for j in states[0]}
            groups = self.optimizer.state_dict()["param_groups"]
            self.optimizer.load_state_dict({"state": stacked, "param_groups": groups})

    def _unstack(self) -> None:
        """Copy the stacked parameters and optimizer state back into each member, in its solo format."""
        state = self.optimizer.state_dict()
        lr = self.optimizer.param_groups[0]["lr"]
        with torch.no_grad():
            for i, member in enumerate(self.members):
                for name, p in member.model.named_parameters():
                    p.copy_(self.params[name][i])
                own = {j: {key: _member_value(value, i) for key, value in s.items()} for j, s in state["state"].items()}
                groups = member.optimizer.state_dict()["param_groups"]
                for group in groups:
                    group["lr"] = lr
                member.optimizer.load_state_dict({"state": own, "param_groups": groups})

    # --- the loop -----------------------------------------------------------------------
    @property
    def inputs(self) -> int:
        return self.members[0].inputs if self.members else 0

    def fit(self) -> None:
        """Train every member to `max_inputs`, validating every `validate_every`, as `Trainer.fit` does."""
        cfg = self.config
        warmup = -(-cfg.warmup_inputs // cfg.batch_size)
        stats = self._new_stats()
        self._start_clock()
        while self.members and not self.members[0].finished:
            first = self.members[0]
            before = first.inputs
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(first.step, cfg.total_steps, warmup, cfg.scheduler)
            stats += self._train_step()
            for member in self.members:
                member.step += 1
            if self.progress:
                self.progress(first.inputs - before)
            if first.inputs // cfg.validate_every > before // cfg.validate_every or first.finished:
                stats = self._validate(stats)

    def _train_step(self) -> torch.Tensor:
        """One step of every member on its own next batch; the members' metric counts (N, K)."""
        batches = [m.stream.next() for m in self.members]
        by_width = defaultdict(list)  # a batch is as wide as its longest text: stack equal widths only
        for i, batch in enumerate(batches):
            by_width[batch.text.shape[1]].append(i)
        stats = self._new_stats()
        total = torch.zeros((), device=self.device)
        for index in by_width.values():
            masked = torch.stack([batches[i].masked for i in index]).to(self.device).long()  # (n, B, L)
            text = torch.stack([batches[i].text for i in index]).to(self.device).long()  # (n, B, L)
            difficulty = torch.stack([batches[i].difficulty for i in index]).to(self.device)  # (n, B)
            params, buffers = self._members(index)
            logits, losses = self._forward(params, buffers, masked, text)  # (n, B, L, V), (n,)
            total = total + losses.sum()  # a sum: each member's gradient is its own loss's
            stats[index] = stacked_batch_stats(logits.detach(), text, masked, difficulty, losses.detach())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return stats

    def _members(self, index: list[int]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The stacked parameters and buffers of the members `index` (all of them: no copy)."""
        if len(index) == len(self.members):
            return self.params, self.buffers
        rows = torch.tensor(index, device=self.device)
        return ({k: v[rows] for k, v in self.params.items()}, {k: v[rows] for k, v in self.buffers.items()})

    def _member_forward(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                        masked: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One member's logits (B, L, V) and loss, as `Trainer` computes them (vmapped over members)."""
        model = lambda ids: functional_call(self._template, (params, buffers), (ids,))  # noqa: E731
        logits = logits_of(model, masked, self.config.precision)
        return logits, self.loss_fn(logits, text)

    def _validate(self, stats: torch.Tensor) -> torch.Tensor:
        """Every member validates and reports as alone; those whose loss is not finite are dropped."""
        elapsed = time.perf_counter() - self._started
        self._unstack()
        finite = finite_loss(stats).tolist()
        kept = []
        for i, member in enumerate(self.members):
            member.train_time = self._base_times[i] + elapsed
            if finite[i]:
                torch.set_rng_state(self.rng[i])
                member._validate(stats[i])
                kept.append(i)
            elif self.on_failure:
                loss = stats[i, 0].item() / max(stats[i, 1].item(), 1)
                self.on_failure(member, f"training loss {loss} at {member.inputs:,} inputs; dropped from its stack")
        if len(kept) < len(self.members):
            self.members = [self.members[i] for i in kept]
            self.rng = [self.rng[i] for i in kept]
            if self.members:
                self._stack()
        self._start_clock()
        return self._new_stats()

    def _start_clock(self) -> None:
        self._started = time.perf_counter()
        self._base_times = [m.train_time for m in self.members]

    def _new_stats(self) -> torch.Tensor:
        return new_stats(self.device).expand(len(self.members), -1).clone()  # (N, K)


def check_members(members: list[Trainer]) -> None:
    """ValueError unless the members can train as one stack: same settings but their seed, same step."""
    if not members:
        raise ValueError("a stack needs at least one member")
    first = members[0]
    for member in members[1:]:
        if member.config.model_copy(update={"seed": 0}) != first.config.model_copy(update={"seed": 0}):
            raise ValueError("stacked runs must have the same training settings but their seed")
        if (member.inputs, member.step, member.device) != (first.inputs, first.step, first.device):
            raise ValueError(f"stacked runs must be at the same step: {member.inputs:,} and {first.inputs:,} inputs")
        shapes = [p.shape for p in member.model.parameters()]
        if shapes != [p.shape for p in first.model.parameters()]:
            raise ValueError("stacked runs must have parameters of the same shapes")


def _stack_value(values: list) -> object:
    """The optimizer state of N members as one: tensors stacked, the step (the same for all) once."""
    if torch.is_tensor(values[0]) and values[0].dim() > 0:
        return torch.stack(values)
    return values[0].clone() if torch.is_tensor(values[0]) else values[0]


def _member_value(value: object, i: int) -> object:
    if torch.is_tensor(value) and value.dim() > 0:
        return value[i].clone()
    return value.clone() if torch.is_tensor(value) else value


def stack_refusal(model: nn.Module, length: int, config: TrainConfig, device: torch.device) -> str | None:
    """Why runs of `model` (its task's longest text: `length`) cannot train stacked, or None:
    a forward and backward of two stacked copies on a batch of two texts must run under vmap
    without a random op or a slow fallback, run its convolutions and matrix products in the
    precision they run in alone (autocast), compute what the model computes alone and give
    every parameter a gradient."""
    if config.compile:
        return "compile: true trains each run alone"
    model = model.to(device)
    members = [model, copy.deepcopy(model)]
    params, buffers = stack_module_state(members)
    template = copy.deepcopy(model).to("meta")
    ids = torch.randint(0, VOCAB, (2, 2, length), generator=torch.Generator().manual_seed(0)).to(device)
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bfloat16")  # noqa: E731

    def forward(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        with autocast():
            return functional_call(template, (p, b), (x,))

    try:
        with warnings.catch_warnings(record=True) as caught, KernelDtypes() as stacked_kernels:
            warnings.simplefilter("always")
            stacked = vmap(forward, randomness="error")(params, buffers, ids)  # (2, 2, L, V)
        stacked.float().sum().backward()
    except Exception as error:  # whatever vmap raises, the user gets one line
        return f"torch.func.vmap cannot run it: {_first_line(error)}"
    slow = [str(w.message) for w in caught if "batching rule" in str(w.message)]
    if slow:
        return f"torch.func.vmap would run it one member at a time: {slow[0].split('. ')[0]}"
    with torch.no_grad(), autocast(), KernelDtypes() as alone_kernels:
        alone = torch.stack([m(ids[i]) for i, m in enumerate(members)])
    wider = stacked_kernels.ops(torch.float32) - alone_kernels.ops(torch.float32)
    if config.precision != "float32" and wider:
        return (f"{config.precision} autocast does not reach {', '.join(sorted(wider))} inside torch.func.vmap "
                f"on {device.type}: stacked runs would train in float32")
    scale = max(1.0, alone.float().abs().max().item())
    tolerance = (1e-4 if config.precision == "float32" else 5e-2) * scale
    if stacked.dtype != alone.dtype or not torch.allclose(stacked.detach().float(), alone.float(), 0, tolerance):
        return "stacked under torch.func.vmap it computes other values than alone"
    if any(p.grad is None for p in params.values()):
        return "some parameters get no gradient when stacked"
    return None


class KernelDtypes(TorchDispatchMode):
    """Records the dtype in which each convolution and matrix product runs (what autocast decides)."""

    KERNELS = re.compile(r"convolution|\b(mm|bmm|addmm|baddbmm|_scaled_dot_product\w*|\w*_rnn\w*)\b")

    def __init__(self):
        super().__init__()
        self.seen: set[tuple[str, torch.dtype]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        name = func.__name__.split(".")[0]
        first = next((a for a in args if torch.is_tensor(a)), None)
        if first is not None and first.is_floating_point() and self.KERNELS.search(name):
            self.seen.add((name, first.dtype))
        return func(*args, **(kwargs or {}))

    def ops(self, dtype: torch.dtype) -> set[str]:
        return {name for name, seen in self.seen if seen == dtype}


def _first_line(error: Exception) -> str:
    return next(iter(str(error).strip().splitlines()), type(error).__name__)
