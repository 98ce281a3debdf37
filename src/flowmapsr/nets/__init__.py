"""Backbones. All present one call: ``u = net(x_t, t, r, cond)``.

:data:`NETS` maps a backbone's ``type`` tag to its :class:`NetSpec`: the config dataclass, a
builder, a one-line description for logs and the per-sample input shape of its smallest valid
input. Everything outside ``nets/`` goes through this registry — :func:`net_config` reads a
config mapping (``type`` missing: the small net, so old ``config.json`` files load),
:func:`build_net` builds, :func:`describe_net` describes, :func:`size_multiple` says what the
spatial input sizes must divide by — so training, export and loading work for any registered
backbone without reading its fields. A pipeline folder's ``config.json`` is enough to rebuild the
network before loading weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from flowmapsr.config import from_dict, to_dict
from flowmapsr.nets import flux_adapter, unet_adapter
from flowmapsr.nets.base import DEFAULT_NET, NetConfig
from flowmapsr.nets.mlp import MLPFlowMap, MLPNetConfig
from flowmapsr.nets.small import SmallFlowMapNet, SmallNetConfig


@dataclass(frozen=True)
class NetSpec:
    """How the engine handles one backbone without knowing its fields.

    ``build(config) -> nn.Module`` (fresh weights); ``describe(config) -> str`` a short text for
    run logs (the logger adds the parameter counts); ``sample_shape(config) -> tuple`` the shape
    of one sample of the smallest input ``x`` the network takes (e.g. ``(3, 4, 4)`` for the
    small net), for registry-wide tests and smoke checks.
    """

    config_cls: type
    build: Callable[[object], nn.Module]
    describe: Callable[[object], str]
    sample_shape: Callable[[object], tuple[int, ...]]


NETS: dict[str, NetSpec] = {}


def register_net(
    name: str,
    config_cls: type,
    build: Callable[[object], nn.Module],
    describe: Callable[[object], str] | None = None,
    sample_shape: Callable[[object], tuple[int, ...]] | None = None,
) -> None:
    """Make a backbone buildable from a config with ``type: name``.

    ``config_cls`` is a dataclass (best a :class:`NetConfig` subclass) whose ``type`` field
    defaults to ``name``; ``build`` is usually the network class itself.
    """
    fields = getattr(config_cls, "__dataclass_fields__", {})
    if "type" not in fields or fields["type"].default != name:
        raise ValueError(f"register_net('{name}'): {config_cls.__name__}.type must default to it")
    NETS[name] = NetSpec(
        config_cls=config_cls,
        build=build,
        describe=describe or (lambda c: name),
        sample_shape=sample_shape or (lambda c: ()),
    )


def net_config(config: dict | object, where: str = "net") -> object:
    """The registered config dataclass for a config dict (or dataclass) with a ``type`` key.

    A :class:`~flowmapsr.config.ConfigError` (a ``ValueError``) names an unknown type and the
    registered ones, or an unknown key of the chosen backbone.
    """
    if isinstance(config, dict):
        kind = config.get("type", DEFAULT_NET)
        return from_dict(NetConfig.variant(kind, where), config, where)
    spec = NETS.get(getattr(config, "type", None))
    if spec is None or not isinstance(config, spec.config_cls):
        return net_config(to_dict(config), where)  # a foreign dataclass: check it as a dict
    return config


def net_spec(config: dict | object) -> NetSpec:
    return NETS[net_config(config).type]


def build_net(config: dict | object) -> nn.Module:
    """A backbone (fresh weights) from a config dataclass or dict with a ``type`` key."""
    config = net_config(config)
    return NETS[config.type].build(config)


def describe_net(config: dict | object) -> str:
    """One line for logs, e.g. ``small channels=64 blocks=8 unshuffle=4 concat_source`` (the
    caller adds parameter counts)."""
    config = net_config(config)
    return NETS[config.type].describe(config)


def size_multiple(net: nn.Module) -> int:
    """What the spatial sizes of ``net``'s inputs must divide by (its ``size_multiple``, or 1)."""
    return int(getattr(net, "size_multiple", 1) or 1)


register_net(
    "small",
    SmallNetConfig,
    SmallFlowMapNet,
    describe=lambda c: (
        f"small channels={c.channels} blocks={c.blocks} unshuffle={c.unshuffle}"
        + (" concat_source" if c.concat_source else "")
    ),
    sample_shape=lambda c: (c.in_channels, c.unshuffle, c.unshuffle),
)
register_net(
    "mlp",
    MLPNetConfig,
    MLPFlowMap,
    describe=lambda c: f"mlp dim={c.dim} hidden={c.hidden} depth={c.depth}",
    sample_shape=lambda c: (c.dim,),
)


def _describe_diffusers(c) -> str:
    what = getattr(c, "variant", c.type)
    where = c.pretrained or "tiny random"
    return f"{c.type} {what} ({where}){' concat_source' if c.concat_source else ''}"


# The diffusers backbones (diffusers is imported only when one is built: the `large` extra).
# Their tiny defaults have 4 latent channels and two down levels (size multiple 2).
register_net(
    "unet",
    unet_adapter.UNetAdapterConfig,
    unet_adapter.build,
    describe=_describe_diffusers,
    sample_shape=lambda c: (int(c.backbone.get("in_channels", 4)), 4, 4),
)
register_net(
    "flux",
    flux_adapter.FluxAdapterConfig,
    flux_adapter.build,
    describe=_describe_diffusers,
    sample_shape=lambda c: (int(c.backbone.get("in_channels", 16)) // 4, 2, 2),
)

__all__ = [
    "NETS",
    "MLPFlowMap",
    "MLPNetConfig",
    "NetConfig",
    "NetSpec",
    "SmallFlowMapNet",
    "SmallNetConfig",
    "build_net",
    "describe_net",
    "net_config",
    "net_spec",
    "register_net",
    "size_multiple",
]
