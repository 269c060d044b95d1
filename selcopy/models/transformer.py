"""`transformer`: a small bidirectional pre-norm Transformer encoder over bytes, a baseline.

Dimensions:
    B  batch
    L  length (positions in the text)
    C  channels (model width)
    V  vocabulary (256 bytes)

No causal mask: the masked answer is predicted from the whole text, as the conv model does.
Positions are sinusoidal and parameter-free, so any length works.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator
from torch import nn

from selcopy.models.base import (
    MAX_INNER,
    MAX_LAYERS,
    MAX_WIDTH,
    ByteEmbedding,
    ModelConfig,
    TaskShape,
    sinusoidal_positions,
)


class TransformerConfig(ModelConfig):
    """Embedding + sinusoidal positions -> pre-norm encoder layers -> LayerNorm -> tied read-out."""

    name: ClassVar[str] = "transformer"
    description: ClassVar[str] = "bidirectional pre-norm Transformer encoder with sinusoidal positions"

    layers: int = Field(2, gt=0, le=MAX_LAYERS, description="encoder layers")
    channels: int = Field(64, gt=0, le=MAX_WIDTH, description="model width")
    heads: int = Field(4, gt=0, le=MAX_WIDTH, description="attention heads per layer; must divide channels")
    feedforward: int = Field(256, gt=0, le=MAX_INNER, description="hidden width of each layer's feed-forward block")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout inside the encoder layers")

    @model_validator(mode="after")
    def _check_heads(self) -> TransformerConfig:
        if self.channels % self.heads:
            raise ValueError(f"heads: {self.heads} heads do not divide channels {self.channels}")
        return self

    def build(self, shape: TaskShape) -> TransformerModel:
        return TransformerModel(self, shape)

    def position_floats(self, training: bool = True) -> int:
        """Measured: a layer keeps ~12 C + 2 x feedforward floats per position (torch's attention
        kernel keeps no L x L weights)."""
        return (self.layers if training else 1) * (12 * self.channels + 2 * self.feedforward)


class TransformerModel(nn.Module):
    def __init__(self, cfg: TransformerConfig, shape: TaskShape):
        super().__init__()
        self.embed = ByteEmbedding(cfg.channels, shape.vocab)
        layer = nn.TransformerEncoderLayer(
            cfg.channels,
            cfg.heads,
            cfg.feedforward,
            cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Pre-norm layers leave the residual stream unnormalised: one LayerNorm before the read-out.
        self.encoder = nn.TransformerEncoder(
            layer, cfg.layers, norm=nn.LayerNorm(cfg.channels), enable_nested_tensor=False
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)  # (B, L, C)
        h = h + sinusoidal_positions(ids.shape[1], h.shape[-1], h.device, h.dtype)  # + (L, C)
        return self.embed.read_out(self.encoder(h))  # (B, L, C) -> (B, L, V)
