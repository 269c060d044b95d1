"""`selcopy show` and `selcopy run` end to end: validation before training, run folders, reruns, failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import yaml
from PIL import Image
from pydantic import Field
from torch import nn

from selcopy.cli import main
from selcopy.experiments import load_experiment
from selcopy.models import MODELS, ModelConfig, TaskShape
from selcopy.models.base import ByteEmbedding
from selcopy.train import checkpoint
from selcopy.train.device import processor

FILES = Path(__file__).parent / "experiments" / "files"
TINY = FILES / "tiny_grid.yml"  # tiny/trial-1, tiny/trial-2: 1,280 inputs, validation at 640
FAILING = FILES / "failing_grid.yml"  # failing/n-3 cannot fill its validation set, failing/n-26 can
ATTN_LAST = FILES / "attn_last.yml"  # 4 runs: 2 trials x (l 5 | l 6, attention in the last layer)
TIMES = ("train_time", "throughput")


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["run", *args, "--threads", "1", "--device", "cpu"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: contents and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def without_times(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMES}


# --- show -------------------------------------------------------------------------------------


def test_show_json_lists_name_settings_params(capsys):
    assert main(["show", str(ATTN_LAST), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listing] == [
        "article/attn-last/trial-1_l-5_attn-0,0,0,0,T",
        "article/attn-last/trial-1_l-6_attn-0,0,0,0,0,T",
        "article/attn-last/trial-2_l-5_attn-0,0,0,0,T",
        "article/attn-last/trial-2_l-6_attn-0,0,0,0,0,T",
    ]
    for r in listing:
        assert {"name", "settings", "params", "variables"} <= set(r)
        assert set(r["settings"]) == {"task", "model", "train"}
        model, task, train = r["settings"]["model"], r["settings"]["task"], r["settings"]["train"]
        assert model["name"] == "conv" and model["layers"] == r["variables"]["l"]
        assert model["attention"] == r["variables"]["attn"] and model["kernel_size"] == 13
        assert model["channels"] == 64  # a default, filled in
        assert task["name"] == "program" and task["validation_num_operations"] == [5, 5]
        assert train["max_inputs"] == 1_000_000 and train["lr"] == 0.0005
        assert isinstance(r["params"], int) and r["params"] > 0
    params = {r["variables"]["l"]: r["params"] for r in listing}
    assert params[6] > params[5]
    assert listing[0]["params"] == listing[2]["params"]  # trials share the architecture


def test_show_params_match_the_built_model(capsys):
    assert main(["show", str(TINY), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    spec = load_experiment(TINY).runs[0]
    assert listing[0]["params"] == sum(p.numel() for p in spec.build_model().parameters())


def test_show_text_trains_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["show", str(TINY)]) == 0
    out = capsys.readouterr().out
    assert "2 runs of experiment 'tiny'" in out and "tiny/trial-1" in out and "tiny/trial-2" in out
    assert list(tmp_path.iterdir()) == []


def test_show_counts_one_run_in_the_singular(capsys):
    assert main(["show", str(TINY), "--where", "${trial} == 1"]) == 0
    assert "1 run of experiment 'tiny'" in capsys.readouterr().out


def test_show_rejects_settings_that_cannot_fill_their_data(capsys):
    assert main(["show", str(FAILING)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "failing_grid.yml: run failing/n-3:" in err and "36 distinct questions" in err and "40" in err
    assert main(["show", str(FAILING), "--where", "${n} == 26"]) == 0


def test_where_selects_runs(capsys):
    assert main(["show", str(ATTN_LAST), "--json", "--where", "${l} == 6"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [r["variables"] for r in listing] == [
        {"trial": 1, "l": 6, "attn": [0, 0, 0, 0, 0, True]},
        {"trial": 2, "l": 6, "attn": [0, 0, 0, 0, 0, True]},
    ]
    assert main(["show", str(ATTN_LAST), "--json", "--where", "${l} == 5 and ${trial} > 1"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == [
        "article/attn-last/trial-2_l-5_attn-0,0,0,0,T"
    ]


def test_show_runs_says_what_the_run_folder_holds_of_each_run(capsys, tmp_path):
    runs = tmp_path / "runs"
    assert run(capsys, str(TINY), "--runs", str(runs), "--where", "${trial} == 1")[0] == 0
    assert main(["show", str(TINY), "--runs", str(runs), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(r["status"], r["inputs"]) for r in listing] == [("finished", 1280), ("not started", None)]
    cut = runs / listing[1]["name"]  # a run cut off after its first validation: a log, no result
    cut.mkdir(parents=True)
    (cut / "metrics.jsonl").write_text(json.dumps({"inputs": 640, "validation_loss": 1.0}) + "\n")
    assert main(["show", str(TINY), "--runs", str(runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("finished") and lines[2].endswith("started (640 inputs logged)")
    assert lines[-1] == f"1 of 2 runs finished under {runs.as_posix()}/"
    (cut / "result.json").write_text(json.dumps({"status": "failed", "error": "diverged"}))
    assert main(["show", str(TINY), "--runs", str(runs), "--json"]) == 0
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["finished", "failed"]
    assert main(["show", str(TINY), "--json"]) == 0  # without --runs, no store is read
    assert all("status" not in r for r in json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("command", ["show", "run", "plot"])
@pytest.mark.parametrize(
    "where, message",
    [
        ("${l} == 7", "selects none of its 4 runs"),
        ("${layers} == 5", "undefined variable ${layers}"),
        ("__import__('os').getcwd()", "not allowed"),
        ("[[[0]*10000]*10000]*10000 == [[[0]*10000]*10000]*10000", "more than 10000 items"),
        ("[1][::0]", "slice step cannot be zero"),
    ],
)
def test_bad_where_exits_2(capsys, tmp_path, command, where, message):
    extra = ["--runs", str(tmp_path / "runs")] if command in ("run", "plot") else []
    assert main([command, str(ATTN_LAST), "--where", where, *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err and "--where" in captured.err
    assert captured.err.startswith(f"selcopy: error: {ATTN_LAST}: ")  # the file whose matrix refused it
    assert not (tmp_path / "runs").exists()


# --- malformed files: exit 2, one line naming the file and the key, nothing trained or written -----

TASK = 'task: {name: program, input_length: 3, num_operations: 1, operators: {">": 1}}\n'
MODEL = "model: {name: conv, layers: 2, channels: 8, kernel_size: 3}\n"
TRAIN = "train: {max_inputs: 640}\n"

MALFORMED = {
    "unused-variable": (
        'matrix: {l: [2, 3], k: [3, 5]}\nmodel: {name: conv, layers: "${l}"}\n' + TASK + TRAIN,
        ["matrix variable 'k' is never used"],
    ),
    "unused-variables-only-in-comment": (
        'matrix: {k: [3, 5]}\n# kernel_size: ${k}\n' + TASK + MODEL + TRAIN,
        ["'k'", "never used"],
    ),
    "misspelt-task-key": (
        'task: {name: program, num_item: 5}\n' + MODEL + TRAIN,
        ["task.num_item", "did you mean 'num_items'"],
    ),
    "misspelt-validation-override": (
        'task: {name: program, validation_num_operation: 5}\n' + MODEL + TRAIN,
        ["task.validation_num_operation", "validation_num_operations"],
    ),
    "misspelt-model-key": (
        TASK + "model: {name: conv, kernal_size: 3}\n" + TRAIN,
        ["model.kernal_size", "did you mean 'kernel_size'"],
    ),
    "misspelt-train-key": (
        TASK + MODEL + "train: {max_input: 640}\n",
        ["train.max_input", "did you mean 'max_inputs'"],
    ),
    "misspelt-top-level-key": (
        TASK + MODEL + "trian: {max_inputs: 640}\n",
        ["trian", "did you mean 'train'"],
    ),
    "wrong-type": (
        TASK + MODEL + "train: {max_inputs: lots}\n",
        ["train.max_inputs"],
    ),
    "filter-import": (
        'matrix: {l: [2, 3], $filter: "__import__(\'os\').system(\'touch PWNED\') == 0"}\n'
        'model: {name: conv, layers: "${l}"}\n' + TASK + TRAIN,
        ["matrix.$filter", "__import__", "not allowed"],
    ),
    "filter-open": (
        'matrix: {l: [2, 3], $filter: "open(\'PWNED\', \'w\') and ${l} == 2"}\n'
        'model: {name: conv, layers: "${l}"}\n' + TASK + TRAIN,
        ["matrix.$filter", "open", "not allowed"],
    ),
    "filter-open-in-short-circuited-branch": (
        'matrix: {l: [2, 3], $filter: "${l} == 2 or open(\'PWNED\', \'w\')"}\n'
        'model: {name: conv, layers: "${l}"}\n' + TASK + TRAIN,
        ["matrix.$filter", "open", "not allowed"],
    ),
    "filter-attribute": (
        'matrix: {l: [2, 3], $filter: "${l}.real == 2"}\nmodel: {name: conv, layers: "${l}"}\n' + TASK + TRAIN,
        ["matrix.$filter", "attribute access"],
    ),
    "filter-dunder-attribute": (
        'matrix: {l: [2, 3], $filter: "[].__class__.__base__ == 1"}\n'
        'model: {name: conv, layers: "${l}"}\n' + TASK + TRAIN,
        ["matrix.$filter", "attribute access"],
    ),
    "undefined-variable": (
        'matrix: {l: [2, 3]}\nmodel: {name: conv, layers: "${l}", kernel_size: "${k}"}\n' + TASK + TRAIN,
        ["model.kernel_size", "undefined variable ${k}"],
    ),
    "undefined-variable-in-filter": (
        'matrix: {l: [2, 3], $filter: "${m} == 2"}\nmodel: {name: conv, layers: "${l}"}\n' + TASK + TRAIN,
        ["matrix.$filter", "${m}"],
    ),
    "unknown-model": (
        TASK + "model: {name: convv, layers: 2}\n" + TRAIN,
        ["model.name", "unknown model 'convv'", "did you mean 'conv'"],
    ),
    "unknown-task": (
        "task: {name: progam}\n" + MODEL + TRAIN,
        ["task.name", "did you mean 'program'"],
    ),
    "input-longer-than-alphabet": (
        'task: {name: program, num_items: 3, input_length: 5}\n' + MODEL + TRAIN,
        ["task", "input_length"],
    ),
    "impossible-task-in-one-run-of-the-grid": (
        'matrix: {n: [26, 3]}\ntask: {name: program, num_items: "${n}", input_length: 5}\n' + MODEL + TRAIN,
        ["run n-3", "input_length"],
    ),
}


@pytest.mark.parametrize("command", ["show", "run"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_exits_2_with_one_line(capsys, tmp_path, monkeypatch, command, case):
    text, expected = MALFORMED[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = tmp_path / "bad.yml"
    path.write_text(text)
    extra = ["--runs", str(work / "runs")] if command == "run" else []
    status = main([command, str(path), *extra])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    err = captured.err
    assert err.count("\n") == 1, err
    assert err.startswith(f"selcopy: error: {path}: ")
    for part in expected:
        assert part in err
    assert list(work.iterdir()) == []  # no runs folder, nothing executed by a filter (no PWNED)


def test_syntax_error_names_the_line(capsys, tmp_path):
    path = FILES / "syntax_error.yml"
    assert main(["run", str(path), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "YAML syntax error at line" in err
    assert not (tmp_path / "runs").exists()


# --- run ----------------------------------------------------------------------------------------


@pytest.fixture
def tiny_runs(tmp_path, capsys) -> tuple[Path, str]:
    """The tiny grid, trained once into tmp_path/runs; (runs folder, what `run --table` printed)."""
    runs = tmp_path / "runs"
    status, out, err = run(capsys, str(TINY), "--runs", str(runs), "--table")
    assert status == 0, err
    return runs, out


def test_run_writes_every_file_of_a_run_folder(tiny_runs):
    runs, _ = tiny_runs
    assert sorted(p.name for p in (runs / "tiny").iterdir()) == [".trial-1.lock", ".trial-2.lock", "trial-1", "trial-2"]
    for spec in load_experiment(TINY).runs:
        folder = runs / spec.name
        assert yaml.safe_load((folder / "config.yaml").read_text()) == spec.config_dict()
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [r["inputs"] for r in rows] == [640, 1280]
        for r in rows:
            for key in ("validation_loss", "validation_sample_error%", "validation_mask_error%", "train_loss",
                        "model_params", "train_time", "throughput"):
                assert key in r
        result = json.loads((folder / "result.json").read_text())
        assert result["status"] == "finished" and result["run"] == spec.name
        assert result["variables"] == spec.variables
        assert result["metrics"] == rows[-1]
        assert result["metrics"]["model_params"] == spec.params()
        assert result["best"]["inputs"] in (640, 1280)
        assert result["device"] == "cpu" and result["threads"] == 1
        assert result["precision"] == {"training": spec.train["precision"], "measurement": "float32"}
        assert result["denormals"] == "flushed to zero"
        assert result["processor"] == processor(torch.device("cpu"))  # the CPU's model name, on Linux

        events = list((folder / "tensorboard").glob("events.out.tfevents*"))
        assert len(events) == 1 and events[0].stat().st_size > 0
        assert_tensorboard_scalars(folder / "tensorboard", "validation_sample_error%", [640, 1280])

        for name in ("latest.pt", "best.pt", "previous.pt"):
            assert (folder / "checkpoints" / name).is_file()
        state = checkpoint.load(folder / "checkpoints" / "latest.pt")
        assert state["inputs"] == 1280 and state["seed"] == spec.seed
        assert checkpoint.load(folder / "checkpoints" / "previous.pt")["inputs"] == 640

        png = folder / "examples" / "validation-latest.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as image:
            assert image.width > 0 and image.height > 0
        best = folder / "examples" / "validation-best.png"
        assert best.is_file() and sorted(p.name for p in (folder / "examples").iterdir()) == [best.name, png.name]
        assert (best.read_bytes() == png.read_bytes()) == (result["best"]["inputs"] == 1280)
        assert state["threads"] == 1 and state["flush_denormal"] is True  # what a resumed run keeps
        assert not list(folder.rglob(".*.tmp-*"))  # no leftovers of atomic writes


def assert_tensorboard_scalars(folder: Path, tag: str, steps: list[int]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    assert [e.step for e in events.Scalars(tag)] == steps


def test_run_table_prints_the_results(tiny_runs):
    _, out = tiny_runs
    lines = out.strip().splitlines()
    assert lines[0].startswith("| trials |") and "validation_sample_error%" in lines[0]
    assert len(lines) == 3 and lines[2].split("|")[1].strip() == "2"


def test_jobs_side_by_side_end_as_one_at_a_time(capfd, tmp_path):
    """--jobs 2: each run in a process of its own, the same numbers as the runs trained one after
    the other (same threads), one log line per validation instead of progress bars (capfd: the jobs write to the
    process's stderr, not to sys.stderr)."""
    runs, side = tmp_path / "runs", tmp_path / "side"
    assert run(capfd, str(TINY), "--runs", str(runs))[0] == 0
    status, _, err = run(capfd, str(TINY), "--runs", str(side), "--jobs", "2")
    assert status == 0, err
    assert "2 runs on cpu, 2 at a time with 1 thread each" in err
    for trial in (1, 2):
        assert f"[{trial}/2] tiny/trial-{trial}: started" in err
        assert f"[{trial}/2] tiny/trial-{trial}: 640 of 1,280 inputs, validation sample error" in err
        one, two = (json.loads((r / f"tiny/trial-{trial}/result.json").read_text()) for r in (runs, side))
        assert without_times(two["metrics"]) == without_times(one["metrics"])

    # finished runs are skipped without a process
    status, _, err = run(capfd, str(TINY), "--runs", str(side), "--jobs", "2", "--skip-existing")
    assert status == 0 and err.count("finished before, skipped") == 2 and "started" not in err

    # a job that fails is counted; the other still trains
    config = side / "tiny" / "trial-2" / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.0005", "lr: 0.001"))
    status, _, err = run(capfd, str(TINY), "--runs", str(side), "--jobs", "2")
    assert status == 1 and "[2/2] tiny/trial-2: failed:" in err and "holds other settings" in err
    assert err.strip().splitlines()[-1] == "1 of 2 runs failed: tiny/trial-2"
    assert json.loads((side / "tiny/trial-1/result.json").read_text())["status"] == "finished"


def test_a_run_another_process_works_on_is_refused(capsys, tmp_path):
    """Each run holds a lock while it trains; a second command on it fails that run, not the others."""
    from selcopy.experiments.store import RunStore

    runs = tmp_path / "runs"
    with RunStore(runs, "tiny/trial-2").lock():
        status, _, err = run(capsys, str(TINY), "--runs", str(runs))
    assert status == 1
    assert f"[2/2] tiny/trial-2: failed: {runs / 'tiny' / 'trial-2'}: another selcopy process is working" in err
    assert json.loads((runs / "tiny/trial-1/result.json").read_text())["status"] == "finished"
    assert not (runs / "tiny" / "trial-2").exists()

    # a run to skip needs no lock: it is skipped though busy, and the other trains
    with RunStore(runs, "tiny/trial-1").lock():
        status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--skip-existing")
    assert status == 0 and "[1/2] tiny/trial-1: finished before, skipped" in err, err
    assert json.loads((runs / "tiny/trial-2/result.json").read_text())["status"] == "finished"


def test_a_run_whose_lock_cannot_be_taken_is_not_trained(capsys, tmp_path):
    runs = tmp_path / "runs"
    lock = runs / "tiny" / ".trial-1.lock"
    lock.mkdir(parents=True)  # no lock file can be opened there
    status, _, err = run(capsys, str(TINY), "--runs", str(runs))
    assert status == 1, err
    failed = [line for line in err.splitlines() if "tiny/trial-1: failed" in line]
    assert failed == [f"[1/2] tiny/trial-1: failed: {lock}: cannot open the run's lock: Is a directory; "
                      "the run is not trained without it"]
    assert not (runs / "tiny" / "trial-1").exists()  # nothing trained or written
    assert json.loads((runs / "tiny/trial-2/result.json").read_text())["status"] == "finished"


def test_run_says_when_bf16_is_emulated_on_this_cpu(capsys, tmp_path, monkeypatch):
    from selcopy.cli import emulated_bf16_note
    from selcopy.train import device

    bf16 = tmp_path / "tiny_bf16.yml"
    bf16.write_text(TINY.read_text().replace("validate_every: 640}", "validate_every: 640, precision: bfloat16}"))
    monkeypatch.setattr(device, "cpu_has_bf16_kernels", lambda: False)  # an AVX2-only CPU
    status, _, err = run(capsys, str(bf16), "--runs", str(tmp_path / "runs"), "--where", "${trial} == 1")
    assert status == 0, err
    lines = err.splitlines()
    warned = [i for i, line in enumerate(lines) if line.startswith("selcopy: warning:")]
    assert len(warned) == 1, err
    assert lines[warned[0]].startswith("selcopy: warning: 1 run of this file trains in bfloat16, for which this CPU")
    assert "has no fast kernels" in lines[warned[0]] and "precision: float32" in lines[warned[0]]
    assert warned[0] < min(i for i, line in enumerate(lines) if "tiny/trial-1" in line)  # before training
    cpu = torch.device("cpu")
    assert emulated_bf16_note(load_experiment(bf16).runs, cpu).startswith("2 runs of this file train in bfloat16")
    assert emulated_bf16_note(load_experiment(TINY).runs, cpu) is None  # float32
    lstm = tmp_path / "lstm_bf16.yml"  # refused with its own reason when it starts (bf16_refusal), not warned about
    lstm.write_text(bf16.read_text().replace("model: {name: conv, layers: 2, channels: 8, kernel_size: 3}",
                                             "model: {name: lstm}"))
    assert emulated_bf16_note(load_experiment(lstm).runs, cpu) is None
    assert emulated_bf16_note(load_experiment(bf16).runs, torch.device("meta")) is None  # not a CPU
    monkeypatch.setattr(device, "cpu_has_bf16_kernels", lambda: True)
    assert emulated_bf16_note(load_experiment(bf16).runs, cpu) is None


def test_trials_differ_but_share_the_validation_set(tiny_runs):
    runs, _ = tiny_runs
    one = json.loads((runs / "tiny/trial-1/result.json").read_text())["metrics"]
    two = json.loads((runs / "tiny/trial-2/result.json").read_text())["metrics"]
    assert one["train_loss"] != two["train_loss"]  # other seed: other weights and data


def test_skip_existing_rerun_backup_and_refused_config(capsys, tiny_runs):
    runs, _ = tiny_runs
    one, two = runs / "tiny" / "trial-1", runs / "tiny" / "trial-2"
    before = {folder: snapshot(folder) for folder in (one, two)}

    # --skip-existing: nothing is trained or written again
    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--skip-existing")
    assert status == 0, err
    assert err.count("finished before, skipped") == 2
    assert {folder: snapshot(folder) for folder in (one, two)} == before

    # without it, a finished run is moved aside, never overwritten; the retrained run is the same
    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--where", "${trial} == 1")
    assert status == 0, err
    assert "previous results moved to" in err and "trial-1.prev-1" in err
    backup = runs / "tiny" / "trial-1.prev-1"
    assert snapshot(backup) == before[one]
    old = json.loads((backup / "result.json").read_text())
    new = json.loads((one / "result.json").read_text())
    assert new["status"] == "finished"
    assert without_times(new["metrics"]) == without_times(old["metrics"])
    assert snapshot(two) == before[two]

    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--where", "${trial} == 1")
    assert status == 0, err
    assert (runs / "tiny" / "trial-1.prev-2" / "result.json").is_file()
    assert sorted(p.name for p in (runs / "tiny").iterdir()) == [
        ".trial-1.lock", ".trial-2.lock", "trial-1", "trial-1.prev-1", "trial-1.prev-2", "trial-2"
    ]

    # a folder whose config.yaml holds other settings is refused and left as it is
    config = yaml.safe_load((two / "config.yaml").read_text())
    config["train"]["lr"] = 0.001
    (two / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    edited = snapshot(two)
    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--where", "${trial} == 2")
    assert status == 1
    assert "holds other settings" in err and str(two / "config.yaml") in err
    assert snapshot(two) == edited
    assert not (runs / "tiny" / "trial-2.prev-1").exists()


def folder_of_other_settings(runs: Path, section: str, key: str, value: object) -> Path:
    """tiny/trial-1's folder as written for other settings (`section.key` = value): its config only."""
    spec = load_experiment(TINY).runs[0]
    config = spec.config_dict()
    config[section][key] = value
    folder = runs / spec.name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def test_refused_unfinished_run_is_left_untouched(capsys, tmp_path):
    """An interrupted run (no result.json) whose settings changed is refused, not resumed or overwritten."""
    runs = tmp_path / "runs"
    folder = folder_of_other_settings(runs, "model", "channels", 16)
    (folder / "metrics.jsonl").write_text('{"inputs": 640}\n')
    before = snapshot(folder)
    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--where", "${trial} == 1")
    assert status == 1 and "holds other settings" in err
    assert snapshot(folder) == before


def test_run_refuses_settings_that_cannot_be_drawn_before_anything_trains(capsys, tmp_path):
    runs = tmp_path / "runs"
    status, _, err = run(capsys, str(FAILING), "--runs", str(runs))
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"selcopy: error: {FAILING}: run failing/n-3: ")
    assert "distinct questions" in err
    assert not runs.exists()


class PositionsConfig(ModelConfig):
    """A test-only model that cannot take long texts: learned positions for `positions` bytes."""

    name: ClassVar[str] = "positions"
    description: ClassVar[str] = "test only: byte embedding plus learned positions"
    positions: int = Field(8, description="the longest text it takes")

    def build(self, shape: TaskShape) -> nn.Module:
        return PositionsModel(self.positions, shape.vocab)


class PositionsModel(nn.Module):
    def __init__(self, positions: int, vocab: int):
        super().__init__()
        self.embed, self.position = ByteEmbedding(4, vocab), nn.Embedding(positions, 4)

    def forward(self, ids):
        h = self.embed(ids) + self.position(torch.arange(ids.shape[1]))  # (B, L, C); L > positions: IndexError
        return self.embed.read_out(h)


@pytest.mark.parametrize("command", ["show", "run"])
def test_a_model_that_cannot_take_the_tasks_length_fails_before_training(capsys, tmp_path, monkeypatch, command):
    monkeypatch.setitem(MODELS._entries, "positions", PositionsConfig)
    path = tmp_path / "short.yml"  # the program texts are up to 3 + 1 + 3 + 1 + 3 = 11 bytes long
    task = TASK.replace("}\n", ", train_count: 2000, validation_count: 200}\n")
    model = 'model: {name: positions, positions: "${p}"}\n'
    path.write_text(f"name: short\nmatrix: {{p: [16, 8]}}\n{task}{TRAIN}{model}")
    runs = tmp_path / "runs"
    if command == "run":
        status, _, err = run(capsys, str(path), "--runs", str(runs))
    else:
        status, err = main(["show", str(path)]), capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"selcopy: error: {path}: run short/p-8: model 'positions' cannot take this task's texts "
                          "of up to 11 bytes: ")
    assert not runs.exists()
    assert main(["show", str(path), "--where", "${p} == 16"]) == 0  # the run it can take


