"""The memory estimate of a run, a draw and an evaluation, and the machine's memory it is held against."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from selcopy.errors import SelcopyError
from selcopy.experiments import load_experiment, memory
from selcopy.experiments.memory import Estimate, estimate_draw, estimate_run, size_text
from selcopy.models import model_config
from selcopy.tasks import make_task

TINY = Path(__file__).parent / "files" / "tiny_grid.yml"


def test_a_runs_estimate_is_its_weights_activations_and_data():
    """tiny: conv 2 x 8 channels, programs of 3 letters and 1 swap (up to 11 bytes), batch 64,
    validation batch 1,024, 2,000 training and 200 validation samples."""
    run = load_experiment(TINY).runs[0]
    estimate = estimate_run(run)
    (_, weights), (activations, act), (data, held), (_, process) = estimate.parts
    assert estimate.params == run.params() and weights == run.params() * 4 * 4
    floats = model_config(run.model).activation_floats(run.task_shape(), training=False)
    assert activations == "activations at validation batch 1,024 x 11 positions" and act == 1024 * floats * 4
    assert floats == 11 * (3 * 8 + 2 * 256)  # one layer's 3 C floats, the logits' 2 V per position
    task = make_task(*run.task_settings())
    assert data == "data: 2,200 samples of up to 11 bytes"
    assert held == 2200 * (2 * 11 + 24) + (2000 + 2000 // 32 + 16) * task.draw_bytes()
    assert process == 300 * 10**6 and estimate.total == weights + act + held + process


@pytest.mark.parametrize("section, key", [("train", "batch_size"), ("task", "validation_count")])
def test_a_larger_batch_or_set_needs_more(section, key):
    run = load_experiment(TINY).runs[0]
    larger = dataclasses.replace(run, **{section: {**getattr(run, section), key: 60_000}})
    assert estimate_run(larger).total > estimate_run(run).total


def test_check_names_the_largest_part_and_the_machine(monkeypatch):
    monkeypatch.setattr(memory, "machine_memory", lambda: 10**9)
    estimate = Estimate((("weights", 2 * 10**8), ("activations at batch 9", 9 * 10**8)))
    with pytest.raises(SelcopyError, match=r"^run x needs about 1.1 GB \(activations at batch 9: 900 MB\), more "
                                           r"than this machine's 1.0 GB$"):
        estimate.check("run x")
    Estimate((("weights", 10**9),)).check("run x")  # as much as the machine has: not refused
    monkeypatch.setattr(memory, "machine_memory", lambda: None)
    Estimate((("weights", 10**15),)).check("run x")  # a machine that does not say: nothing refused


def test_a_draw_takes_its_samples_and_the_generators_peak():
    task = make_task("selective-copy", {"area": 100})
    [(label, size), _] = estimate_draw(task, 1000).parts
    assert label == "data: 1,000 samples of up to 111 bytes"
    assert size == 1000 * (2 * 111 + 24) + (1000 + 31 + 16) * 24 * 111


def test_machine_memory_is_the_lower_of_the_physical_and_a_containers_limit(monkeypatch, tmp_path):
    physical = memory.machine_memory()
    assert physical is None or physical > 10**8
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(memory, "CGROUP_LIMIT", limit)
    limit.write_text("max\n")
    assert memory.machine_memory() == physical
    limit.write_text("1000000\n")
    assert memory.machine_memory() == (None if physical is None else 1_000_000)


@pytest.mark.parametrize("size, text", [
    (0, "0 B"), (999, "999 B"), (1_000, "1.0 kB"), (31_500_000, "32 MB"), (1_149_000_000, "1.1 GB"),
    (102 * 10**12, "102 TB"),
])
def test_size_text(size, text):
    assert size_text(size) == text
