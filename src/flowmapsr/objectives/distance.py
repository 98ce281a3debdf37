"""The image distance ``d`` of the FlowSR losses: ``l2·MSE + w·P`` with ``P`` a perceptual term.

``Distance(config)(x, y)`` maps two batches ``(B, …)`` to ``(B,)``. ``P`` is a module of
:mod:`flowmapsr.objectives.perceptual` (LPIPS by default, on images ``(B, 3, H, W)`` in
``[-1, 1]``); it is used only when its weight is > 0, so vector-valued oracle tests can use the
ℓ2 part alone. Where the perceptual weights are absent the perceptual config's ``fallback``
applies and :attr:`Distance.description` says so (the trainer logs it).

The perceptual network is frozen and is *not* a registered submodule: its pretrained weights
are not training state, so checkpoints stay small and a run resumes whether or not the weights
were fetched in between (the description in the log records which was used).

Reference: FlowSR (Xu et al., ICCV 2025) stage 1 "ℓ2 + LPIPS in image space"; the paper does
not print the weights of the two terms (method-notes §3.3), the defaults here are our choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from flowmapsr.objectives.perceptual import PerceptualConfig, build_perceptual


def _lpips_default() -> PerceptualConfig:
    return PerceptualConfig(kind="lpips", weight=1.0)


@dataclass
class DistanceConfig:
    l2: float = 1.0  # weight of the per-sample mean squared error
    perceptual: PerceptualConfig = field(default_factory=_lpips_default)


class Distance(nn.Module):
    """``(B, …), (B, …) → (B,)``: ``l2·mean((x − y)²) + w·P(x, y)``, in at least float32."""

    def __init__(self, config: DistanceConfig | None = None):
        super().__init__()
        self.config = config or DistanceConfig()
        perc, self.perceptual_note = build_perceptual(self.config.perceptual)
        self._perceptual = (perc.eval().requires_grad_(False),) if perc is not None else ()

    @property
    def description(self) -> str:
        c = self.config
        if not self._perceptual:
            return f"{c.l2:g}·l2"
        return f"{c.l2:g}·l2 + {c.perceptual.weight:g}·{self.perceptual_note}"

    def _apply(self, fn, recurse=True):
        # .to(device) / .double() must reach the unregistered perceptual network too.
        super()._apply(fn, recurse)
        for m in self._perceptual:
            m._apply(fn)
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
        x, y = x.to(dtype), y.to(dtype)
        out = torch.zeros(x.shape[0], device=x.device, dtype=dtype)
        if self.config.l2:
            out = out + self.config.l2 * (x - y).pow(2).flatten(1).mean(dim=1)
        for m in self._perceptual:
            p = m(x.float(), y.float()).reshape(x.shape[0], -1).mean(dim=1)
            out = out + self.config.perceptual.weight * p.to(dtype)
        return out
