"""A small convolutional discriminator for the adversarial stage (RpGAN, DESIGN.md §2).

``D(x, source) → (B,)`` logits: the image (optionally concatenated with the SR source, so D
judges the image *given* its LR input) goes through a 3×3 conv, then ``depth`` stride-2 conv
blocks (channels doubling up to ``max_channels``), then a 1×1 conv to patch logits averaged
over space. No normalisation layers, so the R1/R2 gradient penalties act per sample (R3GAN,
Huang et al. 2024, §3 drops normalisation for the same reason).
Shapes: x, source ``(B, 3, H, W)`` in ``[-1, 1]``, H and W multiples of ``2**depth``.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        if self.config.conditional:
            if source is None:
                raise ValueError("conditional discriminator: pass the SR source")
            x = torch.cat([x, source.to(x.dtype)], dim=1)
        h = F.leaky_relu(self.conv_in(x), 0.2)
        for conv in self.blocks:
            h = F.leaky_relu(conv(h), 0.2)
        return self.conv_out(h).mean(dim=(1, 2, 3))
