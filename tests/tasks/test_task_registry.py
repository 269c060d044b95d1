"""Every registered task, whatever its name: described, buildable, checked by its own checker."""

from __future__ import annotations

import pytest
import torch

from selcopy.registry import UnknownName
from selcopy.tasks import TASKS, Task, make_task


@pytest.mark.parametrize("name", list(TASKS))
def test_default_task_draws_samples_its_checker_accepts(name):
    task = make_task(name, {})
    assert isinstance(task, Task) and task.name == name
    batch = task.sample_batch(64, torch.Generator().manual_seed(0))
    assert batch.text.shape[1] <= task.max_length()
    assert batch.difficulty.shape == (64,) and (batch.difficulty >= 0).all()
    for text in batch.texts():
        task.check(text)
        task.check(task.show(text))  # what `selcopy sample` prints reads back


@pytest.mark.parametrize("name", list(TASKS))
def test_task_names_its_difficulty(name):
    task = make_task(name, {})
    assert task.difficulty and task.difficulty_column.isidentifier()


def test_unknown_task_lists_every_task():
    with pytest.raises(UnknownName) as info:
        make_task("nothing-like-it", {})
    assert all(name in str(info.value) for name in TASKS)
