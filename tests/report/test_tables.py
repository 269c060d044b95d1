"""`selcopy results` on hand-made run folders: aggregation over trials, spread, noise marks, columns.

Nothing is trained: each test writes `config.yaml` and `result.json` of the grid in
`tests/experiments/files/table_grid.yml` (3 trials x l in [2, 3] x k in [3, 5]) under tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean, stdev

import pytest
import yaml

from selcopy.cli import main
from selcopy.experiments import load_experiment

GRID = Path(__file__).parents[1] / "experiments" / "files" / "table_grid.yml"

# validation_sample_error% of trials 1, 2, 3 for each (l, k)
ERRORS = {
    (2, 3): [10.0, 12.0, 14.0],  # mean 12, std 2: far from the best
    (2, 5): [1.0, 2.0, 3.0],  # mean 2, std 1: the best
    (3, 3): [2.0, 3.0, 4.0],  # mean 3, std 1: 1 from the best, within 2 standard errors (1.63)
    (3, 5): [50.0, 50.0, 50.0],  # mean 50, std 0: far
}
DEFAULT_COLUMNS = [
    "l", "k", "trials", "validation_loss", "validation_mask_error%", "validation_sample_error%",
    "validation_sample_error% (std)", "validation_sample_error% (min)", "validation_sample_error% (max)",
    "model_params", "train_time", "throughput", "vs best",
]


def fake_metrics(variables: dict) -> dict:
    trial, layers, k = variables["trial"], variables["l"], variables["k"]
    error = ERRORS[layers, k][trial - 1]
    return {
        "inputs": 6400, "epoch": 0, "validation_loss": error / 100, "validation_mask_error%": error / 2,
        "validation_sample_error%": error, "train_loss": 0.5 * trial, "model_params": 1000 * layers + k,
        "train_time": 60.0 * trial, "throughput": 1000.0 * trial, "is_best": 1,
    }


def write_runs(root: Path, skip: dict | None = None) -> list[str]:
    """Fake every run's folder; `skip` maps (trial, l, k) -> what to leave instead of a finished result."""
    skip = skip or {}
    names = []
    for spec in load_experiment(GRID).runs:
        v = spec.variables
        folder = root / spec.name
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(spec.config_dict(), sort_keys=False))
        what = skip.get((v["trial"], v["l"], v["k"]), "finished")
        if what == "finished":
            result = {"status": "finished", "run": spec.name, "variables": v, "metrics": fake_metrics(v),
                      "best": {}, "finished_at": "2026-01-01T00:00:00"}
            (folder / "result.json").write_text(json.dumps(result))
        elif what == "failed":
            result = {"status": "failed", "run": spec.name, "error": "RuntimeError: boom", "traceback": ""}
            (folder / "result.json").write_text(json.dumps(result))
        elif what == "running":  # killed or still training: a metrics log, no result
            (folder / "metrics.jsonl").write_text(json.dumps(fake_metrics(v)) + "\n")
        elif what == "garbled":  # should not happen (writes are atomic), but must not crash the table
            (folder / "result.json").write_text('{"status": "fini')
        names.append(spec.name)
    return names


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_runs(root)
    return root


