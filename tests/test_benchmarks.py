"""The benchmark scripts run and keep their JSON contract (the figures themselves are not tested)."""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


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


def throughput_rows(throughput, *args: str) -> list[dict]:
    """`throughput.py ARGS --json`'s rows, measured in this process (the reference loop in a thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from selcopy.train.device import keep_freed_memory

    options = throughput.parse_args([*args, "--steps", "2", "--warmup", "1", "--repeat", "1", "--device", "cpu",
                                     "--json"])
    with ThreadPoolExecutor(1) as reference:
        return throughput.run(options, torch.device("cpu"), reference, keep_freed_memory())


def test_throughput_rows(load_benchmark):
    rows = throughput_rows(load_benchmark("throughput.py"), "--models", "conv6", "--breakdown", "--validation")
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


@pytest.mark.slow
def test_throughput_grid_rows(load_benchmark):
    """`throughput.py --grid --json`'s rows, measured in this process: the reference loop in a thread,
    the side-by-side ways in two threads (in `main`: processes) started together by a barrier."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    throughput = load_benchmark("throughput.py")
    options = throughput.parse_args(["--grid", "--trials", "2", "3", "--jobs", "2", "--precision", "bfloat16",
                                     "--steps", "2", "--warmup", "1", "--repeat", "1", "--device", "cpu", "--json"])
    with ThreadPoolExecutor(1) as reference, ThreadPoolExecutor(2) as side:
        rows = throughput.run_grid_rows(options, torch.device("cpu"), reference, (side, threading.Barrier(2)))
    assert [r["model"] for r in rows] == ["conv6-grid2", "conv6-grid3"]
    for row in rows:
        ways = row["ways"]
        assert set(ways) == {"alone", "stacked", "jobs", "stacked_jobs"}
        assert row["fastest"] in ways and row["selcopy_samples_per_s"] == ways[row["fastest"]]["samples_per_s"]
        assert row["selcopy_samples_per_s"] == max(w["samples_per_s"] for w in ways.values())
        assert row["reference_samples_per_s"] == rows[0]["reference_samples_per_s"] > 0  # one at a time, whatever N
        assert abs(row["ratio"] - row["selcopy_samples_per_s"] / row["reference_samples_per_s"]) < 0.011
        assert ways["alone"] == {**ways["alone"], "precision": "bfloat16", "jobs": 1, "stacked": 1}
        # bf16 cannot stack on a CPU (autocast does not reach a convolution under vmap): stacks train in float32
        assert ways["stacked"]["precision"] == "float32" and ways["stacked"]["stacked"] == row["trials"]
        assert ways["stacked_jobs"]["jobs"] == 2 and ways["stacked_jobs"]["stacked"] == -(-row["trials"] // 2)


def test_throughput_breakdown_of_models_without_flop_counts(load_benchmark):
    rows = throughput_rows(load_benchmark("throughput.py"), "--models", "lstm", "conv3-mha8", "--breakdown")
    for row in rows:  # the flop counter misses the LSTM's products and the CPU attention kernel
        assert row["breakdown"]["kernel_ms"] > 0 and row["breakdown"]["gflop_per_step"] is None
        assert row["float32_model_step_samples_per_s"] > 0
    # bf16: measured, or None where oneDNN has no bf16 LSTM kernel (a CPU without bf16 instructions)
    from selcopy.train.device import cpu_has_bf16_kernels

    lstm, conv = rows
    if cpu_has_bf16_kernels():
        assert lstm["bfloat16_model_step_samples_per_s"] > 0
    else:  # the row says so instead of the benchmark failing
        assert lstm["bfloat16_model_step_samples_per_s"] is None and lstm["bfloat16_model_step_ratio"] is None
    assert conv["bfloat16_model_step_samples_per_s"] > 0


def test_datagen_rows(load_benchmark):
    rows = load_benchmark("datagen.py").measure(2000, 1)
    assert len(rows) == 2
    for row in rows:
        assert row["selcopy_samples_per_s"] > 0 and row["reference_samples_per_s"] > 0
        assert row["ratio"] > 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_allocator_measures_each_path_with_freed_memory_kept(load_benchmark):
    """`measure` as each fresh process of `allocator.py` runs it (here `kept` only: `default` needs a
    process whose malloc nothing has set yet, which the suite's process is not)."""
    allocator = load_benchmark("allocator.py")
    for path in allocator.PATHS:
        got = allocator.measure(path, "conv6", "bfloat16", "kept", steps=2, warmup=1, repeat=1)
        assert got["samples_per_s"] > 0 and got["page_faults_per_step"] >= 0 and got["freed_memory_kept"] is True


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
