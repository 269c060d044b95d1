"""`mamba`: a small Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective
State Spaces", arXiv 2312.00752) in pure PyTorch, laid out as johnma2006/mamba-minimal.

Dimensions:
    B  batch
    L  length (positions in the text)
    D  d_model, the residual stream
    E  d_inner = expand * D, the block's inner width
    N  d_state, the SSM state per inner channel
    R  dt_rank = ceil(D / 16)
    V  vocabulary (256 bytes)

Embedding -> [x + MambaBlock(RMSNorm(x))] * layers -> RMSNorm -> tied read-out. With D 32,
6 layers, N 16, expand 2, d_conv 4: 8,192 + 6 * (9,920 + 32) + 32 = 67,936 parameters.
The selective scan runs in one of two pure-PyTorch ways (`selcopy.models.scan`).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from selcopy.models.base import MAX_LAYERS, MAX_WIDTH, ByteEmbedding, ModelConfig, TaskShape
from selcopy.models.scan import SCANS


class MambaConfig(ModelConfig):
    """Mamba blocks (selective SSM); `scan` picks the implementation, not the maths."""

    name: ClassVar[str] = "mamba"
    description: ClassVar[str] = "Mamba (selective state space) blocks in pure PyTorch, tied byte read-out"

    # The paper's: d_state 16, expand 2, d_conv 4. The scan keeps E x N floats per position and layer.
    layers: int = Field(6, gt=0, le=MAX_LAYERS, description="residual Mamba blocks")
    d_model: int = Field(32, gt=0, le=MAX_WIDTH, description="embedding width D")
    d_state: int = Field(16, gt=0, le=1_024, description="SSM state size N per channel")
    expand: int = Field(2, gt=0, le=16, description="inner width E = expand * d_model")
    d_conv: int = Field(4, gt=0, le=1_024, description="kernel of the causal depthwise conv before the SSM")
    scan: Literal["parallel", "sequential"] = Field(
        "parallel", description="scan implementation (same maths): chunked parallel or step by step"
    )
    dt_init: Literal["paper", "linear"] = Field(
        "paper", description="time-step projection init: paper (Delta log-uniform in [0.001, 0.1]) or "
        "linear (nn.Linear's default, as the article's mamba-minimal: Delta about 0.4-1.1)"
    )

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def dt_rank(self) -> int:
        return math.ceil(self.d_model / 16)

    def build(self, shape: TaskShape) -> MambaModel:
        return MambaModel(self, shape)

    def position_floats(self, training: bool = True) -> int:
        """Measured: while training the scan keeps ~4 E x N floats per position and layer, without
        gradients ~E x N; the block ~12 E + 8 D more."""
        block = 12 * self.d_inner + 8 * self.d_model
        if training:
            return self.layers * (4 * self.d_inner * self.d_state + block)
        return self.d_inner * self.d_state + block


class RMSNorm(nn.Module):
    """x / rms(x) * weight over the last dimension (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MambaBlock(nn.Module):
    """Gated block of the paper's Figure 3: (B, L, D) -> (B, L, D)."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        d, e, n, r = cfg.d_model, cfg.d_inner, cfg.d_state, cfg.dt_rank
        self.scan = SCANS[cfg.scan]
        self.in_proj = nn.Linear(d, 2 * e, bias=False)
        self.conv1d = nn.Conv1d(e, e, cfg.d_conv, groups=e, padding=cfg.d_conv - 1)
        self.x_proj = nn.Linear(e, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, e)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(e, 1))  # (E, N)
        self.D = nn.Parameter(torch.ones(e))
        self.out_proj = nn.Linear(e, d, bias=False)
        if cfg.dt_init == "paper":  # "linear" keeps nn.Linear's U(-1/sqrt(R), 1/sqrt(R)) weight and bias
            self._init_dt(r)

    def _init_dt(self, dt_rank: int, dt_min: float = 1e-3, dt_max: float = 0.1) -> None:
        """As the reference implementation: softplus(bias) starts log-uniform in [dt_min, dt_max]."""
        nn.init.uniform_(self.dt_proj.weight, -(dt_rank**-0.5), dt_rank**-0.5)
        dt = torch.exp(torch.rand(self.dt_proj.out_features) * math.log(dt_max / dt_min) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        x, res = self.in_proj(x).chunk(2, dim=-1)  # (B, L, 2E) -> 2 x (B, L, E)
        x = self.conv1d(x.transpose(1, 2))[..., :length]  # (B, E, L + d_conv - 1) -> causal (B, E, L)
        x = F.silu(x.transpose(1, 2))  # (B, L, E)
        y = self.ssm(x) * F.silu(res)  # (B, L, E)
        return self.out_proj(y)  # (B, L, D)

    def ssm(self, x: torch.Tensor) -> torch.Tensor:
        """Selective SSM (Algorithm 2): Delta, B, C are functions of the input, A and D are not."""
        n = self.A_log.shape[1]
        A = -torch.exp(self.A_log)  # (E, N), negative: the state decays
        dt, B, C = self.x_proj(x).split([self.dt_proj.in_features, n, n], dim=-1)  # (B, L, R), 2 x (B, L, N)
        delta = F.softplus(self.dt_proj(dt))  # (B, L, E)
        # Half precision would under/overflow exp(Delta A): scan in at least float32.
        dtype = torch.promote_types(x.dtype, torch.float32)
        y = self.scan(*(t.to(dtype) for t in (delta, A, B, C, x)))  # (B, L, E)
        return (y + x * self.D).to(x.dtype)


class ResidualBlock(nn.Module):
    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.norm = RMSNorm(cfg.d_model)
        self.mixer = MambaBlock(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))  # (B, L, D)


class MambaModel(nn.Module):
    def __init__(self, cfg: MambaConfig, shape: TaskShape):
        super().__init__()
        self.embed = ByteEmbedding(cfg.d_model, shape.vocab)
        self.layers = nn.ModuleList(ResidualBlock(cfg) for _ in range(cfg.layers))
        self.norm_f = RMSNorm(cfg.d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)  # (B, L, D)
        for layer in self.layers:
            h = layer(h)
        return self.embed.read_out(self.norm_f(h))  # (B, L, V)
