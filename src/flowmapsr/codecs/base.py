"""What every codec shares: the ``type``-tagged config and the encode / decode contract.

A codec maps images to the space the flow runs in and back. Images are ``(B, 3, H, W)`` in
``[-1, 1]`` (DESIGN.md §1); latents are ``(B, C, ceil(H/f), ceil(W/f))`` with ``f`` =
:attr:`Codec.factor` and ``C`` = :attr:`Codec.channels`. The identity codec (``f = 1``,
``C = 3``) is today's pixel-space engine; the VAE codecs put the flow in a diffusers
autoencoder's latent space.

Any image size works: :meth:`Codec.encode` pads (reflect; replicate where the image is too
small) to a multiple of ``f`` and :meth:`Codec.decode` crops back when given the pixel size.
Both can run tiled (:mod:`flowmapsr.codecs.tiling`) with the tile and overlap given in pixels:
the latent tile is the pixel tile / ``f``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from flowmapsr.config import TaggedConfig
from flowmapsr.inference.tiling import pad_lr

from .tiling import blend_tiles

DEFAULT_CODEC = "identity"

#: Default of :meth:`Codec.encode` / :meth:`Codec.decode`'s ``tile`` / ``overlap``: the config's.
FROM_CONFIG = "config"


@dataclass
class CodecConfig(TaggedConfig):
    """Base of the registered codec configs; ``type`` names the registered codec.

    A config field annotated ``CodecConfig`` (e.g. a ``TrainConfig.codec``) holds any registered
    variant and takes ``codec.type=vae`` style overrides; absent, it is the identity codec, so
    configs written before codecs existed load unchanged.
    """

    tag = "type"
    default_kind = DEFAULT_CODEC
    what = "codec type"

    type: str = DEFAULT_CODEC
    # Default tiling of encode/decode, in pixels (None: untiled); the latent tile is tile / f.
    tile: int | None = None
    overlap: int = 64  # pixels shared by neighbouring tiles

    @classmethod
    def variants(cls) -> dict[str, type]:
        from flowmapsr.codecs import CODECS  # the registry imports the codecs, which import this

        return {name: spec.config_cls for name, spec in CODECS.items()}


class Codec(nn.Module):
    """Pixels ``(B, 3, H, W)`` in ``[-1, 1]`` ↔ latents ``(B, C, H/f, W/f)``.

    Subclasses set :attr:`factor` and :attr:`channels` and implement :meth:`_moments` (one
    pixel tile → the mean and, for a sampling codec, the standard deviation of its latents, in
    the latent space the flow sees, i.e. already shifted and scaled) and :meth:`_decode` (one
    latent tile → pixels). Tiling, padding, cropping and sampling live here, once.
    """

    factor: int = 1
    channels: int = 3

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config

    @property
    def size_multiple(self) -> int:
        """Pixel sizes that encode without padding are multiples of this (``f``)."""
        return self.factor

    @property
    def samples(self) -> bool:
        """Whether :meth:`encode` draws from a distribution (then it needs a generator)."""
        return False

    def latent_size(self, h: int, w: int) -> tuple[int, int]:
        """The latent size of an ``h × w`` image: ``(ceil(h/f), ceil(w/f))``."""
        return math.ceil(h / self.factor), math.ceil(w / self.factor)

    # -- hooks -------------------------------------------------------------------------------
    def _moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, 3, h, w)`` (multiples of f) → mean ``(B, C, h/f, w/f)`` and std or None."""
        raise NotImplementedError

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` → ``(B, 3, h·f, w·f)``."""
        raise NotImplementedError

    # -- public ------------------------------------------------------------------------------
    def _tiling(self, tile, overlap) -> tuple[int | None, int]:
        tile = self.config.tile if tile == FROM_CONFIG else tile
        overlap = self.config.overlap if overlap == FROM_CONFIG else overlap
        return tile, int(overlap)

    def _dtype(self) -> torch.dtype:
        p = next(self.parameters(), None)
        return p.dtype if p is not None else torch.float32

    def posterior(
        self,
        x: torch.Tensor,
        tile: int | None | str = FROM_CONFIG,
        overlap: int | str = FROM_CONFIG,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pixels ``(B, 3, H, W)`` in ``[-1, 1]`` → the latent distribution's mean
        ``(B, C, ceil(H/f), ceil(W/f))`` and, for a sampling codec, its std (same shape; else
        None), in the flow's (shifted, scaled) space. :meth:`encode` is
        ``sample(*posterior(x), generator)``; latent caches store these two tensors so that a
        training step still draws a fresh sample (:mod:`flowmapsr.data.latents`).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"encode expects (B, 3, H, W) pixels, got shape {tuple(x.shape)}")
        tile, overlap = self._tiling(tile, overlap)
        f = self.factor
        h, w = x.shape[-2:]
        x = x.to(self._dtype())
        if h % f or w % f:
            x = pad_lr(x, (0, (-h) % f, 0, (-w) % f))
        # Contiguous: AutoencoderKL's GroupNorm has no forward-mode AD rule for channels-last
        # strides (torch 2.13), and tiles are strided views.
        if tile is None:
            mean, std = self._moments(x.contiguous())
        else:
            c = self.channels

            def run(part: torch.Tensor) -> torch.Tensor:
                m, s = self._moments(part.contiguous())
                return m if s is None else torch.cat([m, s], 1)

            both = blend_tiles(run, x, tile, overlap, num=1, den=f)
            mean, std = (both, None) if both.shape[1] == c else (both[:, :c], both[:, c:])
        return mean, (std if self.samples else None)

    def sample(
        self,
        mean: torch.Tensor,
        std: torch.Tensor | None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``mean + std · ε`` with ``ε ~ N(0, I)`` from ``generator`` (``mean`` when ``std`` is
        None or the codec does not sample); ``mean``, ``std``: ``(B, C, h, w)``."""
        if std is None or not self.samples:
            return mean
        if generator is None:
            raise ValueError("this codec samples its latents: pass encode(..., generator=g)")
        # On the generator's device: torch.randn refuses a CUDA generator for a CPU tensor (the
        # trainer's step generator lives on the training device).
        eps = torch.randn(
            mean.shape, generator=generator, dtype=mean.dtype, device=generator.device
        )
        return mean + std * eps.to(mean.device)

    def encode(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        tile: int | None | str = FROM_CONFIG,
        overlap: int | str = FROM_CONFIG,
    ) -> torch.Tensor:
        """Pixels ``(B, 3, H, W)`` in ``[-1, 1]`` → latents ``(B, C, ceil(H/f), ceil(W/f))``.

        ``generator``: draws the latent sample of a sampling codec (:attr:`samples`; required
        there, unused otherwise). ``tile`` / ``overlap`` in pixels (None: untiled; default: the
        config's). Tiled, the distribution parameters are blended and the sample is drawn once
        over the whole latent, so overlapping tiles never average two independent draws.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"encode expects (B, 3, H, W) pixels, got shape {tuple(x.shape)}")
        if self.samples and generator is None:
            raise ValueError("this codec samples its latents: pass encode(..., generator=g)")
        return self.sample(*self.posterior(x, tile, overlap), generator)

    def decode(
        self,
        z: torch.Tensor,
        size: tuple[int, int] | None = None,
        tile: int | None | str = FROM_CONFIG,
        overlap: int | str = FROM_CONFIG,
    ) -> torch.Tensor:
        """Latents ``(B, C, h, w)`` → pixels ``(B, 3, h·f, w·f)`` in about ``[-1, 1]``
        (not clamped: a decoder may overshoot), cropped to ``size`` ``(H, W)`` when given.

        ``tile`` / ``overlap`` in pixels (None: untiled; default: the config's); the latent tile
        is ``tile / f``.
        """
        if z.ndim != 4 or z.shape[1] != self.channels:
            raise ValueError(
                f"decode expects (B, {self.channels}, h, w) latents, got shape {tuple(z.shape)}"
            )
        tile, overlap = self._tiling(tile, overlap)
        f = self.factor
        z = z.to(self._dtype())
        if tile is None:
            x = self._decode(z.contiguous())
        else:
            x = blend_tiles(
                lambda part: self._decode(part.contiguous()),
                z,
                max(1, tile // f),
                overlap // f,
                num=f,
                den=1,
            )
        return crop_to(x, size)


def crop_to(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """``x[:, :, :H, :W]`` for ``size = (H, W)`` (None: ``x``); a size beyond ``x`` is an error."""
    if size is None:
        return x
    hh, ww = size
    if hh > x.shape[-2] or ww > x.shape[-1]:
        raise ValueError(f"decode: size {hh}×{ww} exceeds the decoded {tuple(x.shape[-2:])}")
    return x[:, :, :hh, :ww]
