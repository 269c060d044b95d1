"""What one run needs in memory, estimated from its settings before anything big is built, and the
memory of the machine to hold it against: `show` and `run` refuse a run that surely cannot fit, in
one line, before they draw its data or build its model; `sample` and `eval` do the same for a draw.

An estimate, not a measurement: its factors (`ModelConfig.position_floats`, `Task.draw_bytes`)
were measured on a CPU, and give a training step's activations and a draw's peak within about 20%
of what they held; a validation step's are up to 1.8 x, as is the draw of programs of 26 letters
and 1,000 operations. It is held
against the machine's memory whatever the device: a run on a GPU keeps its weights and
activations there instead, and only one that needs more than the machine has is refused. Its parts:

    weights      parameters x 4 bytes x 4: weights, gradients and AdamW's two moments
    activations  batch_size x the model's floats per sample (`ModelConfig.activation_floats`: per
                 position, every layer's tensors kept for the backward pass and the logits) x 4 bytes;
                 or validation_batch_size x those without gradients (one layer), if that is more
    data         the fixed sets and one training epoch as stored (2 bytes per position of a text and
                 24 per sample), and the peak of drawing the largest of them (`Task.draw_bytes`)
    process      Python and torch themselves, 0.3 GB
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from selcopy.errors import SelcopyError

if TYPE_CHECKING:  # torch comes with them: `show` answers a malformed file without it
    from selcopy.experiments.spec import RunSpec
    from selcopy.models.base import ModelConfig, TaskShape
    from selcopy.tasks import Task

FLOAT = 4  # bytes of a float32: weights, activations, logits
TRAINING_COPIES = 4  # of every weight while training: itself, its gradient, AdamW's two moments
SAMPLE_BYTES = 24  # a stored sample besides its text: length, difficulty and key, int64 each
PROCESS = ("Python and torch", 300 * 10**6)  # measured: ~250 MB resident once selcopy and torch are loaded
CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")  # a container's memory limit (cgroup v2): "max" or bytes


@dataclass(frozen=True)
class Estimate:
    """The parts of a memory estimate: (what, bytes) each, e.g. ("activations at batch 64 x 31
    positions", 15_237_120) for the article's conv; `params`: the model's parameter count."""

    parts: tuple[tuple[str, int], ...]
    params: int = 0

    @property
    def total(self) -> int:
        return sum(size for _, size in self.parts)

    def check(self, what: str) -> None:
        """A SelcopyError naming `what` and the largest part if the total is more than the machine has."""
        have = machine_memory()
        if have is not None and self.total > have:
            label, size = max(self.parts, key=lambda part: part[1])
            raise SelcopyError(f"{what} needs about {size_text(self.total)} ({label}: {size_text(size)}), "
                               f"more than this machine's {size_text(have)}")


def estimate_run(run: RunSpec, params: int | None = None) -> Estimate:
    """One run's training: its weights, its activations at the batch size and longest text, its
    data. `params`: the model's parameter count, if known (else counted on the meta device)."""
    from selcopy.models import model_config
    from selcopy.tasks import make_task

    shape, config = run.task_shape(), model_config(run.model)
    params = run.params() if params is None else params
    train = run.train
    weights = (f"{params:,} parameters with their gradients and AdamW's moments", params * FLOAT * TRAINING_COPIES)
    parts = ("train", "validation", *["test"] * run.has_test)
    sets = [(make_task(*run.task_settings(part)), run.task[f"{part}_count"]) for part in parts]
    return Estimate((weights, activations(config, shape, train["batch_size"], train["validation_batch_size"]),
                     data(sets), PROCESS), params)


def estimate_eval(run: RunSpec, task: Task, count: int) -> Estimate:
    """`selcopy eval` of `run` on `count` samples of `task`: the weights, one validation batch, the data."""
    from selcopy.models import model_config
    from selcopy.models.base import TaskShape

    params, trained = run.params(), run.task_shape()
    shape = TaskShape(max(task.max_length(), trained.max_length), trained.vocab)
    forward = activations(model_config(run.model), shape, 0, run.train["validation_batch_size"])
    return Estimate(((f"{params:,} parameters", params * FLOAT), forward, data([(task, count)]), PROCESS), params)


def estimate_draw(task: Task, count: int) -> Estimate:
    """Drawing `count` samples of `task` at once (`selcopy sample`)."""
    return Estimate((data([(task, count)]), PROCESS))


def activations(config: ModelConfig, shape: TaskShape, batch: int, validation_batch: int) -> tuple[str, int]:
    """The larger of a training step's activations at `batch` and a validation step's at `validation_batch`."""
    training = batch * config.activation_floats(shape) * FLOAT
    validation = validation_batch * config.activation_floats(shape, training=False) * FLOAT
    if training >= validation:
        return f"activations at batch {batch:,} x {shape.max_length:,} positions", training
    return f"activations at validation batch {validation_batch:,} x {shape.max_length:,} positions", validation


def data(sets: list[tuple[Task, int]]) -> tuple[str, int]:
    """Sets of (task, count) held at once, and the peak of drawing the largest: a draw takes
    `count + count // 32 + 16` samples in its first round (`split.unique_samples`)."""
    held = sum(count * (2 * task.max_length() + SAMPLE_BYTES) for task, count in sets)
    drawing = max((count + count // 32 + 16) * task.draw_bytes() for task, count in sets)
    samples, longest = sum(count for _, count in sets), max(task.max_length() for task, _ in sets)
    return f"data: {samples:,} samples of up to {longest:,} bytes", held + drawing


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the machine's physical memory, or a container's
    limit if lower; None where the system says neither (then nothing is refused)."""
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX (Windows): psutil, if present, knows
        try:
            import psutil

            have = int(psutil.virtual_memory().total)
        except ImportError:
            return None
    try:
        limit = CGROUP_LIMIT.read_text().strip()
    except OSError:
        return have
    return min(have, int(limit)) if limit.isdigit() else have


def size_text(size: int) -> str:
    """`1.2 GB`, `31 MB`, `270 TB`: one decimal below 10, decimal units (1 GB = 10^9 bytes)."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{size} B"
