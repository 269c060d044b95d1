"""Experiment files: matrix expansion, substitution, and every error naming its key."""

from __future__ import annotations

import itertools
import re
import textwrap
import time
from pathlib import Path

import pytest

from selcopy.errors import ConfigError
from selcopy.experiments import Experiment, load_experiment
from selcopy.experiments.grid import run_slug

FILES = Path(__file__).parent / "files"


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Work in a temporary folder, so that messages start with the short name `exp.yml`."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def models():
    return pytest.importorskip("selcopy.models")


def load(text: str, name: str = "exp.yml") -> Experiment:
    Path(name).write_text(textwrap.dedent(text))
    return load_experiment(name)


def error(text: str, name: str = "exp.yml") -> str:
    with pytest.raises(ConfigError) as info:
        load(text, name)
    return str(info.value)


def slugs(experiment: Experiment) -> list[str]:
    return [run.name.rsplit("/", 1)[1] for run in experiment.runs]


# -- expansion -----------------------------------------------------------------------------


def test_the_articles_grid(models):
    experiment = load_experiment(FILES / "attn_last.yml")
    assert experiment.name == "article/attn-last"
    assert experiment.variables == ["trial", "l", "attn"]
    assert [run.name for run in experiment.runs] == [
        "article/attn-last/trial-1_l-5_attn-0,0,0,0,T",
        "article/attn-last/trial-1_l-6_attn-0,0,0,0,0,T",
        "article/attn-last/trial-2_l-5_attn-0,0,0,0,T",
        "article/attn-last/trial-2_l-6_attn-0,0,0,0,0,T",
    ]
    run = experiment.runs[0]
    assert run.experiment == "article/attn-last"
    assert run.variables == {"trial": 1, "l": 5, "attn": [0, 0, 0, 0, True]}
    assert run.model["layers"] == 5 and run.model["kernel_size"] == 13
    assert run.model["attention"] == [0, 0, 0, 0, True]
    assert run.model["attention"][-1] is True and run.model["attention"][0] is not False
    assert run.task["input_length"] == [5, 5] and run.task["validation_num_operations"] == [5, 5]
    assert run.train["max_inputs"] == 1_000_000


def test_expansion_order_and_count(here, models):
    experiment = load(
        """
        matrix:
          a: [1, 2, 3]
          b: [token, sequence]
        model: {layers: "${a}"}
        train: {loss: "${b}"}
        """
    )
    assert experiment.name == "exp" and experiment.variables == ["a", "b"]
    assert slugs(experiment) == [f"a-{a}_b-{b}" for a in (1, 2, 3) for b in ("token", "sequence")]
    assert [(r.model["layers"], r.train["loss"]) for r in experiment.runs] == list(
        itertools.product([1, 2, 3], ["token", "sequence"])
    )


def test_filter_keeps_what_python_would(here, models):
    expression = "${a} + ${b} * 2 > 6 and not ${a} in [2] or ${a} == ${b}"
    experiment = load(
        f"""
        matrix:
          a: [1, 2, 3, 4]
          b: [1, 2, 3, 4]
          $filter: {expression}
        model: {{layers: "${{a}}", channels: "${{b}}"}}
        """
    )
    expected = [(a, b) for a in range(1, 5) for b in range(1, 5) if a + b * 2 > 6 and a not in [2] or a == b]
    assert [(r.variables["a"], r.variables["b"]) for r in experiment.runs] == expected


def test_filter_must_be_true_or_false(here):
    message = error(
        """
        matrix: {l: [1, 2], $filter: "'yes'"}
        model: {layers: "${l}"}
        """
    )
    assert message == "exp.yml: matrix.$filter: expected true or false, got 'yes'"


def test_filter_that_drops_everything(here):
    message = error(
        """
        matrix: {l: [1, 2], $filter: "${l} > 5"}
        model: {layers: "${l}"}
        """
    )
    assert message == "exp.yml: matrix.$filter: drops every combination, no run is left"


