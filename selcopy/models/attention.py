"""Parameter-free linear attention and its feature maps, for the conv model's layers.

Dimensions: B batch, L length, C channels (the attention's features), F feature-map width.

Unlike torch's `MultiheadAttention`, this attention has no weights, so it works for any
length and any channel count: the conv layer before it "invents" the queries, keys or values.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

FeatureMap = Callable[[torch.Tensor], torch.Tensor]


def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1 > 0 (Katharopoulos et al. 2020, "Transformers are RNNs", eq. 7)."""
    return F.elu(x) + 1.0  # (..., C) -> (..., C)


def dpfp(x: torch.Tensor) -> torch.Tensor:
    """Deterministic Parameter-Free Projection with nu = 1 (Schlag, Irie & Schmidhuber 2021,
    "Linear Transformers Are Secretly Fast Weight Programmers", sec. 5.3): x' = [relu(x), relu(-x)],
    phi(x) = x' * roll(x', 1). Non-negative, twice as wide: (..., C) -> (..., 2C).
    """
    x = torch.cat([F.relu(x), F.relu(-x)], dim=-1)  # (..., 2C)
    return x * x.roll(1, dims=-1)  # (..., 2C)


FEATURE_MAPS: dict[str, FeatureMap] = {"elu+1": elu_plus_one, "dpfp": dpfp}


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, phi: FeatureMap = elu_plus_one) -> torch.Tensor:
    """phi(q) (phi(k)^T v) / (L * C), loosely eq. 6 of "Transformers are RNNs" (2006.16236):
    the normaliser is the constant L*C instead of phi(q) . sum phi(k), as in the article.
    Every position sees every other one (no causal mask). q, k, v: (B, L, C) -> (B, L, C).
    """
    q, k = phi(q), phi(k)  # (B, L, F)
    kv = k.transpose(1, 2) @ v  # (B, F, L) @ (B, L, C) -> (B, F, C)
    return q @ kv / (v.shape[-2] * v.shape[-1])  # (B, L, F) @ (B, F, C) -> (B, L, C)


class LinearAttention(nn.Module):
    """`linear_attention` as a module (no parameters)."""

    def __init__(self, feature_map: str = "elu+1"):
        super().__init__()
        self.feature_map = feature_map
        self.phi = FEATURE_MAPS[feature_map]

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return linear_attention(q, k, v, self.phi)

    def extra_repr(self) -> str:
        return f"phi={self.feature_map}"


class HeadsAttention(nn.MultiheadAttention):
    """torch's `MultiheadAttention` (batch first) returning only the output: (B, L, C) -> (B, L, C)."""

    def __init__(self, channels: int, heads: int):
        super().__init__(channels, heads, batch_first=True)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(q, k, v, need_weights=False)[0]
