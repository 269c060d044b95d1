"""A run's folder: its stored config, metrics log and lock, read and taken safely."""

from __future__ import annotations

import time

import pytest

from selcopy.errors import SelcopyError
from selcopy.experiments.store import RunStore


@pytest.fixture
def store(tmp_path):
    store = RunStore(tmp_path / "runs", "exp/run")
    store.folder.mkdir(parents=True)
    return store


# --- config.yaml ---------------------------------------------------------------------------


def laughs(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text, says",
    [
        (laughs(10), "aliases expand to more than 20000 values"),
        ("a: &a [*a]\n", "an anchor is used inside itself"),
        ("a: " + "[" * 500 + "]" * 500 + "\n", "nested more than 100 levels deep"),
        ("a: !!set {x}\n", "a set (!!set)"),
    ],
)
def test_a_stored_config_is_read_within_the_bounds(store, text, says):
    store.config_path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(SelcopyError) as info:
        store.stored_config()
    message = str(info.value)
    assert message.startswith(f"{store.config_path}: cannot be read: ") and says in message
    assert "\n" not in message and time.perf_counter() - started < 2


def test_a_stored_config_as_written_is_read_back(store):
    config = {"name": "exp/run", "task": {"name": "program", "count": 5e-4}, "model": {"attention": [0, True]}}
    store.write_config(config)
    assert store.stored_config() == config
