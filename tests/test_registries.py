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


@pytest.mark.parametrize(("table", "name"), ENTRIES, ids=[f"{t.kind}-{n}" for t, n in ENTRIES])
def test_the_catalog_reads_from_source_what_the_imported_classes_hold(table, name):
    """`selcopy ls` reads the config classes without importing them (no torch): the same listing."""
    from selcopy.catalog import describe

    cls = table[name]
    package, module = cls.__module__.split(".")[1:]
    assert describe(package, module) == (name, cls.description, cls.settings())


def test_the_catalog_reads_the_split_settings():
    from selcopy.catalog import describe
    from selcopy.experiments.spec import SplitSettings

    settings = [(k, f.default, f.description) for k, f in SplitSettings.model_fields.items()]
    assert describe("experiments", "spec", "SplitSettings")[2] == settings
