"""Task generators, by the name users write: `program`, `selective-copy`.

A task is one file holding its config (a `TaskConfig` whose `build()` makes the `Task`) and
its file's name in `selcopy.catalog.TASK_FILES`.
"""

from __future__ import annotations

from typing import Any

from selcopy.catalog import TASK_FILES
from selcopy.registry import Registry
from selcopy.tasks.base import Batch, Task, TaskConfig

TASKS: Registry[type[TaskConfig]] = Registry.of_modules("task", __name__, TaskConfig, TASK_FILES)


def make_task(name: str, settings: dict[str, Any]) -> Task:
    """Look the task up and validate its settings (pydantic.ValidationError on bad ones)."""
    return TASKS[name](**settings).build()


__all__ = ["TASKS", "Batch", "Task", "TaskConfig", "make_task"]
