"""The identity codec: the flow runs on pixels (today's engine, ``f = 1``, ``C = 3``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import FROM_CONFIG, Codec, CodecConfig, crop_to


@dataclass
class IdentityCodecConfig(CodecConfig):
    type: str = "identity"


class IdentityCodec(Codec):
    """``encode(x) is x`` and ``decode(z) is z`` (cropped to ``size`` when given).

    Tiling settings are accepted and ignored: a pointwise map needs no tiles, and skipping them
    keeps the round trip exact (and free) and the input dtype untouched.
    """

    factor = 1
    channels = 3

    def __init__(self, config: IdentityCodecConfig | None = None):
        super().__init__(config or IdentityCodecConfig())

    def encode(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        tile: int | None | str = FROM_CONFIG,
        overlap: int | str = FROM_CONFIG,
    ) -> torch.Tensor:
        """``(B, 3, H, W)`` → the same tensor."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"encode expects (B, 3, H, W) pixels, got shape {tuple(x.shape)}")
        return x

    def decode(
        self,
        z: torch.Tensor,
        size: tuple[int, int] | None = None,
        tile: int | None | str = FROM_CONFIG,
        overlap: int | str = FROM_CONFIG,
    ) -> torch.Tensor:
        """``(B, 3, H, W)`` → the same tensor (``[:, :, :size[0], :size[1]]`` with ``size``)."""
        if z.ndim != 4 or z.shape[1] != 3:
            raise ValueError(f"decode expects (B, 3, h, w) latents, got shape {tuple(z.shape)}")
        return crop_to(z, size)
