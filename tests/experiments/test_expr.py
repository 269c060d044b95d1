"""The `$filter` sandbox: what it computes, and everything it refuses."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selcopy.errors import ConfigError
from selcopy.experiments import expr as expr_module
from selcopy.experiments.expr import evaluate_expression

WHERE = "exp.yml: matrix.$filter"


def ev(expression: str, **variables):
    return evaluate_expression(expression, variables, WHERE)


def refused(expression: str, **variables) -> str:
    with pytest.raises(ConfigError) as info:
        ev(expression, **variables)
    message = str(info.value)
    assert message.startswith(WHERE + ": ")
    return message


def test_the_articles_filter():
    assert ev("len(${attn}) == ${l}", attn=[0, 0, 0, 0, True], l=5) is True
    assert ev("len(${attn}) == ${l}", attn=[0, 0, 0, 0, 0, True], l=5) is False


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("${a} + ${b} * 2", 7),
        ("(${a} + ${b}) * 2", 10),
        ("${a} - ${b} // 2 % 3", 2),
        ("${b} / 2", 1.0),
        ("-${a} + abs(-4)", 1),
        ("${a} > 1 and ${b} < 3", True),
        ("${a} > 5 or not ${b} == 3", True),
        ("not (${a} > 1 and ${b} > 1)", False),
        ("${a} in [1, 3, 5]", True),
        ("${b} not in (1, 3, 5)", True),
        ("1 < ${a} <= 3 < 4", True),
        ("1 < ${a} > 5", False),
        ("'x' if ${a} > 2 else 'y'", "x"),
        ("${attn}[-1] == True", True),
        ("${attn}[1:] == [0, True]", True),
        ("${attn}[${a} - 2] == 0", True),
        ("min(${a}, ${b}) + max([${a}, ${b}])", 5),
        ("max(${attn}) == True and min(${attn}) == 0", True),
        ("${name} == 'conv' and ${flag} == None", True),
        ("None", None),
        ("${a} and ${attn}", [0, 0, True]),
        ("${name} + '-x'", "conv-x"),
        ("[0] * ${a} + [True]", [0, 0, 0, True]),
    ],
)
def test_expressions(expression, expected):
    variables = {"a": 3, "b": 2, "attn": [0, 0, True], "name": "conv", "flag": None}
    assert ev(expression, **variables) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(-200, 200))
def test_arithmetic_matches_python(a, b, c):
    assert ev("${a} + ${b} * 2 > ${c}", a=a, b=b, c=c) is (a + b * 2 > c)


@settings(max_examples=100, deadline=None)
@given(st.integers(-20, 20), st.integers(1, 20), st.lists(st.integers(-5, 5), max_size=6))
def test_more_arithmetic_matches_python(a, b, xs):
    assert ev("(${a} // ${b}, ${a} % ${b}, -${a} * 3 - ${b})", a=a, b=b) == (a // b, a % b, -a * 3 - b)
    assert ev("len(${xs}) == ${b} or ${a} in ${xs}", a=a, b=b, xs=xs) is (len(xs) == b or a in xs)


def test_attribute_access_is_named():
    assert refused("x.__class__") == f"{WHERE}: attribute access is not allowed ('x.__class__')"
    assert "attribute access is not allowed ('${a}.__class__')" in refused("${a}.__class__", a=1)


@pytest.mark.parametrize(
    "expression, says",
    [
        ("__import__('os').system('true')", "is not allowed"),
        ("__import__('os')", "calling '__import__' is not allowed"),
        ("import os", "invalid expression"),
        ("open('/etc/passwd')", "calling 'open'"),
        ("print(1)", "calling 'print'"),
        ("eval('1')", "calling 'eval'"),
        ("sum(${a}) == 1", "calling 'sum'"),
        ("any(${a})", "calling 'any'"),
        ("type(${a})", "calling 'type'"),
        ("lambda: 1", "lambda is not allowed"),
        ("(lambda: 1)()", "calling 'lambda: 1'"),
        ("[x for x in ${a}]", "comprehension"),
        ("max(x for x in ${a})", "comprehension"),
        ("().__class__.__bases__[0]", "attribute access"),
        ("${a}.__len__", "attribute access"),
        ("__builtins__", "the name '__builtins__'"),
        ("x > 1", "the name 'x' is not allowed ('x'); write ${x} for a variable"),
        ("len", "a function may only be called"),
        ("2 ** 100000000", "the operator '**'"),
        ("${a} ** 2", "the operator '**'"),
        ("1 << 100000", "the operator '<<'"),
        ("~${a}", "the operator '~'"),
        ("${a} is None", "the comparison 'is'"),
        ("(y := 1)", "assignment"),
        ("{'k': 1}", "dict literal"),
        ("{1, 2}", "set literal"),
        ("f'{${a}}'", "f-string"),
        ("max(${a}, key=abs)", "keyword argument"),
        ("len(*${a})", "unpacking"),
        ("b'x'", "bytes constant"),
        ("$a > 1", "write ${name} for a matrix variable"),
        ("${a} >", "invalid expression"),
    ],
)
def test_refused(expression, says):
    assert says in refused(expression, a=[1, 2])


def test_short_circuit_does_not_hide_a_refused_branch():
    assert "attribute access" in refused("False and x.__class__")
    assert "calling 'open'" in refused("True or open('f')")
    assert "calling 'open'" in refused("1 if True else open('f')")


def test_undefined_variable_names_it():
    message = refused("${atn} == 1", attn=1, l=2)
    assert message == f"{WHERE}: undefined variable ${{atn}}; matrix has: attn, l"


@pytest.mark.parametrize(
    "expression, says",
    [
        ("1 / 0", "division by zero"),
        ("${a} % 0", "division by zero"),
        ("${xs}[5]", "out of range"),
        ("${a}[0]", "cannot be indexed"),
        ("len(${a})", "int"),
        ("${a} + 'x'", "unsupported operand"),
        ("'ab' * 100000000", "more than 10000 items"),
        ("${xs} * 100000", "more than 10000 items"),
        ("'%s' % ${a}", "formatting"),
        ("max([])", "empty"),
        ("${a} < 'x'", "not supported"),
        ("[1][::0]", "slice step cannot be zero"),
        ("${xs}[::${a} - 3]", "slice step cannot be zero"),
        ("${a} / 0.0", "division by zero"),
        ("10 ** 400", "'**'"),
        ("9 ** 9 ** 9", "'**'"),
        ("(2 * 10 ** 300) / 3", "'**'"),
        ("${big} / 3", "too large"),
    ],
)
def test_runtime_errors_are_config_errors(expression, says):
    message = refused(expression, a=3, xs=[1, 2], big=2**4000)
    assert says in message and "\n" not in message


def test_runtime_error_shows_the_values():
    assert "with ${xs} = [1, 2]" in refused("${xs}[5] == 1", xs=[1, 2])


def test_huge_integers_are_refused():
    big = " * ".join(["99999999999999999999"] * 250)
    assert "too large" in refused(big)


@pytest.mark.parametrize(
    "expression",
    [
        "[[[0] * 10000] * 10000] * 10000 == [[[0] * 10000] * 10000] * 10000",  # the outer list alone is small
        "[[]] * 100000 == []",  # empty lists count too
        "[${xs}] * 5000 == []",
        "'a' * 9000 + 'b' * 9000 == ''",  # a sum of allowed parts
        "[[0] * 6000] + [[0] * 6000] == []",
        "[${s}] * 2000 == []",  # nested strings count by their characters
    ],
)
def test_no_value_grows_past_the_bound(expression):
    started = time.perf_counter()
    assert "more than 10000 items" in refused(expression, xs=[1, 2, 3], s="abcdefgh")
    assert time.perf_counter() - started < 1


def test_the_work_of_an_expression_is_bounded():
    # each comparison is allowed, but there are too many of them
    started = time.perf_counter()
    assert "more work than" in refused(" and ".join(["[[0] * 5000] == [[0] * 5000]"] * 400))
    assert time.perf_counter() - started < 3


def test_one_budget_bounds_the_evaluations_of_a_grid():
    budget = expr_module.Budget(2000)
    for _ in range(50):
        assert evaluate_expression("${xs} == [1, 2]", {"xs": [1, 2]}, WHERE, budget)
    with pytest.raises(ConfigError, match="more work than the 2000 items"):
        for _ in range(1000):
            evaluate_expression("${xs} == [1, 2]", {"xs": [1, 2]}, WHERE, budget)


def test_size_counts_nested_items_and_characters():
    assert expr_module.size([[1, 2], "abc", []]) == 6
    assert expr_module.size([[[0] * 100] * 100] * 100, limit=50) <= 51  # stops early


def test_the_docstring_lists_exactly_the_functions():
    listed = re.search(r"calls of `([^`]*)`", expr_module.__doc__.replace("\n", " ")).group(1).split()
    assert listed == list(expr_module.FUNCTIONS)
    for name in ("sum", "any", "all"):
        assert f"calling '{name}'" in refused(f"{name}([1])")


def test_deep_nesting_is_an_error_not_a_crash():
    assert "expression" in refused("(" * 5000 + "1" + ")" * 5000)
    assert refused("not " * 2000 + "True")


def test_module_never_calls_eval_exec_or_compile():
    tree = ast.parse(Path(expr_module.__file__).read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    called = {call.func.id for call in calls if isinstance(call.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__"}


def test_true_is_not_one_in_comparisons():
    from selcopy.experiments.expr import evaluate_expression

    assert evaluate_expression("${a} == [0, 0, true]", {"a": [0, 0, True]}, "t") is True
    assert evaluate_expression("${a} == [0, 0, true]", {"a": [0, 0, 1]}, "t") is False
    assert evaluate_expression("${a} in [[0, 0, true], [0, 0, 8]]", {"a": [0, 0, 1]}, "t") is False
    assert evaluate_expression("${a} not in [[0, 0, true]]", {"a": [0, 0, 1]}, "t") is True
    assert evaluate_expression("${a} != 1", {"a": True}, "t") is True
    assert evaluate_expression("'Q' in ${q}", {"q": "QK"}, "t") is True
