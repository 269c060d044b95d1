"""The experiment files the repository ships load, and their data can be drawn: a shipped file
that `selcopy run` would refuse is a bug of ours, not the user's."""

from pathlib import Path

import pytest

from selcopy.experiments import load_experiment
from selcopy.experiments.grid import select_runs

ROOT = Path(__file__).parents[2]
ARTICLE = ROOT / "experiments" / "article"
ATTN_LAST = "${attn} == [0, 0, 0, 0, 0, true]"
SHIPPED = sorted([*ROOT.glob("experiments/**/*.yml"), *ROOT.glob("benchmarks/**/*.yml")])


def article_row(file: str, where: str):
    """The one run of an article file that `where` selects."""
    [row] = select_runs(load_experiment(ARTICLE / file), where).runs
    return row


def test_the_shipped_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in SHIPPED}
    assert {"experiments/quickstart.yml", "experiments/article/04-baselines.yml", "benchmarks/jobs.yml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_shipped_file_loads_and_its_data_can_be_drawn(path):
    """Within every setting's limits, and each run within a laptop's memory (8 GB, as estimated)."""
    experiment = load_experiment(path)
    assert experiment.runs
    experiment.check_data()
    assert max(estimate.total for estimate in experiment.estimates.values()) < 8 * 10**9


@pytest.mark.parametrize("trials, base, where", [
    ("03-easy-examples-12l-trials.yml", "03-easy-examples.yml", "${l} == 12"),
    ("10-attention-6l-last-trials.yml", "10-attention-6l-5ops.yml", ATTN_LAST),
])
def test_a_trials_file_repeats_its_row_with_other_seeds(trials, base, where):
    """More trials of one article row: the same task, model and training, only the seed differs."""
    row = article_row(base, where)
    repeats = load_experiment(ARTICLE / trials).runs
    assert [run.variables for run in repeats] == [{"trial": 1}, {"trial": 2}]
    for run in repeats:
        assert (run.task, run.model, run.train) == (row.task, row.model, row.train)
    assert len({row.seed, *(run.seed for run in repeats)}) == 3


def test_the_float32_file_repeats_its_row_in_float32_with_the_same_seed():
    """So that the two runs compare the precisions alone: same data, same initial weights."""
    row = article_row("10-attention-6l-5ops.yml", ATTN_LAST)
    [run] = load_experiment(ARTICLE / "10-attention-6l-last-float32.yml").runs
    assert (row.train["precision"], run.train["precision"]) == ("bfloat16", "float32")
    assert (run.task, run.model, {**run.train, "precision": "bfloat16"}) == (row.task, row.model, row.train)
    assert run.seed == row.seed
