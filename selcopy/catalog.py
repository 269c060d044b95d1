"""What exists, by name: the files of the tasks and models, and what `selcopy ls` says of them.

The registries (`selcopy.tasks.TASKS`, `selcopy.models.MODELS`) import the files listed here.
A task or model file imports torch, which takes seconds; `selcopy ls` reads the same config
classes from the files' source instead, without importing them. A test checks that it lists
exactly what the imported classes hold.
"""

from __future__ import annotations

import ast
import operator
from pathlib import Path
from typing import Any

TASK_FILES = [  # selcopy/tasks/<name>.py: one TaskConfig with a name each
    "program",
    "selective_copy",
]
MODEL_FILES = [  # selcopy/models/<name>.py: one ModelConfig with a name each
    "conv",
    "lstm",
    "mamba",
    "transformer",
]

Setting = tuple[str, Any, str]  # (setting, default, description)
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.USub: operator.neg}


def describe(package: str, module: str, class_name: str | None = None) -> tuple[str, str, list[Setting]]:
    """(name, description, settings) of the config class in `selcopy/<package>/<module>.py` that
    has its own `name` (or of the class `class_name`), read from its source."""
    source = (Path(__file__).parent / package / f"{module}.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and (class_name is None or node.name == class_name):
            names = {t.target.id: t.value for t in node.body if isinstance(t, ast.AnnAssign) and t.value is not None
                     and isinstance(t.target, ast.Name)}
            if class_name or "name" in names:
                settings = [_setting(key, value) for key, value in names.items()
                            if key not in ("name", "description")]
                docs = [_constant(names.get(k)) if k in names else "" for k in ("name", "description")]
                return docs[0], docs[1], settings
    raise LookupError(f"selcopy/{package}/{module}.py has no config class with a name")


def _setting(key: str, value: ast.expr) -> Setting:
    """A field `key: T = Field(default, description=...)` or `key: T = default`."""
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Field":
        keywords = {k.arg: k.value for k in value.keywords}
        default = value.args[0] if value.args else keywords.get("default")
        return key, _constant(default), _constant(keywords["description"]) if "description" in keywords else ""
    return key, _constant(value), ""


def _constant(node: ast.expr | None) -> Any:
    """The value of a literal, with the arithmetic of numbers a default may hold (`1 / 3`)."""
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        return _ARITHMETIC[type(node.op)](_constant(node.left), _constant(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _ARITHMETIC:
        return _ARITHMETIC[type(node.op)](_constant(node.operand))
    if isinstance(node, ast.Dict):
        return {_constant(k): _constant(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_constant(item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    return ast.literal_eval(node) if node is not None else None
