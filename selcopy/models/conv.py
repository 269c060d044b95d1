"""`conv`: residual dilated 1-D CNN over bytes with optional attention per layer
(the article's ConvTextModel).

Dimensions:
    B  batch
    L  length (positions in the text)
    C  channels
    m  conv outputs per channel: 1 without attention, else what the mixer consumes (2 for QK/QV/KV, 3 for QKV)
    V  vocabulary (256 bytes)

Layer i: y = conv_i(x), optionally y = attention(q, k, v) with the "self-invented" parts of
q, k, v taken from y and the rest from x, then x + act(y). With channels 64, kernel 9, 6 layers:
16,384 embedding + 6 * 36,928 conv = 237,952 parameters.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BeforeValidator, Field, StrictBool, StrictInt, StrictStr, model_validator
from torch import nn

from selcopy.errors import did_you_mean
from selcopy.models.attention import MIXERS, mixer_name
from selcopy.models.base import (
    MAX_LAYERS,
    MAX_WIDTH,
    ByteEmbedding,
    ModelConfig,
    TaskShape,
    per_layer,
    sinusoidal_positions,
)

MAX_REACH = 65_536  # kernel_size, dilation: the longest text the tasks allow is ~65,600 bytes (selective-copy's
#   widest field); a reach beyond it reads only padding (which the conv does not store)

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


def _no_bools(value: Any) -> Any:
    """`True` is an int to Python; as a kernel size or dilation it is surely a mistake."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(item, bool) for item in items):
        raise ValueError("expected an integer or a list of one integer per layer, not a boolean")
    return value


