"""Discriminators for the adversarial stage (RpGAN, DESIGN.md §2), chosen by ``kind``.

- ``patch`` (:class:`Discriminator`): ``D(x, source) → (B,)`` logits. The image (optionally
  concatenated with the SR source, so D judges the image *given* its LR input) goes through a
  3×3 conv, then ``depth`` stride-2 conv blocks (channels doubling up to ``max_channels``), then
  a 1×1 conv to patch logits averaged over space. No normalisation layers, so the R1/R2 gradient
  penalties act per sample (R3GAN, Huang et al. 2024, §3 drops normalisation for the same
  reason).
- ``unet`` (:class:`UNetDiscriminator`): ``D(x, source) → (B, H, W)`` per-pixel logits from an
  encoder of ``depth`` stride-2 convs and a decoder that upsamples back with skip connections,
  so it judges both the global structure (deep features) and local texture (full-resolution
  output) — the discriminator of Real-ESRGAN, which its authors found necessary for real-world
  degradations. ``spectral_norm`` (default on in the presets that use it) bounds each conv's
  Lipschitz constant; it is built with torch's ``parametrizations.spectral_norm``, whose power-
  iteration vectors are buffers, so checkpoints resume it exactly. RpGAN pairs real and fake
  per pixel (they are aligned: same source), see :mod:`flowmapsr.objectives.adversarial`.
  Reference: Wang et al. 2021, "Real-ESRGAN", §3.3 (U-Net discriminator with spectral norm);
  Miyato et al. 2018 (spectral normalisation).

Written here rather than taken from a library: the one package that ships Real-ESRGAN's
discriminator (basicsr) pins torchvision, which this project must not depend on.
Shapes: x, source ``(B, 3, H, W)`` in ``[-1, 1]``, H and W multiples of ``2**depth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DiscriminatorConfig:
    in_channels: int = 3
    channels: int = 32
    max_channels: int = 256
    depth: int = 4  # stride-2 blocks
    conditional: bool = True  # concatenate the SR source to the input
    kind: Literal["patch", "unet"] = "patch"  # see module docstring
    spectral_norm: bool = False  # unet only: spectral norm on every conv after the first


def build_discriminator(config: DiscriminatorConfig | None = None) -> nn.Module:
    """The discriminator of :data:`DISCRIMINATORS` that ``config.kind`` names."""
    config = config or DiscriminatorConfig()
    if config.kind not in DISCRIMINATORS:
        known = " | ".join(DISCRIMINATORS)
        raise ValueError(f"adversarial.disc.kind: unknown discriminator '{config.kind}' ({known})")
    if config.spectral_norm and config.kind == "patch":
        raise ValueError("adversarial.disc.spectral_norm: only the unet discriminator has it")
    return DISCRIMINATORS[config.kind](config)


def _cat_source(config: DiscriminatorConfig, x: torch.Tensor, source: torch.Tensor | None):
    if not config.conditional:
        return x
    if source is None:
        raise ValueError("conditional discriminator: pass the SR source")
    return torch.cat([x, source.to(x.dtype)], dim=1)


class Discriminator(nn.Module):
    """Patch discriminator with a scalar output per image; see module docstring."""

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        c = self.config = config or DiscriminatorConfig()
        d_in = c.in_channels * (2 if c.conditional else 1)
        self.conv_in = nn.Conv2d(d_in, c.channels, 3, padding=1)
        blocks, ch = [], c.channels
        for _ in range(c.depth):
            out = min(2 * ch, c.max_channels)
            blocks.append(nn.Conv2d(ch, ch, 3, padding=1))
            blocks.append(nn.Conv2d(ch, out, 4, stride=2, padding=1))
            ch = out
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = nn.Conv2d(ch, 1, 1)

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        h = F.leaky_relu(self.conv_in(_cat_source(self.config, x, source)), 0.2)
        for conv in self.blocks:
            h = F.leaky_relu(conv(h), 0.2)
        return self.conv_out(h).mean(dim=(1, 2, 3))


class UNetDiscriminator(nn.Module):
    """U-Net discriminator with per-pixel logits ``(B, H, W)``; see module docstring.

    Encoder: 3×3 conv to ``channels``, then ``depth`` 4×4 stride-2 convs (channels doubling up to
    ``max_channels``). Decoder: per level, ×2 bilinear upsampling, a 3×3 conv to the skip's
    width, plus the skip. Head: two 3×3 convs and a 1×1 conv to one logit per pixel.
    """

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        c = self.config = config or DiscriminatorConfig(kind="unet", spectral_norm=True)
        sn = nn.utils.parametrizations.spectral_norm if c.spectral_norm else (lambda m: m)
        d_in = c.in_channels * (2 if c.conditional else 1)
        # The first conv stays unnormalised (as in Real-ESRGAN): it sees the raw pixels.
        self.conv_in = nn.Conv2d(d_in, c.channels, 3, padding=1)
        widths = [c.channels]
        for _ in range(c.depth):
            widths.append(min(2 * widths[-1], c.max_channels))
        self.down = nn.ModuleList(
            sn(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1, bias=False))
            for i in range(c.depth)
        )
        self.up = nn.ModuleList(
            sn(nn.Conv2d(widths[i + 1], widths[i], 3, padding=1, bias=False))
            for i in reversed(range(c.depth))
        )
        self.head = nn.ModuleList(
            [sn(nn.Conv2d(c.channels, c.channels, 3, padding=1, bias=False)) for _ in range(2)]
        )
        self.conv_out = nn.Conv2d(c.channels, 1, 1)

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        h = F.leaky_relu(self.conv_in(_cat_source(self.config, x, source)), 0.2)
        skips = [h]
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
            skips.append(h)
        skips.pop()  # the deepest level is h itself
        for conv in self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = F.leaky_relu(conv(h), 0.2) + skips.pop()
        for conv in self.head:
            h = F.leaky_relu(conv(h), 0.2)
        return self.conv_out(h)[:, 0]


#: ``kind`` → class; each takes a :class:`DiscriminatorConfig` and maps ``(x, source)`` to logits
#: ``(B,)`` or ``(B, H, W)``.
DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "patch": Discriminator,
    "unet": UNetDiscriminator,
}
