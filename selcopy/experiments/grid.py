"""Load an experiment file and expand its matrix into validated runs.

    name: attn-last                      # runs: attn-last/trial-1_l-5_attn-0,0,0,0,T, ...
    matrix:
      trial: [1, 2]
      l: [5, 6]
      attn: [[0, 0, 0, 0, true], [0, 0, 0, 0, 0, true]]
      $filter: len(${attn}) == ${l}      # 2 trials x 2 matching pairs = 4 runs
    model: {layers: "${l}", attention: "${attn}"}

The cartesian product runs in file order (first variable outermost). A value that is exactly
`${var}` takes the variable's value with its type; inside a longer string it is interpolated.
Every matrix variable but `trial` must be used, every key must be known, and every run is
validated before the caller could train any of them.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from selcopy.errors import CONTROL, ConfigError, SelcopyError, did_you_mean
from selcopy.experiments.expr import PLACEHOLDER, Budget, evaluate_expression
from selcopy.experiments.yamlfile import Bounded, Refused, Unreadable, load_file, refuse_types
from selcopy.names import TRIAL, check_trial, value_text

if TYPE_CHECKING:  # torch comes with the runs: errors in the file's shape are reported without it
    from selcopy.experiments.memory import Estimate
    from selcopy.experiments.spec import RunSpec

TOP_KEYS = ("name", "matrix", "task", "model", "train")
SECTIONS = ("name", "task", "model", "train")  # where ${var} is substituted
FILTER = "$filter"
MAX_COMBINATIONS = 10_000  # a grid's cartesian product, before the filter: more is a typo, not a plan
NAME_MAX = 240  # bytes in a run folder's name: 255 in a file name, less room for a backup's `.prev-N`
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9.,+=-]")
NAME_UNSAFE = re.compile(r"[^A-Za-z0-9.,+=_-]")


@dataclass
class Experiment:
    """A loaded experiment file: its name, matrix variables and fully validated runs."""

    name: str
    path: Path
    variables: list[str]
    runs: list[RunSpec]

    @functools.cached_property
    def estimates(self) -> dict[str, Estimate]:
        """Each run's memory estimate by run name (`experiments.memory`; nothing big is built):
        runs that differ only in their trial share one."""
        from selcopy.experiments.memory import estimate_run

        by_settings: dict[str, Estimate] = {}
        params: dict[str, int] = {}  # by model and longest text: a grid of learning rates builds one model
        estimates = {}
        for run in self.runs:
            key = json.dumps([run.task, run.model, run.train], sort_keys=True)
            if key not in by_settings:
                model = json.dumps([run.model, run.task_shape()], sort_keys=True, default=str)
                if model not in params:
                    params[model] = run.params()
                by_settings[key] = estimate_run(run, params[model])
            estimates[run.name] = by_settings[key]
        return estimates

    def check_data(self) -> None:
        """Refuse a run whose memory estimate is more than the machine has; then draw the data of
        every distinct task setting once, and run every distinct model once on its task's longest
        text, so that settings a run would fail on are bad input (a ConfigError naming the run)
        before anything trains."""
        for run in self.runs:  # before anything big is drawn or built
            try:
                self.estimates[run.name].check(f"run {run.name}")
            except SelcopyError as error:
                raise ConfigError(f"{self.path}: {error}") from None
        checked: set[str] = set()
        for run in self.runs:
            model = json.dumps([run.model, run.task_shape()], sort_keys=True, default=str)
            for key, check in ((json.dumps(run.task, sort_keys=True, default=str), run.check_data),
                               (model, run.check_model)):
                if key not in checked:
                    checked.add(key)
                    try:
                        check()
                    except SelcopyError as error:
                        raise ConfigError(f"{self.path}: run {run.name}: {error}") from None


def load_experiment(path: str | Path) -> Experiment:
    """Read, expand and validate an experiment file; any problem is one ConfigError line."""
    path = Path(path)
    where = str(path)
    doc = read_yaml(path, where)
    matrix, expression = parse_matrix(doc.get("matrix"), where)
    name = doc.get("name")
    if name is None:
        name = path.stem
    elif not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name: expected a string, got {name!r}")
    elif CONTROL.search(name):  # it names the plot's file, titles and lines of output
        raise ConfigError(f"{where}: name: {name!r} holds a control character (a line break, tab, NUL)")
    check_references(doc, matrix, expression, where)
    kept = combinations(matrix, expression, where)
    runs = [make_run(doc, name, values, bool(matrix), where) for values in kept]
    check_unique(runs, where)
    return Experiment(name=name, path=path, variables=list(matrix), runs=runs)


class DuplicateKey(Refused):
    pass


@refuse_types
class StrictLoader(Bounded, yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error, not last-wins,
    that `5e-4` is a number (YAML 1.2) rather than the string YAML 1.1 makes of it, and that
    the bounds of `yamlfile` hold (alias bombs, deep nesting, sets and dates are refused)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)):  # other keys: SafeLoader's own error
                if key in seen:
                    raise DuplicateKey(f"line {key_node.start_mark.line + 1}: key '{key}' given twice in one mapping")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver(  # floats with an exponent but no dot, e.g. 5e-4 or 1E6
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: Path, where: str) -> dict[str, Any]:
    try:
        doc = load_file(path, StrictLoader)
    except Unreadable as error:
        raise ConfigError(f"{where}: {error}") from None
    if doc is None:
        raise ConfigError(f"{where}: the file is empty")
    if not isinstance(doc, dict):
        keys = ", ".join(TOP_KEYS)
        raise ConfigError(f"{where}: expected a mapping with keys {keys}, got {type(doc).__name__}")
    for key in doc:
        if key not in TOP_KEYS:
            hint = did_you_mean(key, TOP_KEYS)
            raise ConfigError(f"{where}: {key}: unknown top-level key{hint}")
    return doc


def parse_matrix(raw: Any, where: str) -> tuple[dict[str, list[Any]], str | None]:
    """-> ({variable: values} in file order, the filter expression or None)."""
    if raw is None:
        return {}, None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: matrix: expected a mapping of variable -> list of values, got {raw!r}")
    matrix: dict[str, list[Any]] = {}
    expression = None
    for key, values in raw.items():
        if key == FILTER:
            if not isinstance(values, str) or not values.strip():
                raise ConfigError(f"{where}: matrix.{FILTER}: expected an expression, got {values!r}")
            expression = values
        elif isinstance(key, str) and key.startswith("$"):
            raise ConfigError(f"{where}: matrix.{key}: unknown setting; did you mean '{FILTER}'?")
        elif not isinstance(key, str) or not VARIABLE.fullmatch(key):
            raise ConfigError(f"{where}: matrix: variable name {key!r} must be letters, digits and _")
        elif not isinstance(values, list):
            raise ConfigError(f"{where}: matrix.{key}: expected a list of values, got {values!r} "
                              f"(write [{json.dumps(values)}] for one value)")
        elif not values:
            raise ConfigError(f"{where}: matrix.{key}: the list of values is empty")
        else:
            matrix[key] = values
    for trial in matrix.get(TRIAL, []):
        check_trial(trial, f"matrix.{TRIAL}", where)
    return matrix, expression


def check_references(
    doc: dict[str, Any], matrix: dict[str, list[Any]], expression: str | None, where: str
) -> None:
    """Every `${var}` must be a matrix variable; every variable but `trial` must be used."""
    used: set[str] = set()
    for section in SECTIONS:
        for key, text in strings(doc.get(section), section):
            used.update(defined(text, matrix, key, where))
    if expression is not None:
        used.update(defined(expression, matrix, f"matrix.{FILTER}", where))
    unused = [name for name in matrix if name not in used and name != TRIAL]
    if unused:
        names = ", ".join(f"'{name}'" for name in unused)
        what = f"matrix variable {names} is" if len(unused) == 1 else f"matrix variables {names} are"
        raise ConfigError(f"{where}: {what} never used: write ${{{unused[0]}}} where it belongs "
                          f"(in task, model, train, name or {FILTER})")


def strings(value: Any, key: str) -> Iterator[tuple[str, str]]:
    """(key path, text) of every string inside `value`: `model.dilation[2]`."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{key}[{i}]")


