"""Name -> entry tables for tasks and models, with did-you-mean errors, and the typed config
every entry is: tasks and models are registered the same way."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from selcopy.errors import SelcopyError, did_you_mean

T = TypeVar("T")


class UnknownName(SelcopyError):
    pass


class EntryConfig(BaseModel):
    """The settings of one registered task or model, validated on creation; unknown keys are errors.

    Subclasses set `name` (what users write after `name:`), `description` (one line for
    `selcopy ls`), give every setting a `Field(description=...)`, and implement `build`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: ClassVar[str]
    description: ClassVar[str]

    @classmethod
    def settings(cls) -> list[tuple[str, Any, str]]:
        """(setting, default, description) in declaration order, for `selcopy ls` and `--help`."""
        return [(key, field.default, field.description or "") for key, field in cls.model_fields.items()]


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

    @classmethod
    def of(cls, kind: str, entries: Iterable[T]) -> Registry[T]:
        """A table of entries that know their own `name` (config classes)."""
        return cls(kind, {entry.name: entry for entry in entries})  # type: ignore[attr-defined]

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
