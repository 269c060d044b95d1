"""Name -> entry tables for tasks and models, with did-you-mean errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from selcopy.errors import SelcopyError

T = TypeVar("T")


class UnknownName(SelcopyError):
    pass


class Registry(Generic[T]):
    """A read-only table of named entries; unknown names get the closest match.

    >>> r = Registry("model", {"conv": 1, "lstm": 2})
    >>> r["conv"]
    1
    >>> r["cnov"]
    Traceback (most recent call last):
    ...
    selcopy.registry.UnknownName: unknown model 'cnov'; did you mean 'conv'? available: conv, lstm
    """

    def __init__(self, kind: str, entries: dict[str, T]):
        self.kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        close = difflib.get_close_matches(str(name), self._entries, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ";"
        raise UnknownName(f"unknown {self.kind} '{name}'{hint} available: {', '.join(self._entries)}")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def items(self):
        return self._entries.items()
