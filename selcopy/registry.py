"""Name -> entry tables for tasks and models, with did-you-mean errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from selcopy.errors import SelcopyError, did_you_mean

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
        hint = did_you_mean(name, self._entries, known="available", list_always=True, cutoff=0.5)
        raise UnknownName(f"unknown {self.kind} '{name}'{hint}")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def items(self):
        return self._entries.items()
