"""Task generators, by the name users write: `program`, `selective-copy`.

A task is one file holding its config (a `TaskConfig` whose `build()` makes the `Task`) and
one line in `TASKS`.
"""

from __future__ import annotations

from typing import Any

from selcopy.registry import Registry
from selcopy.tasks.base import Batch, Task, TaskConfig
from selcopy.tasks.program import ProgramConfig
from selcopy.tasks.selective_copy import SelectiveCopyConfig

TASKS: Registry[type[TaskConfig]] = Registry.of("task", [ProgramConfig, SelectiveCopyConfig])


def make_task(name: str, settings: dict[str, Any]) -> Task:
    """Look the task up and validate its settings (pydantic.ValidationError on bad ones)."""
    return TASKS[name](**settings).build()


__all__ = ["TASKS", "Batch", "Task", "TaskConfig", "make_task"]
