"""The benchmark scripts run and keep their JSON contract (the figures themselves are not tested)."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def run_json(script: str, *args: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args, "--json"], capture_output=True,
                          text=True, timeout=600, env=env, check=True)
    return json.loads(done.stdout)


@pytest.fixture
def load_benchmark(monkeypatch):
    """Loads a benchmark script as a module; what it adds to `sys.path` and `sys.modules` is undone after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)

    def load(script: str):
        spec = importlib.util.spec_from_file_location(Path(script).stem, BENCHMARKS / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in set(sys.modules) - before:  # the scripts it imported as top-level modules
        if Path(getattr(sys.modules[name], "__file__", None) or "/").parent == BENCHMARKS:
            del sys.modules[name]


def test_throughput_json():
    rows = run_json("throughput.py", "--models", "conv6", "--steps", "2", "--warmup", "1", "--repeat", "1",
                    "--device", "cpu", "--breakdown", "--validation")
    assert [r["model"] for r in rows] == ["conv6"]
    row = rows[0]
    for key in ("selcopy_samples_per_s", "reference_samples_per_s", "float32_model_step_samples_per_s",
                "bfloat16_model_step_samples_per_s"):
        assert row[key] > 0
    assert abs(row["ratio"] - row["selcopy_samples_per_s"] / row["reference_samples_per_s"]) < 0.011
    assert row["batch_size"] == 64 and row["device"] == "cpu"
    if platform.libc_ver()[0] == "glibc":  # the reference's process reuses freed blocks, as documented
        assert row["reference_kept_freed_memory_below"] >= 32 << 20
    assert set(row["validation_samples_per_s"]) == {"64", "1024"}
    assert all(rate > 0 for rate in row["validation_samples_per_s"].values())
    parts = row["breakdown"]
    assert 0 < parts["kernel_ms"] < parts["profiled_step_ms"]
    assert abs(parts["kernel_share"] - parts["kernel_ms"] / parts["profiled_step_ms"]) < 0.001
    # 6 conv layers of 64 channels, kernel 9, over 64 x 31 positions, forward and backward (3 products each),
    # plus the tied 64 -> 256 read-out, 3 products: 2 multiply-add FLOPs each
    conv, read_out = 6 * 3 * 2 * 64 * 31 * 64 * 64 * 9, 3 * 2 * 64 * 31 * 64 * 256
    assert abs(parts["gflop_per_step"] - (conv + read_out) / 1e9) < 0.01


def test_throughput_breakdown_of_models_without_flop_counts():
    rows = run_json("throughput.py", "--models", "lstm", "conv3-mha8", "--steps", "2", "--warmup", "1", "--repeat", "1",
                    "--device", "cpu", "--breakdown")
    for row in rows:  # the flop counter misses the LSTM's products and the CPU attention kernel
        assert row["breakdown"]["kernel_ms"] > 0 and row["breakdown"]["gflop_per_step"] is None


def test_datagen_json():
    rows = run_json("datagen.py", "--count", "2000", "--repeat", "1")
    assert len(rows) == 2
    for row in rows:
        assert row["selcopy_samples_per_s"] > 0 and row["reference_samples_per_s"] > 0
        assert row["ratio"] > 0


def test_allocator_json():
    rows = run_json("allocator.py", "--steps", "2", "--warmup", "1", "--repeat", "1", "--pairs", "1")
    assert [(r["model"], r["path"]) for r in rows] == [("conv6", "selcopy"), ("conv6", "reference"),
                                                       ("conv6", "model_step")]
    assert [r["precision"] for r in rows] == ["bfloat16", "float32", "bfloat16"]
    for row in rows:
        for setting in ("default", "kept"):
            got = row[setting]
            assert [p["samples_per_s"] for p in got["processes"]] == [got["samples_per_s"]]  # one pair: one process
            assert got["slowest_samples_per_s"] == got["samples_per_s"] > 0 and got["page_faults_per_step"] >= 0
            assert got["freed_memory_kept"] is (setting == "kept")  # `default` turns the trainer's call off
        ratio = row["kept"]["samples_per_s"] / row["default"]["samples_per_s"]
        assert abs(row["kept_over_default"] - ratio) < 0.011
        assert row["slowest_kept_over_default"] == row["kept_over_default"]


def test_allocator_reports_slowest_and_best_process(load_benchmark):
    allocator = load_benchmark("allocator.py")
    runs = {"default": [{"samples_per_s": 100.0, "page_faults_per_step": 7000.0, "freed_memory_kept": False},
                        {"samples_per_s": 190.0, "page_faults_per_step": 5.0, "freed_memory_kept": False}],
            "kept": [{"samples_per_s": 200.0, "page_faults_per_step": 4.0, "freed_memory_kept": True},
                     {"samples_per_s": 180.0, "page_faults_per_step": 6.0, "freed_memory_kept": True}]}
    row = allocator.summarize("lstm", "selcopy", "bfloat16", runs)
    assert row["default"]["slowest_samples_per_s"] == 100.0 and row["default"]["slowest_page_faults_per_step"] == 7000.0
    assert row["kept"]["samples_per_s"] == 200.0 and row["kept"]["slowest_samples_per_s"] == 180.0
    assert row["slowest_kept_over_default"] == 1.8 and row["kept_over_default"] == 1.05
    assert row["default"]["freed_memory_kept"] is False and row["kept"]["freed_memory_kept"] is True
    assert "100-   190/s" in allocator.format_row(row)