def defined(text: str, matrix: dict[str, list[Any]], key: str, where: str) -> list[str]:
    """The variables `text` refers to; an undefined one is an error naming `key`."""
    names = PLACEHOLDER.findall(text)
    for name in names:
        if name not in matrix:
            known = ", ".join(sorted(matrix)) or "nothing (there is no matrix)"
            raise ConfigError(f"{where}: {key}: undefined variable ${{{name}}}; matrix has: {known}")
    return names


def combinations(matrix: dict[str, list[Any]], expression: str | None, where: str) -> list[dict[str, Any]]:
    """The matrix's cartesian product (first variable outermost) that the filter keeps."""
    count = math.prod(len(values) for values in matrix.values())
    if count > MAX_COMBINATIONS:
        sizes = " x ".join(str(len(values)) for values in matrix.values())
        raise ConfigError(f"{where}: matrix: {sizes} = {count:,} combinations, more than a grid may have "
                          f"({MAX_COMBINATIONS:,}); split the file or give fewer values")
    kept, budget = [], Budget()  # one budget for the filter over the whole matrix
    for combo in itertools.product(*matrix.values()):
        values = dict(zip(matrix, combo))
        if expression is None or holds(expression, values, f"{where}: matrix.{FILTER}", budget):
            kept.append(values)
    if not kept:
        raise ConfigError(f"{where}: matrix.{FILTER}: drops every combination, no run is left")
    return kept


