"""One run of an experiment, with every setting resolved and validated.

A RunSpec holds plain data (what `config.yaml` of a run folder stores): the task, model and
train sections with every default filled in, in the schema users write. Writing them to YAML
and loading them again gives the same run. The builders (`build_split`, `build_model`) are
where tasks and models meet: they never import each other.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from selcopy.errors import ConfigError, SelcopyError, did_you_mean, explain
from selcopy.models.base import TaskShape
from selcopy.names import TRIAL, TRIAL_STRIDE, check_trial
from selcopy.tasks import TASKS, make_task
from selcopy.tasks.split import MAX_SAMPLES, DataSplit
from selcopy.train.config import TrainConfig
from selcopy.vocab import MASK, VOCAB

T = TypeVar("T")

DEFAULT_TASK = "program"
DEFAULT_MODEL = "conv"
VALIDATION = "validation_"  # prefix of a task setting that applies to the validation set only
TEST = "test_"  # prefix of a task setting of the test set (evaluated once, at the end), e.g. longer programs
CONFIG_KEYS = ("name", "variables", "task", "model", "train")
MAX_SEED = 2**63 - 1  # what torch.Generator.manual_seed takes


class SplitSettings(BaseModel):
    """The task section's settings of the train/validation split (the article's values)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    train_count: int = Field(100_000, gt=0, le=MAX_SAMPLES, description="fresh training samples per epoch")
    validation_count: int = Field(10_000, gt=0, le=MAX_SAMPLES, description="size of the fixed validation set")
    validation_seed: int = Field(23, ge=0, le=MAX_SEED, description="seed of the validation set (not of the trial)")
    test_count: int = Field(10_000, gt=0, le=MAX_SAMPLES, description="size of the test set (only with test_<setting>)")
    test_seed: int = Field(29, ge=0, le=MAX_SEED, description="seed of the test set (only with test_<setting>)")


SPLIT_KEYS = tuple(SplitSettings.model_fields)
TEST_SPLIT_KEYS = ("test_count", "test_seed")


class StoredRun(BaseModel):
    """The keys of a run's stored `config.yaml`; the sections are resolved by `RunSpec.resolve`."""

    model_config = ConfigDict(extra="forbid")

    name: Any = None
    variables: Any = None
    task: Any = None
    model: Any = None
    train: Any = None


