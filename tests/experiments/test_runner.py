"""The runner end to end: a small model learns, resuming truncates the log, runs are reproducible."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from selcopy.cli import main
from selcopy.errors import SelcopyError
from selcopy.experiments import load_experiment
from selcopy.experiments.runner import train_run
from selcopy.experiments.store import RunStore
from selcopy.train import checkpoint

FILES = Path(__file__).parent / "files"
TIMES = ("train_time", "throughput")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def without_times(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMES}


def test_small_conv_with_attention_learns_one_swap(tmp_path, capsys):
    """One swap over 3 of 26 letters: a 2-layer conv with attention in the last layer gets most samples right.

    Chance is a sample error of ~100% (three letters out of 26 to place); on one loaded CPU thread this
    takes about 5 s (reaching ~16-35% at 16k inputs, 4-8% at 32k over three trial seeds).
    """
    grid = write(tmp_path / "learn.yml", """
name: learn
task: {name: program, input_length: 3, num_operations: 1, operators: {">": 1}, train_count: 20000,
       validation_count: 1000}
model: {name: conv, layers: 2, channels: 64, kernel_size: 5, dilation: [1, 2], attention: [0, true]}
train: {max_inputs: 32000, validate_every: 16000, precision: float32}
""")
    started = time.perf_counter()
    assert main(["run", str(grid), "--runs", str(tmp_path / "runs"), "--threads", "1", "--device", "cpu"]) == 0
    elapsed = time.perf_counter() - started
    capsys.readouterr()
    store = RunStore(tmp_path / "runs", "learn/run")
    rows = store.metrics()
    final = store.result()["metrics"]
    assert [r["inputs"] for r in rows] == [16000, 32000]
    assert final["validation_sample_error%"] < 20, rows
    assert final["validation_mask_error%"] < 10
    assert final["validation_loss"] < rows[0]["validation_loss"]
    assert elapsed < 120, f"learning took {elapsed:.0f} s"


def test_resume_truncates_metrics_logged_after_the_checkpoint(tmp_path):
    """A kill between a validation's log line and its checkpoint: the rerun drops the line and redoes it."""
    spec = load_experiment(FILES / "tiny_grid.yml").runs[0]
    store = RunStore(tmp_path / "runs", spec.name)
    device = torch.device("cpu")
    log: list[str] = []
    torch.set_num_threads(1)
    first = train_run(spec, store, device, log.append)
    rows = store.metrics()
    assert [r["inputs"] for r in rows] == [640, 1280]
    # as if killed after logging 1,280 but before its checkpoint: only the checkpoint at 640 is left
    (store.checkpoints / "latest.pt").unlink()
    store.result_path.unlink()
    (store.checkpoints / "previous.pt").rename(store.checkpoints / "latest.pt")
    log.clear()
    second = train_run(spec, store, device, log.append)
    assert any("resuming at 640 inputs" in line for line in log)
    again = store.metrics()
    assert [r["inputs"] for r in again] == [640, 1280]
    assert again[0] == rows[0]  # kept as it was
    assert without_times(again[1]) == without_times(rows[1])  # redone, same numbers
    assert without_times(second["metrics"]) == without_times(first["metrics"])


def test_a_run_with_dropout_does_not_depend_on_the_runs_before_it(tmp_path, capsys):
    """trial-2 trained after trial-1 (one `run` of the grid) and alone (`--where`) must be the same run.

    Dropout draws from torch's global generator: unless the trainer seeds it from the run's seed,
    its state is whatever the process left, and trial-2's numbers would depend on what trained before
    it (the whole grid, `--where`, `--skip-existing`). Checkpoints save and restore that state, which
    is why killing and resuming alone would not show it.
    """
    grid = write(tmp_path / "drop.yml", """
name: drop
matrix: {trial: [1, 2]}
task: {name: program, input_length: 3, num_operations: 1, operators: {">": 1}, train_count: 2000,
       validation_count: 200}
model: {name: lstm, layers: 2, channels: 16, dropout: 0.3}
train: {max_inputs: 640, validate_every: 640}
""")
    args = ["--threads", "1", "--device", "cpu"]
    assert main(["run", str(grid), "--runs", str(tmp_path / "all"), *args]) == 0
    assert main(["run", str(grid), "--runs", str(tmp_path / "alone"), "--where", "${trial} == 2", *args]) == 0
    capsys.readouterr()
    after = json.loads((tmp_path / "all/drop/trial-2/result.json").read_text())["metrics"]
    alone = json.loads((tmp_path / "alone/drop/trial-2/result.json").read_text())["metrics"]
    assert without_times(alone) == without_times(after)


