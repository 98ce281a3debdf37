"""Colour fix: pull the output's colours back to the upsampled LR image (the SR source).

Generative SR can drift in colour; both fixes keep the output's detail and take the colour from
the source. ``adain`` matches each channel's mean and standard deviation (Huang & Belongie 2017);
``wavelet`` replaces the low-frequency part of a dilated-blur ("à trous") wavelet decomposition
with the source's (the StableSR colour fix, Wang et al. 2023). Hand-written: both are a few
tensor operations and no maintained library exposes them on ``(B, C, H, W)`` tensors.
Applied per tile by the tiler (statistics of the tile, not of the whole image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

METHODS = ("none", "wavelet", "adain")


def adain(x: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Match per-image, per-channel mean/std of ``x`` ``(B, C, H, W)`` to ``ref`` (same shape)."""
    dims = (-2, -1)
    mx, mr = x.mean(dims, keepdim=True), ref.mean(dims, keepdim=True)
    if x.shape[-1] * x.shape[-2] < 2:  # a single pixel has no spread: match the mean only
        return x - mx + mr
    sx, sr = x.std(dims, keepdim=True), ref.std(dims, keepdim=True)
    return (x - mx) / (sx + eps) * sr + mr


def _blur(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """3×3 binomial blur with the given dilation, replicate-padded; ``(B, C, H, W)``."""
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    k2 = (k[:, None] * k[None, :]) / 16.0
    c = x.shape[1]
    weight = k2.expand(c, 1, 3, 3).contiguous()
    pad = dilation
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return F.conv2d(xp, weight, groups=c, dilation=dilation)


def wavelet_low(x: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """The low-frequency residual after ``levels`` à-trous levels (dilations 1, 2, 4, …)."""
    low = x
    for i in range(levels):
        low = _blur(low, 2**i)
    return low


def wavelet_fix(x: torch.Tensor, ref: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """High frequencies of ``x`` plus low frequencies of ``ref``."""
    return x - wavelet_low(x, levels) + wavelet_low(ref, levels)


def apply_color_fix(x: torch.Tensor, ref: torch.Tensor, method: str = "none") -> torch.Tensor:
    """Colour-fix ``x`` in ``[0, 1]`` against ``ref`` (the upsampled LR, ``[0, 1]``); clamped."""
    if method == "none":
        return x
    if method == "adain":
        return adain(x, ref).clamp(0.0, 1.0)
    if method == "wavelet":
        return wavelet_fix(x, ref).clamp(0.0, 1.0)
    raise ValueError(f"unknown colour fix '{method}' (choose from {', '.join(METHODS)})")