@dataclass(frozen=True)
class RunSpec:
    """One fully resolved run: `name` is `<experiment>/<slug>`, `variables` its matrix values."""

    name: str
    experiment: str
    variables: dict[str, Any]
    task: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]

    @classmethod
    def resolve(
        cls, name: str, experiment: str, variables: dict[str, Any], sections: dict[str, Any], where: str
    ) -> RunSpec:
        """Validate the raw `task`, `model` and `train` sections and fill in every default.

        `where` starts each error message (`exp.yml: run l-5`).
        """
        check_trial(variables.get(TRIAL, 0), "variables.trial", where)
        return cls(
            name=name,
            experiment=experiment,
            variables=copy.deepcopy(variables),
            task=resolve_task(sections.get("task"), where),
            model=resolve_model(sections.get("model"), where),
            train=resolve_train(sections.get("train"), where),
        )

    @property
    def seed(self) -> int:
        """`train.seed * 1_000_000 + trial` (trial 0 without a trial variable).

        Trials of one setting get different seeds (training data and initial weights); runs that
        differ in anything but the trial share a seed. Distinct (seed, trial) pairs never collide.
        """
        return int(self.train["seed"]) * TRIAL_STRIDE + int(self.variables.get(TRIAL, 0))

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.train)

    def task_settings(self, part: str = "train") -> tuple[str, dict[str, Any]]:
        """(task name, settings for `make_task`) of the `train`, `validation` or `test` data."""
        fields = TASKS[self.task["name"]].model_fields
        settings = {key: self.task[key] for key in fields if key in self.task}
        if part != "train":
            prefix = {"validation": VALIDATION, "test": TEST}[part]
            settings.update({key: self.task[prefix + key] for key in fields if prefix + key in self.task})
        return self.task["name"], settings

    @property
    def has_test(self) -> bool:
        """Whether the task section defines a test set (some `test_<setting>` was given)."""
        return "test_count" in self.task

    def build_split(self) -> DataSplit:
        """The fixed validation (and test) set and the training epochs (draws the fixed sets now)."""
        test = None
        if self.has_test:
            test = (make_task(*self.task_settings("test")), self.task["test_count"], self.task["test_seed"])
        return DataSplit(
            make_task(*self.task_settings()),
            make_task(*self.task_settings("validation")),
            self.task["train_count"],
            self.task["validation_count"],
            self.task["validation_seed"],
            test=test,
        )

    def check_data(self) -> None:
        """Draw the validation set and a first training epoch: a setting with too few distinct
        questions for them fails here (a SelcopyError), before anything trains."""
        split = self.build_split()
        split.epoch(0)

    def task_shape(self) -> TaskShape:
        """What the model needs of the task: the longest text of the training, validation and
        test data, and the vocabulary (bytes)."""
        parts = ["train", "validation", *["test"] * self.has_test]
        longest = max(make_task(*self.task_settings(part)).max_length() for part in parts)
        return TaskShape(max_length=longest, vocab=VOCAB)

    def build_model(self) -> nn.Module:
        """The model with its initial weights drawn from `self.seed` (global RNG state is kept)."""
        from selcopy.models import build_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return build_model(self.model, self.task_shape())

    def check_model(self) -> None:
        """Build the model and run it once on a batch of one longest text: a model that cannot
        take the task's length fails here, as a ConfigError, before anything trains."""
        shape = self.task_shape()
        try:
            model = self.build_model().eval()
            with torch.no_grad():
                model(torch.full((1, shape.max_length), MASK, dtype=torch.long))
        except Exception as error:  # whatever the model raises, the user gets one line
            reason = next(iter(str(error).strip().splitlines()), type(error).__name__)
            raise ConfigError(f"model '{self.model['name']}' cannot take this task's texts of up to "
                              f"{shape.max_length} bytes: {reason}") from None

    def params(self) -> int:
        """Trainable parameters, shared tensors counted once; built without memory on `meta`."""
        from selcopy.models import build_model
        from selcopy.models.base import SkipNormalInit, count_parameters

        try:
            with torch.device("meta"), SkipNormalInit():
                model = build_model(self.model, self.task_shape())
        except Exception:  # a model whose construction needs real values: build it for real
            model = self.build_model()
        return count_parameters(model)

    def config_dict(self) -> dict[str, Any]:
        """The standalone document a run folder stores as `config.yaml`."""
        data = {"name": self.name, "variables": self.variables, "task": self.task,
                "model": self.model, "train": self.train}
        return copy.deepcopy(data)

    @classmethod
    def from_config_dict(cls, data: Any, where: str = "run config") -> RunSpec:
        """Load (and validate again) what `config_dict` wrote."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping with keys {', '.join(CONFIG_KEYS)}")
        validated(lambda: StoredRun.model_validate(data), "", where, known=CONFIG_KEYS)
        name, variables = data.get("name"), data.get("variables") or {}
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: name: expected the run's name, got {name!r}")
        if not isinstance(variables, dict):
            raise ConfigError(f"{where}: variables: expected a mapping, got {variables!r}")
        experiment = name.rsplit("/", 1)[0]
        return cls.resolve(name, experiment, variables, data, f"{where}: run {name}")


def resolve_task(raw: Any, where: str) -> dict[str, Any]:
    """{"name", every task field, the split settings, the validation_* and test_* overrides given}.

    The test set's settings (`test_count`, `test_seed` and the `test_*` overrides) are part of the
    run only when at least one `test_<setting>` is given, so that files without one resolve as before.
    """
    settings = section_mapping(raw, "task", where)
    name = section_name(settings, "task", DEFAULT_TASK, where)
    try:
        config_cls = TASKS[name]
    except SelcopyError as error:
        raise ConfigError(f"{where}: task.name: {error}") from None
    fields = list(config_cls.model_fields)
    base, split_settings, overrides = parse_task_section(settings, fields, name, where)
    known = ["name", *fields, *SPLIT_KEYS, *(prefix + f for prefix in (VALIDATION, TEST) for f in fields)]
    split = validated(lambda: SplitSettings.model_validate(split_settings, strict=True), "task", where)
    train_config = validated(lambda: config_cls.model_validate(base, strict=True), "task", where, known=known)
    resolved = {"name": name, **train_config.model_dump(mode="json"), **split.model_dump(mode="json")}
    for prefix, given in overrides.items():
        rename = {key: prefix + key for key in given}
        config = validated(lambda: config_cls.model_validate({**base, **given}, strict=True),  # noqa: B023
                           "task", where, rename)
        values = config.model_dump(mode="json")
        resolved.update({prefix + key: values[key] for key in given})
    if not any(key.startswith(TEST) and key not in SPLIT_KEYS for key in resolved):
        given = [key for key in TEST_SPLIT_KEYS if key in settings]
        if given:
            raise ConfigError(f"{where}: task.{given[0]}: there is no test set: define it with a test_<setting>, "
                              f"e.g. test_num_operations: 8")
        for key in TEST_SPLIT_KEYS:
            del resolved[key]
    return resolved


def resolve_model(raw: Any, where: str) -> dict[str, Any]:
    """{"name", every setting of that architecture} through `selcopy.models.model_config`."""
    from selcopy.models import MODELS, model_config

    settings = section_mapping(raw, "model", where)
    name = section_name(settings, "model", DEFAULT_MODEL, where)
    try:
        fields = list(MODELS[name].model_fields)
    except SelcopyError as error:
        raise ConfigError(f"{where}: model.name: {error}") from None
    config = validated(lambda: model_config({**settings, "name": name}, strict=True), "model", where,
                       known=["name", *fields])
    return {"name": name, **config.model_dump(mode="json")}


def resolve_train(raw: Any, where: str) -> dict[str, Any]:
    settings = section_mapping(raw, "train", where)
    config = validated(lambda: TrainConfig.model_validate(settings, strict=True), "train", where,
                       known=TrainConfig.model_fields)
    return config.model_dump(mode="json")


def section_mapping(raw: Any, section: str, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {section}: expected a mapping of settings, got {raw!r}")
    return dict(raw)


def section_name(settings: dict[str, Any], section: str, default: str, where: str) -> str:
    name = settings.get("name", default)
    if not isinstance(name, str):
        raise ConfigError(f"{where}: {section}.name: expected a name, got {name!r}")
    return name


def parse_task_section(
    settings: dict[Any, Any], fields: list[str], task: str, where: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """The task section read once: (the task's own settings, the split settings, the overrides
    per prefix: {"validation_": {field: value}, "test_": {...}}). A prefixed key must name a
    setting of the task (`test_foo` is no override); any other unknown key stays with the
    task's settings, whose config refuses it (`extra="forbid"`)."""
    base: dict[str, Any] = {}
    split: dict[str, Any] = {}
    overrides: dict[str, dict[str, Any]] = {VALIDATION: {}, TEST: {}}
    for key, value in settings.items():
        prefix = next((p for p in overrides if isinstance(key, str) and key.startswith(p)), None)
        if key == "name":
            continue
        if key in SPLIT_KEYS:
            split[key] = value
        elif prefix is None:
            base[key] = value
        elif key[len(prefix):] in fields:
            overrides[prefix][key[len(prefix):]] = value
        else:
            field = key[len(prefix):]
            hint = did_you_mean(field, fields, show=f"'{prefix}{{}}'".format, known="task settings")
            raise ConfigError(f"{where}: task.{key}: unknown setting: '{field}' is not a setting of task "
                              f"'{task}'{hint}")
    return base, split, overrides


