"""The attention mixers a conv layer can hold (`MIXERS`), and parameter-free linear attention.

Dimensions: B batch, L length, C channels (the attention's features), F feature-map width.

A layer's `attention` setting names its mixer: `true` (or `linear`) the linear attention,
an integer N torch's multi-head attention with N heads, 0/false none. The layer's conv
"invents" some of the mixer's queries, keys and values (`attention_invention`), the layer
input gives the rest. A new mixer is one `Mixer` subclass and one entry in `MIXERS`.

Unlike torch's `MultiheadAttention`, the linear attention has no weights, so it works for any
length and any channel count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from selcopy.registry import Registry

if TYPE_CHECKING:
    from selcopy.models.conv import ConvConfig

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


class Mixer:
    """One kind of attention for a conv layer. The layer's conv makes the parts `invents` names
    (letters, one C-wide output each: `outputs` of them); `build` makes the module and `mix`
    applies it to those parts, each (B, L, C), with the layer input (B, L, C) for the parts it
    does not make: by default the module maps (q, k, v) to (B, L, C). `example` is a layer
    setting that selects this mixer over 16 channels (tests build every mixer with it)."""

    example: Any = None

    def check(self, channels: int, setting: Any) -> None:
        """ValueError if the layer setting cannot hold this mixer over `channels` channels."""

    def invents(self, cfg: ConvConfig) -> str:
        return cfg.attention_invention

    def outputs(self, cfg: ConvConfig) -> int:
        return len(self.invents(cfg))

    def build(self, channels: int, setting: Any, cfg: ConvConfig) -> nn.Module:
        raise NotImplementedError

    def mix(self, module: nn.Module, parts: dict[str, torch.Tensor], given: torch.Tensor) -> torch.Tensor:
        q, k, v = (parts.get(letter, given) for letter in "QKV")
        return module(q, k, v)  # (B, L, C)


class Linear(Mixer):
    """`true`: the parameter-free linear attention, phi = `attention_activation`."""

    example = True

    def build(self, channels: int, setting: Any, cfg: ConvConfig) -> nn.Module:
        return LinearAttention(cfg.attention_activation)


class Heads(Mixer):
    """An integer N: torch's multi-head attention with N heads (4C^2 + 4C parameters)."""

    example = 4

    def check(self, channels: int, setting: Any) -> None:
        if isinstance(setting, bool) or not isinstance(setting, int):
            raise ValueError(f"attention: {setting!r}: write the number of heads, e.g. 8")
        if channels % setting:
            raise ValueError(f"attention: {setting} heads do not divide channels {channels}")

    def build(self, channels: int, setting: Any, cfg: ConvConfig) -> nn.Module:
        return HeadsAttention(channels, setting)


MIXERS: Registry[Mixer] = Registry("mixer", {"linear": Linear(), "heads": Heads()})


def mixer_name(setting: bool | int | str) -> str | None:
    """A layer's `attention` setting -> its name in MIXERS; None for no attention.

    >>> [mixer_name(s) for s in (0, False, True, 8, "linear")]
    [None, None, 'linear', 'heads', 'linear']
    """
    if isinstance(setting, str):
        return setting
    if setting is True:
        return "linear"
    return "heads" if setting else None
