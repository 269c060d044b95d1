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


# Ray's driver, once started in this process (tests/experiments/test_ray.py), most likely leaves C++
# threads that can crash the interpreter while it shuts down, after every result is reported: a
# segmentation fault with no Python stack, seen twice (2026-12-06 and 2026-12-08), each at the exit of
# a full run with every test passed (Ray's tracker has such crashes of its threads after ray.shutdown(),
# e.g. ray-project/ray#31145). Where Ray was loaded, the session therefore ends with its own exit status
# and skips the interpreter's teardown; test_ray.py checks that its cluster leaves no process behind.
_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    import os
    import sys

    if _EXIT_STATUS in config.stash and "ray._raylet" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])
