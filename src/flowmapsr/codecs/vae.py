"""Diffusers autoencoders as codecs: ``AutoencoderKL`` (``vae``) and ``AutoencoderTiny``
(``tiny_vae``, the cheap TAESD-style option).

The flow sees ``z = (latent − shift_factor) · scaling_factor`` and decoding inverts it, with both
numbers from the VAE's own config unless the codec config overrides them: SD 1.x / 2.1 use
scaling 0.18215 and SDXL 0.13025 with no shift; FLUX's VAE uses scaling 0.3611 and shift 0.1159
(16 channels); TAESD-style tiny autoencoders are trained to match those latents already scaled,
so their configs say 1.0 and 0.0. ``AutoencoderKL`` encodes to the mean of its latent
distribution (``latent: mean``, deterministic) or a sample (``latent: sample``, drawn with the
generator given to :meth:`~flowmapsr.codecs.base.Codec.encode`).

Loading: ``pretrained`` is a local diffusers folder (``<folder>/vae/`` as ``snapshot_download``
of a pipeline leaves it, or the VAE folder itself, e.g. ``madebyollin/taesd``), or — for
``AutoencoderKL`` — a single original checkpoint file with ``single_file_config`` naming a local
folder with the architecture (see :func:`flowmapsr.nets.diffusers_common.load_backbone`); files
are only read locally. ``pretrained`` None builds a tiny random autoencoder (``vae`` keys
override its config) for tests and tiny presets.

JVP safety: inputs are made contiguous (``AutoencoderKL``'s GroupNorm fails under forward-mode AD
on channels-last strides) and the mid-block attention runs the math SDPA kernel whenever a
forward tangent is present (the fused CPU kernel has no forward derivative), as the adapters do.
Half precision: SD/SDXL VAEs overflow in fp16 (their configs set ``force_upcast``); keep the codec
in fp32 or bf16.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from flowmapsr.nets.diffusers_common import architecture, attention_context, load_backbone

from .base import Codec, CodecConfig

LATENT_MODES = ("mean", "sample")


def tiny_kl_config() -> dict:
    """A tiny ``AutoencoderKL`` (f = 8, 4 latent channels, ~40 k parameters, with the mid-block
    attention), in the shape of diffusers' own tests (tests/models/autoencoders)."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": [8, 16, 16, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 4,
        "sample_size": 32,
    }