def test_failing_run_is_recorded_and_the_others_go_on(capsys, tmp_path, monkeypatch):
    """A run that fails only once it trains (here: the data check before training is skipped)."""
    monkeypatch.setattr("selcopy.experiments.grid.Experiment.check_data", lambda exp: None)
    runs = tmp_path / "runs"
    status, _, err = run(capsys, str(FAILING), "--runs", str(runs))
    assert status == 1
    failed = json.loads((runs / "failing" / "n-3" / "result.json").read_text())
    assert failed["status"] == "failed" and failed["run"] == "failing/n-3"
    assert "distinct questions" in failed["error"] and failed["traceback"]
    finished = json.loads((runs / "failing" / "n-26" / "result.json").read_text())
    assert finished["status"] == "finished"
    assert [json.loads(line)["inputs"] for line in (runs / "failing/n-26/metrics.jsonl").open()] == [320, 640]
    assert "[1/2] failing/n-3: failed: SelcopyError" in err
    assert err.strip().splitlines()[-1] == "1 of 2 runs failed: failing/n-3"

    # the table leaves the failed run out, and says so
    assert main(["results", str(FAILING), "--runs", str(runs), "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert len(rows) == 1 and rows[0]["validation_sample_error%"] == finished["metrics"]["validation_sample_error%"]
    assert "(1 of 2 runs not finished, left out)" in captured.err

    # --skip-existing tries the failed run again (it fails again) and leaves the finished one
    status, _, err = run(capsys, str(FAILING), "--runs", str(runs), "--skip-existing")
    assert status == 1
    assert "failing/n-26: finished before, skipped" in err
    assert json.loads((runs / "failing" / "n-3" / "result.json").read_text())["status"] == "failed"
    assert not (runs / "failing" / "n-26.prev-1").exists()


def test_runs_of_other_settings_are_not_reported_plotted_or_skipped(capsys, tiny_runs, tmp_path):
    """After the file is edited, its stored runs are none of its results: results, plot and
    run --skip-existing refuse them instead of showing or keeping them as the new settings'."""
    runs, _ = tiny_runs
    edited = tmp_path / "tiny.yml"  # same name and run names, a longer training
    edited.write_text(TINY.read_text().replace("max_inputs: 1280", "max_inputs: 1920"))
    before = snapshot(runs)
    for command in (["results", str(edited)], ["plot", str(edited), "--out", str(tmp_path / "c.png")]):
        assert main([*command, "--runs", str(runs)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"{runs / 'tiny' / 'trial-1' / 'config.yaml'} holds other settings (and 1 more such folders)" in err
    assert not (tmp_path / "c.png").exists()
    status, _, err = run(capsys, str(edited), "--runs", str(runs), "--skip-existing")
    assert status == 1 and err.count("holds other settings") == 2 and "skipped" not in err
    assert snapshot(runs) == before


def test_a_setting_added_since_a_run_counts_with_its_default(capsys, tiny_runs):
    runs, _ = tiny_runs
    config = runs / "tiny" / "trial-1" / "config.yaml"
    older = yaml.safe_load(config.read_text())
    del older["model"]["position_embedding"]  # as a version before that setting wrote it
    config.write_text(yaml.safe_dump(older, sort_keys=False))
    assert main(["results", str(TINY), "--runs", str(runs)]) == 0
    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--skip-existing")
    assert status == 0 and err.count("finished before, skipped") == 2


def test_a_trained_folder_without_its_config_is_not_taken_for_the_run(capsys, tiny_runs):
    runs, _ = tiny_runs
    folder = runs / "tiny" / "trial-1"
    (folder / "config.yaml").unlink()
    (folder / "result.json").unlink()  # an interrupted run, whose checkpoint resume would pick up
    before = snapshot(folder)
    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--skip-existing")
    assert status == 1 and f"{folder} has results but no config.yaml" in err and "resuming" not in err
    assert snapshot(folder) == before
    assert main(["results", str(TINY), "--runs", str(runs), "--unfinished"]) == 2
    assert f"{folder} has results but no config.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("logged", [False, True], ids=["failed-at-start", "failed-at-first-step"])
def test_a_folder_of_other_settings_without_training_is_set_aside(capsys, tmp_path, logged):
    """What a run that failed before it trained leaves (config, result, maybe an empty metrics log)
    does not block the fixed file."""
    runs = tmp_path / "runs"
    folder = folder_of_other_settings(runs, "task", "validation_count", 100_000)
    (folder / "result.json").write_text(json.dumps({"status": "failed", "run": "tiny/trial-1", "error": "too few"}))
    if logged:  # what the trainer leaves when it fails on its first step
        (folder / "metrics.jsonl").write_text("")
    before = snapshot(folder)
    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--where", "${trial} == 1")
    assert status == 0, err
    assert "held other settings and no training; moved to" in err
    assert snapshot(runs / "tiny" / "trial-1.prev-1") == before
    assert json.loads((folder / "result.json").read_text())["status"] == "finished"


def test_interrupt_says_how_to_resume(capsys, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("selcopy.experiments.runner.train_run", interrupted)
    status, out, err = run(capsys, str(TINY), "--runs", str(tmp_path / "runs"))
    assert status == 130 and not out
    last = err.strip().splitlines()[-1]
    again = f"selcopy run {TINY} --runs {tmp_path / 'runs'} --threads 1 --device cpu --skip-existing"
    assert last.startswith(f"selcopy: interrupted; `{again}` resumes where it stopped")
    assert "Traceback" not in err


def test_file_system_refusals_are_one_line(capsys, tmp_path, monkeypatch, tiny_runs):
    runs, _ = tiny_runs
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    status, _, err = run(capsys, str(TINY), "--runs", str(a_file))
    assert status == 2 and err == f"selcopy: error: --runs {a_file}: is a file, not a folder\n"

    for out, says in ((tmp_path, "is a folder"), (a_file / "c.png", str(a_file))):
        assert main(["plot", str(TINY), "--runs", str(runs), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("selcopy: error: ") and says in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "runs"]  # no half-written PNG

    # a run folder the system will not move aside: that run fails in one line, the others go on
    def refused(self):
        raise PermissionError(13, "Permission denied", str(self.folder))

    monkeypatch.setattr("selcopy.experiments.store.RunStore.backup", refused)
    before = snapshot(runs)
    status, _, err = run(capsys, str(TINY), "--runs", str(runs))
    assert status == 1 and "Traceback" not in err
    assert err.count("failed: PermissionError: [Errno 13] Permission denied") == 2
    assert snapshot(runs) == before  # the finished results stay as they were


def test_average_over_an_unknown_variable_is_refused(capsys, tiny_runs):
    runs, _ = tiny_runs
    assert main(["results", str(TINY), "--runs", str(runs), "--average", "trail"]) == 2
    assert capsys.readouterr().err == (f"selcopy: error: --average trail: not a matrix variable of {TINY}; "
                                       "did you mean trial? matrix variables: trial\n")


# --- eval ---------------------------------------------------------------------------------------


def eval_json(capsys, *args: str) -> dict:
    status = main(["eval", *args, "--json", "--device", "cpu"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def test_eval_of_the_latest_checkpoint_equals_the_last_validation(tiny_runs, capsys):
    runs, _ = tiny_runs
    folder = runs / "tiny" / "trial-1"
    report = eval_json(capsys, str(folder), "--checkpoint", "latest")
    logged = json.loads((folder / "result.json").read_text())["metrics"]
    assert report["inputs"] == 1280 and report["samples"] == 200 and report["run"] == "tiny/trial-1"
    for key, value in report["metrics"].items():
        assert value == pytest.approx(logged["validation_" + key], rel=1e-6), key
    best = json.loads((folder / "result.json").read_text())["best"]
    assert eval_json(capsys, str(folder))["inputs"] == best["inputs"]  # best.pt by default
    assert report["precision"] == "float32"


def test_eval_measures_in_bfloat16_when_asked(tiny_runs, capsys):
    runs, _ = tiny_runs
    folder = runs / "tiny" / "trial-1"
    float32 = eval_json(capsys, str(folder), "--checkpoint", "latest")
    bf16 = eval_json(capsys, str(folder), "--checkpoint", "latest", "--precision", "bfloat16")
    assert bf16["precision"] == "bfloat16" and bf16["samples"] == float32["samples"] == 200
    assert bf16["metrics"]["loss"] != float32["metrics"]["loss"]  # the model ran in bf16: other logits
    assert bf16["metrics"]["loss"] == pytest.approx(float32["metrics"]["loss"], rel=0.05)  # the same model
    assert main(["eval", str(folder), "--precision", "bfloat16", "--device", "cpu"]) == 0
    assert "measured in bfloat16" in capsys.readouterr().out


def test_eval_on_longer_programs(tiny_runs, capsys):
    runs, _ = tiny_runs
    report = eval_json(capsys, str(runs / "tiny" / "trial-2"), "--num-operations", "2,3", "--count", "300")
    assert report["samples"] == 300 and report["task"]["num_operations"] == [2, 3]
    assert {k for k in report["metrics"] if "_ops" in k} == {"sample_error%_ops2", "sample_error%_ops3"}
    status = main(["eval", str(runs / "tiny" / "trial-2"), "--num-operations", "2,3", "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 0 and "--num-operations 2,3" in out and "sample_error%_ops3" in out


@pytest.mark.parametrize(
    "damage, args, message",
    [
        ("none", ["--num-operation", "3"], "unknown option '--num-operation'"),
        ("none", ["--num-operations", "3,2"], "num_operations"),
        ("corrupt", [], "checksum mismatch"),
        ("no-folder", [], "not a run folder"),
    ],
)
def test_eval_bad_input_exits_2_with_one_line(tiny_runs, capsys, damage, args, message):
    runs, _ = tiny_runs
    folder = runs / "tiny" / "trial-1"
    if damage == "corrupt":
        best = folder / "checkpoints" / "best.pt"
        best.write_bytes(best.read_bytes()[:-10])
    if damage == "no-folder":
        folder = runs / "tiny" / "nothing"
    before = snapshot(runs)
    status = main(["eval", str(folder), *args, "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err
    assert snapshot(runs) == before


def test_eval_of_a_runs_test_set_and_of_a_new_draw(tmp_path, capsys):
    grid = tmp_path / "t.yml"
    grid.write_text(TINY.read_text().replace("validation_count: 200}", "validation_count: 200, test_num_operations: 2,"
                                             " test_count: 150}"))
    runs = tmp_path / "runs"
    assert run(capsys, str(grid), "--runs", str(runs))[0] == 0
    folder = runs / "tiny" / "trial-1"
    logged = json.loads((folder / "result.json").read_text())["metrics"]
    report = eval_json(capsys, str(folder), "--checkpoint", "latest", "--data", "test")
    assert report["samples"] == 150 and report["data"] == "the run's test set"
    assert report["metrics"]["sample_error%"] == pytest.approx(logged["test_sample_error%"], rel=1e-6)
    drawn = eval_json(capsys, str(folder), "--count", "50")
    assert drawn["samples"] == 50 and drawn["data"] == "drawn from seed 23"


def test_eval_refuses_what_does_not_fit(tiny_runs, capsys, tmp_path):
    runs, _ = tiny_runs
    folder = runs / "tiny" / "trial-1"
    assert main(["eval", str(folder), "--data", "test", "--device", "cpu"]) == 2
    assert "defines no test set" in capsys.readouterr().err
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("channels: 8", "channels: 16"))
    assert main(["eval", str(folder), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit the model of" in err
    config.write_bytes(b"\xff\xfe name: x")
    assert main(["eval", str(folder), "--device", "cpu"]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_eval_reads_a_config_within_the_bounds(capsys, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (folder / "config.yaml").write_text("\n".join(lines) + "\n")
    assert main(["eval", str(folder), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be read: line 5: aliases expand to more than" in err


def test_a_checkpoint_that_is_no_training_state(tiny_runs, capsys):
    """Checksum-valid but without the fields of a training state: eval says so in one line, and
    a resumed run falls back to the previous checkpoint instead of failing on every rerun."""
    runs, _ = tiny_runs
    folder = runs / "tiny" / "trial-1"
    latest = folder / "checkpoints" / "latest.pt"
    state = checkpoint.load(latest)
    del state["model"]
    checkpoint.save(latest, state)
    assert main(["eval", str(folder), "--checkpoint", "latest", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == f"selcopy: error: {latest}: not a training state: no 'model'\n"

    (folder / "result.json").unlink()
    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--skip-existing", "--where", "${trial} == 1")
    assert status == 0, err
    assert f"skipping checkpoint: {latest}: not a training state: no 'model'" in err
    assert "resuming at 640 inputs" in err
    assert [json.loads(line)["inputs"] for line in (folder / "metrics.jsonl").read_text().splitlines()] == [640, 1280]


def test_a_damaged_metrics_log_keeps_its_later_rows(tiny_runs, capsys, tmp_path):
    runs, _ = tiny_runs
    folder = runs / "tiny" / "trial-1"
    log = folder / "metrics.jsonl"
    first, second = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(first + b"garbage\n[1]\n\xff\xfe\n" + second)
    assert main(["plot", str(TINY), "--runs", str(runs), "--out", str(tmp_path / "p.png")]) == 0
    err = capsys.readouterr().err
    assert err == f"selcopy: warning: {log}: lines 2, 3, 4 not a metrics row (damaged?), left out; 2 good rows kept\n"

    (folder / "result.json").unlink()
    status, _, err = run(capsys, str(TINY), "--runs", str(runs), "--skip-existing", "--where", "${trial} == 1")
    assert status == 0, err
    assert "resuming at 1,280 inputs" in err and "the log as it was is kept as metrics.jsonl.bad-1" in err
    assert log.read_bytes() == first + second
    assert json.loads((folder / "result.json").read_text())["metrics"]["inputs"] == 1280


@pytest.mark.parametrize("first", ["outer", "inner"])
def test_experiments_whose_folders_would_nest_are_kept_apart(capsys, tmp_path, first):
    """`nest` (no matrix: runs/nest/run) and `nest/run` (runs/nest/run/trial-1): whichever trains
    second is refused in one line, and the first keeps its results, rerun or not."""
    text = TINY.read_text()
    inner = tmp_path / "inner.yml"
    inner.write_text(text.replace("name: tiny", "name: nest/run"))
    outer = tmp_path / "outer.yml"
    outer.write_text(text.replace("name: tiny", "name: nest").replace("matrix:\n  trial: [1, 2]\n", ""))
    files = {"outer": outer, "inner": inner}
    second = "inner" if first == "outer" else "outer"
    runs = tmp_path / "runs"
    where = "True" if first == "outer" else "${trial} == 1"
    status, _, err = run(capsys, str(files[first]), "--runs", str(runs), "--where", where)
    assert status == 0, err
    before = {k: v for k, v in snapshot(runs).items() if not k.endswith(".lock")}
    status, _, err = run(capsys, str(files[second]), "--runs", str(runs))
    assert status == 1
    failed = [line for line in err.splitlines() if ": failed: " in line]
    assert failed and all("experiments' folders must not nest" in line for line in failed)
    assert {k: v for k, v in snapshot(runs).items() if not k.endswith(".lock")} == before  # nothing moved or written
    status, _, err = run(capsys, str(files[first]), "--runs", str(runs), "--skip-existing")
    assert status == 0 and "finished before, skipped" in err, err
    assert main(["results", str(files[first]), "--runs", str(runs)]) == 0


def test_names_with_control_characters_are_refused_in_one_line(capsys, tiny_runs, tmp_path, monkeypatch):
    runs, _ = tiny_runs
    for name in ("a\nb.png", "a\x00b.png", "a\rb.png"):
        out = tmp_path / name
        assert main(["plot", str(TINY), "--runs", str(runs), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == (f"selcopy: error: the plot's file name {str(out)!r} holds a control character (a line break, "
                       "tab, NUL); give another with --out\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written

    named = tmp_path / "named.yml"  # the experiment's name is the default plot's name
    named.write_text(TINY.read_text().replace("name: tiny", 'name: "tiny\\nx"'))
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(named), "--runs", str(runs)]) == 2
    assert capsys.readouterr().err == f"selcopy: error: {named}: name: 'tiny\\nx' holds a control character (a line " \
                                      "break, tab, NUL)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["named.yml", "runs"]


def test_a_value_with_a_line_break_in_a_message_stays_on_one_line(capsys, tiny_runs):
    runs, _ = tiny_runs
    assert main(["plot", str(TINY), "--runs", str(runs), "--metric", "a\nb"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("selcopy: error: --metric a\\nb: no run logged this metric")


def test_plot_draws_the_runs_of_several_files_in_one_figure(capsys, tiny_runs, tmp_path, monkeypatch):
    runs, _ = tiny_runs
    other = tmp_path / "other.yml"
    other.write_text(TINY.read_text().replace("name: tiny", "name: other/tiny"))
    status, _, err = run(capsys, str(other), "--runs", str(runs), "--where", "${trial} == 1")
    assert status == 0, err
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(TINY), str(other), "--runs", str(runs), "--group-by", "experiment"]) == 0
    assert capsys.readouterr().out == "tiny-vs-other-tiny.png\n"  # the default name joins the experiments'
    assert (tmp_path / "tiny-vs-other-tiny.png").stat().st_size > 0
    out = tmp_path / "one-where.png"  # a single --where applies to every file
    assert main(["plot", str(TINY), str(other), "--runs", str(runs), "--where", "${trial} == 1",
                 "--out", str(out)]) == 0
    assert main(["plot", str(TINY), str(other), "--runs", str(runs), "--where", "${trial} == 2", "--where", "",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    refused = {
        ("--where", "1", "--where", "2", "--where", "3"): "--where given 3 times for 2 files: give it once",
        ("--where", "${trial} == 2"): f"{other}: no run has logged metrics under {runs}/ yet",
        ("--where", "", "--where", "${trial} == 3"): f"{other}: --where '${{trial}} == 3' selects none of its 2 runs",
    }
    for flags, message in refused.items():
        assert main(["plot", str(TINY), str(other), "--runs", str(runs), *flags, "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert main(["plot", str(TINY), str(TINY), "--runs", str(runs), "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err == (f"selcopy: error: {TINY}: experiment 'tiny' again (as {TINY}); to compare "
                                       "parts of one grid, plot it once with --group-by\n")
    assert main(["plot", str(TINY), "--where", "${trial} == 1", str(other), "--runs", str(runs)]) == 2
    assert capsys.readouterr().err == (f"selcopy: error: {other}: a file after a flag; give every file first, then "
                                       "the flags (e.g. plot A.yml B.yml --where X --where Y)\n")
    assert main(["plot", str(TINY), "--runs", str(runs), "--bogus"]) == 2
    assert capsys.readouterr().err == "selcopy: error: unrecognized arguments: --bogus\n"
    assert main(["plot", str(TINY), "--runs", str(runs), "--where", "True", "--where", "True"]) == 2  # one file
    assert "--where given 2 times for 1 file" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists() and sorted(p.name for p in tmp_path.glob("*.png")) == [
        "one-where.png", "tiny-vs-other-tiny.png"]
