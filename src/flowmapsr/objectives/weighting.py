"""Learned loss weighting λ(t, r): each per-sample term ℓ becomes ``exp(−w(t, r))·ℓ + w(t, r)``.

Reference: uncertainty weighting of Kendall et al. 2018 as used by EDM2 (Karras et al. 2024,
eq. 21) and by Boffi et al. 2025's flow-map code; FlowMapSR's "dynamic loss weighting MLP".
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LearnedWeighting(nn.Module):
    """A small MLP ``w(t, r)``: ``(B,), (B,) → (B,)`` log-variance, zero at initialisation.

    ``bound`` limits ``|w|`` softly (``w = bound·tanh(raw / bound)``); 0 disables the bound.
    Why a bound: the diagonal term's target ``src − hr`` has an irreducible variance, while the
    self-distillation terms can reach ~0, so the unbounded optimum ``w = log ℓ`` gives
    off-diagonal samples weights 10³–10⁴ times the diagonal's; the network then forgets the
    velocity and training diverges (measured on the 2-D benchmark, see benchmarks/toy2d.py).
    """

    def __init__(self, hidden: int = 64, frequencies: int = 8, bound: float = 1.0):
        super().__init__()
        self.bound = bound
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
        w = self.net(feats).squeeze(1)
        if self.bound > 0:
            w = self.bound * torch.tanh(w / self.bound)
        return w.to(t.dtype)
