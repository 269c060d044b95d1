"""What every model shares: the config interface, the byte embedding with its tied read-out,
and a parameter-free sinusoidal position encoding.

Dimensions: B batch, L length (positions), C channels, V vocabulary (256 bytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from selcopy.registry import EntryConfig
from selcopy.vocab import VOCAB

# Limits of every model's settings: far beyond the article's (18 layers, 128 channels), within what one
# machine could hold. The memory estimate (`selcopy.experiments.memory`) refuses what it cannot.
MAX_LAYERS = 1_000  # every layer keeps its activations for the backward pass
MAX_WIDTH = 4_096  # channels, d_model: a conv layer of 4,096 channels and kernel 9 holds 151M weights
MAX_INNER = 65_536  # inner widths (feed-forward): 16 x the widest model


@dataclass(frozen=True)
class TaskShape:
    """What a model knows of its task: the longest text over its training, validation and test
    data, and the vocabulary size. The experiment layer works it out from the task settings."""

    max_length: int
    vocab: int


class ModelConfig(EntryConfig):
    """Settings of one architecture (an entry of `MODELS`); `build(shape)` makes the model."""

    def build(self, shape: TaskShape) -> nn.Module:
        raise NotImplementedError

    def position_floats(self, training: bool = True) -> int:
        """Floats per position the layers hold at the peak of a forward pass, an estimate for the
        memory check (`selcopy.experiments.memory`): while training, every layer's, kept for the
        backward pass; without gradients, one layer's at a time. Here 6 tensors of the model's
        width (`channels` or `d_model`) a layer, as measured for the LSTM; a model whose layers
        hold more or less (an inner width, a state) says so."""
        width = getattr(self, "channels", None) or getattr(self, "d_model", None) or 64
        return 6 * width * (getattr(self, "layers", 1) if training else 1)

    def activation_floats(self, shape: TaskShape, training: bool = True) -> int:
        """Floats one sample's forward pass holds at its peak, an estimate: the layers'
        (`position_floats`) and the logits' with their log-softmax, and while training their
        gradient: 3 x V per position (2 x V without gradients)."""
        return shape.max_length * (self.position_floats(training) + (2 + training) * shape.vocab)


class ByteEmbedding(nn.Module):
    """`Embedding(V, C)` whose weight also reads the logits out: no extra parameters.

    >>> emb = ByteEmbedding(8)
    >>> emb.read_out(emb(torch.zeros(2, 3, dtype=torch.long))).shape
    torch.Size([2, 3, 256])
    """

    def __init__(self, channels: int, vocab: int = VOCAB):
        super().__init__()
        self.embedding = nn.Embedding(vocab, channels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)  # (B, L) -> (B, L, C)

    def read_out(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.embedding.weight.T  # (B, L, C) @ (C, V) -> (B, L, V)


def sinusoidal_positions(
    length: int, channels: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """(L, C) encoding of Vaswani et al. (2017): channel 2i is sin(pos / 10000^(2i/C)),
    channel 2i+1 its cosine. Computed on demand, so any length works; odd C is fine.
    """
    half = (channels + 1) // 2
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(half, device=device) * (-2 * math.log(10_000.0) / channels))  # (C/2,)
    angle = pos * freq  # (L, C/2)
    pe = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)  # (L, C/2, 2) -> (L, 2*(C/2))
    return pe[:, :channels].to(dtype or torch.get_default_dtype())


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once (the tied read-out adds none)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class SkipNormalInit(TorchFunctionMode):
    """Inside it, `normal_` (`nn.init.normal_` too) leaves its tensor as it is. For models built on
    the meta device only to be counted: the meta kernel of `normal_` (the embedding's initialiser)
    first imports ~800 modules of torch, 3 s of a `selcopy show` that needs no values."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "normal_":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def per_layer(setting: str, value: Any, layers: int) -> list[Any]:
    """Expand a scalar setting to one value per layer; a list must have exactly `layers` values."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != layers:
            raise ValueError(f"{setting}: has {len(value)} values but layers is {layers}")
        return list(value)
    return [value] * layers