def test_a_matrix_too_large_to_expand_is_refused_at_once(here):
    variables = "".join(f"  {v}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for v in "abcdefghij")
    started = time.perf_counter()
    message = error("matrix:\n" + variables + 'name: "m${a}${b}${c}${d}${e}${f}${g}${h}${i}${j}"\n')
    assert message == ("exp.yml: matrix: 10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 = 10,000,000,000 "
                       "combinations, more than a grid may have (10,000); split the file or give fewer values")
    assert time.perf_counter() - started < 2


def test_without_matrix_one_run(models):
    experiment = load_experiment(FILES / "single.yml")
    assert experiment.name == "single" and experiment.variables == []
    [run] = experiment.runs
    assert run.name == "single/run" and run.variables == {}
    assert run.task["name"] == "selective-copy" and run.task["validation_count"] == 500
    assert run.model["name"] == "lstm" and run.model["layers"] == 2


# -- ${var} substitution ---------------------------------------------------------------------


def test_substitution_keeps_types_and_interpolates(here, models):
    experiment = load(
        """
        name: exp-${l}-${pe}
        matrix:
          l: [3]
          pe: [true, false]
          attn: [[0, 0, true]]
        model:
          layers: ${l}
          position_embedding: ${pe}
          attention: ${attn}
        """
    )
    first, second = experiment.runs
    assert first.model["layers"] == 3 and type(first.model["layers"]) is int
    assert first.model["position_embedding"] is True and second.model["position_embedding"] is False
    assert first.model["attention"] == [0, 0, True] and first.model["attention"][2] is True
    assert first.name == "exp-3-true/l-3_pe-T_attn-0,0,T"
    assert second.name == "exp-3-false/l-3_pe-F_attn-0,0,T"
    assert first.experiment == "exp-3-true" and experiment.name == "exp-${l}-${pe}"


def test_yaml_true_in_an_attention_list_stays_a_boolean(here, models):
    [run] = load("model: {layers: 3, attention: [0, 1, true]}").runs
    assert run.model["attention"] == [0, 1, True]
    assert [type(a) for a in run.model["attention"]] == [int, int, bool]


def test_substituted_values_are_copies(here, models):
    experiment = load(
        """
        matrix: {trial: [1, 2], attn: [[0, 0, true]]}
        model: {layers: 3, attention: "${attn}"}
        """
    )
    experiment.runs[0].model["attention"].append(99)
    assert experiment.runs[1].model["attention"] == [0, 0, True]


def test_run_slug_format():
    assert run_slug({}) == "run"
    assert run_slug({"trial": 1, "l": 5, "attn": [0, 0, 0, 0, True]}) == "trial-1_l-5_attn-0,0,0,0,T"
    assert run_slug({"pe": False, "act": "elu+1", "lr": 0.0005}) == "pe-F_act-elu+1_lr-0.0005"
    assert run_slug({"num_ops": 5, "s": "a/b c", "ops": {">": 1}}) == "num-ops-5_s-a-b-c_ops--=1"


# -- trial ----------------------------------------------------------------------------------


def test_trial_may_be_unused_and_changes_only_the_seed(here, models):
    experiment = load(
        """
        matrix: {trial: [1, 2, 3]}
        train: {seed: 7}
        """
    )
    runs = experiment.runs
    assert [run.name for run in runs] == ["exp/trial-1", "exp/trial-2", "exp/trial-3"]
    assert all((r.task, r.model, r.train) == (runs[0].task, runs[0].model, runs[0].train) for r in runs)
    assert [run.seed for run in runs] == [7_000_001, 7_000_002, 7_000_003]


def test_trials_must_be_small_integers(here):
    message = error("matrix: {trial: [1, x]}")
    assert message == "exp.yml: matrix.trial: trials must be integers from 0 to 999999, got 'x'"


# -- errors that name their key --------------------------------------------------------------


def test_unused_variable(here):
    message = error(
        """
        matrix: {l: [5], qkv: [QK, QKV]}
        model: {layers: "${l}"}
        """
    )
    assert message.startswith("exp.yml: matrix variable 'qkv' is never used")


def test_a_variable_used_only_in_the_filter_counts_as_used(here, models):
    experiment = load(
        """
        matrix: {l: [5, 6], odd: [true, false], $filter: "(${l} % 2 == 1) == ${odd}"}
        model: {layers: "${l}"}
        """
    )
    assert slugs(experiment) == ["l-5_odd-T", "l-6_odd-F"]


def test_a_variable_that_changes_no_setting_is_refused(here, models):
    message = error(
        """
        matrix: {l: [5], k: [3, 5], $filter: "${k} > 0"}
        model: {layers: "${l}"}
        """
    )
    assert message == ("exp.yml: runs 'exp/l-5_k-3' and 'exp/l-5_k-5' have the same settings: a matrix variable "
                       "changes nothing that trains (used only in $filter or name?)")
    trials = load("matrix: {trial: [1, 2]}\nmodel: {layers: 3}")
    assert slugs(trials) == ["trial-1", "trial-2"]  # trials differ in their seed


def test_a_key_given_twice_is_refused(here):
    message = error(
        """
        model:
          layers: 3
          layers: 6
        """
    )
    assert message == "exp.yml: line 4: key 'layers' given twice in one mapping"


def test_numbers_with_an_exponent_are_numbers(here, models):
    run = load("train: {lr: 5e-4, weight_decay: 1E-2}").runs[0]
    assert run.train["lr"] == 0.0005 and run.train["weight_decay"] == 0.01


def test_a_key_that_is_a_list_is_a_yaml_error(here):
    assert error("matrix: {trial: [1], [x]: 2}").startswith("exp.yml: YAML syntax error at line 1")


def test_undefined_variable_names_the_key(here):
    message = error(
        """
        matrix: {trial: [1], l: [5], attn: [[0, 0, 0, 0, true]]}
        model: {layers: "${l}", attention: "${atn}"}
        """
    )
    assert message == "exp.yml: model.attention: undefined variable ${atn}; matrix has: attn, l, trial"


def test_undefined_variable_in_a_list_and_without_matrix(here):
    message = error("model: {dilation: [1, '${d}']}")
    assert message == (
        "exp.yml: model.dilation[1]: undefined variable ${d}; matrix has: nothing (there is no matrix)"
    )


def test_misspelt_model_key(here, models):
    message = error(
        """
        matrix: {trial: [1], l: [5]}
        model: {layers: "${l}", attenion: [0, 0, 0, 0, true]}
        """
    )
    assert message == "exp.yml: run trial-1_l-5: model.attenion: unknown setting; did you mean 'attention'?"


def test_misspelt_task_key(here):
    message = error("task: {num_operation: 5}")
    assert message == "exp.yml: task.num_operation: unknown setting; did you mean 'num_operations'?"


def test_misspelt_train_key(here, models):
    message = error("train: {batchsize: 32}")
    assert message == "exp.yml: train.batchsize: unknown setting; did you mean 'batch_size'?"


def test_unknown_key_without_a_close_match_lists_the_known(here):
    message = error("task: {colour: red}")
    assert message.startswith("exp.yml: task.colour: unknown setting; known: name, num_items, input_length")


def test_bad_value_names_the_key(here, models):
    assert error("task: {num_items: 30}").startswith("exp.yml: task.num_items: must be between 1 and 26")
    message = error("train: {loss: squared}")
    assert message.startswith("exp.yml: train.loss: Input should be 'sequence' or 'token'")


def test_every_run_is_validated(here, models):
    message = error(
        """
        matrix: {l: [5, 0]}
        model: {layers: "${l}"}
        """
    )
    assert message.startswith("exp.yml: run l-0: model.layers: Input should be greater than 0")


def test_unknown_task_name(here):
    message = error("task: {name: prgram}")
    assert message == (
        "exp.yml: task.name: unknown task 'prgram'; did you mean 'program'? "
        "available: program, selective-copy"
    )


def test_unknown_model_name(here, models):
    message = error("model: {name: cnov}")
    assert message.startswith("exp.yml: model.name: unknown model 'cnov'; did you mean 'conv'?")


def test_unknown_top_level_key(here):
    assert error("modle: {layers: 3}") == "exp.yml: modle: unknown top-level key; did you mean 'model'?"


def test_scalar_matrix_entry(here):
    message = error(
        """
        matrix: {l: 5}
        model: {layers: "${l}"}
        """
    )
    assert message == "exp.yml: matrix.l: expected a list of values, got 5 (write [5] for one value)"


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "exp.yml: the file is empty"),
        ("- 1\n- 2\n", "exp.yml: expected a mapping with keys name, matrix, task, model, train, got list"),
        ("matrix: 5", "exp.yml: matrix: expected a mapping of variable -> list of values, got 5"),
        ("matrix: {l: []}", "exp.yml: matrix.l: the list of values is empty"),
        ("matrix: {l: [1], $filtr: x}", "exp.yml: matrix.$filtr: unknown setting; did you mean '$filter'?"),
        ("matrix: {l-x: [1]}", "exp.yml: matrix: variable name 'l-x' must be letters, digits and _"),
        ("model: conv", "exp.yml: model: expected a mapping of settings, got 'conv'"),
        ("name: [1]", "exp.yml: name: expected a string, got [1]"),
        ("name: ../up", "exp.yml: name: '../up' must be a relative path without empty, '.' or '..' parts"),
    ],
)
def test_malformed_files(here, text, says):
    assert error(text) == says


