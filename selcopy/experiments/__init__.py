"""Experiment files: a YAML grid ("matrix") of runs, expanded and validated before training."""

from __future__ import annotations

from typing import Any

from selcopy.experiments.expr import evaluate_expression
from selcopy.experiments.grid import Experiment, load_experiment

__all__ = ["Experiment", "RunSpec", "evaluate_expression", "load_experiment"]


def __getattr__(name: str) -> Any:
    """`RunSpec` on first use: it brings torch, which reading a file's shape does not need."""
    if name == "RunSpec":
        from selcopy.experiments.spec import RunSpec

        return RunSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
