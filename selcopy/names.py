"""Names every layer agrees on: the reserved matrix variable, how a value reads in run folder
names and plot legends, and how a metric is titled in plots."""

from __future__ import annotations

from typing import Any

TRIAL = "trial"  # the reserved matrix variable: repeats a run with another seed; tables average it


def value_text(value: Any) -> str:
    """`[0, 0, True]` -> `0,0,T`, as run folders spell values.

    >>> value_text({"name": "conv", "attention": [0, True]})
    'name=conv,attention=0,T'
    """
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, (list, tuple)):
        return ",".join(value_text(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={value_text(v)}" for k, v in value.items())
    return "none" if value is None else str(value)


def metric_title(metric: str) -> str:
    """A metric as plots title it.

    >>> metric_title("validation_mask_error%")
    'validation mask error %'
    """
    return metric.replace("%", " %").replace("_", " ").replace("  ", " ").strip()
