"""Shared checks for every model: shape, finiteness, and a gradient for every parameter."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def check_forward_backward(model: nn.Module, batch: int, length: int) -> None:
    ids = torch.randint(0, 256, (batch, length))
    logits = model(ids)
    assert logits.shape == (batch, length, 256)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    model.zero_grad(set_to_none=True)
    logits.square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.fixture
def check_model():
    torch.manual_seed(0)
    return check_forward_backward
