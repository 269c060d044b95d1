"""Task generators, by the name users write: `program`, `selective-copy`."""

from __future__ import annotations

from typing import Any

from selcopy.registry import Registry
from selcopy.tasks.base import Batch, Task, TaskConfig
from selcopy.tasks.program import ProgramTask
from selcopy.tasks.selective_copy import SelectiveCopyTask

TASKS: Registry[type[Task]] = Registry("task", {t.name: t for t in (ProgramTask, SelectiveCopyTask)})


def make_task(name: str, settings: dict[str, Any]) -> Task:
    """Look the task up and validate its settings (pydantic.ValidationError on bad ones)."""
    cls = TASKS[name]
    return cls(cls.Config(**settings))


__all__ = ["TASKS", "Batch", "Task", "TaskConfig", "make_task"]
