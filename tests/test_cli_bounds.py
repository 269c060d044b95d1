"""Issue 25, item 4: settings beyond their range, and runs or draws that cannot fit in memory, are
refused in one line (exit 2) within seconds, before any data is drawn or model built."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from selcopy.cli import main
from selcopy.experiments.spec import RunSpec

TINY = Path(__file__).parent / "experiments" / "files" / "tiny_grid.yml"
GB = 10**9


def refused(capsys, argv: list[str]) -> str:
    """The one line on stderr of `selcopy ARGV`, which must exit 2 within 10 s."""
    start = time.monotonic()
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("selcopy: error: "), err
    assert time.monotonic() - start < 10
    return err.removeprefix("selcopy: error: ").strip()


@pytest.fixture
def no_work(monkeypatch):
    """Drawing data or building a model fails the test: a refusal must come before either."""
    def fail(*args, **kwargs):
        raise AssertionError("drew data or built a model before refusing")

    for method in ("check_data", "check_model", "build_split", "build_model"):
        monkeypatch.setattr(RunSpec, method, fail)


@pytest.mark.parametrize("text, message", [
    ("task: {num_operations: 1000000}", "task.num_operations: must be at most 1,000, got 1000000"),
    ("task: {validation_count: 1000000000}", "task.validation_count: must be at most 10,000,000, got 1000000000"),
    ("task: {name: selective-copy, area: 1000000000}", "task.area: must be at most 65,536, got 1000000000"),
    ("model: {channels: 1000000000}", "model.channels: must be at most 4,096, got 1000000000"),
    ("train: {batch_size: 1000000000}", "train.batch_size: must be at most 65,536, got 1000000000"),
    ("model: {layers: 1000, channels: 4096}\ntrain: {batch_size: 65536}",
     "run x/run needs about 102 TB (activations at batch 65,536 x 31 positions: 100 TB), more than this machine's"),
    ("task: {name: selective-copy, area: 65536, validation_count: 1000000}",
     "run x/run needs about 2.0 TB (data: 1,100,000 samples of up to 65,547 bytes: 1.8 TB), more than"),
])
def test_show_refuses_in_one_line_before_any_work(capsys, tmp_path, no_work, text, message):
    path = tmp_path / "x.yml"
    path.write_text(text + "\n")
    assert refused(capsys, ["show", str(path)]).startswith(f"{path}: {message}")


def test_show_refuses_what_this_machine_cannot_hold_and_lists_what_it_can(capsys, tmp_path, monkeypatch):
    path = tmp_path / "x.yml"
    path.write_text("train: {batch_size: 4096}\n")  # ~1 GB of activations of the article's conv, 1.3 GB in all
    assert main(["show", str(path)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("inputs  ~1.3 GB")
    monkeypatch.setattr("selcopy.experiments.memory.machine_memory", lambda: GB // 2)
    assert refused(capsys, ["show", str(path)]) == (
        f"{path}: run x/run needs about 1.3 GB (activations at batch 4,096 x 31 positions: 975 MB), more than "
        "this machine's 500 MB")


@pytest.mark.parametrize("argv, message", [
    (["--count", "1000000000"], "--count: must be at most 10,000,000, got 1000000000"),
    (["--count", "0"], "--count: must be positive, got 0"),
    (["--num-operations", "1000000"], "num_operations: must be at most 1,000, got 1000000"),
    (["--num-operations", "1000", "--count", "10000000"],
     "sample --count 10,000,000 needs about 414 GB (data: 10,000,000 samples of up to 4,011 bytes: 414 GB), more "
     "than this machine's 100 GB"),
])
def test_sample_refuses_in_one_line(capsys, monkeypatch, argv, message):
    monkeypatch.setattr("selcopy.experiments.memory.machine_memory", lambda: 100 * GB)
    assert refused(capsys, ["sample", "program", *argv]) == message


def test_sample_of_a_field_too_wide_is_one_line(capsys):
    assert refused(capsys, ["sample", "selective-copy", "--area", "1000000000"]) == (
        "area: must be at most 65,536, got 1000000000")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A trained run folder of the tiny grid (trial 1 only)."""
    runs = tmp_path_factory.mktemp("bounds") / "runs"
    argv = ["run", str(TINY), "--where", "${trial} == 1", "--runs", str(runs), "--threads", "1", "--device", "cpu"]
    assert main(argv) == 0
    return runs / "tiny" / "trial-1"


@pytest.mark.parametrize("argv, message", [
    (["--num-operations", "1000000"], "num_operations: must be at most 1,000, got 1000000"),
    (["--count", "1000000000"], "--count: must be at most 10,000,000, got 1000000000"),
    (["--num-operations", "1000", "--count", "10000000"],
     "eval of 10,000,000 samples needs about 423 GB (data: 10,000,000 samples of up to 4,007 bytes: 414 GB), more "
     "than this machine's 100 GB"),
])
def test_eval_refuses_in_one_line(capsys, monkeypatch, tiny_run, argv, message):
    monkeypatch.setattr("selcopy.experiments.memory.machine_memory", lambda: 100 * GB)
    assert refused(capsys, ["eval", str(tiny_run), "--device", "cpu", *argv]) == message
