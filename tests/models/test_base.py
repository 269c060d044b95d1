from __future__ import annotations

import math

import torch

from selcopy.models.base import ByteEmbedding, count_parameters, per_layer, sinusoidal_positions


def test_sinusoidal_positions_values():
    pe = sinusoidal_positions(3, 4)
    assert pe.shape == (3, 4)
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    torch.testing.assert_close(pe[1], torch.tensor([math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]))


def test_sinusoidal_positions_any_length_odd_channels_and_dtype():
    pe = sinusoidal_positions(5000, 7, dtype=torch.float64)
    assert pe.shape == (5000, 7) and pe.dtype == torch.float64 and pe.abs().max() <= 1
    torch.testing.assert_close(sinusoidal_positions(10, 7), sinusoidal_positions(20, 7)[:10])


def test_tied_read_out():
    emb = ByteEmbedding(4)
    h = torch.randn(2, 3, 4)
    torch.testing.assert_close(emb.read_out(h), h @ emb.embedding.weight.T)
    assert count_parameters(emb) == 256 * 4


def test_per_layer():
    assert per_layer("x", 3, 2) == [3, 3]
    assert per_layer("x", [1, 2], 2) == [1, 2]
