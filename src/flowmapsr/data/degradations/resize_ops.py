"""Random resizing steps of the degradation pipeline.

Modes ``area``, ``bilinear`` and ``bicubic`` are ``torch.nn.functional.interpolate`` exactly as
Real-ESRGAN calls it (``align_corners=False``, no antialiasing: the aliasing of a plain bilinear
or bicubic downscale is part of the degradation it models). ``matlab_bicubic`` is the project's
antialiased MATLAB ``imresize`` (:mod:`flowmapsr.resize`), the classic "bicubic" LR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flowmapsr.data.degradations import sampling
from flowmapsr.resize import imresize

RESIZE_MODES = ("area", "bilinear", "bicubic", "matlab_bicubic")


def resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` to ``size = (H', W')`` with ``mode`` (no clamp; same size: no-op)."""
    size = (int(size[0]), int(size[1]))
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"resize target must be at least 1x1, got {size}")
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "matlab_bicubic":
        return imresize(x, size=size)
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=size, mode=mode, align_corners=False)
    raise ValueError(f"unknown resize mode '{mode}'; known: {list(RESIZE_MODES)}")


def draw_resize(g: torch.Generator, cfg, ref_hw: tuple[int, int]) -> dict:
    """Draw one random resize from a ``ResizeConfig`` relative to ``ref_hw``.

    Up / down / keep with ``cfg.probs``; the factor is uniform in ``[1, range[1]]`` (up) or
    ``[range[0], 1]`` (down); the target is ``int(ref · factor)`` (at least 1 pixel), as
    Real-ESRGAN computes it. The mode is drawn uniformly from ``cfg.modes``.
    """
    updown = sampling.choice(g, ["up", "down", "keep"], list(cfg.probs))
    if updown == "up":
        factor = sampling.uniform(g, 1.0, cfg.range[1])
    elif updown == "down":
        factor = sampling.uniform(g, cfg.range[0], 1.0)
    else:
        factor = 1.0
    mode = sampling.choice(g, list(cfg.modes))
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode '{mode}'; known: {list(RESIZE_MODES)}")
    size = [max(1, int(ref_hw[0] * factor)), max(1, int(ref_hw[1] * factor))]
    return {"updown": updown, "factor": factor, "mode": mode, "size": size}