def validated(build: Callable[[], T], section: str, where: str, rename: dict[str, str] | None = None,
              known: Iterable[str] = ()) -> T:
    """Run `build`; a pydantic error becomes one ConfigError line with `section.key` locations,
    an unknown key with the closest of the `known` ones as a hint."""
    try:
        return build()
    except ValidationError as error:
        raise ConfigError(explain(in_section(error, section, rename or {}), where, known)) from None
    except ConfigError:
        raise
    except (SelcopyError, ValueError, TypeError) as error:
        raise ConfigError(f"{where}: {section}: {error}") from None


def in_section(error: ValidationError, section: str, rename: dict[str, str]) -> ValidationError:
    """The same error with each location under `section` (and keys renamed, e.g. validation_*).

    An error of the whole config (no location) under renamed keys says that the renamed keys
    (the validation_* overrides) take part.
    """
    items = []
    for item in error.errors():
        loc = tuple(item["loc"])
        if loc and loc[0] in rename:
            loc = (rename[loc[0]], *loc[1:])
        where = (section,) if loc or not rename else (f"{section} (with {', '.join(rename.values())})",)
        where = where if section else ()
        detail = {"type": item["type"], "loc": (*where, *loc), "input": item.get("input")}
        if "ctx" in item:
            detail["ctx"] = item["ctx"]
        items.append(detail)
    try:
        return ValidationError.from_exception_data(error.title, items)  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError):
        return error