def test_filter_attribute_access_in_a_file(here):
    message = error(
        """
        matrix: {l: [5], $filter: "${l} > 1 and x.__class__"}
        model: {layers: "${l}"}
        """
    )
    assert message == "exp.yml: matrix.$filter: attribute access is not allowed ('x.__class__')"


@pytest.mark.parametrize(
    "expression, says",
    [
        ("__import__('os').getcwd() == ${l}", "is not allowed"),
        ("open('exp.yml') == ${l}", "calling 'open' is not allowed"),
        ("(lambda: ${l})() == 5", "calling 'lambda: ${l}' is not allowed"),
        ("${l}.__class__ == int", "attribute access is not allowed ('${l}.__class__')"),
        ("${l} ** 99999999 > 0", "the operator '**' is not allowed"),
    ],
)
def test_filter_refusals_in_a_file(here, expression, says):
    message = error(f'matrix: {{l: [5], $filter: "{expression}"}}\nmodel: {{layers: "${{l}}"}}\n')
    assert message.startswith("exp.yml: matrix.$filter: ") and says in message


def test_yaml_syntax_error_gives_the_line():
    with pytest.raises(ConfigError) as info:
        load_experiment(FILES / "syntax_error.yml")
    assert re.search(r"syntax_error\.yml: YAML syntax error at line 4: ", str(info.value))


