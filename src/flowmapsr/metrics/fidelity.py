"""Full-reference fidelity metrics: PSNR and SSIM on the BT.601 Y channel.

The protocol of the SR literature (and of BasicSR / MATLAB scripts behind the published tables):
convert RGB to Y with ``flowmapsr.convert.rgb_to_y`` (MATLAB ``rgb2ycbcr``), scale to [0, 255],
crop ``crop_border`` pixels from every side, then PSNR with peak 255 and SSIM of Wang et al. 2004
(11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, "valid" filtering). Computed in float64
with torch convolutions so a batch runs at once; a handful of lines, so no dependency is added.

Greyscale *files* (Set14's ``img_003`` is single-channel) are compared on their grey values, not
through ``rgb2ycbcr``: the MATLAB scripts behind the published tables only convert images that
have three channels. The caller says which images those are with ``grey`` ``(B,)`` (the tensor
alone cannot tell: Set14's ``img_010`` is a three-channel file with equal channels, and is
converted). With it, bicubic x4 gives the published Set14 26.00 dB.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from flowmapsr.convert import rgb_to_y
from flowmapsr.metrics.registry import Metric, register


def is_grey(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` → ``(B,)`` bool: all three channels identical."""
    return ((x[:, 0] == x[:, 1]) & (x[:, 1] == x[:, 2])).flatten(1).all(dim=1)


def _y255(x: torch.Tensor, crop_border: int, grey: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] → Y in [0, 255], float64, borders cropped: ``(B, 1, H', W')``.

    Images flagged in ``grey`` ``(B,)`` use their grey value instead of BT.601 Y: the channel
    itself when the channels are equal, else the full-range luma 0.299 R + 0.587 G + 0.114 B
    (what a grey output of a colour pipeline is). The flag belongs to the *pair*, so the
    prediction and the grey reference are always put on the same scale — a prediction whose
    channels differ by rounding must not fall back to Y = 16 + 219/255·v against a reference
    read as v.
    """
    x = x.double()
    y = rgb_to_y(x) * 255.0
    if grey is not None:
        grey = grey.to(x.device)
        if bool(grey.any()):
            w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
            luma = torch.where(
                is_grey(x).view(-1, 1, 1, 1), x[:, :1], (x * w.view(1, 3, 1, 1)).sum(1, True)
            )
            y = torch.where(grey.view(-1, 1, 1, 1), luma * 255.0, y)
    if crop_border > 0:
        h, w = y.shape[-2:]
        if h <= 2 * crop_border or w <= 2 * crop_border:
            raise ValueError(f"image {h}x{w} is too small for crop_border={crop_border}")
        y = y[..., crop_border:-crop_border, crop_border:-crop_border]
    return y


@register("psnr")
class PSNR(Metric):
    """PSNR (dB) on Y in [0, 255]; ``inf`` for identical images."""

    name = "psnr"
    lower_better = False
    full_reference = True
    accepts_grey = True

    def __init__(self, crop_border: int = 0):
        self.crop_border = int(crop_border)

    def compute(
        self, pred: torch.Tensor, ref: torch.Tensor | None, grey: torch.Tensor | None = None
    ) -> torch.Tensor:
        p, r = _y255(pred, self.crop_border, grey), _y255(ref, self.crop_border, grey)
        mse = (p - r).pow(2).mean(dim=(1, 2, 3))
        return 10.0 * torch.log10(255.0**2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 2-D Gaussian ``(size, size)`` float64 (MATLAB ``fspecial('gaussian')``)."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


@register("ssim")
class SSIM(Metric):
    """Mean SSIM (Wang et al. 2004) on Y in [0, 255] with "valid" 11×11 Gaussian filtering."""

    name = "ssim"
    lower_better = False
    full_reference = True
    accepts_grey = True

    def __init__(self, crop_border: int = 0):
        self.crop_border = int(crop_border)
        g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5.0) ** 2) / (2 * 1.5**2))
        self.g1d = g / g.sum()  # outer(g1d, g1d) == gaussian_window(11, 1.5)

    def compute(
        self, pred: torch.Tensor, ref: torch.Tensor | None, grey: torch.Tensor | None = None
    ) -> torch.Tensor:
        x, y = _y255(pred, self.crop_border, grey), _y255(ref, self.crop_border, grey)
        if min(x.shape[-2:]) < 11:
            raise ValueError(f"SSIM needs at least 11x11 pixels, got {tuple(x.shape[-2:])}")
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        # The 2-D Gaussian is separable: filter the five maps at once, rows then columns
        # (float64 convolutions are slow in torch; this is ~10x fewer operations than 5 × 11²).
        g = self.g1d.to(x.device)
        maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)
        maps = F.conv2d(maps, g.view(1, 1, 1, -1).expand(5, 1, 1, -1), groups=5)
        maps = F.conv2d(maps, g.view(1, 1, -1, 1).expand(5, 1, -1, 1), groups=5)
        mu_x, mu_y, exx, eyy, exy = maps.unbind(dim=1)
        sxx, syy, sxy = exx - mu_x**2, eyy - mu_y**2, exy - mu_x * mu_y
        num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
        den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
        return (num / den).mean(dim=(1, 2))


def psnr_from_mse(mse: float) -> float:
    """PSNR (dB) for a mean squared error on the [0, 255] scale; a helper for tests and reports."""
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
