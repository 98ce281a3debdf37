"""Scalar embeddings for times, gaps and guidance scales.

Reference: sinusoidal embeddings of Vaswani et al. 2017 as used for diffusion times (Ho et al.
2020, DDPM appendix B).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal(x: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """``(B,) → (B, dim)`` sin/cos features of ``scale · x`` over log-spaced frequencies."""
    half = dim // 2
    # At least fp32: times in bf16 would collapse nearby t; fp64 stays fp64 (exact tests).
    dtype = torch.promote_types(x.dtype, torch.float32)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device, dtype=dtype) / half)
    ang = (scale * x.to(dtype)).unsqueeze(1) * freqs.unsqueeze(0)
    emb = torch.cat([ang.sin(), ang.cos()], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class ScalarEmbedding(nn.Module):
    """``(B,) → (B, dim)``: sinusoidal features then a two-layer MLP."""

    def __init__(self, dim: int, scale: float = 1000.0, zero_init: bool = False):
        super().__init__()
        self.dim, self.scale = dim, scale
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        if zero_init:  # a new input (t − r, ω) starts as a no-op on a warm-started network
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(x, self.dim, self.scale).to(self.mlp[0].weight.dtype))
