"""The `$filter` sandbox: a tiny expression language over matrix variables.

    len(${attn}) == ${l} and (${l} < 6 or ${attn}[-1] == True)

The text is only *parsed* by Python's `ast` (after each `${name}` became a plain identifier)
and then walked by `_Evaluator`, which knows a handful of node kinds: constants, list and
tuple literals, variables, comparisons, `and/or/not`, `+ - * / // %`, unary minus, `a if c
else b`, subscripts and calls of `len min max abs`. Anything else (attributes, other names or
calls such as `sum`, lambdas, comprehensions, `**`) is a ConfigError: the whole tree is
checked before any of it is evaluated, so a short-circuited branch cannot hide it.

The work is bounded: no value may hold more than MAX_ITEMS items (nested lists' items and
strings' characters all counted), no integer more than MAX_BITS bits, and every evaluation
of one expression in one command together may touch at most MAX_WORK items (a `Budget`).
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable
from typing import Any

from selcopy.errors import ConfigError

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")

FUNCTIONS: dict[str, Callable[..., Any]] = {"len": len, "min": min, "max": max, "abs": abs}
BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}


def same(a: Any, b: Any) -> bool:
    """Equality in which `true` is not `1` (attention `true` and 1 head are different settings)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return item in container
    return any(same(item, element) for element in container)


COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: same, ast.NotEq: lambda a, b: not same(a, b), ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: contains(b, a), ast.NotIn: lambda a, b: not contains(b, a),
}
UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos,
}
# Why each refused node is refused, in the words of the error message.
REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access", ast.Lambda: "lambda", ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension", ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension",
    ast.NamedExpr: "assignment", ast.Starred: "unpacking", ast.JoinedStr: "an f-string",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.Dict: "a dict literal",
    ast.Set: "a set literal",
}
SYMBOLS: dict[type[ast.AST], str] = {
    ast.Pow: "**", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
    ast.RShift: ">>", ast.Invert: "~", ast.Is: "is", ast.IsNot: "is not",
}
MAX_ITEMS = 10_000  # largest value: items of nested lists and characters of strings, all counted
MAX_BITS = 4_096  # largest integer an operation may produce
MAX_WORK = 2_000_000  # items that the evaluations of one expression may touch, all together


class Budget:
    """The work left to the evaluations of one expression (a grid's filter over every combination)."""

    def __init__(self, work: int = MAX_WORK):
        self.work = self.left = work


def size(value: Any, limit: int = MAX_ITEMS) -> int:
    """Items in `value`: nested lists' items and strings' characters (an empty one counts as one).
    Counting stops once past `limit`, so that it costs at most about `limit` steps itself.

    >>> size([[1, 2], "abc", []])
    6
    """
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        if isinstance(item, str):
            count += max(1, len(item))
        elif isinstance(item, (list, tuple)) and item:
            stack.extend(item[: limit + 1 - count])
        else:
            count += 1
    return count


