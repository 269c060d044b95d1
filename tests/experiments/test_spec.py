"""RunSpec: resolved settings, the seed, the builders, and the config.yaml round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from selcopy.errors import ConfigError
from selcopy.experiments import RunSpec, load_experiment
from selcopy.experiments.spec import resolve_task
from selcopy.models import MODELS, TaskShape, count_parameters
from selcopy.tasks import make_task
from selcopy.tasks.program import ProgramConfig
from selcopy.train.config import TrainConfig

FILES = Path(__file__).parent / "files"

pytest.importorskip("selcopy.models")  # every RunSpec resolves its model


def spec(task=None, model=None, train=None, variables=None, name="exp/run") -> RunSpec:
    sections = {"task": task, "model": model, "train": train}
    return RunSpec.resolve(name, name.rsplit("/", 1)[0], variables or {}, sections, "exp.yml")


def through_yaml(data):
    return yaml.safe_load(yaml.safe_dump(data, sort_keys=False))


def test_defaults_are_filled_in():
    run = spec()
    assert run.task == {
        "name": "program",
        **ProgramConfig().model_dump(mode="json"),
        "train_count": 100_000,
        "validation_count": 10_000,
        "validation_seed": 23,
    }
    assert run.task["input_length"] == [2, 5]  # ranges as [lo, hi] lists
    assert run.model["name"] == "conv" and run.model["layers"] == 6 and run.model["channels"] == 64
    assert run.train == TrainConfig().model_dump(mode="json")
    assert run.train_config() == TrainConfig()


def test_config_dict_shape():
    run = spec(task={"validation_num_operations": 5}, variables={"trial": 2})
    data = run.config_dict()
    assert list(data) == ["name", "variables", "task", "model", "train"]
    assert data["name"] == "exp/run" and data["variables"] == {"trial": 2}
    assert list(data["task"])[-1] == "validation_num_operations"
    data["task"]["num_items"] = 3
    assert run.task["num_items"] == 26  # a copy: the spec stays as it was


def all_runs() -> list[RunSpec]:
    runs = load_experiment(FILES / "attn_last.yml").runs + load_experiment(FILES / "single.yml").runs
    runs.append(spec(model={"name": "mamba", "d_model": 32}, train={"loss": "sequence", "lr": 1e-3}))
    runs.append(spec(model={"name": "transformer"}, task={"name": "selective-copy", "num_items": [2, 6]}))
    runs.append(spec(model={"dilation": [1, 2, 3, 4, 5, 1], "attention": [0, 0, 0, 4, True, False]}))
    return runs


@pytest.mark.parametrize("run", all_runs(), ids=lambda run: run.name)
def test_round_trip_through_yaml(run):
    stored = through_yaml(run.config_dict())
    assert stored == run.config_dict()  # what the runner compares with the stored config
    again = RunSpec.from_config_dict(stored)
    assert again == run
    assert again.seed == run.seed and again.experiment == run.experiment


def test_round_trip_keeps_booleans_in_attention():
    run = load_experiment(FILES / "attn_last.yml").runs[0]
    again = RunSpec.from_config_dict(through_yaml(run.config_dict()))
    assert again.model["attention"][-1] is True and again.variables["attn"][-1] is True


def test_resolution_is_idempotent():
    once = resolve_task({"name": "program", "num_operations": 5, "validation_input_length": [3, 4]}, "w")
    assert resolve_task(once, "w") == once


def test_from_config_dict_validates():
    good = spec().config_dict()
    with pytest.raises(ConfigError, match=r"^run config: extra: unknown setting"):
        RunSpec.from_config_dict({**good, "extra": 1})
    with pytest.raises(ConfigError, match=r"run exp/run: model.layers: Input should be greater than 0"):
        RunSpec.from_config_dict({**good, "model": {**good["model"], "layers": 0}})
    with pytest.raises(ConfigError, match=r"^stored: name: expected the run's name"):
        RunSpec.from_config_dict({**good, "name": 5}, where="stored")
    with pytest.raises(ConfigError, match=r"variables.trial: trials must be integers"):
        RunSpec.from_config_dict({**good, "variables": {"trial": -1}})


def test_seed_formula():
    assert spec().seed == 0
    assert spec(variables={"trial": 3}).seed == 3
    assert spec(train={"seed": 2}, variables={"trial": 3}).seed == 2_000_003
    assert spec(train={"seed": 1}).seed != spec(variables={"trial": 1}).seed


def test_model_weights_depend_on_the_trial_only():
    settings = {"layers": 2, "channels": 8}
    first = spec(model=settings, variables={"trial": 1}).build_model()
    same = spec(model=settings, variables={"trial": 1}, name="other/run").build_model()
    other = spec(model=settings, variables={"trial": 2}).build_model()
    weights = [torch.cat([p.flatten() for p in m.parameters()]) for m in (first, same, other)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_build_model_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    spec(model={"layers": 1, "channels": 8}).build_model()
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize(
    "model, count",
    [
        ({}, 237_952),
        ({"layers": 3, "kernel_size": 13, "attention": [0, 0, True]}, 229_632),
        ({"layers": 3, "kernel_size": 13, "attention": [0, 0, 8]}, 246_272),
        ({"name": "lstm"}, 216_064),
        ({"name": "mamba", "d_model": 32, "layers": 6, "d_state": 16, "expand": 2, "d_conv": 4}, 67_936),
    ],
)
def test_params(model, count):
    run = spec(model=model)
    assert run.params() == count
    built = run.build_model()
    assert count == sum(p.numel() for p in built.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list(MODELS))
def test_params_shown_are_those_of_the_built_model(name):
    """`selcopy show` prints `params()`, counted on the meta device."""
    run = spec(model={"name": name})
    assert run.params() == count_parameters(run.build_model())


def test_task_shape_is_the_longest_text_of_any_part_and_the_bytes():
    run = spec(task={"num_operations": [1, 2], "validation_num_operations": 4, "test_num_operations": 6})
    longest = make_task("program", {"num_operations": 6}).max_length()
    assert run.task_shape() == TaskShape(max_length=longest, vocab=256)
    assert spec(task={"num_operations": [1, 2]}).task_shape().max_length < longest


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_takes_its_tasks_longest_text(name):
    spec(model={"name": name}, task={"name": "selective-copy"}).check_model()  # raises if not


def test_task_settings_and_split():
    task = {
        "input_length": 5,
        "num_operations": [1, 2],
        "operators": {">": 1},
        "validation_num_operations": 4,
        "train_count": 64,
        "validation_count": 48,
        "validation_seed": 5,
    }
    run = spec(task=task, variables={"trial": 1})
    name, train_settings = run.task_settings("train")
    _, validation_settings = run.task_settings("validation")
    assert name == "program"
    assert train_settings["num_operations"] == [1, 2] and validation_settings["num_operations"] == [4, 4]
    assert "train_count" not in train_settings and "validation_num_operations" not in validation_settings
    split = run.build_split()
    assert len(split.validation) == 48 and bool((split.validation.difficulty == 4).all())
    epoch = split.epoch(run.seed)
    assert len(epoch) == 64 and int(epoch.difficulty.max()) <= 2
    other_trial = spec(task=task, variables={"trial": 2}).build_split()
    assert other_trial.validation.texts() == split.validation.texts()  # the trial keeps the validation set


def test_split_settings_are_validated():
    with pytest.raises(ConfigError, match=r"^exp.yml: task.validation_count: Input should be greater than 0"):
        spec(task={"validation_count": 0})
    with pytest.raises(ConfigError, match=r"^exp.yml: task.train_count: Input should be a valid integer"):
        spec(task={"train_count": "many"})


def test_test_set_of_longer_programs():
    task = {"input_length": 5, "num_operations": [1, 2], "operators": {">": 1}, "train_count": 64,
            "validation_count": 48, "test_num_operations": [4, 6], "test_count": 40}
    run = spec(task=task)
    assert run.has_test
    assert run.task["test_num_operations"] == [4, 6] and run.task["test_count"] == 40 and run.task["test_seed"] == 29
    assert run.task_settings("test")[1]["num_operations"] == [4, 6]
    assert run.task_settings("validation")[1]["num_operations"] == [1, 2]
    split = run.build_split()
    assert len(split.test) == 40 and set(split.test.difficulty.tolist()) <= {4, 5, 6}
    assert RunSpec.from_config_dict(through_yaml(run.config_dict())) == run


def test_no_test_set_without_a_test_setting():
    run = spec()
    assert not run.has_test and run.build_split().test is None
    assert not any(key.startswith("test_") for key in run.task)  # configs without one are unchanged
    with pytest.raises(ConfigError, match=r"^exp.yml: task.test_count: there is no test set: define it with a test_"):
        spec(task={"test_count": 100})


@pytest.mark.parametrize(
    "task, message",
    [
        ({"test_num_operation": 8}, r"task.test_num_operation: unknown setting.*did you mean 'test_num_operations'"),
        ({"test_num_operations": [8, 6]}, r"task.test_num_operations: range has lo > hi, got \[8, 6\]$"),
        ({"test_num_operations": 8, "test_count": 0}, r"task.test_count: Input should be greater than 0"),
    ],
)
def test_bad_test_settings_are_named(task, message):
    with pytest.raises(ConfigError, match=r"^exp.yml: " + message):
        spec(task=task)


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"model": {"layers": True}}, "model.layers: Input should be a valid integer (got True)"),
        ({"train": {"batch_size": 64.0}}, "train.batch_size: Input should be a valid integer (got 64.0)"),
        ({"train": {"seed": True}}, "train.seed: Input should be a valid integer (got True)"),
        ({"train": {"seed": 10**13}}, "train.seed: must be at most 9,000,000, got 10000000000000"),
        ({"train": {"lr": float("inf")}}, "train.lr: Input should be a finite number (got inf)"),
        ({"task": {"operators": {">": 1, "-": float("nan")}}}, "task.operators.-: Input should be a finite number"),
        ({"task": {"input_length": [2.0, 5]}}, "task.input_length.0: Input should be a valid integer (got 2.0)"),
        ({"task": {"validation_seed": 2**64}}, "task.validation_seed: must be at most 9,223,372,036,854,775,807, got"),
    ],
)
def test_experiment_values_are_not_coerced(sections, message):
    with pytest.raises(ConfigError) as info:
        spec(**sections)
    assert str(info.value).startswith("exp.yml: " + message)


@pytest.mark.parametrize("attention", [[0, 0, True], [0, 0, 8], [0, False, 1], True, 0, [0, 0, "linear"]])
def test_attention_settings_resolve_as_written(attention):
    """Stored runs hold `true` and head counts as written: they must resolve to the same dict."""
    resolved = spec(model={"layers": 3, "attention": attention}).model["attention"]
    assert resolved == attention
    as_list = lambda value: value if isinstance(value, list) else [value]  # noqa: E731
    assert [type(a) for a in as_list(resolved)] == [type(a) for a in as_list(attention)]  # true stays a bool, 1 an int
    assert through_yaml(resolved) == resolved


SC = {"name": "selective-copy"}
BEYOND = [  # (sections, the one line's start after `exp.yml: `): every setting's upper limit, named
    ({"task": {"num_operations": 10**6}}, "task.num_operations: must be at most 1,000, got 1000000"),
    ({"task": {"validation_num_operations": [1, 1001]}}, "task.validation_num_operations: must be at most 1,000"),
    ({"task": {"operators": {">": 1e300}}}, "task.operators: weights must be at most 1,000,000"),
    ({"task": {**SC, "area": 10**9}}, "task.area: must be at most 65,536, got 1000000000"),
    ({"task": {"train_count": 10**9}}, "task.train_count: must be at most 10,000,000, got 1000000000"),
    ({"task": {"validation_count": 10**9}}, "task.validation_count: must be at most 10,000,000"),
    ({"task": {"test_num_operations": 8, "test_count": 10**9}}, "task.test_count: must be at most 10,000,000"),
    ({"model": {"layers": 1001}}, "model.layers: must be at most 1,000, got 1001"),
    ({"model": {"channels": 10**9}}, "model.channels: must be at most 4,096, got 1000000000"),
    ({"model": {"kernel_size": 10**9 + 1}}, "model: kernel_size: must be at most 65,535, got 1000000001"),
    ({"model": {"dilation": [1, 1, 1, 1, 1, 10**9]}}, "model: dilation: must be at most 65,536, got 1000000000"),
    ({"model": {"name": "lstm", "channels": 4097}}, "model.channels: must be at most 4,096"),
    ({"model": {"name": "lstm", "layers": 10**6}}, "model.layers: must be at most 1,000"),
    ({"model": {"name": "mamba", "d_model": 10**6}}, "model.d_model: must be at most 4,096"),
    ({"model": {"name": "mamba", "d_state": 10**6}}, "model.d_state: must be at most 1,024"),
    ({"model": {"name": "mamba", "expand": 1000}}, "model.expand: must be at most 16"),
    ({"model": {"name": "mamba", "d_conv": 10**6}}, "model.d_conv: must be at most 1,024"),
    ({"model": {"name": "transformer", "feedforward": 10**9}}, "model.feedforward: must be at most 65,536"),
    ({"model": {"name": "transformer", "heads": 10**9}}, "model.heads: must be at most 4,096"),
    ({"train": {"batch_size": 10**9}}, "train.batch_size: must be at most 65,536, got 1000000000"),
    ({"train": {"validation_batch_size": 10**9}}, "train.validation_batch_size: must be at most 65,536"),
    ({"train": {"max_inputs": 10**13}}, "train.max_inputs: must be at most 1,000,000,000,000"),
    ({"train": {"validate_every": 10**13}}, "train.validate_every: must be at most 1,000,000,000,000"),
    ({"train": {"warmup_inputs": 10**13}}, "train.warmup_inputs: must be at most 1,000,000,000,000"),
    ({"train": {"lr": 1e9}}, "train.lr: must be at most 10.0, got 1000000000.0"),
    ({"train": {"weight_decay": 1e9}}, "train.weight_decay: must be at most 100.0"),
]


@pytest.mark.parametrize("sections, message", BEYOND, ids=[message.split(" must")[0] for _, message in BEYOND])
def test_a_setting_beyond_its_limit_is_one_line_naming_the_key_and_the_limit(sections, message):
    with pytest.raises(ConfigError) as info:
        spec(**sections)
    assert str(info.value).startswith("exp.yml: " + message) and "\n" not in str(info.value)
