"""A run's folder: its stored config, metrics log and lock, read and taken safely."""

from __future__ import annotations

import json
import os
import time

import pytest

from selcopy.errors import SelcopyError
from selcopy.experiments import load_experiment
from selcopy.experiments import store as store_module
from selcopy.experiments.store import RunBusy, RunStore, load_runs


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


# --- lock ----------------------------------------------------------------------------------


def test_the_lock_is_exclusive(store):
    with store.lock():
        with pytest.raises(RunBusy, match="another selcopy process is working on this run"):
            with store.lock():
                pass
    with store.lock():  # released
        pass


def test_a_lock_file_that_cannot_be_opened_refuses_the_run(store):
    lock = store.folder.with_name(".run.lock")
    lock.mkdir()
    with pytest.raises(RunBusy) as info:
        with store.lock():
            pytest.fail("the run went on without its lock")
    assert str(info.value) == f"{lock}: cannot open the run's lock: Is a directory; the run is not trained without it"


def test_a_file_system_that_cannot_lock_refuses_the_run(store, monkeypatch):
    import errno
    import fcntl

    def flock(handle, how):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", flock)
    with pytest.raises(RunBusy, match=r"\.run\.lock: cannot lock the run: No locks available; the run is not"):
        with store.lock():
            pytest.fail("the run went on without its lock")


def test_without_fcntl_the_run_goes_on_and_says_so_once(store, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_fcntl(name, *args, **kwargs):
        if name == "fcntl":
            raise ImportError("no fcntl here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fcntl)
    store_module._no_locks_here.cache_clear()
    for _ in range(2):
        with store.lock():
            pass
    assert capsys.readouterr().err.count("no file locks on this platform") == 1


# --- metrics.jsonl -------------------------------------------------------------------------


def row(inputs: int) -> bytes:
    return json.dumps({"inputs": inputs, "validation_loss": 1.0 / inputs}).encode() + b"\n"


def test_a_damaged_line_in_the_middle_drops_only_itself(store):
    store.metrics_path.write_bytes(row(1) + b"garbage\n" + row(2) + b"[1]\n42\n\xff\xfe\n" + row(3))
    said = []
    assert [r["inputs"] for r in store.metrics(said.append)] == [1, 2, 3]
    assert said == [f"{store.metrics_path}: lines 2, 4, 5, 6 not a metrics row (damaged?), left out; "
                    "3 good rows kept"]


def test_a_last_line_cut_by_a_kill_is_left_out_silently(store):
    store.metrics_path.write_bytes(row(1) + row(2) + b'{"inputs": 3, "valid')
    assert [r["inputs"] for r in store.metrics(pytest.fail)] == [1, 2]


@pytest.mark.parametrize("line", [b"{}", b'{"inputs": "1"}', b'{"inputs": true}', b"[" * 100_000, b"null"])
def test_rows_without_a_number_of_inputs_are_damaged(store, line):
    store.metrics_path.write_bytes(row(1) + line + b"\n" + row(2))
    said = []
    assert [r["inputs"] for r in store.metrics(said.append)] == [1, 2]
    assert len(said) == 1 and "line 2 not a metrics row" in said[0]


def test_the_default_warning_is_one_line_on_stderr(store, capsys):
    store.metrics_path.write_bytes(row(1) + b"garbage\n" + row(2))
    assert len(store.metrics()) == 2
    assert capsys.readouterr().err == (f"selcopy: warning: {store.metrics_path}: line 2 not a metrics row (damaged?), "
                                       "left out; 2 good rows kept\n")


def test_truncating_a_damaged_log_keeps_the_later_rows_and_the_log_as_it_was(store):
    damaged = row(1) + b"garbage\n" + row(2) + row(3)
    store.metrics_path.write_bytes(damaged)
    said = []
    store.truncate_metrics(2, said.append)
    assert store.metrics_path.read_bytes() == row(1) + row(2)
    assert (store.folder / "metrics.jsonl.bad-1").read_bytes() == damaged
    assert len(said) == 1 and said[0].endswith("; the log as it was is kept as metrics.jsonl.bad-1")
    store.truncate_metrics(1, pytest.fail)  # a clean log: nothing to say or keep
    assert store.metrics_path.read_bytes() == row(1)
    assert not (store.folder / "metrics.jsonl.bad-2").exists()


# --- folders that nest ---------------------------------------------------------------------


def test_a_run_folder_inside_another_run_folder_is_refused(tmp_path):
    root = tmp_path / "runs"
    outer = RunStore(root, "nest/run")
    outer.write_config({"x": 1})
    inner = RunStore(root, "nest/run/trial-1")
    assert inner.nested() == f"{inner.folder} is inside {outer.folder}, the run folder of another experiment"
    with pytest.raises(SelcopyError, match="experiments' folders must not nest"):
        inner.other_settings({"x": 2})


def test_a_run_folder_holding_another_experiments_runs_is_refused(tmp_path):
    root = tmp_path / "runs"
    RunStore(root, "nest/run/trial-1").write_config({"x": 1})
    outer = RunStore(root, "nest/run")
    assert outer.nested() == f"{outer.folder} holds trial-1/, which is no part of a run (another experiment's runs?)"
    with pytest.raises(SelcopyError, match="experiments' folders must not nest"):
        outer.other_settings({"x": 2})


def test_a_run_folder_with_its_own_parts_does_not_nest(store):
    for part in (store.checkpoints, store.tensorboard, store.examples):
        part.mkdir()
    store.write_config({"x": 1})
    (store.folder.parent / "run.prev-1").mkdir()  # a run moved aside sits beside it, not inside
    assert store.nested() is None and store.other_settings({"x": 1}) is None


def test_load_runs_reads_logged_runs_and_skips_the_others(tmp_path):
    file = tmp_path / "exp.yml"
    file.write_text("name: demo\nmatrix:\n  trial: [1, 2]\n  l: [2, 3]\nmodel:\n  layers: ${l}\n")
    root = tmp_path / "runs"
    specs = {spec.name: spec for spec in load_experiment(file).runs}
    for name in ("demo/trial-1_l-2", "demo/trial-2_l-3"):
        store = RunStore(root, name)
        store.write_config(specs[name].config_dict())
        store.append_metrics({"inputs": 100, "validation_loss": 0.5})
    runs = load_runs(load_experiment(file).runs, root, str(file))
    assert [values for values, _ in runs] == [{"trial": 1, "l": 2}, {"trial": 2, "l": 3}]
    assert runs[0][1] == [{"inputs": 100, "validation_loss": 0.5}]

    # runs of the file before an edit, or of unknown settings, are none of its curves
    file.write_text(file.read_text() + "train: {lr: 0.01}\n")
    with pytest.raises(SelcopyError, match=r"trial-1_l-2/config.yaml holds other settings \(and 1 more"):
        load_runs(load_experiment(file).runs, root, str(file))
    (root / "demo/trial-1_l-2/config.yaml").unlink()
    with pytest.raises(SelcopyError, match=r"trial-1_l-2 has results but no config.yaml \(and 1 more"):
        load_runs(load_experiment(file).runs, root, str(file))
