"""Which device to train on: CUDA, then MPS, then CPU, unless the user says; and how the
process keeps its memory when it trains on the CPU."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
import sys
from pathlib import Path

import torch

from selcopy.errors import SelcopyError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise SelcopyError(f"--device: unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from e
    if device.type not in ("cpu", "cuda", "mps"):
        raise SelcopyError(f"--device {name}: not a device selcopy trains on (use auto, cpu, cuda, cuda:N or mps)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SelcopyError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SelcopyError(f"--device {name}: MPS is not available on this machine")
    return device


@functools.cache
def processor(device: torch.device) -> str:
    """What the device is, as its maker names it: the GPU's name, or the CPU's model name (from
    /proc/cpuinfo on Linux) with the vector instructions PyTorch's kernels use on it (`AVX2`,
    `AVX512`) and the bf16 instructions it has (`avx512_bf16`, `amx_bf16`). A run's speed
    depends on it, and so do its numbers: the kernels, and so the order of float sums, differ
    from one CPU to another, and one model name (a virtual machine's "AMD EPYC") can stand for
    CPUs with and without AVX-512."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name, flags = "", set()
    if device.type == "cpu" and sys.platform.startswith("linux"):
        try:
            lines = Path("/proc/cpuinfo").read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and not name:
                name = value
            elif key == "flags" and not flags:
                flags = set(value.split())
    name = name or platform.processor() or platform.machine() or "unknown"
    vector = torch.backends.cpu.get_cpu_capability()  # what ATen dispatches to: AVX2, AVX512, ...
    named = [vector] if vector not in ("", "DEFAULT") else []
    named += [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]
    return f"{name} ({', '.join(named)})" if named else name


def cpu_has_bf16_kernels() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (ATen's `mkldnn_bf16_device_check`: AVX-512 BW,
    VL and DQ; `avx512_bf16` or AMX make them fast)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_without_bf16_kernels(device: torch.device) -> bool:
    """Whether `device` is a CPU where bf16 has no oneDNN kernels: there oneDNN's LSTM cannot run in
    bf16 at all, and bf16 convolutions take ATen's generic `_slow_conv2d` (the quickstart's runs
    trained about 12x slower than in float32 on an AVX2-only AMD EPYC, benchmarks/RESULTS.md)."""
    return device.type == "cpu" and not cpu_has_bf16_kernels()


def bf16_refusal(model: torch.nn.Module, precision: str, device: torch.device) -> str | None:
    """Why `model` cannot train or be measured in `precision` on `device`, or None. oneDNN's LSTM
    has no bf16 kernel on a CPU without AVX-512 (an AVX2-only AMD EPYC) and fails with
    "could not create a primitive descriptor" in the first step; this says why, before it."""
    if precision != "bfloat16" or not cpu_without_bf16_kernels(device):
        return None
    if any(isinstance(m, torch.nn.LSTM) for m in model.modules()):
        return (f"precision bfloat16: this CPU ({processor(device)}) has no bf16 kernel for the LSTM "
                "(oneDNN needs AVX-512); train it with precision: float32")
    return None


# mallopt(3) parameters of glibc
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_memory() -> int:
    """Make glibc's malloc keep freed blocks for reuse instead of handing them back to the
    kernel. Returns the mmap threshold now in effect in bytes (blocks below it come from the
    heap), or 0 where it could not: not Linux with glibc, or glibc refused (the mmap threshold
    alone may then be set). With another malloc preloaded (jemalloc, tcmalloc) glibc still
    answers, and the setting does nothing.

    A CPU training step allocates and frees the same few-MB tensors (activations, logits,
    oneDNN's LSTM workspaces, their gradients) every step. glibc maps blocks above its mmap
    threshold afresh and hands them (or the freed top of its heap) back on free; the threshold
    adapts to the blocks a process happens to free first, so some processes settle into
    touching new pages every step and others do not. On this project's machine the LSTM's
    training path faulted in 4,000-7,700 pages per step in such processes, and in float32 ran
    at 0.6-0.7 of its rate with freed memory kept; the 6-layer conv's path neither gained nor
    lost (`benchmarks/allocator.py`, `benchmarks/RESULTS.md`). With both thresholds raised,
    blocks come from the heap and freed ones are reused: the process keeps its peak memory
    instead of returning it. Process-wide, once.
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return 0
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # older glibc refuses more than 32 MiB, half its maximum heap size on 64-bit
    threshold = next((size for size in (1 << 30, 32 << 20) if mallopt(_M_MMAP_THRESHOLD, size) == 1), 0)
    if threshold and mallopt(_M_TRIM_THRESHOLD, 1 << 30) != 1:
        return 0
    return threshold


_flushing = False  # torch has no getter for it


def flush_denormals(flush: bool) -> bool:
    """Whether the CPU flushes subnormal floats (below 1.2e-38) to zero; True if it now does. A
    float32 run on the CPU slows down up to ten-fold as its activations and gradients reach such
    values (measured: benchmarks/RESULTS.md); flushing them changes only those values."""
    global _flushing
    _flushing = bool(torch.set_flush_denormal(flush)) and flush  # False where the CPU cannot
    return _flushing


def flushing_denormals() -> bool:
    """Whether this process flushes subnormal floats to zero (as `flush_denormals` set it)."""
    return _flushing
