"""The article's result tables from stored runs: averages over trials, spread, noise marks.

One row per setting (the matrix values except `trial`), columns: the settings that vary,
the validation metrics, parameters, train time and throughput. With several trials a row
is their mean, and says how many trials it holds and the spread (std, min, max) of the
sample error. A row whose sample error is within trial noise of the best row (difference
below two standard errors) is marked `≈`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from statistics import mean, stdev
from typing import Any

from selcopy.errors import SelcopyError

MAIN = "validation_sample_error%"
TEST_MAIN = "test_sample_error%"
METRICS = {  # stored metric -> column title, as the article prints them
    "validation_loss": "validation loss",
    "validation_mask_error%": "validation_mask_error%",
    "validation_sample_error%": "validation_sample_error%",
    "model_params": "model params",
    "train_time": "train time (minutes)",
    "throughput": "throughput",
}


def table(rows: list[dict[str, Any]], variables: list[str], average: str, std: Iterable[str] = (),
          include: Iterable[str] = (), exclude: Iterable[str] = (), sort: Iterable[str] = (),
          partial: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """The table of collected `rows`: averaged over `average` (with the spread, and `std` of
    those columns), noise marked, columns chosen, sorted; (rows, columns). `partial`: rows of
    unfinished runs, which average only at the same progress (`inputs`)."""
    rows = aggregate(rows, variables + ["inputs"] * partial, average, list(std))
    mark_noise(rows)
    columns = choose_columns(rows, variables, list(include), list(exclude), average, partial=partial)
    return sort_rows(rows, list(sort)), columns


def collect(
    runs: Iterable[tuple[dict[str, Any], dict[str, Any] | None]],
    latest: Iterable[dict[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of finished runs: their matrix values and final metrics (train time in minutes).

    `latest`, one entry per run, adds the runs that have not finished with their latest
    logged metrics (None for a run that logged nothing); each row then has `inputs`.
    """
    rows = []
    for (variables, result), last in zip(runs, latest or itertools.repeat(None)):
        if result and result.get("status") == "finished":
            metrics = dict(result["metrics"])
        elif last:
            metrics = dict(last)
        else:
            continue
        if isinstance(metrics.get("train_time"), (int, float)):
            metrics["train_time"] = metrics["train_time"] / 60
        rows.append({**variables, **metrics})
    return rows


def aggregate(rows: list[dict[str, Any]], variables: list[str], average: str | None, std: list[str]) -> list[dict]:
    """Average rows that differ only in `average` (normally `trial`), keeping the spread."""
    known = {c for r in rows for c in r}
    for name in std:
        if column_key(name) not in known:
            raise SelcopyError(f"--std: unknown column {name!r}; columns: {', '.join(sorted(known))}")
    std = [column_key(c) for c in std]
    if not average or average not in variables:
        return [dict(r, trials=1) for r in rows]
    keys = [v for v in variables if v != average]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(repr([row.get(k) for k in keys]), []).append(row)
    out = []
    for members in groups.values():
        merged = {k: members[0].get(k) for k in keys}
        numeric = [k for k in dict.fromkeys(k for m in members for k in m)  # every metric any trial has
                   if k not in variables and any(isinstance(m.get(k), (int, float)) for m in members)]
        for k in numeric:
            values = [m[k] for m in members if k in m]
            merged[k] = mean(values)
            if k == MAIN or k in std:
                merged[f"{k} (std)"] = stdev(values) if len(values) > 1 else None  # undefined for one trial
            if k == MAIN:
                merged[f"{k} (min)"], merged[f"{k} (max)"] = min(values), max(values)
        merged["trials"] = len(members)
        out.append(merged)
    return out


def mark_noise(rows: list[dict[str, Any]], metric: str = MAIN) -> None:
    """Mark rows whose `metric` differs from the best row's by less than two standard errors."""
    if not rows or any(metric not in r for r in rows):
        return
    best = min(rows, key=lambda r: r[metric])

    def se2(r: dict) -> float:
        return (r.get(f"{metric} (std)") or 0.0) ** 2 / max(r.get("trials", 1), 1)  # one trial: no spread known

    for r in rows:
        noise = 2 * math.sqrt(se2(r) + se2(best))
        r["vs best"] = "best" if r is best else ("≈" if abs(r[metric] - best[metric]) <= noise else "")


def choose_columns(
    rows: list[dict[str, Any]], variables: list[str], include: list[str], exclude: list[str], average: str | None,
    partial: bool = False,
) -> list[str]:
    """The varying settings, (`inputs` when unfinished runs are shown), trials, the metrics."""
    varying = [v for v in variables if v != average and len({repr(r.get(v)) for r in rows}) > 1]
    columns = varying + ["inputs"] * partial + ["trials"] * bool(average and average in variables) + list(METRICS)
    if any(TEST_MAIN in r for r in rows):  # runs with a test set (e.g. longer programs than trained on)
        columns = _insert_after(columns, MAIN, [TEST_MAIN])
    spread = [c for c in rows[0] if c.endswith(("(std)", "(min)", "(max)"))] if rows else []
    for column in reversed(spread):  # each spread column right after its own column (or at the end)
        base = column.rsplit(" (", 1)[0]
        columns = _insert_after(columns, base, [column]) if base in columns else columns + [column]
    if any("vs best" in r for r in rows):
        columns.append("vs best")
    known = {c for r in rows for c in r}
    for name in include + exclude:
        if column_key(name) not in known:
            raise SelcopyError(f"unknown column {name!r}; columns: {', '.join(sorted(known))}")
    columns += [c for c in map(column_key, include) if c not in columns]
    dropped = {column_key(c) for c in exclude}
    return [c for c in columns if c not in dropped]


def _insert_after(columns: list[str], anchor: str, extra: list[str]) -> list[str]:
    i = columns.index(anchor) + 1
    return columns[:i] + extra + columns[i:]


def sort_rows(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """`col` ascending, `-col` or `col:desc` descending; later keys break ties."""
    for key in reversed(keys):
        reverse = key.startswith("-") or key.endswith(":desc")
        name = column_key(key.removesuffix(":desc").removesuffix(":asc").removeprefix("-"))
        if rows and not any(name in r for r in rows):
            raise SelcopyError(f"--sort: unknown column {name!r}; columns: {', '.join(sorted(rows[0]))}")
        rows = sorted(rows, key=lambda r: _sortable(r.get(name)), reverse=reverse)
    return rows


def column_key(name: str) -> str:
    """A column as stored, whether written as stored (`validation_loss`) or as titled."""
    return {v: k for k, v in METRICS.items()}.get(name, name)


def _sortable(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, repr(value))


def markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """An article-style markdown table: numbers right-aligned, text left-aligned."""
    header = [METRICS.get(c, c) for c in columns]
    cells = [[format_value(c, r.get(c)) for c in columns] for r in rows]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(header)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if n else (":" + "-" * (w + 1)) for w, n in zip(widths, numeric)) + "|"
    return "\n".join([line(header), rule] + [line(c) for c in cells])


def format_value(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "0"
    if isinstance(value, list):
        return ",".join(format_value(column, v) for v in value)
    if isinstance(value, dict):  # a matrix value that is a whole section, e.g. a model
        return " ".join(f"{k}={format_value(k, v)}" for k, v in value.items())
    if column in ("model_params", "inputs"):
        return f"{int(value):,}"
    if column == "throughput":
        return f"{value:,.0f}/s"
    if column == "train_time":
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e-3 and value else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)
