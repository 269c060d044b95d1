"""Fixtures for every test."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """`selcopy run --threads N` sets torch's thread count for the process: restore it after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def train_here():
    """`train_here(file, runs, *flags)`: `selcopy run file` in this process on the CPU with one thread, the
    thread count restored after (for module fixtures, which the per-test restore does not cover)."""
    from selcopy.cli import main

    def train(file, runs, *flags):
        threads = torch.get_num_threads()
        try:
            assert main(["run", str(file), "--runs", str(runs), "--threads", "1", "--device", "cpu", *flags]) == 0
        finally:
            torch.set_num_threads(threads)
        return runs

    return train