def results(capsys, runs: Path, *args: str) -> tuple[int, str, str]:
    status = main(["results", str(GRID), "--runs", str(runs), *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def results_json(capsys, runs: Path, *args: str) -> list[dict]:
    status, out, err = results(capsys, runs, "--json", *args)
    assert status == 0, err
    return json.loads(out)


def by_setting(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["l"], r["k"]): r for r in rows}


def parse_markdown(text: str) -> list[dict[str, str]]:
    lines = text.strip().splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    header, rule, body = cells[0], lines[1], cells[2:]
    assert set(rule) <= set("|-: ")
    return [dict(zip(header, row)) for row in body]


def test_names_of_the_faked_runs():
    names = [spec.name for spec in load_experiment(GRID).runs]
    assert len(names) == 12
    assert names[:2] == ["fake/table/trial-1_l-2_k-3", "fake/table/trial-1_l-2_k-5"]


def test_json_averages_over_trials_with_spread(capsys, runs):
    rows = results_json(capsys, runs)
    assert len(rows) == 4
    for row in rows:
        assert list(row) == DEFAULT_COLUMNS
        errors = ERRORS[row["l"], row["k"]]
        assert row["trials"] == 3
        assert row["validation_sample_error%"] == pytest.approx(mean(errors))
        assert row["validation_sample_error% (std)"] == pytest.approx(stdev(errors))
        assert row["validation_sample_error% (min)"] == min(errors)
        assert row["validation_sample_error% (max)"] == max(errors)
        assert row["validation_loss"] == pytest.approx(mean(errors) / 100)
        assert row["validation_mask_error%"] == pytest.approx(mean(errors) / 2)
        assert row["model_params"] == 1000 * row["l"] + row["k"]
        assert row["train_time"] == pytest.approx(2.0)  # minutes: mean of 60, 120, 180 seconds
        assert row["throughput"] == pytest.approx(2000.0)
    assert "trial" not in rows[0]


def test_noise_marks_best_and_within_two_standard_errors(capsys, runs):
    rows = by_setting(results_json(capsys, runs))
    assert rows[2, 5]["vs best"] == "best"
    assert rows[3, 3]["vs best"] == "≈"  # |3 - 2| <= 2 * sqrt(1/3 + 1/3)
    assert rows[2, 3]["vs best"] == ""  # |12 - 2| > 2 * sqrt(4/3 + 1/3)
    assert rows[3, 5]["vs best"] == ""  # std 0 but the best's own noise is 2 * sqrt(1/3) < 48


def test_markdown_table(capsys, runs):
    status, out, err = results(capsys, runs)
    assert status == 0 and err == ""
    rows = parse_markdown(out)
    assert list(rows[0]) == [
        "l", "k", "trials", "validation loss", "validation_mask_error%", "validation_sample_error%",
        "validation_sample_error% (std)", "validation_sample_error% (min)", "validation_sample_error% (max)",
        "model params", "train time (minutes)", "throughput", "vs best",
    ]
    table = {(r["l"], r["k"]): r for r in rows}
    assert set(table) == {("2", "3"), ("2", "5"), ("3", "3"), ("3", "5")}
    row = table["2", "3"]
    assert row["trials"] == "3"
    assert row["validation_sample_error%"] == "12"
    assert row["validation_sample_error% (std)"] == "2"
    assert row["validation_sample_error% (min)"] == "10"
    assert row["validation_sample_error% (max)"] == "14"
    assert row["model params"] == "2,003"
    assert row["train time (minutes)"] == "2.00"
    assert row["throughput"] == "2,000/s"
    assert table["2", "5"]["vs best"] == "best"
    assert table["3", "3"]["vs best"] == "≈"
    assert table["3", "5"]["vs best"] == ""


def test_std_of_another_column(capsys, runs):
    rows = by_setting(results_json(capsys, runs, "--std", "validation_loss"))
    assert rows[2, 3]["validation_loss (std)"] == pytest.approx(0.02)
    assert rows[3, 5]["validation_loss (std)"] == 0.0  # three trials, the same loss


def test_no_averaging_lists_every_run(capsys, runs):
    rows = results_json(capsys, runs, "--average", "")
    assert len(rows) == 12
    assert "trial" in rows[0] and "trials" not in rows[0]
    assert "validation_sample_error% (std)" not in rows[0]
    assert [r["vs best"] for r in rows].count("best") == 1
    best = next(r for r in rows if r["vs best"] == "best")
    assert (best["trial"], best["l"], best["k"]) == (1, 2, 5)


@pytest.mark.parametrize(
    "sort, expected",
    [
        (["--sort", "validation_sample_error%"], [(2, 5), (3, 3), (2, 3), (3, 5)]),
        (["--sort=-validation_sample_error%"], [(3, 5), (2, 3), (3, 3), (2, 5)]),
        (["--sort", "validation loss"], [(2, 5), (3, 3), (2, 3), (3, 5)]),  # a column's title works too
        (["--sort", "k", "l"], [(2, 3), (3, 3), (2, 5), (3, 5)]),  # later keys break ties
    ],
)
def test_sort(capsys, runs, sort, expected):
    rows = results_json(capsys, runs, *sort)
    assert [(r["l"], r["k"]) for r in rows] == expected


def test_sort_descending_with_a_dash_as_documented(capsys, runs):
    # README and `--help`: `--sort [-]COL…`, "-COL descending"; argparse rejects `--sort -COL` instead.
    rows = results_json(capsys, runs, "--sort", "l", "-k")
    assert [(r["l"], r["k"]) for r in rows] == [(2, 5), (2, 3), (3, 5), (3, 3)]


def test_include_and_exclude(capsys, runs):
    rows = by_setting(results_json(capsys, runs, "--include", "train_loss",
                                   "--exclude", "throughput", "train time (minutes)", "vs best"))
    row = rows[2, 3]
    assert row["train_loss"] == pytest.approx(1.0)  # mean of 0.5, 1.0, 1.5
    assert "throughput" not in row and "train_time" not in row and "vs best" not in row
    assert "validation_sample_error%" in row and "model_params" in row
    assert list(row)[-1] == "train_loss"


def test_exclude_a_varying_setting(capsys, runs):
    rows = results_json(capsys, runs, "--exclude", "k")
    assert "k" not in rows[0] and "l" in rows[0]
    assert len(rows) == 4


def test_include_by_title_adds_no_empty_column(capsys, runs):
    # `--include "validation loss"` passes the unknown-column check (it is a title), but is added
    # under the title, which no row has: the table gets a second, empty "validation loss" column.
    status, out, _ = results(capsys, runs, "--include", "validation loss")
    assert status == 0
    header = out.splitlines()[0]
    assert header.count("validation loss") == 1


@pytest.mark.parametrize("flag", ["--include", "--exclude", "--sort"])
def test_unknown_column_exits_2_with_one_line(capsys, runs, flag):
    status, out, err = results(capsys, runs, flag, "no_such_column")
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("selcopy: error: ")
    assert "no_such_column" in err


def test_unfinished_and_failed_runs_are_left_out_with_a_note(capsys, tmp_path):
    root = tmp_path / "runs"
    write_runs(root, skip={(3, 2, 3): "running", (2, 3, 5): "failed", (3, 3, 5): "failed", (1, 3, 3): "garbled"})
    status, out, err = results(capsys, root, "--json")
    assert status == 0
    rows = by_setting(json.loads(out))
    assert rows[2, 3]["trials"] == 2
    assert rows[2, 3]["validation_sample_error%"] == pytest.approx(11.0)  # trials 1, 2: 10, 12
    assert rows[2, 3]["validation_sample_error% (max)"] == 12.0
    assert rows[3, 5]["trials"] == 1
    assert rows[3, 5]["validation_sample_error% (std)"] is None  # one trial: a std is undefined, not 0
    assert rows[3, 3]["trials"] == 2
    assert rows[3, 3]["validation_sample_error%"] == pytest.approx(3.5)
    assert rows[2, 5]["trials"] == 3
    assert err.strip() == "(4 of 12 runs not finished, left out)"


def test_unfinished_shows_running_runs_at_their_latest_validation(capsys, tmp_path):
    root = tmp_path / "runs"
    write_runs(root, skip={(3, 2, 3): "running", (2, 3, 5): "failed", (3, 3, 5): "failed"})
    log = root / load_experiment(GRID).runs[8].name / "metrics.jsonl"  # trial 3, l 2, k 3: running
    earlier = dict(fake_metrics({"trial": 3, "l": 2, "k": 3}), inputs=3200, **{"validation_sample_error%": 99.0})
    log.write_text(json.dumps(earlier) + "\n" + log.read_text() + '{"inputs": 96')  # a line cut by a kill
    status, out, err = results(capsys, root, "--json", "--unfinished")
    assert status == 0
    rows = by_setting(json.loads(out))
    assert rows[2, 3]["trials"] == 3  # 2 finished + 1 at its latest validation (14%), not the earlier 99%
    assert rows[2, 3]["validation_sample_error%"] == pytest.approx(12.0)
    assert rows[2, 3]["inputs"] == 6400
    assert rows[3, 5]["trials"] == 1  # failed runs logged nothing here: still left out
    assert err.strip() == "(2 of 12 runs have logged nothing, left out)"
    # a trial further behind is a row of its own, not averaged with finished ones; a failed run
    # stays out even if it logged metrics before it failed
    behind = root / load_experiment(GRID).runs[10].name  # trial 3, l 3, k 3
    (behind / "result.json").unlink()
    (behind / "metrics.jsonl").write_text(json.dumps(dict(fake_metrics({"trial": 3, "l": 3, "k": 3}), inputs=3200)))
    failed = root / load_experiment(GRID).runs[7].name  # trial 2, l 3, k 5: failed
    (failed / "metrics.jsonl").write_text(json.dumps(fake_metrics({"trial": 2, "l": 3, "k": 5})))
    _, out, _ = results(capsys, root, "--json", "--unfinished")
    rows = json.loads(out)
    at = {(r["l"], r["k"], r["inputs"]): r["trials"] for r in rows}
    assert at[3, 3, 6400] == 2 and at[3, 3, 3200] == 1 and at[3, 5, 6400] == 1
    status, out, _ = results(capsys, root, "--unfinished")
    header = parse_markdown(out)[0]
    assert list(header)[:3] == ["l", "k", "inputs"] and parse_markdown(out)[0]["inputs"] == "6,400"


def test_where_narrows_the_table(capsys, runs):
    rows = results_json(capsys, runs, "--where", "${l} == 3")
    assert "l" not in rows[0]  # a setting that no longer varies is no column
    assert sorted((r["k"], r["validation_sample_error%"]) for r in rows) == [(3, 3.0), (5, 50.0)]
    assert {r["trials"] for r in rows} == {3}


def test_no_finished_run_exits_2(capsys, tmp_path):
    status, out, err = results(capsys, tmp_path / "nothing-here")
    assert status == 2 and out == ""
    assert err.count("\n") == 1
    assert "no finished runs" in err and str(GRID) in err
    assert not (tmp_path / "nothing-here").exists()


def test_cells_of_lists_and_whole_sections():
    from selcopy.report.tables import format_value

    assert format_value("attn", [0, 0, True]) == "0,0,True"
    assert format_value("dil", [1, 2, 3]) == "1,2,3"
    assert format_value("model", {"name": "lstm", "layers": 6}) == "name=lstm layers=6"
    assert format_value("model", {"name": "conv", "dilation": [1, 2]}) == "name=conv dilation=1,2"
    assert format_value("inputs", 4_000_000) == "4,000,000"


def test_test_set_error_gets_a_column_after_the_spread():
    from selcopy.report.tables import MAIN, aggregate, choose_columns

    rows = [{"trial": t, "l": 2, MAIN: 1.0 * t, "test_sample_error%": 10.0 * t} for t in (1, 2)]
    merged = aggregate(rows, ["trial", "l"], "trial", [])
    columns = choose_columns(merged, ["trial", "l"], [], [], "trial")
    assert columns[columns.index(MAIN):columns.index(MAIN) + 5] == [
        MAIN, f"{MAIN} (std)", f"{MAIN} (min)", f"{MAIN} (max)", "test_sample_error%"]
    assert merged[0]["test_sample_error%"] == 15.0
    plain = choose_columns([{"l": 2, MAIN: 1.0}], ["l"], [], [], None)
    assert "test_sample_error%" not in plain


def test_a_result_without_a_train_time_still_makes_a_row():
    from selcopy.report.tables import collect

    rows = collect([({"l": 2}, {"status": "finished", "metrics": {"validation_sample_error%": 1.5}})])
    assert rows == [{"l": 2, "validation_sample_error%": 1.5}]
