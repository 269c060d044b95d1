"""YAML files read within bounds: experiment files and the run store's `config.yaml`.

    a: &a [x, x, x, x, x, x, x, x, x]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]     # ... ten such lines: 9**10 values
                                                 # -> "line 2: aliases expand to more than 20000 values"

Both loaders are SafeLoaders (nothing in a file is ever run as code) that also refuse what no
setting needs and what would hang or crash what reads the document: a file over MAX_BYTES
(only MAX_BYTES + 1 bytes are ever read, so `/dev/zero` too ends at once), a document whose
aliases expand past MAX_NODES values, an anchor inside itself (`a: &a [*a]`), nesting deeper
than MAX_DEPTH, and values that are no JSON value (`!!set`, `!!binary`, dates, `!!omap`,
`!!pairs`). Every problem is an `Unreadable` whose text is one line without the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 4_000_000
MAX_NODES = 20_000  # values of the document with every alias expanded; an experiment file has hundreds
MAX_DEPTH = 100  # levels of nested lists and mappings, aliases expanded; a setting needs a few
REFUSED_TAGS = {
    "tag:yaml.org,2002:set": "a set (!!set)",
    "tag:yaml.org,2002:binary": "binary data (!!binary)",
    "tag:yaml.org,2002:timestamp": "a date or time",
    "tag:yaml.org,2002:omap": "an ordered map (!!omap)",
    "tag:yaml.org,2002:pairs": "a list of pairs (!!pairs)",
}


class Refused(yaml.YAMLError):
    """A document that the bounds refuse; the text starts with its line: `line 4: ...`."""


class Unreadable(Exception):
    """Why a YAML file cannot be loaded, in one line that does not name the file."""


def _line(node_or_mark: Any) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return f"line {mark.line + 1}" if mark is not None else "the document"


class Bounded:
    """Mixed into a SafeLoader: the bounds on nesting, aliases and types."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Python's composer recurses per level: stop before Python's own recursion limit
        (libyaml's composer, in C, bounds nesting itself and never comes here)."""
        if self._depth >= MAX_DEPTH:
            raise Refused(f"{_line(self.peek_event())}: nested more than {MAX_DEPTH} levels deep")
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()  # type: ignore[misc]
        if node is not None:
            check_expanded(node)
        return node


def check_expanded(root: yaml.Node) -> None:
    """Refuse a node graph that, with its aliases expanded, holds more than MAX_NODES values or
    MAX_DEPTH levels, or that holds itself. Each distinct node is visited once (no expanding)."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth), aliases expanded
    started: set[int] = set()  # the nodes being counted: the ancestors of the one on top
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            counted = [sizes[id(child)] for child in children]
            values = 1 + sum(size for size, _ in counted)
            depth = 1 + max((d for _, d in counted), default=0)
            if values > MAX_NODES:
                raise Refused(f"{_line(node)}: aliases expand to more than {MAX_NODES} values")
            if depth > MAX_DEPTH:
                raise Refused(f"{_line(node)}: nested more than {MAX_DEPTH} levels deep (aliases expanded)")
            sizes[id(node)] = (values, depth)
            started.discard(id(node))
        elif id(node) not in sizes:
            if id(node) in started:
                raise Refused(f"{_line(node)}: an anchor is used inside itself (a value that holds itself)")
            started.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _refuse_tag(loader: Any, node: yaml.Node) -> Any:
    what = REFUSED_TAGS[node.tag]
    if node.tag.endswith("timestamp"):
        what += f" ({node.value}): quote it to make it a string"
    else:
        what += " is not a value a setting can take: write a list, a mapping or a string"
    raise Refused(f"{_line(node)}: {what}")


def refuse_types(loader: type) -> type:
    for tag in REFUSED_TAGS:
        loader.add_constructor(tag, _refuse_tag)  # type: ignore[attr-defined]
    return loader


@refuse_types
class BoundedLoader(Bounded, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """yaml.safe_load's loader within the bounds; libyaml's where PyYAML was built with it
    (many times faster: `results` reads a config.yaml per run)."""


def load_file(path: Path, loader: type) -> Any:
    """The YAML document in `path`, read with `loader` (a `Bounded` SafeLoader) and at most
    MAX_BYTES; Unreadable (one line) if it cannot be read, is too large or is refused."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as error:
        raise Unreadable(f"cannot read the file: {error.strerror or error}") from None
    if len(data) > MAX_BYTES:
        raise Unreadable(f"the file is larger than {MAX_BYTES:,} bytes, too large for a YAML settings file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Unreadable(f"cannot read the file: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader within bounds
    except Refused as error:
        raise Unreadable(str(error)) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f" at line {mark.line + 1}" if mark else ""
        raise Unreadable(f"YAML syntax error{line}: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise Unreadable(f"YAML syntax error: {' '.join(str(error).split())}") from None
    except RecursionError:  # below the bounds, but a deeper stack than this process has left
        raise Unreadable(f"nested too deeply (the bound is {MAX_DEPTH} levels)") from None
