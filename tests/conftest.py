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
