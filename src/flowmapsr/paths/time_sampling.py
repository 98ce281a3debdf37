"""Time samplers for ``t`` and pair samplers for ``(t, r)`` with ``r ≤ t``.

All draws take an explicit ``torch.Generator`` (DESIGN.md §1) so runs are reproducible.
Reference: uniform / logit-normal times (Esser et al. 2024, SD3 §3.1); the diagonal fraction and
"max/min of two draws" pair rule follow Boffi et al. 2025 (flow-map self-distillation) and
MeanFlow (Geng et al. 2025, 75 % of the batch with r = t).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch


@dataclass
class TimeSamplerConfig:
    kind: Literal["uniform", "logit_normal", "discrete"] = "uniform"
    mean: float = 0.0  # logit-normal location
    std: float = 1.0  # logit-normal scale
    t_min: float = 0.0
    t_max: float = 1.0
    values: list[float] = field(default_factory=list)  # for kind = discrete (e.g. LBM's 4 times)


class TimeSampler:
    """Draws ``t`` in ``[t_min, t_max]``: uniform, logit-normal, or from a discrete set."""

    def __init__(self, config: TimeSamplerConfig | None = None):
        self.config = config or TimeSamplerConfig()
        if self.config.kind == "discrete" and not self.config.values:
            raise ValueError("time sampler 'discrete' needs a non-empty list of values")

    def __call__(
        self, n: int, generator: torch.Generator | None = None, device=None
    ) -> torch.Tensor:
        c = self.config
        if c.kind == "uniform":
            u = torch.rand(n, generator=generator, device=device)
        elif c.kind == "logit_normal":
            u = torch.sigmoid(c.mean + c.std * torch.randn(n, generator=generator, device=device))
        elif c.kind == "discrete":
            vals = torch.tensor(c.values, device=device, dtype=torch.float32)
            idx = torch.randint(len(vals), (n,), generator=generator, device=device)
            return vals[idx]
        else:
            raise ValueError(f"unknown time sampler kind '{c.kind}'")
        return c.t_min + (c.t_max - c.t_min) * u


@dataclass
class PairSamplerConfig:
    time: TimeSamplerConfig = field(default_factory=TimeSamplerConfig)
    diagonal_fraction: float = 0.75  # share of the batch with r = t (flow-matching term)
    min_gap: float = 0.0  # off-diagonal pairs get t − r ≥ min_gap where possible


class PairSampler:
    """Draws ``(t, r)`` with ``r ≤ t`` and a boolean mask of diagonal samples (``r == t``).

    Off-diagonal pairs take ``t = max(a, b)``, ``r = min(a, b)`` of two independent time draws.
    The first ``round(n · diagonal_fraction)`` samples are diagonal so that the split is exact
    and a batch's composition does not depend on the random draw.
    """

    def __init__(self, config: PairSamplerConfig | None = None):
        self.config = config or PairSamplerConfig()
        self.time = TimeSampler(self.config.time)

    def __call__(
        self, n: int, generator: torch.Generator | None = None, device=None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = self.time(n, generator, device)
        b = self.time(n, generator, device)
        t, r = torch.maximum(a, b), torch.minimum(a, b)
        if self.config.min_gap > 0:
            r = torch.minimum(r, (t - self.config.min_gap).clamp_min(0.0))
        n_diag = int(round(n * self.config.diagonal_fraction))
        diag = torch.zeros(n, dtype=torch.bool, device=device)
        diag[:n_diag] = True
        r = torch.where(diag, t, r)
        return t, r, diag
