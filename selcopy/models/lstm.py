"""`lstm`: a unidirectional multi-layer LSTM over bytes, the article's recurrent baseline.

Dimensions:
    B  batch
    L  length (positions in the text)
    C  channels (embedding width = hidden size)
    V  vocabulary (256 bytes)

With 6 layers of 64 channels: 16,384 embedding + 6 * 33,280 LSTM = 216,064 parameters
(the read-out is tied to the embedding).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from selcopy.models.base import MAX_LAYERS, MAX_WIDTH, ByteEmbedding, ModelConfig, TaskShape


class LSTMConfig(ModelConfig):
    """Embedding -> nn.LSTM(C, C, layers) -> tied read-out."""

    name: ClassVar[str] = "lstm"
    description: ClassVar[str] = "unidirectional multi-layer LSTM with tied byte read-out"

    layers: int = Field(6, gt=0, le=MAX_LAYERS, description="stacked LSTM layers")
    channels: int = Field(64, gt=0, le=MAX_WIDTH, description="embedding width = hidden size")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout between LSTM layers (not after the last)")

    def build(self, shape: TaskShape) -> LSTMModel:
        return LSTMModel(self, shape)


class LSTMModel(nn.Module):
    def __init__(self, cfg: LSTMConfig, shape: TaskShape):
        super().__init__()
        self.embed = ByteEmbedding(cfg.channels, shape.vocab)
        # torch warns about dropout with one layer: it only acts between layers.
        dropout = cfg.dropout if cfg.layers > 1 else 0.0
        self.lstm = nn.LSTM(cfg.channels, cfg.channels, cfg.layers, batch_first=True, dropout=dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(ids))  # (B, L, C)
        return self.embed.read_out(h)  # (B, L, V)