def _as_if_killed_after_the_first_checkpoint(store: RunStore) -> None:
    (store.checkpoints / "latest.pt").unlink()
    store.result_path.unlink()
    (store.checkpoints / "previous.pt").rename(store.checkpoints / "latest.pt")


def test_a_resumed_run_keeps_the_thread_count_it_trained_with(tmp_path):
    """Resumed by a command that would give it 2 threads (`--jobs 2` with one run left, another
    `--threads`), a run started with 1 goes on with 1: its numbers depend on the count."""
    spec = load_experiment(FILES / "tiny_grid.yml").runs[0]
    store = RunStore(tmp_path / "runs", spec.name)
    device = torch.device("cpu")
    torch.set_num_threads(1)
    first = train_run(spec, store, device, lambda m: None)
    _as_if_killed_after_the_first_checkpoint(store)
    torch.set_num_threads(2)
    log: list[str] = []
    second = train_run(spec, store, device, log.append)
    assert any("resumes with the 1 thread it trained with, not 2" in line for line in log)
    assert second["threads"] == 1 and torch.get_num_threads() == 2  # the process's own count is back
    assert without_times(second["metrics"]) == without_times(first["metrics"])


def test_a_run_flushes_subnormal_floats_and_one_begun_without_resumes_without():
    """A run trains with the CPU flushing subnormal floats to zero, and the process's mode is back
    after; a run resumed from a checkpoint written before selcopy flushed them (no record) goes on
    keeping them, as it began: its numbers depend on the mode."""
    from selcopy.experiments.runner import run_threads
    from selcopy.train.device import flush_denormals

    if not flush_denormals(True):
        pytest.skip("this CPU cannot flush subnormal floats (torch.set_flush_denormal)")
    flush_denormals(False)
    tiny = torch.tensor([1e-39])  # subnormal in float32
    seen = []
    for state in (None, {"inputs": 640, "threads": 1}, {"inputs": 640, "threads": 1, "flush_denormal": True}):
        with run_threads(state, lambda m: None):
            seen.append((tiny * 1.0).item() == 0.0)
        assert (tiny * 1.0).item() != 0.0  # restored
    assert seen == [True, False, True]


def test_a_run_that_trained_with_more_threads_than_the_cores_here_is_refused(tmp_path, monkeypatch):
    spec = load_experiment(FILES / "tiny_grid.yml").runs[0]
    store = RunStore(tmp_path / "runs", spec.name)
    torch.set_num_threads(1)
    train_run(spec, store, torch.device("cpu"), lambda m: None)
    _as_if_killed_after_the_first_checkpoint(store)
    monkeypatch.setattr("selcopy.experiments.runner.available_cores", lambda: 1)
    state = checkpoint.load(store.checkpoints / "latest.pt")
    checkpoint.save(store.checkpoints / "latest.pt", {**state, "threads": 2})
    before = (store.checkpoints / "latest.pt").read_bytes()
    with pytest.raises(SelcopyError, match="trained with 2 torch threads, more than the 1 core here"):
        train_run(spec, store, torch.device("cpu"), lambda m: None)
    assert (store.checkpoints / "latest.pt").read_bytes() == before and not store.result_path.exists()


def test_more_threads_than_cores_is_refused_before_anything_trains(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(FILES / "tiny_grid.yml"), "--runs", str(runs), "--threads", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads 100000: more than the" in err
    assert not runs.exists()


def test_best_checkpoint_left_behind_by_a_kill_is_written_again_on_resume(tmp_path):
    """Killed between `latest.pt` and `best.pt` (the order before): latest names a best that
    best.pt does not hold. The resumed run writes it again from latest.pt."""
    spec = load_experiment(FILES / "tiny_grid.yml").runs[0]
    store = RunStore(tmp_path / "runs", spec.name)
    torch.set_num_threads(1)
    train_run(spec, store, torch.device("cpu"), lambda m: None)
    _as_if_killed_after_the_first_checkpoint(store)
    latest = checkpoint.load(store.checkpoints / "latest.pt")
    assert latest["best"]["inputs"] == latest["inputs"] == 640
    checkpoint.save(store.checkpoints / "best.pt", {**latest, "inputs": 0})  # a stale best.pt
    log: list[str] = []
    result = train_run(spec, store, torch.device("cpu"), log.append)
    assert any("best.pt was behind the best validation (640 inputs)" in line for line in log)
    best = checkpoint.load(store.checkpoints / "best.pt")
    assert best["inputs"] == result["best"]["inputs"]
