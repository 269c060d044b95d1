"""Experiment files: a YAML grid ("matrix") of runs, expanded and validated before training."""

from __future__ import annotations

from selcopy.experiments.expr import evaluate
from selcopy.experiments.grid import Experiment, load_experiment
from selcopy.experiments.spec import RunSpec

__all__ = ["Experiment", "RunSpec", "evaluate", "load_experiment"]
