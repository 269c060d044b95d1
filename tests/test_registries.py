"""Every entry of every registry (tasks, models) describes itself and each of its settings."""

from __future__ import annotations

import pytest

from selcopy.models import MODELS
from selcopy.tasks import TASKS

ENTRIES = [(table, name) for table in (TASKS, MODELS) for name in table]


@pytest.mark.parametrize(("table", "name"), ENTRIES, ids=[f"{t.kind}-{n}" for t, n in ENTRIES])
def test_entry_describes_itself_and_every_setting(table, name):
    cls = table[name]
    assert cls.name == name
    assert cls.description and "\n" not in cls.description
    assert [key for key, _, _ in cls.settings()] == list(cls.model_fields)
    assert all(text and "\n" not in text for _, _, text in cls.settings())