def billion_laughs(levels: int = 10) -> str:
    """Ten short lines whose aliases expand to 9**10 values."""
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "task: {name: selective-copy}\nmodel:\n  name: lstm\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text, says",
    [
        (billion_laughs(), "exp.yml: line 8: aliases expand to more than 20000 values"),
        ("model: &a [*a]\n", "exp.yml: line 1: an anchor is used inside itself"),
        ("model: &a {x: *a}\n", "exp.yml: line 1: an anchor is used inside itself"),
        ("model: !!set {a, b}\n", "exp.yml: line 1: a set (!!set) is not a value a setting can take"),
        ("matrix: {x: [!!set {a}]}\n", "exp.yml: line 1: a set (!!set)"),
        ("matrix: {x: [2024-01-01]}\n", "exp.yml: line 1: a date or time (2024-01-01): quote it"),
        ("model: {x: !!binary aGk=}\n", "exp.yml: line 1: binary data (!!binary)"),
        ("model: {x: !!omap [a: 1]}\n", "exp.yml: line 1: an ordered map (!!omap)"),
        ("model: " + "[" * 3000 + "]" * 3000 + "\n", "exp.yml: line 1: nested more than 100 levels deep"),
        ("model: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "exp.yml: line 1: nested more than 100 levels deep"),
        ("model:\n" + "".join(" " * i + "- \n" for i in range(1, 400)), "nested more than 100 levels deep"),
        ("a: &a [[[[[[[[[[1]]]]]]]]]]\n" + "".join(f"a{i}: &a{i} [[[[[[[[[[*a{i - 1 if i > 1 else ''}]]]]]]]]]]\n"
                                                    for i in range(1, 12)), "levels deep (aliases expanded)"),
    ],
)
def test_yaml_bombs_and_odd_values_are_one_line_errors(here, text, says):
    started = time.perf_counter()
    message = error(text)
    assert says in message and "\n" not in message
    assert time.perf_counter() - started < 2


