"""Codecs: where the flow runs — pixels (identity) or a diffusers autoencoder's latent space.

:data:`CODECS` maps a codec's ``type`` tag to its :class:`CodecSpec` (config dataclass, builder,
one-line description), in the style of :data:`flowmapsr.nets.NETS`. A config field annotated
:class:`CodecConfig` holds any registered variant, so a ``codec.type=identity|vae|tiny_vae``
override selects one; :func:`codec_config` reads a mapping (``type`` missing: identity, so
configs written before codecs existed load), :func:`build_codec` builds, :func:`describe_codec`
describes. Every codec presents :meth:`Codec.encode` / :meth:`Codec.decode` with ``factor``,
``channels`` and ``size_multiple`` (see :mod:`flowmapsr.codecs.base`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowmapsr.config import from_dict, to_dict

from .base import DEFAULT_CODEC, FROM_CONFIG, Codec, CodecConfig
from .identity import IdentityCodec, IdentityCodecConfig
from .tiling import blend_tiles
from .vae import (
    TinyVAECodec,
    TinyVAECodecConfig,
    VAECodec,
    VAECodecConfig,
    tiny_kl_config,
    tiny_taesd_config,
)


@dataclass(frozen=True)
class CodecSpec:
    """How the engine handles one codec without knowing its fields: ``build(config) -> Codec``
    (a config with no weights path builds a tiny random one) and ``describe(config) -> str``."""

    config_cls: type
    build: Callable[[object], Codec]
    describe: Callable[[object], str]


CODECS: dict[str, CodecSpec] = {}


def register_codec(
    name: str,
    config_cls: type,
    build: Callable[[object], Codec],
    describe: Callable[[object], str] | None = None,
) -> None:
    """Make a codec buildable from a config with ``type: name``; ``config_cls`` is a
    :class:`CodecConfig` subclass whose ``type`` defaults to ``name``."""
    fields = getattr(config_cls, "__dataclass_fields__", {})
    if "type" not in fields or fields["type"].default != name:
        raise ValueError(f"register_codec('{name}'): {config_cls.__name__}.type must default to it")
    CODECS[name] = CodecSpec(config_cls, build, describe or (lambda c: name))


def codec_config(config: dict | object | None, where: str = "codec") -> object:
    """The registered config dataclass for a mapping (or dataclass) with a ``type`` key; None
    is the identity codec. Unknown types or keys are a one-line ``ConfigError``."""
    if config is None:
        config = {}
    if isinstance(config, dict):
        kind = config.get("type", DEFAULT_CODEC)
        return from_dict(CodecConfig.variant(kind, where), config, where)
    spec = CODECS.get(getattr(config, "type", None))
    if spec is None or not isinstance(config, spec.config_cls):
        return codec_config(to_dict(config), where)
    return config


def build_codec(config: dict | object | None = None) -> Codec:
    """A codec from a config dataclass or mapping with a ``type`` key (None: identity)."""
    config = codec_config(config)
    return CODECS[config.type].build(config)


def describe_codec(config: dict | object | None) -> str:
    """One line for logs, e.g. ``vae tiny-random latent=mean``."""
    config = codec_config(config)
    return CODECS[config.type].describe(config)


def _weights(c) -> str:
    return c.pretrained if c.pretrained is not None else "tiny-random"


register_codec("identity", IdentityCodecConfig, IdentityCodec, lambda c: "identity (pixels)")
register_codec(
    "vae",
    VAECodecConfig,
    VAECodec,
    lambda c: f"vae AutoencoderKL {_weights(c)} latent={c.latent}",
)
register_codec(
    "tiny_vae",
    TinyVAECodecConfig,
    TinyVAECodec,
    lambda c: f"tiny_vae AutoencoderTiny {_weights(c)}",
)

__all__ = [
    "CODECS",
    "FROM_CONFIG",
    "Codec",
    "CodecConfig",
    "CodecSpec",
    "IdentityCodec",
    "IdentityCodecConfig",
    "TinyVAECodec",
    "TinyVAECodecConfig",
    "VAECodec",
    "VAECodecConfig",
    "blend_tiles",
    "build_codec",
    "codec_config",
    "describe_codec",
    "register_codec",
    "tiny_kl_config",
    "tiny_taesd_config",
]
