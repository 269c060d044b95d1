"""Names every layer agrees on: the reserved matrix variable, how a value reads in run folder
names and plot legends, and how a metric is titled in plots."""

from __future__ import annotations

from typing import Any

from selcopy.errors import ConfigError

TRIAL = "trial"  # the reserved matrix variable: repeats a run with another seed; tables average it
TRIAL_STRIDE = 1_000_000  # seed = train.seed * TRIAL_STRIDE + trial; trials are 0 .. TRIAL_STRIDE - 1


def check_trial(trial: Any, key: str, where: str) -> None:
    """Trials are small non-negative integers, so that a run's seed stays unambiguous."""
    if isinstance(trial, bool) or not isinstance(trial, int) or not 0 <= trial < TRIAL_STRIDE:
        limit = TRIAL_STRIDE - 1
        raise ConfigError(f"{where}: {key}: trials must be integers from 0 to {limit}, got {trial!r}")


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
