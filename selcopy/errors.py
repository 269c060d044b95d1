"""User-facing errors: each becomes one clear line on stderr and exit status 2."""

from __future__ import annotations

from pydantic import ValidationError


class SelcopyError(Exception):
    """Bad input: a setting, file or name the user can fix. Exit status 2."""


class ConfigError(SelcopyError):
    """A setting is invalid; the message names where (file, key) and what is wrong."""


def explain(error: ValidationError, where: str = "") -> str:
    """One line from a pydantic error: `where: key.path: message (got value)`."""
    parts = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        got = item.get("input")
        text = f"{loc}: {msg}" if loc else msg
        if item["type"] in ("extra_forbidden", "missing"):
            text = f"{loc}: {'unknown setting' if item['type'] == 'extra_forbidden' else 'missing'}"
        elif got is not None and not isinstance(got, dict) and "got " not in msg:  # say the value once
            text += f" (got {got!r})"
        parts.append(text)
    prefix = f"{where}: " if where else ""
    return prefix + "; ".join(parts)