def evaluate_expression(expression: str, variables: dict[str, Any], where: str, budget: Budget | None = None) -> Any:
    """Evaluate a sandboxed expression; `${name}` reads `variables[name]`; `budget`, shared by
    the evaluations of one expression, bounds their work together (default: this one's alone).

    >>> evaluate_expression("len(${attn}) == ${l}", {"attn": [0, 0, True], "l": 3}, "f.yml: matrix.$filter")
    True

    Every problem (syntax, a refused construct, an undefined variable, a failing operation)
    is a ConfigError that starts with `where` and quotes the offending part.
    """
    if not isinstance(expression, str):
        raise ConfigError(f"{where}: expected an expression string, got {expression!r}")
    text, names = _substitute(expression, variables, where)
    try:
        tree = ast.parse(text.replace("\n", " ").strip(), mode="eval")
    except SyntaxError as error:
        hint = "; write ${name} for a matrix variable" if "$" in text else ""
        raise ConfigError(f"{where}: invalid expression {expression!r}: {error.msg}{hint}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ConfigError(f"{where}: expression {expression!r} is too complex or invalid") from None
    evaluator = _Evaluator(names, variables, where, budget or Budget())
    try:
        evaluator.check(tree.body)
        return evaluator.run(tree.body)
    except RecursionError:
        raise ConfigError(f"{where}: expression {expression!r} is nested too deeply") from None
    except (ArithmeticError, LookupError, TypeError, ValueError, MemoryError) as error:  # none known: one line
        raise ConfigError(f"{where}: expression {expression!r} cannot be evaluated: {error}") from None


def _substitute(expression: str, variables: dict[str, Any], where: str) -> tuple[str, dict[str, str]]:
    """Replace each `${name}` by an identifier no user text contains; -> (text, {identifier: name})."""
    prefix = "_v"
    while prefix in expression:
        prefix += "_"
    names: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            known = ", ".join(variables) or "nothing (there is no matrix)"
            raise ConfigError(f"{where}: undefined variable ${{{name}}}; matrix has: {known}")
        ident = f"{prefix}{list(variables).index(name)}"
        names[ident] = name
        return f" {ident} "

    return PLACEHOLDER.sub(replace, expression), names


YAML_WORDS = {"true": True, "false": False, "null": None}  # as the rest of the file spells them


class _Evaluator:
    """Checks the whole tree, then evaluates it."""

    def __init__(self, names: dict[str, str], variables: dict[str, Any], where: str, budget: Budget):
        self.names = names
        self.variables = variables
        self.where = where
        self.budget = budget

    def source(self, node: ast.AST) -> str:
        """The node as the user wrote it (placeholders back to `${name}`)."""
        text = ast.unparse(node)
        for ident, name in sorted(self.names.items(), key=lambda item: -len(item[0])):
            text = text.replace(ident, f"${{{name}}}")
        return text

    def refuse(self, what: str, node: ast.AST, hint: str = "") -> ConfigError:
        return ConfigError(f"{self.where}: {what} is not allowed ({self.source(node)!r}){hint}")

    def fail(self, problem: str, node: ast.AST) -> ConfigError:
        used = {name: self.variables[name] for name in self.names.values()}
        values = ", ".join(f"${{{k}}} = {json.dumps(v, default=str)}" for k, v in used.items())
        with_values = f" with {values}" if values else ""
        return ConfigError(f"{self.where}: {problem} in {self.source(node)!r}{with_values}")

    # -- checking: structure only, every branch -------------------------------------------

    def check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            if node.value is not None and not isinstance(node.value, (bool, int, float, str)):
                raise self.refuse(f"a {type(node.value).__name__} constant", node)
        elif isinstance(node, ast.Name):
            if node.id not in self.names and node.id not in YAML_WORDS:
                hint = f"write ${{{node.id}}} for a variable"
                if node.id in FUNCTIONS:
                    hint = "a function may only be called"
                raise self.refuse(f"the name '{node.id}'", node, f"; {hint}")
        elif isinstance(node, ast.Call):
            self.check_call(node)
        elif isinstance(node, ast.BinOp) and type(node.op) not in BINARY:
            raise self.refuse(f"the operator '{SYMBOLS.get(type(node.op), type(node.op).__name__)}'", node)
        elif isinstance(node, ast.UnaryOp) and type(node.op) not in UNARY:
            raise self.refuse(f"the operator '{SYMBOLS.get(type(node.op), type(node.op).__name__)}'", node)
        elif isinstance(node, ast.Compare) and any(type(op) not in COMPARE for op in node.ops):
            bad = next(op for op in node.ops if type(op) not in COMPARE)
            raise self.refuse(f"the comparison '{SYMBOLS.get(type(bad), type(bad).__name__)}'", node)
        elif not isinstance(node, (ast.List, ast.Tuple, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare,
                                   ast.IfExp, ast.Subscript, ast.Slice)):
            raise self.refuse(REFUSED.get(type(node), type(node).__name__), node)
        if not isinstance(node, ast.Call):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.check(child)

    def check_call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            called = self.source(node.func)
            raise self.refuse(f"calling '{called}'", node, f"; functions: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise self.refuse("a keyword argument", node)
        for arg in node.args:
            self.check(arg)

    # -- evaluation -----------------------------------------------------------------------

    def run(self, node: ast.AST) -> Any:
        method = getattr(self, f"run_{type(node).__name__}")
        result = method(node)
        self.charge([result], node)
        return result

    def charge(self, values: list[Any], node: ast.AST) -> None:
        """Count the work of making or reading `values`; refuse a value or a total beyond the bounds."""
        for value in values:
            items = size(value)
            if items > MAX_ITEMS:
                raise self.fail(f"a value of more than {MAX_ITEMS} items (nested ones counted)", node)
            self.budget.left -= items
        if self.budget.left < 0:
            raise self.fail(f"more work than the {self.budget.work} items an expression may touch", node)

    def run_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def run_Name(self, node: ast.Name) -> Any:
        if node.id in YAML_WORDS:
            return YAML_WORDS[node.id]
        return self.variables[self.names[node.id]]

    def run_List(self, node: ast.List) -> list[Any]:
        return [self.run(item) for item in node.elts]

    def run_Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return tuple(self.run(item) for item in node.elts)

    def run_BoolOp(self, node: ast.BoolOp) -> Any:
        value = self.run(node.values[0])
        for item in node.values[1:]:
            if bool(value) == isinstance(node.op, ast.Or):
                return value
            value = self.run(item)
        return value

    def run_UnaryOp(self, node: ast.UnaryOp) -> Any:
        return self.apply(UNARY[type(node.op)], [self.run(node.operand)], node)

    def run_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.run(node.left), self.run(node.right)
        if isinstance(node.op, ast.Mod) and isinstance(left, str):
            raise self.fail("string formatting with % is not supported", node)
        if isinstance(node.op, ast.Mult):
            self.check_repeat(left, right, node)
        return self.apply(BINARY[type(node.op)], [left, right], node)

    def run_Compare(self, node: ast.Compare) -> bool:
        left = self.run(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            right = self.run(right_node)
            if not self.apply(COMPARE[type(op)], [left, right], node):
                return False
            left = right
        return True

    def run_IfExp(self, node: ast.IfExp) -> Any:
        return self.run(node.body) if self.run(node.test) else self.run(node.orelse)

    def run_Subscript(self, node: ast.Subscript) -> Any:
        value = self.run(node.value)
        index = self.run(node.slice)
        if not isinstance(value, (list, tuple, str, dict)):
            raise self.fail(f"a {type(value).__name__} cannot be indexed", node)
        if isinstance(index, bool) or not isinstance(index, (int, slice, str)):
            raise self.fail(f"index {index!r} is not an integer", node)
        try:
            return value[index]
        except (IndexError, KeyError, TypeError):
            raise self.fail(f"index {index!r} is out of range or of the wrong kind", node) from None
        except ValueError as error:  # a slice step of 0
            raise self.fail(str(error), node) from None

    def run_Slice(self, node: ast.Slice) -> slice:
        bounds = [None if part is None else self.run(part) for part in (node.lower, node.upper, node.step)]
        if any(b is not None and (isinstance(b, bool) or not isinstance(b, int)) for b in bounds):
            raise self.fail("slice bounds must be integers", node)
        return slice(*bounds)

    def run_Call(self, node: ast.Call) -> Any:
        return self.apply(FUNCTIONS[node.func.id], [self.run(arg) for arg in node.args], node)  # type: ignore[attr-defined]

    def apply(self, function: Callable[..., Any], args: list[Any], node: ast.AST) -> Any:
        self.charge(args, node)  # what the function reads: comparisons of nested lists, `in`, min, max
        try:
            result = function(*args)
        except ZeroDivisionError:
            raise self.fail("division by zero", node) from None
        except (TypeError, ValueError, ArithmeticError) as error:
            raise self.fail(str(error), node) from None
        if isinstance(result, int) and result.bit_length() > MAX_BITS:
            raise self.fail("the number grows too large", node)
        return result

    def check_repeat(self, left: Any, right: Any, node: ast.AST) -> None:
        """`[0] * n`, `[[0] * 100] * n` and `"ab" * n` may not build huge values, not even for a moment."""
        for seq, count in ((left, right), (right, left)):
            sequence = isinstance(seq, (str, list, tuple))
            if sequence and isinstance(count, int) and size(seq) * count > MAX_ITEMS:
                raise self.fail(f"the result would have more than {MAX_ITEMS} items", node)
