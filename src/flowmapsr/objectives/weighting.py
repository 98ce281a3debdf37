"""Learned loss weighting λ(t, r): each per-sample term ℓ becomes ``exp(−w(t, r))·ℓ + w(t, r)``.

Reference: uncertainty weighting of Kendall et al. 2018 as used by EDM2 (Karras et al. 2024,
eq. 21) and by Boffi et al. 2025's flow-map code; FlowMapSR's "dynamic loss weighting MLP".
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LearnedWeighting(nn.Module):
    """A small MLP ``w(t, r)``: ``(B,), (B,) → (B,)`` log-variance, zero at initialisation."""

    def __init__(self, hidden: int = 64, frequencies: int = 8):
        super().__init__()
        self.register_buffer(
            "freqs", math.pi * torch.arange(1, frequencies + 1, dtype=torch.float32)
        )
        d_in = 2 + 4 * frequencies
        self.net = nn.Sequential(
            nn.Linear(d_in, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )
        # Zero output at start: every term weighted 1, as in plain flow matching.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        tr = torch.stack([t, r], dim=1).to(self.freqs.dtype)
        ang = tr.unsqueeze(-1) * self.freqs  # (B, 2, F)
        feats = torch.cat([tr, ang.sin().flatten(1), ang.cos().flatten(1)], dim=1)
        return self.net(feats).squeeze(1).to(t.dtype)
