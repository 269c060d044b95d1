"""The resume guarantee, end to end: a run killed with SIGKILL and run again ends with the same numbers.

A: `selcopy run resume.yml` uninterrupted. B: the same in a child process, SIGKILLed once its second
checkpoint is on disk, then run again to the end. Every metric but wall-clock time and throughput
must be identical, in `result.json` and in every row of `metrics.jsonl`. Both use one CPU thread.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selcopy.train import checkpoint

FILE = Path(__file__).parents[1] / "experiments" / "files" / "resume.yml"
RUN = "resume/run"
STEPS = [1600, 3200, 4800, 6400]
TIMES = ("train_time", "throughput")


def command(runs: Path) -> list[str]:
    return [sys.executable, "-m", "selcopy", "run", str(FILE), "--runs", str(runs), "--threads", "1",
            "--device", "cpu"]


def metric_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def without_times(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMES}


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, train_here) -> Path:
    """Run A: the run folder of an uninterrupted run (trained in this process, one thread)."""
    return train_here(FILE, tmp_path_factory.mktemp("a") / "runs") / RUN


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    """Run B's runs folder after SIGKILL: at least two checkpoints written, not finished."""
    root = tmp_path_factory.mktemp("b")
    runs = root / "runs"
    folder = runs / RUN
    child = subprocess.Popen(command(runs), cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while True:
            assert child.poll() is None, f"the run ended before it could be killed: {child.stderr.read()}"
            assert time.monotonic() < deadline, "no second checkpoint within 120 s"
            log = folder / "metrics.jsonl"
            rows = log.read_text().count("\n") if log.exists() else 0
            # previous.pt appears when the second checkpoint rotates the first away
            ckpts = [(folder / "checkpoints" / name).exists() for name in ("latest.pt", "previous.pt")]
            if rows >= 2 and all(ckpts):
                break
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None and child.returncode is None:
            child.kill()
        child.wait(timeout=30)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert not (folder / "result.json").exists(), "the run finished before the kill landed: make resume.yml slower"
    assert 2 <= len(metric_rows(folder)) < len(STEPS)
    return runs


def resume(runs: Path) -> str:
    """Run again to the end in a child process; its stderr."""
    done = subprocess.run(command(runs), cwd=runs.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


def assert_same_as_uninterrupted(folder: Path, uninterrupted: Path) -> None:
    a = json.loads((uninterrupted / "result.json").read_text())
    b = json.loads((folder / "result.json").read_text())
    assert b["status"] == a["status"] == "finished"
    assert without_times(b["metrics"]) == without_times(a["metrics"])
    for key in ("validation_loss", "validation_sample_error%", "validation_mask_error%", "train_loss", "lr",
                "test_loss", "test_sample_error%"):
        assert b["metrics"][key] == a["metrics"][key], key  # exact, not approximately
    assert b["best"] == a["best"]
    rows_a, rows_b = metric_rows(uninterrupted), metric_rows(folder)
    assert [r["inputs"] for r in rows_b] == [r["inputs"] for r in rows_a] == STEPS
    assert [without_times(r) for r in rows_b] == [without_times(r) for r in rows_a]
    # TensorBoard: the steps logged after the checkpoint and before the kill are purged, not doubled
    for tag in ("validation_sample_error%", "train_loss"):
        assert scalars(folder, tag) == scalars(uninterrupted, tag)
    assert checkpoint.load(folder / "checkpoints" / "latest.pt")["inputs"] == STEPS[-1]


def test_uninterrupted_run_is_complete(uninterrupted):
    assert [r["inputs"] for r in metric_rows(uninterrupted)] == STEPS
    first, last = metric_rows(uninterrupted)[0], metric_rows(uninterrupted)[-1]
    assert last["validation_loss"] < first["validation_loss"]  # it learns something


def test_killed_run_resumes_to_the_same_numbers(uninterrupted, killed, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(killed, runs)
    folder = runs / RUN
    at = checkpoint.load(folder / "checkpoints" / "latest.pt")["inputs"]
    assert at >= 3200
    err = resume(runs)
    assert f"resuming at {at:,} inputs" in err
    assert "skipping checkpoint" not in err
    assert_same_as_uninterrupted(folder, uninterrupted)


def test_corrupt_latest_checkpoint_resumes_from_previous(uninterrupted, killed, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(killed, runs)
    folder = runs / RUN
    latest, previous = folder / "checkpoints" / "latest.pt", folder / "checkpoints" / "previous.pt"
    at = checkpoint.load(previous)["inputs"]
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])  # a torn write
    err = resume(runs)
    warnings = [line for line in err.splitlines() if "checkpoint" in line and "skipping" in line]
    assert len(warnings) == 1, err
    assert "latest.pt" in warnings[0] and ("checksum" in warnings[0] or "truncated" in warnings[0])
    assert f"resuming at {at:,} inputs" in err
    assert_same_as_uninterrupted(folder, uninterrupted)
    assert (folder / "checkpoints" / "latest.pt.bad-1").read_bytes() == data[: len(data) // 2]  # kept aside


def test_without_a_readable_checkpoint_the_run_is_kept_aside_and_starts_over(uninterrupted, killed, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(killed, runs)
    folder = runs / RUN
    for name in ("latest.pt", "previous.pt"):
        path = folder / "checkpoints" / name
        path.write_bytes(path.read_bytes()[:-1])
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    err = resume(runs)
    assert err.count("skipping checkpoint") == 2
    assert f"no readable checkpoint; {folder} moved to {folder}.prev-1, starting over" in err
    assert "resuming" not in err
    kept = folder.with_name(folder.name + ".prev-1")
    assert {p.relative_to(kept): p.read_bytes() for p in kept.rglob("*") if p.is_file()} == before
    assert_same_as_uninterrupted(folder, uninterrupted)
