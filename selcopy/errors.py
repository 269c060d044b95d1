"""User-facing errors: each becomes one clear line on stderr and exit status 2."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

from pydantic import ValidationError

CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # line breaks, NUL, tabs, escapes: never part of a name
BOUNDS = {"less_than_equal": ("le", "at most"), "less_than": ("lt", "below"),
          "greater_than_equal": ("ge", "at least")}  # pydantic's bound errors, said as `must be at most 64, got 100`


class SelcopyError(Exception):
    """Bad input: a setting, file or name the user can fix. Exit status 2.

    Its text is one line: a control character in it (a value as the user gave it, with a
    line break) reads escaped, as `\\n`.
    """

    def __str__(self) -> str:
        return CONTROL.sub(lambda match: repr(match.group())[1:-1], super().__str__())


class ConfigError(SelcopyError):
    """A setting is invalid; the message names where (file, key) and what is wrong."""


def did_you_mean(
    word: object,
    choices: Iterable[str],
    *,
    show: Callable[[str], str] = "'{}'".format,
    listed: Callable[[str], str] = str,
    known: str = "known",
    list_always: bool = False,
    cutoff: float = 0.6,
) -> str:
    """The one hint for a misspelt name: "; did you mean 'x'?" for the closest choice,
    followed (with `list_always`) or, without a close one, replaced by the list of them all;
    `show` formats the suggestion, `listed` each listed name.

    >>> did_you_mean("cnov", ["conv", "lstm"])
    "; did you mean 'conv'?"
    >>> did_you_mean("zzz", ["conv", "lstm"])
    '; known: conv, lstm'
    >>> did_you_mean("lsmt", ["conv", "lstm"], known="available", list_always=True)
    "; did you mean 'lstm'? available: conv, lstm"
    """
    choices = list(choices)
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=cutoff)
    hint = f"; did you mean {show(close[0])}?" if close else ""
    if choices and (list_always or not close):
        hint += f"{' ' if close else '; '}{known}: {', '.join(listed(c) for c in choices)}"
    return hint


def explain(error: ValidationError, where: str = "", known: Iterable[str] = ()) -> str:
    """One line from a pydantic error: `where: key.path: message (got value)`; an unknown key
    (pydantic's `extra="forbid"`) gets the closest of the `known` keys as a hint, a value out of
    its range the limit: `task.num_operations: must be at most 1,000, got 1000000`."""
    known = list(known)
    parts = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        text = f"{loc}: {msg}" if loc else msg
        if item["type"] == "extra_forbidden":
            text = f"{loc}: unknown setting{did_you_mean(item['loc'][-1], known) if known else ''}"
        elif item["type"] == "missing":
            text = f"{loc}: missing"
        elif item["type"] in BOUNDS and "ctx" in item:
            key, words = BOUNDS[item["type"]]
            text = f"{loc + ': ' if loc else ''}must be {words} {item['ctx'][key]:,}, got {got}"
        elif got is not None and not isinstance(got, dict) and "got " not in msg:  # say the value once
            text += f" (got {got!r})"
        parts.append(text)
    prefix = f"{where}: " if where else ""
    return prefix + "; ".join(parts)