def holds(expression: str, values: dict[str, Any], where: str, budget: Budget | None = None) -> bool:
    """Whether `expression` (the sandboxed language) is true for the matrix `values`; a number
    counts as true unless it is 0 (`len(...)`, `${x} % 2`); anything else is a ConfigError.
    `budget` bounds the work of all the evaluations that share it."""
    result = evaluate_expression(expression, values, where, budget)
    if isinstance(result, (bool, int)):
        return bool(result)
    raise ConfigError(f"{where}: expected true or false, got {result!r}")


def make_run(doc: dict[str, Any], name: str, values: dict[str, Any], has_matrix: bool, where: str) -> RunSpec:
    slug = run_slug(values)
    here = f"{where}: run {slug}" if has_matrix else where
    prefix = experiment_name(substitute(name, values, "name", here), here)
    for part in [*prefix.split("/"), slug]:
        if len(part.encode()) > NAME_MAX:
            raise ConfigError(f"{here}: folder name {part[:40]!r}... has {len(part.encode())} bytes, more than "
                              f"a run folder's name can hold ({NAME_MAX}); shorten the name or the matrix's values")
    from selcopy.experiments.spec import RunSpec

    sections = {key: substitute(doc.get(key), values, key, here) for key in ("task", "model", "train")}
    return RunSpec.resolve(f"{prefix}/{slug}", prefix, values, sections, here)


def substitute(value: Any, values: dict[str, Any], key: str, where: str) -> Any:
    """`${var}` -> the variable's value (typed) if it is the whole string, else interpolated text."""
    if isinstance(value, dict):
        return {k: substitute(v, values, f"{key}.{k}", where) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value.strip())
    if whole:
        return copy.deepcopy(values[whole.group(1)])
    return PLACEHOLDER.sub(lambda match: as_text(values[match.group(1)]), value)


def as_text(value: Any) -> str:
    """How a value reads inside a string: as YAML/JSON would write it (`true`, `[1, 2]`)."""
    return value if isinstance(value, str) else json.dumps(value)


def run_slug(values: dict[str, Any]) -> str:
    """`trial-1_l-5_attn-0,0,0,0,T`: `var-value` joined by `_`, in matrix order; `run` if none."""
    if not values:
        return "run"
    parts = (f"{name}-{value_text(value)}" for name, value in values.items())
    return "_".join(SLUG_UNSAFE.sub("-", part) for part in parts)


def experiment_name(name: Any, where: str) -> str:
    """The run folder's parent: a relative path of safe parts (`article/5ops-attn`)."""
    parts = str(name if not isinstance(name, (list, dict, bool)) else as_text(name)).strip().split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ConfigError(f"{where}: name: {name!r} must be a relative path without empty, '.' or '..' parts")
    return "/".join(NAME_UNSAFE.sub("-", part) for part in parts)


def check_unique(runs: list[RunSpec], where: str) -> None:
    counts = Counter(run.name for run in runs)
    twice = [name for name, count in counts.items() if count > 1]
    if twice:
        raise ConfigError(f"{where}: run name '{twice[0]}' occurs {counts[twice[0]]} times: "
                          "a matrix list repeats a value, or two values look alike in a run name")
    for run in runs:  # a run folder inside another's would be moved aside with it
        inside = next((str(p) for p in PurePosixPath(run.name).parents if str(p) in counts), None)
        if inside:
            raise ConfigError(f"{where}: run '{run.name}' would be stored inside the folder of run '{inside}': "
                              "the name gives runs folders that nest")
    first: dict[str, str] = {}
    for run in runs:  # runs that would train the very same thing: a variable that changes no setting
        same = json.dumps([run.task, run.model, run.train, run.variables.get(TRIAL)], sort_keys=True)
        if same in first:
            raise ConfigError(f"{where}: runs '{first[same]}' and '{run.name}' have the same settings: a matrix "
                              f"variable changes nothing that trains (used only in {FILTER} or name?)")
        first[same] = run.name


def select_runs(experiment: Experiment, expression: str | None) -> Experiment:
    """The runs whose matrix values satisfy `expression` (the `--where` of the command line).

    Same sandboxed language as `$filter`, e.g. `${l} == 6 and ${trial} < 3`.
    """
    if not expression:
        return experiment
    where, budget = f"--where {expression!r}", Budget()
    try:
        runs = [r for r in experiment.runs if holds(expression, r.variables, where, budget)]
    except ConfigError as error:  # which file's matrix it was checked against
        raise ConfigError(f"{experiment.path}: {error}") from None
    if not runs:
        raise ConfigError(f"{experiment.path}: {where} selects none of its {len(experiment.runs)} runs")
    return dataclasses.replace(experiment, runs=runs)
