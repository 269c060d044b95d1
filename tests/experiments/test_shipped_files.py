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


def test_the_8m_file_stretches_the_float32_row_to_8_million_samples():
    """Only the budget (and with it the schedule) differs: same data, weights and precision."""
    [row] = load_experiment(ARTICLE / "10-attention-6l-last-float32.yml").runs
    [longer] = load_experiment(ARTICLE / "10-attention-6l-last-float32-8m.yml").runs
    assert (longer.task, longer.model, longer.seed) == (row.task, row.model, row.seed)
    assert (row.train["max_inputs"], longer.train["max_inputs"]) == (4_000_000, 8_000_000)
    assert {**longer.train, "max_inputs": 4_000_000} == row.train


def test_the_float32_trials_repeat_the_float32_row_with_the_bf16_trials_seeds():
    """Trials 1 and 2 share seeds with the bf16 trials file, so those pairs compare precisions."""
    [row] = load_experiment(ARTICLE / "10-attention-6l-last-float32.yml").runs
    trials = load_experiment(ARTICLE / "10-attention-6l-last-float32-trials.yml").runs
    assert [run.variables for run in trials] == [{"trial": t} for t in range(1, 6)]
    for run in trials:
        assert (run.task, run.model, run.train) == (row.task, row.model, row.train)
    assert len({row.seed, *(run.seed for run in trials)}) == 6
    bf16 = load_experiment(ARTICLE / "10-attention-6l-last-trials.yml").runs
    assert [run.seed for run in trials[:2]] == [run.seed for run in bf16]


def test_the_linear_dt_file_repeats_the_mamba_row_with_the_articles_initialisation():
    """Only the initialisation of the time steps and how it trains (float32, compiled) differ;
    its control (`paper`) differs from table 4's row only in how it trains."""
    row = article_row("04-baselines.yml", "${model}['name'] == 'mamba'")
    linear, control = load_experiment(ARTICLE / "04-baselines-mamba-linear-dt.yml").runs
    assert (row.model["dt_init"], linear.model["dt_init"], control.model["dt_init"]) == ("paper", "linear", "paper")
    assert linear.name.endswith("/dt-init-linear")  # the run trained before the control was added keeps its folder
    assert (linear.task, {**linear.model, "dt_init": "paper"}, linear.seed) == (row.task, row.model, row.seed)
    assert (control.task, control.model, control.seed) == (row.task, row.model, row.seed)
    for run in (linear, control):
        assert (run.train["precision"], run.train["compile"]) == ("float32", True)
        assert {**run.train, "precision": row.train["precision"], "compile": False} == row.train


OPEN = ROOT / "experiments" / "open-question"
SCREEN_Q = "${model}['attention_invention'] == 'Q'"
SCREEN_QK56 = "${model}['channels'] == 56"


def screen_row(where: str):
    [row] = select_runs(load_experiment(OPEN / "01-screen.yml"), where).runs
    return row


@pytest.mark.parametrize("trials, where, count", [
    ("02-q-trials.yml", SCREEN_Q, 3),
    ("05-qk56-trials.yml", SCREEN_QK56, 2),
])
def test_an_open_question_trials_file_repeats_its_screen_row_with_other_seeds(trials, where, count):
    row = screen_row(where)
    repeats = load_experiment(OPEN / trials).runs
    assert [run.variables for run in repeats] == [{"trial": t} for t in range(1, count + 1)]
    for run in repeats:
        assert (run.task, run.model, run.train) == (row.task, row.model, row.train)
    assert len({row.seed, *(run.seed for run in repeats)}) == count + 1


def test_the_open_question_variants_change_one_setting_of_the_q_row_each():
    """DPFP, positions and twice the budget: each against the screen's Q run, from its seed."""
    row = screen_row(SCREEN_Q)
    variants = load_experiment(OPEN / "03-q-variants.yml").runs
    changed = []
    for run in variants:
        assert (run.task, run.train, run.seed) == (row.task, row.train, row.seed)
        changed.append({k: v for k, v in run.model.items() if row.model.get(k) != v})
    assert changed == [{"position_embedding": True}, {"attention_activation": "dpfp"}]
    [longer] = load_experiment(OPEN / "04-q-8m.yml").runs
    assert (longer.task, longer.model, longer.seed) == (row.task, row.model, row.seed)
    assert {**longer.train, "max_inputs": 4_000_000} == row.train
    assert longer.train["max_inputs"] == 8_000_000