def tiny_taesd_config() -> dict:
    """A tiny ``AutoencoderTiny`` (f = 8, 4 latent channels, one block per level)."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "encoder_block_out_channels": [8, 8, 8, 8],
        "decoder_block_out_channels": [8, 8, 8, 8],
        "num_encoder_blocks": [1, 1, 1, 1],
        "num_decoder_blocks": [1, 1, 1, 1],
        "latent_channels": 4,
    }


@dataclass
class TinyVAECodecConfig(CodecConfig):
    type: str = "tiny_vae"
    pretrained: str | None = None  # local diffusers folder; None = tiny random autoencoder
    subfolder: str = "vae"  # used when the folder has one (a pipeline folder)
    weights_variant: str | None = None  # diffusers file variant, e.g. "fp16"
    vae: dict = field(default_factory=dict)  # AutoencoderTiny config keys over the tiny config
    scaling_factor: float | None = None  # None: the autoencoder config's
    shift_factor: float | None = None  # None: the autoencoder config's (0 when it has none)


@dataclass
class VAECodecConfig(CodecConfig):
    type: str = "vae"
    pretrained: str | None = None  # local diffusers folder or single file; None = tiny random
    subfolder: str = "vae"
    weights_variant: str | None = None
    single_file_config: str | None = None  # local diffusers folder giving a single file's config
    vae: dict = field(default_factory=dict)  # AutoencoderKL config keys over the tiny config
    latent: str = "mean"  # "mean" of the latent distribution or a "sample" (needs a generator)
    scaling_factor: float | None = None
    shift_factor: float | None = None
    attention: str = "auto"  # "auto" (math SDPA under forward AD), "math", "default"


class _DiffusersCodec(Codec):
    """Loading, scale / shift and the architecture config shared by the two autoencoders."""

    model_cls_name = ""
    tiny = staticmethod(dict)

    def __init__(self, config, vae: torch.nn.Module | None = None):
        super().__init__(config)
        import diffusers

        cls = getattr(diffusers, self.model_cls_name)
        c = config
        if vae is None:
            if c.pretrained is not None:
                vae = self._load(cls, c)
            else:
                vae = cls.from_config({**self.tiny(), **c.vae})
        self.vae = vae
        cfg = vae.config
        scale = cfg.scaling_factor if c.scaling_factor is None else c.scaling_factor
        shift = getattr(cfg, "shift_factor", None) if c.shift_factor is None else c.shift_factor
        self.scale, self.shift = float(scale), float(shift or 0.0)
        if self.scale == 0:
            raise ValueError(f"{type(self).__name__}: scaling_factor must not be 0")
        self.channels = int(cfg.latent_channels)
        self.factor = self._factor(cfg)

    def _load(self, cls, c):
        return load_backbone(cls, c.pretrained, c.subfolder, c.weights_variant, None)

    @staticmethod
    def _factor(cfg) -> int:
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, path: str, **fields):
        """The codec over a local diffusers folder (``vae/`` inside, or the VAE folder itself);
        other config fields by name."""
        return cls(cls.config_cls(pretrained=str(path), **fields))

    def architecture_config(self):
        """This codec's config with the autoencoder's full architecture in ``vae`` and no
        ``pretrained`` path: rebuilds the same module (random weights) without the weights
        folder, ready for a saved state dict (what a pipeline's ``config.json`` holds)."""
        return replace(
            self.config,
            pretrained=None,
            vae=architecture(self.vae),
            scaling_factor=self.scale,
            shift_factor=self.shift,
        )


class VAECodec(_DiffusersCodec):
    """A diffusers ``AutoencoderKL`` (SD, SDXL, FLUX VAEs); see the module docstring."""

    config_cls = VAECodecConfig
    model_cls_name = "AutoencoderKL"
    tiny = staticmethod(tiny_kl_config)

    def __init__(self, config: VAECodecConfig | None = None, vae: torch.nn.Module | None = None):
        config = config or VAECodecConfig()
        if config.latent not in LATENT_MODES:
            raise ValueError(f"vae codec latent '{config.latent}' is not one of {LATENT_MODES}")
        super().__init__(config, vae)

    def _load(self, cls, c):
        return load_backbone(
            cls, c.pretrained, c.subfolder, c.weights_variant, c.single_file_config
        )

    @staticmethod
    def _factor(cfg) -> int:
        return 2 ** (len(cfg.block_out_channels) - 1)

    @property
    def samples(self) -> bool:
        return self.config.latent == "sample"

    def _moments(self, x):
        param = self.vae.encoder.conv_in.weight
        with attention_context(self.config.attention, x, param):
            dist = self.vae.encode(x).latent_dist
        mean = (dist.mean - self.shift) * self.scale
        return mean, (dist.std * self.scale if self.samples else None)

    def _decode(self, z):
        param = self.vae.decoder.conv_in.weight
        with attention_context(self.config.attention, z, param):
            return self.vae.decode(z / self.scale + self.shift).sample


class TinyVAECodec(_DiffusersCodec):
    """A diffusers ``AutoencoderTiny`` (TAESD, TAESDXL, TAEF1): deterministic, a few percent
    of ``AutoencoderKL``'s cost, lower fidelity."""

    config_cls = TinyVAECodecConfig
    model_cls_name = "AutoencoderTiny"
    tiny = staticmethod(tiny_taesd_config)

    def __init__(
        self, config: TinyVAECodecConfig | None = None, vae: torch.nn.Module | None = None
    ):
        super().__init__(config or TinyVAECodecConfig(), vae)

    def _load(self, cls, c):
        path = Path(c.pretrained).expanduser()
        if path.is_file():
            raise ValueError(
                f"{path}: AutoencoderTiny has no single-file loader in diffusers; "
                "pass its diffusers folder (config.json + weights)"
            )
        return load_backbone(cls, c.pretrained, c.subfolder, c.weights_variant, None)

    @staticmethod
    def _factor(cfg) -> int:
        # The encoder's first level keeps the resolution, each later one halves it; the decoder
        # upsamples by upsampling_scaling_factor per level, so the two agree only when it is 2.
        levels = len(cfg.encoder_block_out_channels) - 1
        if len(cfg.decoder_block_out_channels) - 1 != levels or cfg.upsampling_scaling_factor != 2:
            raise ValueError(
                "tiny_vae: the decoder must have as many levels as the encoder and "
                "upsampling_scaling_factor 2 to decode to the encoded size, got "
                f"{len(cfg.decoder_block_out_channels)} vs {levels + 1} levels, "
                f"factor {cfg.upsampling_scaling_factor}"
            )
        return 2**levels

    def _moments(self, x):
        return (self.vae.encode(x).latents - self.shift) * self.scale, None

    def _decode(self, z):
        return self.vae.decode(z / self.scale + self.shift).sample
