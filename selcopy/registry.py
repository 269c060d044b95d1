"""Name -> entry tables for tasks and models, with did-you-mean errors, and the typed config
every entry is: tasks and models are registered the same way."""

from __future__ import annotations

import importlib
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

    @staticmethod
    def flag_text(value: Any) -> str:
        """A default as one types it after its flag: (2, 5) -> 2,5; {">": 1.0} -> >:1."""
        if isinstance(value, dict):
            return ",".join(f"{key}:{weight:g}" for key, weight in value.items())
        if isinstance(value, (tuple, list)):
            return ",".join(str(item) for item in value)
        return str(value)

    @classmethod
    def from_flags(cls, argv: list[str]) -> dict[str, str]:
        """The settings given as command-line flags, as text for the config to validate:
        `--input-length 2,5 --stack=fifo` -> {"input_length": "2,5", "stack": "fifo"}."""
        known = {name.replace("_", "-"): name for name in cls.model_fields}
        settings: dict[str, str] = {}
        i = 0
        while i < len(argv):
            flag, _, value = argv[i].partition("=")
            if not flag.startswith("--") or flag[2:] not in known:
                dashed = "--{}".format
                hint = did_you_mean(flag.lstrip("-"), known, show=dashed, listed=dashed, known="options",
                                    list_always=True)
                raise SelcopyError(f"unknown option {flag!r}{hint}")
            if not value:
                if i + 1 >= len(argv):
                    raise SelcopyError(f"option {flag} needs a value")
                i += 1
                value = argv[i]
            settings[known[flag[2:]]] = value
            i += 1
        return settings


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

    @classmethod
    def of_modules(cls, kind: str, package: str, base: type, modules: Iterable[str]) -> Registry[Any]:
        """A table of the config classes that the `modules` of `package` define: in each, the one
        subclass of `base` with a `name` of its own. Adding an entry is its file and its name here."""
        entries = []
        for module in modules:
            namespace = vars(importlib.import_module(f"{package}.{module}"))
            found = [value for value in namespace.values() if isinstance(value, type) and issubclass(value, base)
                     and value.__module__ == namespace["__name__"] and "name" in vars(value)]
            if len(found) != 1:
                raise TypeError(f"{package}.{module} defines {len(found)} {base.__name__} with a name, not one")
            entries.append(found[0])
        return cls.of(kind, entries)

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
