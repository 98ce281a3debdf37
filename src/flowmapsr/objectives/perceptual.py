"""An optional perceptual term for the adversarial stage: LPIPS when available, else a stand-in.

LPIPS (Zhang et al. 2018) needs pretrained AlexNet/VGG weights and the ``lpips`` package; none
exist on machines without model hubs, and importing torchvision is not allowed here. So
``kind: lpips`` is used only when the ``lpips`` package *and* torchvision are installed (their
presence is checked with ``importlib.util.find_spec`` before anything is imported); otherwise the
config's ``fallback`` is used and :func:`build_perceptual` says which one, for the log.

The stand-in ``sobel_l1`` is NOT a perceptual metric: it is an L1 distance on pixels and on Sobel
gradients at 3 scales (an edge-fidelity proxy that punishes blur the way LPIPS partly does). It is
written here because it is four conv ops and no library ships it with this meaning.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PerceptualConfig:
    kind: Literal["none", "lpips", "sobel_l1"] = "none"
    fallback: Literal["none", "sobel_l1"] = "sobel_l1"  # used when kind = lpips is unavailable
    weight: float = 0.0
    lpips_net: str = "alex"


class SobelL1(nn.Module):
    """``(B, 3, H, W), (B, 3, H, W) → (B,)``: L1 on pixels + Sobel gradients at 3 scales."""

    name = "sobel_l1 (LPIPS stand-in: pixel + Sobel-gradient L1, 3 scales)"

    def __init__(self, scales: int = 3):
        super().__init__()
        self.scales = scales
        gx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0
        self.register_buffer("kernel", torch.stack([gx, gx.t()]).unsqueeze(1))  # (2,1,3,3)

    def _grad(self, x):
        b, c, h, w = x.shape
        g = F.conv2d(x.reshape(b * c, 1, h, w), self.kernel.to(x.dtype), padding=1)
        return g.reshape(b, c * 2, h, w)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(x.shape[0])
        for s in range(self.scales):
            if s:
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            total = total + (x - y).abs().flatten(1).mean(1)
            total = total + (self._grad(x) - self._grad(y)).abs().flatten(1).mean(1)
        return total / self.scales


class LPIPSLoss(nn.Module):
    """The ``lpips`` package's LPIPS, per sample ``(B,)``; only built when it is installed."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        import lpips  # noqa: PLC0415 - optional, guarded by find_spec

        self.model = lpips.LPIPS(net=net, verbose=False).eval().requires_grad_(False)
        self.name = f"lpips ({net})"

    def forward(self, x, y):
        return self.model(x, y).flatten()


def lpips_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("lpips", "torchvision"))


def build_perceptual(config: PerceptualConfig) -> tuple[nn.Module | None, str]:
    """The perceptual module (or None) and a one-line description of what is used, for the log."""
    kind = config.kind
    if config.weight <= 0 or kind == "none":
        return None, "none"
    if kind == "lpips":
        if lpips_available():
            try:
                m = LPIPSLoss(config.lpips_net)
                return m, m.name
            except Exception as err:  # weights missing: fall back, and say why
                reason = f"LPIPS failed to load ({type(err).__name__}: {err})"
        else:
            reason = "LPIPS unavailable (lpips/torchvision not installed)"
        if config.fallback == "none":
            return None, f"none ({reason})"
        return SobelL1(), f"{SobelL1.name} ({reason})"
    if kind == "sobel_l1":
        return SobelL1(), SobelL1.name
    raise ValueError(f"unknown perceptual kind '{kind}'")
