"""Additive Gaussian and Poisson (shot) noise, colour or grey, as in Real-ESRGAN.

Each function treats one image ``(1, C, H, W)`` in [0, 1] and takes the sample's generator; the
noise is drawn on the generator's device and moved to the image's device, so results depend only
on the seed, not on where the image lives. Outputs are clipped to [0, 1] (Real-ESRGAN ``clip=True``,
``rounds=False``).
"""

from __future__ import annotations

import math

import torch

from flowmapsr.data.degradations import sampling


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``(1, 1, H, W)`` (the weights of ``rgb_to_grayscale``)."""
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def draw_noise(g: torch.Generator, cfg) -> dict | None:
    """Draw the parameters of one noise step from a ``NoiseConfig`` (None: no noise)."""
    if not sampling.coin(g, cfg.prob):
        return None
    gray = None
    if sampling.coin(g, cfg.gaussian_prob):
        sigma = sampling.uniform(g, *cfg.sigma)
        gray = sampling.coin(g, cfg.gray_prob)
        return {"type": "gaussian", "sigma": sigma, "gray": gray}
    scale = sampling.uniform(g, *cfg.poisson_scale)
    gray = sampling.coin(g, cfg.gray_prob)
    return {"type": "poisson", "scale": scale, "gray": gray}


def gaussian_noise(
    x: torch.Tensor, sigma: float, gray: bool, g: torch.Generator, clip: bool = True
) -> torch.Tensor:
    """Add N(0, (sigma/255)²) noise to ``(1, C, H, W)``; ``gray``: one field for all channels."""
    _, c, h, w = x.shape
    n = torch.randn((1, 1 if gray else c, h, w), generator=g, device=g.device, dtype=torch.float32)
    n = n.to(device=x.device, dtype=x.dtype).expand(1, c, h, w) * (sigma / 255.0)
    y = x + n
    return y.clamp(0, 1) if clip else y


def poisson_noise(
    x: torch.Tensor, scale: float, gray: bool, g: torch.Generator, clip: bool = True
) -> torch.Tensor:
    """Add Poisson (shot) noise of strength ``scale`` to ``(1, C, H, W)`` in [0, 1].

    As Real-ESRGAN: the image is quantised to 8 bits, ``vals = 2^ceil(log2(#distinct values))``
    photons per unit, ``noise = Poisson(img·vals)/vals − img``, scaled by ``scale``. With ``gray``
    the noise comes from the luma and is shared by the channels.
    """
    _, c, h, w = x.shape
    src = _grey(x) if gray and c == 3 else x
    levels = (src.clamp(0, 1) * 255).round()
    src = levels / 255
    # Number of distinct 8-bit values (a histogram is much cheaper than torch.unique's sort).
    n_vals = max(int((torch.bincount(levels.flatten().long(), minlength=256) > 0).sum()), 2)
    vals = 2 ** math.ceil(math.log2(n_vals))
    src_g = src.to(device=g.device, dtype=torch.float32)
    out = torch.poisson(src_g * vals, generator=g) / vals
    noise = (out - src_g).to(device=x.device, dtype=x.dtype) * scale
    y = x + noise.expand(1, c, h, w)
    return y.clamp(0, 1) if clip else y


def apply_noise(x: torch.Tensor, p: dict | None, g: torch.Generator) -> torch.Tensor:
    """Apply the noise step described by :func:`draw_noise` (identity for None)."""
    if p is None:
        return x
    if p["type"] == "gaussian":
        return gaussian_noise(x, p["sigma"], p["gray"], g)
    if p["type"] == "poisson":
        return poisson_noise(x, p["scale"], p["gray"], g)
    raise ValueError(f"unknown noise type '{p['type']}'")
