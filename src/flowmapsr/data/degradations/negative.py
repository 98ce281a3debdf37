"""Targets of the *negative* guidance prompt: the HR image mildly re-degraded at the same size.

FlowMapSR's negative branch learns the flow toward low-quality images (DESIGN.md §2). A target
is the HR with a random mix of (at least one of) mild Gaussian blur, over-smoothing by a
down-then-up resize, and JPEG compression, quantised to 8 bits. The ranges are this project's
choice (the paper names the kinds of degradation, not their strengths).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from flowmapsr.data.degradations import sampling
from flowmapsr.data.degradations.jpeg import jpeg_roundtrip
from flowmapsr.data.degradations.kernels import filter2d, gaussian_kernel
from flowmapsr.data.degradations.resize_ops import resize


@dataclass
class NegativeConfig:
    blur_prob: float = 0.6
    blur_sigma: list[float] = field(default_factory=lambda: [0.5, 2.0])
    blur_sizes: list[int] = field(default_factory=lambda: [7, 9, 11, 13])
    downup_prob: float = 0.6
    downup_factor: list[float] = field(default_factory=lambda: [0.25, 0.7])
    down_modes: list[str] = field(default_factory=lambda: ["area", "bilinear", "bicubic"])
    up_mode: str = "bicubic"
    jpeg_prob: float = 0.5
    jpeg_quality: list[float] = field(default_factory=lambda: [20.0, 60.0])


def draw_negative(g: torch.Generator, cfg: NegativeConfig | None = None) -> dict:
    """Parameters of one negative target; at least one operation is always on."""
    cfg = cfg or NegativeConfig()
    on = {
        "blur": sampling.coin(g, cfg.blur_prob),
        "downup": sampling.coin(g, cfg.downup_prob),
        "jpeg": sampling.coin(g, cfg.jpeg_prob),
    }
    if not any(on.values()):
        on[sampling.choice(g, ["blur", "downup", "jpeg"])] = True
    p: dict = {"blur": None, "downup": None, "jpeg": None}
    if on["blur"]:
        p["blur"] = {
            "size": int(sampling.choice(g, list(cfg.blur_sizes))),
            "sigma": sampling.uniform(g, *cfg.blur_sigma),
        }
    if on["downup"]:
        p["downup"] = {
            "factor": sampling.uniform(g, *cfg.downup_factor),
            "down_mode": sampling.choice(g, list(cfg.down_modes)),
            "up_mode": cfg.up_mode,
        }
    if on["jpeg"]:
        p["jpeg"] = {"quality": int(round(sampling.uniform(g, *cfg.jpeg_quality)))}
    return p


def apply_negative(x: torch.Tensor, p: dict) -> torch.Tensor:
    """Apply :func:`draw_negative` parameters to one image ``(1, 3, H, W)`` in [0, 1]."""
    h, w = x.shape[-2:]
    if p["blur"] is not None:
        s = p["blur"]["sigma"]
        x = filter2d(x, gaussian_kernel(p["blur"]["size"], s, s))
    if p["downup"] is not None:
        f = p["downup"]["factor"]
        small = (max(1, round(h * f)), max(1, round(w * f)))
        x = resize(resize(x, small, p["downup"]["down_mode"]), (h, w), p["downup"]["up_mode"])
    x = x.clamp(0, 1)
    if p["jpeg"] is not None:
        x = jpeg_roundtrip(x, p["jpeg"]["quality"])
    return (x * 255.0).round() / 255.0


def make_negative(
    hr: torch.Tensor,
    generators: list[torch.Generator],
    config: NegativeConfig | None = None,
) -> torch.Tensor:
    """Low-quality targets for the negative prompt: ``hr`` (B, 3, H, W) in [0, 1] → same shape.

    One generator per sample; runs on ``hr``'s device (JPEG on the CPU), returns ``hr``'s dtype.
    """
    if hr.ndim != 4 or hr.shape[1] != 3:
        raise ValueError(f"hr must be (B, 3, H, W), got {tuple(hr.shape)}")
    if len(generators) != hr.shape[0]:
        raise ValueError(f"need one generator per sample: {hr.shape[0]} vs {len(generators)}")
    x = hr.float()
    outs = [
        apply_negative(x[i : i + 1], draw_negative(g, config)) for i, g in enumerate(generators)
    ]
    return torch.cat(outs, 0).to(hr.dtype)
