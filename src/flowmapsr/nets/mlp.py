"""A small MLP flow map for vector data (the 2-D benchmark and tests).

``u = net(x, t, r, cond)`` with x ``(B, D)``: concatenates x with embeddings of t and t − r and
runs a SiLU MLP. ``cond`` may carry ω / prompt ids as for the image nets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from flowmapsr.flowmap import Condition
from flowmapsr.nets.base import NetConfig
from flowmapsr.nets.embeddings import sinusoidal


@dataclass
class MLPNetConfig(NetConfig):
    type: str = "mlp"
    dim: int = 2
    hidden: int = 256
    depth: int = 4
    emb_dim: int = 32
    num_prompts: int = 3


class MLPFlowMap(nn.Module):
    def __init__(self, config: MLPNetConfig | None = None):
        super().__init__()
        c = self.config = config or MLPNetConfig()
        d_in = c.dim + 3 * c.emb_dim
        layers: list[nn.Module] = [nn.Linear(d_in, c.hidden), nn.SiLU()]
        for _ in range(c.depth - 1):
            layers += [nn.Linear(c.hidden, c.hidden), nn.SiLU()]
        layers.append(nn.Linear(c.hidden, c.dim))
        self.mlp = nn.Sequential(*layers)
        self.prompt = nn.Embedding(c.num_prompts, c.emb_dim)
        nn.init.zeros_(self.prompt.weight)

    def forward(self, x, t, r, cond: Condition | None = None) -> torch.Tensor:
        c = self.config
        e_t = sinusoidal(t, c.emb_dim, scale=10.0)
        e_g = sinusoidal(t - r, c.emb_dim, scale=10.0)
        e_w = torch.zeros_like(e_t)
        if cond is not None and cond.omega is not None:
            e_w = sinusoidal(cond.omega - 1.0, c.emb_dim, scale=1.0)
        if cond is not None and cond.prompt is not None:
            e_w = e_w + self.prompt(cond.prompt)
        h = torch.cat([x, e_t.to(x.dtype), e_g.to(x.dtype), e_w.to(x.dtype)], dim=1)
        return self.mlp(h)