def _attention_item(value: Any) -> Any:
    """Keep bools as bools (True = linear attention) and ints as ints (N heads): `True == 1`.
    A mixer's name (`linear`) stays a name."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return text == "true"
        if text.isdigit():
            return int(text)
        if text in MIXERS:
            return text
        hint = did_you_mean(text, MIXERS, known="mixers")
        raise ValueError(f"unknown attention {value!r}{hint}")
    if isinstance(value, bool) or (isinstance(value, int) and value >= 0):
        return value
    raise ValueError(f"expected 0/false (none), true (linear attention), a number of heads or a mixer's name, "
                     f"got {value!r}")


def _attention(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_attention_item(item) for item in value]
    return _attention_item(value)


PerLayerInt = Annotated[int | list[int], BeforeValidator(_no_bools)]
AttentionItem = StrictBool | StrictInt | StrictStr
AttentionSetting = Annotated[AttentionItem | list[AttentionItem], BeforeValidator(_attention)]


class ConvConfig(ModelConfig):
    """Residual dilated 1-D CNN; `kernel_size`, `dilation` and `attention` take one value per layer."""

    name: ClassVar[str] = "conv"
    description: ClassVar[str] = "residual dilated 1-D CNN with optional attention per layer (the article's)"

    layers: int = Field(6, gt=0, le=MAX_LAYERS, description="residual conv layers")
    channels: int = Field(64, gt=0, le=MAX_WIDTH, description="embedding and conv width C")
    kernel_size: PerLayerInt = Field(9, description="odd conv kernel, one or one per layer")
    dilation: PerLayerInt = Field(1, description="conv dilation, one or one per layer")
    activation: Literal["gelu", "relu", "silu", "tanh", "elu", "sigmoid", "leaky_relu"] = Field(
        "gelu", description="after each layer's conv (and attention)"
    )
    attention: AttentionSetting = Field(
        0, description="one or per layer: 0 none, true linear attention, N torch attention with N heads, a mixer name"
    )
    attention_invention: Literal["QK", "QV", "KV", "QKV", "Q", "K", "V"] = Field(
        "QK", description="which of q, k, v the conv makes; the rest are the layer input (one letter: "
                          "no more parameters than a layer without attention)"
    )
    attention_activation: Literal["elu+1", "dpfp"] = Field(
        "elu+1", description="feature map of the linear attention"
    )
    position_embedding: bool = Field(False, description="add sinusoidal positions to the embedding")

    @model_validator(mode="after")
    def _check_layers(self) -> ConvConfig:
        for k in self.kernel_sizes():
            if k < 1 or k % 2 == 0:
                raise ValueError(
                    f"kernel_size: {k} is not a positive odd number; only odd sizes keep the length "
                    "(padding = dilation * (kernel_size // 2))"
                )
            if k > MAX_REACH:
                raise ValueError(f"kernel_size: must be at most {MAX_REACH - 1:,}, got {k}")
        for d in self.dilations():
            if not 1 <= d <= MAX_REACH:
                raise ValueError(f"dilation: must be {'at least 1' if d < 1 else f'at most {MAX_REACH:,}'}, got {d}")
        for a in self.attentions():
            if name := mixer_name(a):
                MIXERS[name].check(self.channels, a)
        return self

    def kernel_sizes(self) -> list[int]:
        return per_layer("kernel_size", self.kernel_size, self.layers)

    def dilations(self) -> list[int]:
        return per_layer("dilation", self.dilation, self.layers)

    def attentions(self) -> list[bool | int | str]:
        """Per layer: 0 or False none, True linear attention, N > 0 torch attention with N heads,
        or a name in `attention.MIXERS`."""
        return per_layer("attention", self.attention, self.layers)

    def build(self, shape: TaskShape) -> ConvModel:
        return ConvModel(self, shape)

    def position_floats(self, training: bool = True) -> int:
        """Measured: a layer keeps ~3 C floats per position, one with attention ~10 C more."""
        layers = [self.channels * (3 + 10 * bool(mixer_name(a))) for a in self.attentions()]
        return sum(layers) if training else max(layers)


class ConvLayer(nn.Module):
    """x + act(attend(conv(x))), the attention optional: (B, C, 1, L) -> (B, C, 1, L)."""

    def __init__(self, cfg: ConvConfig, kernel: int, dilation: int, attention: bool | int | str):
        super().__init__()
        c = cfg.channels
        name = mixer_name(attention)
        mixer = MIXERS[name] if name else None
        self.mixer = mixer
        self.invention = mixer.invents(cfg) if mixer else ""  # the letters of the parts the conv makes
        m = mixer.outputs(cfg) if mixer else 1
        self.conv = nn.Conv1d(c, c * m, kernel, dilation=dilation, padding=dilation * (kernel // 2))
        self.attention = mixer.build(c, attention, cfg) if mixer else None
        self.act = ACTIVATIONS[cfg.activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, 1, L) in channels-last memory, i.e. stored as (B, L, C); or plain (B, C, L)."""
        if x.dim() == 3:
            return self(x.unsqueeze(2)).squeeze(2)
        c = self.conv
        # The Conv1d as a 1 x k Conv2d over channels-last memory: the same numbers, but it takes
        # oneDNN's blocked (brgemm) kernels on CPU, and attention and read-out need no transposes.
        y = F.conv2d(x, c.weight.unsqueeze(2), c.bias, padding=(0, c.padding[0]), dilation=(1, c.dilation[0]))
        if self.attention is not None:
            y = self._attend(x, y)  # (B, C*m, 1, L) -> (B, C, 1, L)
        return x + self.act(y)

    def _attend(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        invented = y.squeeze(2).transpose(1, 2).chunk(len(self.invention), dim=-1)  # m x (B, L, C)
        given = x.squeeze(2).transpose(1, 2)  # (B, L, C)
        mixed = self.mixer.mix(self.attention, dict(zip(self.invention, invented)), given)  # (B, L, C)
        return mixed.transpose(1, 2).unsqueeze(2)  # (B, L, C) -> (B, C, 1, L)


class ConvModel(nn.Module):
    """Byte embedding (+ optional sinusoidal positions) -> conv layers -> tied read-out."""

    def __init__(self, cfg: ConvConfig, shape: TaskShape):
        super().__init__()
        self.cfg = cfg
        self.embed = ByteEmbedding(cfg.channels, shape.vocab)
        self.layers = nn.ModuleList(
            ConvLayer(cfg, k, d, a) for k, d, a in zip(cfg.kernel_sizes(), cfg.dilations(), cfg.attentions())
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)  # (B, L, C)
        if self.cfg.position_embedding:
            h = h + sinusoidal_positions(ids.shape[1], h.shape[-1], h.device, h.dtype)  # + (L, C)
        # (B, L, C) memory seen as (B, C, 1, L) is channels-last already: no copy, and no layout query,
        # which torch.func.vmap cannot answer (stacked trials, selcopy.train.stacked)
        x = h.transpose(1, 2).unsqueeze(2)  # (B, C, 1, L)
        for layer in self.layers:
            x = layer(x)
        return self.embed.read_out(x.squeeze(2).transpose(1, 2))  # (B, L, C) -> (B, L, V)
