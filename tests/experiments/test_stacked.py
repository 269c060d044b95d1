"""Stacked trials (`selcopy run --stack`): each member trains as it would alone, writes what a run
alone writes, resumes after SIGKILL to the same numbers, and fails alone when its loss diverges.

Tolerance. In float32 on one CPU thread, a stacked member computes what the run alone computes,
in another order of float sums only: its convolutions run as one grouped convolution of all
members (oneDNN blocks and sums it otherwise than one member's), its read-out as a batched
product; the optimizer is elementwise (the same operations per element). Single ops then differ
in the last bits (about 1e-7 relative); 50 AdamW steps carry that along without amplifying it
much (measured: parameters within 3e-7 of the run alone). The tests allow atol 1e-5, rtol 1e-4
on parameters, optimizer state and losses; counts (sample and character errors) must be equal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from selcopy.cli import main
from selcopy.cli_parser import STACK_MAX
from selcopy.experiments import load_experiment
from selcopy.experiments.executors import stacked as stacked_executor
from selcopy.experiments.executors.base import RunJob
from selcopy.experiments.executors.stacked import Member, plan, stages
from selcopy.experiments.spec import RunSpec
from selcopy.experiments.store import RunBusy, RunStore
from selcopy.train import checkpoint
from selcopy.train.config import TrainConfig
from selcopy.train.loop import Trainer, TrainStream
from selcopy.train.metrics import batch_stats, stacked_batch_stats
from selcopy.train.stacked import StackedTrainer, stack_refusal

FILES = Path(__file__).parent / "files"
FILE = FILES / "stack_grid.yml"  # stack/trial-1..3: 1,600 inputs, validations every 400
RUNS = [f"stack/trial-{trial}" for trial in (1, 2, 3)]
TIMES = ("train_time", "throughput")
ATOL, RTOL = 1e-5, 1e-4


def run(*args: str) -> int:
    return main(["run", *args, "--threads", "1", "--device", "cpu"])


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def without_times(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMES}


def assert_close_rows(got: list[dict], alone: list[dict]) -> None:
    """Validation lines of a stacked run against the run alone: same keys and counts, losses close."""
    assert [r["inputs"] for r in got] == [r["inputs"] for r in alone]
    for a, b in zip(got, alone):
        assert set(a) == set(b)
        for key in a:
            if "loss" in key:
                assert a[key] == pytest.approx(b[key], rel=RTOL, abs=ATOL), key
            elif key not in TIMES:
                assert a[key] == b[key], key  # counts, lr, epoch, best: exactly


def specs_of(path: Path = FILE, **train) -> list[RunSpec]:
    return [dataclasses.replace(spec, train={**spec.train, **train}) for spec in load_experiment(path).runs]


def trainer(spec: RunSpec) -> Trainer:
    return Trainer(spec.build_model(), spec.build_split(), spec.train_config(), spec.seed, torch.device("cpu"))


# --- the stacked step ---------------------------------------------------------------------------


def test_members_equal_their_runs_alone_after_50_steps():
    torch.set_num_threads(1)
    specs = specs_of(max_inputs=50 * 4, validate_every=10**6, batch_size=4)  # small batches: of other widths
    alone = [trainer(spec) for spec in specs]
    for t in alone:
        t.fit()
    members, rngs = [], []
    for spec in specs:
        members.append(trainer(spec))
        rngs.append(torch.get_rng_state())
    StackedTrainer(members, rngs).fit()
    for a, m in zip(alone, members):
        assert m.step == a.step == 50 and m.inputs == a.inputs
        for (name, p), q in zip(a.model.named_parameters(), m.model.parameters()):
            torch.testing.assert_close(q, p, atol=ATOL, rtol=RTOL, msg=name)
        own, theirs = a.optimizer.state_dict(), m.optimizer.state_dict()
        assert own["param_groups"] == theirs["param_groups"]
        for j, state in own["state"].items():
            for key, value in state.items():
                torch.testing.assert_close(theirs["state"][j][key], value, atol=ATOL, rtol=RTOL)
    # the members' batches were of different widths at some steps (trained as separate vmaps then)
    streams = [TrainStream(spec.build_split(), spec.seed, 4) for spec in specs]
    widths = [{s.next().text.shape[1] for s in streams} for _ in range(50)]
    assert any(len(w) > 1 for w in widths) and any(len(w) == 1 for w in widths)


def test_stacked_batch_stats_are_each_members():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 8, 5, 256, generator=g)
    text = torch.randint(0, 256, (3, 8, 5), generator=g)
    text[0] = logits[0].argmax(-1)  # one member without a wrong character
    masked = torch.where(torch.rand(3, 8, 5, generator=g) < 0.3, 0, text)
    difficulty = torch.randint(0, 70, (3, 8), generator=g)
    loss = torch.rand(3, generator=g)
    got = stacked_batch_stats(logits, text, masked, difficulty, loss)
    for i in range(3):
        assert torch.equal(got[i], batch_stats(logits[i], text[i], masked[i], difficulty[i], loss[i]))


@pytest.mark.parametrize("model, precision, reason", [
    ({"name": "lstm", "layers": 1, "channels": 8}, "float32", "torch.func.vmap cannot run it: Batching rule"),
    ({"name": "conv", "layers": 2, "channels": 8, "attention": [0, 2]}, "float32", "one member at a time"),
    # torch 2.13's CPU autocast does not reach a convolution under vmap (it does the read-out's bmm)
    ({"name": "conv", "layers": 2, "channels": 8}, "bfloat16", "autocast does not reach convolution inside"),
])
def test_models_that_cannot_stack_say_why(model, precision, reason):
    from selcopy.models import TaskShape, build_model

    config = TrainConfig(precision=precision)
    got = stack_refusal(build_model(model, TaskShape(12, 256)), 12, config, torch.device("cpu"))
    assert got is not None and reason in got


@pytest.mark.parametrize("model", [
    {"name": "conv", "layers": 6, "channels": 8, "kernel_size": 9, "dilation": [1, 2, 3, 4, 5, 1]},
    {"name": "conv", "layers": 2, "channels": 8, "attention": [0, "linear"], "attention_activation": "dpfp",
     "position_embedding": True},
    {"name": "mamba", "layers": 1, "d_model": 8},
])
def test_models_that_stack(model):
    from selcopy.models import TaskShape, build_model

    assert stack_refusal(build_model(model, TaskShape(12, 256)), 12, TrainConfig(), torch.device("cpu")) is None
    assert "compile" in stack_refusal(build_model(model, TaskShape(12, 256)), 12, TrainConfig(compile=True),
                                      torch.device("cpu"))


# --- which runs stack -----------------------------------------------------------------------------


def test_runs_stack_by_settings_but_their_trial():
    jobs = [RunJob(spec, spec.name) for spec in load_experiment(FILES / "attn_last.yml").runs]  # 2 trials x 2 l
    by_l = lambda units: [[job.spec.variables["l"] for job in unit] for unit in units]  # noqa: E731
    assert by_l(plan(jobs, torch.device("cpu"), 16, 1, print)) == [[5, 5], [6, 6]]
    assert by_l(plan(jobs, torch.device("cpu"), 1, 1, print)) == [[5], [5], [6], [6]]  # --stack-max 1
    assert by_l(plan(jobs, torch.device("cpu"), 16, 3, print)) == [[5], [5], [6, 6]]  # a stack for each job
    assert by_l(plan(jobs[:1], torch.device("cpu"), 16, 1, print)) == [[5]]
    assert STACK_MAX == stacked_executor.STACK_MAX


def test_runs_that_cannot_stack_train_alone(tmp_path, capfd):
    grid = tmp_path / "lstm.yml"
    grid.write_text(FILE.read_text().replace("model: {name: conv, layers: 3, channels: 16, kernel_size: 5, "
                                             "dilation: [1, 2, 1], attention: [0, 0, true]}",
                                             "model: {name: lstm, layers: 1, channels: 8}")
                    .replace("max_inputs: 1600", "max_inputs: 400"))
    assert run(str(grid), "--runs", str(tmp_path / "runs"), "--stack") == 0
    err = capfd.readouterr().err
    assert "3 runs of model 'lstm' train one at a time, not stacked: torch.func.vmap cannot run it" in err
    assert "stacked" not in err.split("not stacked")[-1]
    assert all(RunStore(tmp_path / "runs", name).finished() for name in RUNS)


def test_members_resume_together_from_the_step_all_of_them_have():
    def member(*inputs: int, threads: int = 1) -> Member:
        return Member(None, None, {i: {"inputs": i, "threads": threads} for i in inputs})

    a, b, c, fresh = member(800, 400), member(400, 0), member(800, 400), member()
    got = stages([a, b, c])
    assert [[(m is a, m is b, m is c, s["inputs"]) for m, s in stage] for stage in got] == [
        [(True, False, False, 400), (False, True, False, 400), (False, False, True, 400)]]
    got = stages([a, fresh, member(1200, 800)])  # a fresh member starts alone; the others at 800
    assert [[s["inputs"] if s else 0 for _, s in stage] for stage in got] == [[0], [800, 800]]
    other_threads = member(400, threads=2)
    assert [len(stage) for stage in stages([a, c, other_threads])] == [2, 1]


# --- stacked grids against the same runs alone ------------------------------------------------------


@pytest.fixture(scope="module")
def alone_runs(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("alone") / "runs"
    assert run(str(FILE), "--runs", str(runs)) == 0
    return runs


@pytest.fixture(scope="module")
def stacked_runs(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("stacked") / "runs"
    assert run(str(FILE), "--runs", str(runs), "--stack") == 0
    return runs


def files_of(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_stacked_grid_writes_what_its_runs_alone_write(alone_runs, stacked_runs, capsys):
    for name in RUNS:
        alone, stacked = alone_runs / name, stacked_runs / name
        assert files_of(stacked) - {str(p) for p in files_of(stacked) if "tfevents" in p} == \
            files_of(alone) - {str(p) for p in files_of(alone) if "tfevents" in p}
        assert (stacked / "config.yaml").read_text() == (alone / "config.yaml").read_text()
        assert_close_rows(rows(stacked), rows(alone))
        a, b = (json.loads((folder / "result.json").read_text()) for folder in (alone, stacked))
        assert set(a) == set(b) and b["status"] == "finished" and a["best"]["inputs"] == b["best"]["inputs"]
        for kind in ("latest", "best", "previous"):  # the format of a run alone: keys, shapes, optimizer
            x, y = (checkpoint.load(folder / "checkpoints" / f"{kind}.pt") for folder in (alone, stacked))
            assert set(x) == set(y) and x["inputs"] == y["inputs"] and x["step"] == y["step"]
            assert {k: v.shape for k, v in x["model"].items()} == {k: v.shape for k, v in y["model"].items()}
            assert x["optimizer"]["param_groups"] == y["optimizer"]["param_groups"]
            assert torch.equal(x["rng"], y["rng"]) and x["seed"] == y["seed"] and x["threads"] == y["threads"]
    capsys.readouterr()
    assert main(["eval", str(stacked_runs / RUNS[1]), "--checkpoint", "latest", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    last = rows(stacked_runs / RUNS[1])[-1]
    assert evaluated["metrics"]["sample_error%"] == last["validation_sample_error%"]
    assert main(["results", str(FILE), "--runs", str(stacked_runs), "--json"]) == 0


def test_a_stacked_run_resumes_alone_and_skip_existing_skips(alone_runs, stacked_runs, tmp_path, capfd):
    runs = tmp_path / "runs"
    shutil.copytree(stacked_runs, runs)
    folder = runs / RUNS[0]
    (folder / "result.json").unlink()
    (folder / "checkpoints" / "latest.pt").unlink()  # back to previous.pt, at 1,200 inputs
    assert run(str(FILE), "--runs", str(runs), "--skip-existing") == 0  # without --stack
    err = capfd.readouterr().err
    assert err.count("finished before, skipped") == 2 and "resuming at 1,200 inputs" in err
    assert_close_rows(rows(folder), rows(alone_runs / RUNS[0]))
    assert run(str(FILE), "--runs", str(runs), "--skip-existing", "--stack") == 0
    assert capfd.readouterr().err.count("finished before, skipped") == 3


def test_the_stack_holds_every_members_lock(tmp_path, monkeypatch, capfd):
    runs = tmp_path / "runs"
    fit = StackedTrainer.fit
    held = []

    def check_locks(self):
        for name in RUNS[::2]:
            with pytest.raises(RunBusy), RunStore(runs, name).lock():
                pass
            held.append(name)
        return fit(self)

    monkeypatch.setattr(StackedTrainer, "fit", check_locks)
    with RunStore(runs, RUNS[1]).lock():  # another process works on trial-2: it fails, the others stack
        assert run(str(FILE), "--runs", str(runs), "--stack") == 1
    err = capfd.readouterr().err
    assert held == RUNS[::2] and "2 runs train stacked" in err and "another selcopy process" in err
    assert [RunStore(runs, name).finished() for name in RUNS] == [True, False, True]


def test_a_diverging_member_fails_and_the_others_finish(stacked_runs, tmp_path, monkeypatch, capfd):
    runs = tmp_path / "runs"
    step = StackedTrainer._train_step
    seed = load_experiment(FILE).runs[1].seed

    def diverging(self):  # trial-2's weights turn NaN after 600 inputs (its loss goes with them)
        stats = step(self)
        seeds = [m.seed for m in self.members]
        if self.inputs >= 600 and seed in seeds:
            with torch.no_grad():
                next(iter(self.params.values()))[seeds.index(seed)].fill_(float("nan"))
        return stats

    monkeypatch.setattr(StackedTrainer, "_train_step", diverging)
    assert run(str(FILE), "--runs", str(runs), "--stack") == 1
    err = capfd.readouterr().err
    assert "[2/3] stack/trial-2: failed: training loss nan at 800 inputs; dropped from its stack" in err
    failed = json.loads((runs / RUNS[1] / "result.json").read_text())
    assert failed["status"] == "failed" and "nan" in failed["error"]
    assert [r["inputs"] for r in rows(runs / RUNS[1])] == [400]  # its lines and checkpoints before it diverged
    kept = checkpoint.load(runs / RUNS[1] / "checkpoints" / "latest.pt")
    assert kept["inputs"] == 400 and all(v.isfinite().all() for v in kept["model"].values())
    for name in RUNS[::2]:  # the others go on as in the whole stack
        assert json.loads((runs / name / "result.json").read_text())["status"] == "finished"
        assert_close_rows(rows(runs / name), rows(stacked_runs / name))


@pytest.mark.slow
def test_stacks_side_by_side_with_jobs(alone_runs, tmp_path, capfd):
    runs = tmp_path / "runs"
    grid = tmp_path / "four.yml"
    grid.write_text(FILE.read_text().replace("trial: [1, 2, 3]", "trial: [1, 2, 3, 4]"))
    assert run(str(grid), "--runs", str(runs), "--stack", "--jobs", "2") == 0
    err = capfd.readouterr().err
    assert err.count("2 runs train stacked") == 2, err
    for name in RUNS:
        assert_close_rows(rows(runs / name), rows(alone_runs / name))


# --- SIGKILL -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_file(tmp_path_factory) -> Path:
    """The grid with eight validations: slow enough to kill between two of them."""
    path = tmp_path_factory.mktemp("long") / "stack_grid.yml"
    path.write_text(FILE.read_text().replace("max_inputs: 1600", "max_inputs: 3200"))
    return path


@pytest.fixture(scope="module")
def uninterrupted(long_file, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("uninterrupted") / "runs"
    assert run(str(long_file), "--runs", str(runs), "--stack") == 0
    return runs


def command(file: Path, runs: Path) -> list[str]:
    return [sys.executable, "-m", "selcopy", "run", str(file), "--runs", str(runs), "--threads", "1",
            "--device", "cpu", "--stack"]


@pytest.fixture(scope="module")
def killed(long_file, tmp_path_factory) -> Path:
    """The runs folder of the stack SIGKILLed once every member has two checkpoints, not finished."""
    root = tmp_path_factory.mktemp("killed")
    runs = root / "runs"
    child = subprocess.Popen(command(long_file, runs), cwd=root, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while not all((runs / name / "checkpoints" / "previous.pt").exists() for name in RUNS):
            assert child.poll() is None, f"the stack ended before it could be killed: {child.stderr.read()}"
            assert time.monotonic() < deadline, "no second checkpoint within 120 s"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert not any((runs / name / "result.json").exists() for name in RUNS), "finished before the kill landed"
    return runs


def assert_same_as_uninterrupted(runs: Path, uninterrupted: Path) -> None:
    for name in RUNS:
        a, b = (json.loads((root / name / "result.json").read_text()) for root in (uninterrupted, runs))
        assert b["status"] == "finished" and without_times(b["metrics"]) == without_times(a["metrics"])
        assert b["best"] == a["best"]
        assert [without_times(r) for r in rows(runs / name)] == [without_times(r) for r in rows(uninterrupted / name)]
        x, y = (checkpoint.load(root / name / "checkpoints" / "latest.pt") for root in (uninterrupted, runs))
        assert all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"])  # exactly


@pytest.mark.slow
def test_a_killed_stack_resumes_to_the_same_numbers(long_file, uninterrupted, killed, tmp_path, capfd):
    runs = tmp_path / "runs"
    shutil.copytree(killed, runs)
    # one step for all, or (a kill between the members' checkpoints) the members ahead one validation back
    at = min(checkpoint.load_newest(runs / name / "checkpoints", pytest.fail)["inputs"] for name in RUNS)
    assert run(str(long_file), "--runs", str(runs), "--stack") == 0
    err = capfd.readouterr().err
    assert err.count(f"resuming at {at:,} inputs, stacked") == 3 and "3 runs train stacked" in err
    assert_same_as_uninterrupted(runs, uninterrupted)


@pytest.mark.slow
def test_a_member_a_checkpoint_ahead_resumes_from_its_previous_one(long_file, uninterrupted, killed, tmp_path,
                                                                   capfd):
    """A kill between the members' checkpoints of one validation leaves trial-2 a validation behind."""
    runs = tmp_path / "runs"
    shutil.copytree(killed, runs)
    behind = runs / RUNS[1] / "checkpoints"
    os.replace(behind / "previous.pt", behind / "latest.pt")  # (a kill mid-rotation leaves previous.pt only)
    at = checkpoint.load(behind / "latest.pt")["inputs"]
    assert run(str(long_file), "--runs", str(runs), "--stack") == 0
    err = capfd.readouterr().err
    assert err.count(f"resuming at {at:,} inputs, stacked") == 3, err
    assert_same_as_uninterrupted(runs, uninterrupted)