def test_aliases_within_the_bounds_still_work(here, models):
    experiment = load(
        """
        task: {name: program, input_length: &len [2, 5], validation_input_length: *len}
        model: {name: conv, layers: 2}
        """
    )
    assert experiment.runs[0].task["validation_input_length"] == [2, 5]


def test_the_strict_loader_stays_a_safe_loader():
    import yaml

    from selcopy.experiments.grid import StrictLoader

    assert issubclass(StrictLoader, yaml.SafeLoader)
    with pytest.raises(yaml.YAMLError):
        yaml.load("x: !!python/object/apply:os.getcwd []", Loader=StrictLoader)  # noqa: S506


def test_a_huge_file_or_an_endless_one_stops_at_the_size_bound(here):
    from selcopy.experiments.yamlfile import MAX_BYTES

    Path("exp.yml").write_bytes(b"# " + b"x" * MAX_BYTES)
    assert load_error("exp.yml") == f"exp.yml: the file is larger than {MAX_BYTES:,} bytes, too large for a YAML " \
                                    "settings file"
    if Path("/dev/zero").exists():
        assert "larger than" in load_error("/dev/zero")


def load_error(path: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    return str(info.value)


def test_run_folders_that_would_nest_are_refused(here, models):
    message = error(
        """
        name: "e/${p}"
        matrix: {p: [x, x/p-x]}
        model: {name: conv, layers: 2}
        """
    )
    assert message == ("exp.yml: run 'e/x/p-x/p-x-p-x' would be stored inside the folder of run 'e/x/p-x': "
                       "the name gives runs folders that nest")


def test_duplicate_run_names(here, models):
    message = error(
        """
        matrix: {l: [5, 5]}
        model: {layers: "${l}"}
        """
    )
    assert message.startswith("exp.yml: run name 'exp/l-5' occurs 2 times")


def test_values_that_look_alike_in_a_name(here, models):
    message = error(
        """
        name: x-${b}
        matrix: {b: ["a b", "a-b"]}
        """
    )
    assert message.startswith("exp.yml: run name 'x-a-b/b-a-b' occurs 2 times")


def test_a_run_folder_name_too_long_for_the_file_system(here, models):
    def grid(layers: int) -> str:
        return f"""
            matrix: {{dilation: [[{", ".join(["1"] * layers)}]]}}
            model: {{layers: {layers}, dilation: "${{dilation}}"}}
            """

    assert len(slugs(load(grid(100)))[0]) == 208
    message = error(grid(120))
    assert message.startswith("exp.yml: run dilation-1,1,")
    assert "folder name 'dilation-1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1'... has 248 bytes, more than a run folder's " \
           "name can hold (240)" in message


# -- validation_* overrides --------------------------------------------------------------------


def test_validation_overrides(here, models):
    [run] = load("task: {num_operations: [1, 3], validation_num_operations: 5, validation_count: 50}").runs
    assert run.task["num_operations"] == [1, 3] and run.task["validation_num_operations"] == [5, 5]
    assert run.task["validation_count"] == 50 and run.task["validation_seed"] == 23
    assert run.task_settings("validation")[1]["num_operations"] == [5, 5]


def test_validation_override_of_an_unknown_field(here):
    message = error("task: {validation_foo: 5}")
    assert message.startswith(
        "exp.yml: task.validation_foo: unknown setting: 'foo' is not a setting of task 'program'"
    )
    close = error("task: {validation_num_operation: 5}")
    assert close.endswith("; did you mean 'validation_num_operations'?")


def test_invalid_override_names_the_validation_key(here):
    message = error("task: {validation_num_items: 30}")
    assert message.startswith("exp.yml: task.validation_num_items: must be between 1 and 26")
