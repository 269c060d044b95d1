"""The CPU allocator setting the trainer makes: freed tensors' memory is reused, not faulted in anew;
and the processor a run's result.json names."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# glibc's default mmap threshold adapts to freed blocks, but never above 32 MiB: a 64 MiB
# block is mapped afresh, and faulted in page by page, every time it is allocated.
CHURN = textwrap.dedent("""
    import resource, torch
    from selcopy.train.device import keep_freed_memory

    def faults_of_churn():
        def churn():
            for _ in range(5):
                a = torch.ones(16 << 20)  # 64 MiB
                del a
        churn()  # the heap settles in a few rounds: an aligned block does not quite fit the one freed
        churn()
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        churn()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

    before = faults_of_churn()
    threshold = keep_freed_memory()
    print(before, threshold, faults_of_churn(), resource.getpagesize())
""")


def _transparent_huge_pages_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a setting of glibc's malloc")
def test_keep_freed_memory_stops_page_faults_of_reallocated_tensors():
    if _transparent_huge_pages_always():
        pytest.skip("huge pages for every mapping: a 64 MiB block faults in a few dozen times, not page by page")
    # a fresh process with glibc's own defaults: the setting is process-wide, and other tests' trainers make it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    out = subprocess.run([sys.executable, "-c", CHURN], capture_output=True, text=True, check=True, env=env)
    before, threshold, after, page = (int(v) for v in out.stdout.split())
    assert threshold >= 32 << 20
    if threshold <= 64 << 20:
        pytest.skip(f"this glibc keeps blocks below {threshold >> 20} MiB only")
    pages = (64 << 20) // page
    assert before > 5 * pages * 0.9  # each of the 5 allocations faults its pages in anew
    assert after < before / 100


TRAINER = textwrap.dedent("""
    from pathlib import Path

    import torch
    from torch import nn
    from selcopy.experiments.executors import EXECUTORS, GridSettings
    from selcopy.tasks import make_task
    from selcopy.tasks.split import DataSplit
    from selcopy.train.config import TrainConfig
    from selcopy.train.device import keep_freed_memory
    from selcopy.train.loop import Trainer

    task = make_task("program", {"input_length": 4, "num_items": 6, "num_operations": [1, 2]})
    split = DataSplit(task, task, train_count=100, validation_count=50, validation_seed=23)
    Trainer(nn.Embedding(256, 8), split, TrainConfig(), seed=1, device=torch.device("cpu"))
    print(keep_freed_memory.cache_info().misses)  # the trainer leaves the process's memory alone
    EXECUTORS["serial"](GridSettings(Path("runs"), torch.device("cpu"))).run([])
    print(keep_freed_memory.cache_info().misses)  # a process that trains runs keeps freed memory
""")


def test_a_process_that_trains_runs_keeps_freed_memory_on_the_cpu():
    out = subprocess.run([sys.executable, "-c", TRAINER], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "1"]


def test_the_processor_is_the_cpus_model_name_with_its_vector_and_bf16_instructions(monkeypatch, tmp_path):
    import torch

    from selcopy.train import device

    cpuinfo = tmp_path / "cpuinfo"
    core = "model name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu avx512f amx_bf16 avx512_bf16\n"
    cpuinfo.write_text(f"processor\t: 0\n{core}\nprocessor\t: 1\n{core}")
    real_path = device.Path
    monkeypatch.setattr(device, "Path", lambda name: cpuinfo if name == "/proc/cpuinfo" else real_path(name))
    monkeypatch.setattr(device.sys, "platform", "linux")
    capability = "AVX512"
    monkeypatch.setattr(device.torch.backends.cpu, "get_cpu_capability", lambda: capability)
    device.processor.cache_clear()
    try:
        assert device.processor(torch.device("cpu")) == "Some CPU @ 2.0GHz (AVX512, avx512_bf16, amx_bf16)"
        cpuinfo.write_text("model name\t: Old CPU\nflags\t\t: fpu avx2\n")
        capability = "AVX2"  # the same model name on a CPU without AVX-512 is told apart
        device.processor.cache_clear()
        assert device.processor(torch.device("cpu")) == "Old CPU (AVX2)"  # no bf16 instructions, none named
        capability = "DEFAULT"  # no vector kernels: nothing to name
        device.processor.cache_clear()
        assert device.processor(torch.device("cpu")) == "Old CPU"
        cpuinfo.unlink()  # unreadable: what the platform module says
        device.processor.cache_clear()
        assert device.processor(torch.device("cpu")) == (platform.processor() or platform.machine() or "unknown")
    finally:
        device.processor.cache_clear()


def test_an_lstm_in_bf16_on_a_cpu_without_bf16_kernels_is_refused_with_the_reason(monkeypatch):
    import torch

    from selcopy.errors import SelcopyError
    from selcopy.models import build_model
    from selcopy.models.base import TaskShape
    from selcopy.train import device
    from selcopy.train.config import TrainConfig
    from selcopy.train.loop import Trainer, evaluate

    cpu = torch.device("cpu")
    shape = TaskShape(max_length=32, vocab=40)
    lstm, conv = build_model({"name": "lstm"}, shape), build_model({"name": "conv"}, shape)
    monkeypatch.setattr(device, "cpu_has_bf16_kernels", lambda: False)
    refusal = device.bf16_refusal(lstm, "bfloat16", cpu)
    assert refusal.startswith("precision bfloat16: this CPU (") and "precision: float32" in refusal
    assert device.bf16_refusal(lstm, "float32", cpu) is None
    assert device.bf16_refusal(conv, "bfloat16", cpu) is None  # convolutions run in bf16 everywhere (slowly here)
    with pytest.raises(SelcopyError, match="no bf16 kernel for the LSTM"):
        Trainer(lstm, None, TrainConfig(precision="bfloat16"), 0, cpu)  # before anything is built
    with pytest.raises(SelcopyError, match="no bf16 kernel for the LSTM"):
        evaluate(lstm, None, TrainConfig(), cpu, "bfloat16")  # selcopy eval --precision bfloat16
    monkeypatch.setattr(device, "cpu_has_bf16_kernels", lambda: True)
    assert device.bf16_refusal(lstm, "bfloat16", cpu) is None
