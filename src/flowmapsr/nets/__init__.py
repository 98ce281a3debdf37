"""Backbones. All present one call: ``u = net(x_t, t, r, cond)``.

``build_net(config_dict)`` builds a backbone from its config (the ``type`` key picks it), so a
pipeline folder's ``config.json`` is enough to rebuild the network before loading weights.
"""

from __future__ import annotations

from flowmapsr.config import from_dict, to_dict
from flowmapsr.nets.mlp import MLPFlowMap, MLPNetConfig
from flowmapsr.nets.small import SmallFlowMapNet, SmallNetConfig

NETS = {
    "small": (SmallNetConfig, SmallFlowMapNet),
    "mlp": (MLPNetConfig, MLPFlowMap),
}


def register_net(name: str, config_cls, net_cls) -> None:
    """Make a backbone buildable from a config dict with ``type: name``."""
    NETS[name] = (config_cls, net_cls)


def build_net(config: dict | object):
    """A backbone from a config dataclass or dict with a ``type`` key."""
    if not isinstance(config, dict):
        config = to_dict(config)
    kind = config.get("type", "small")
    if kind not in NETS:
        raise ValueError(f"unknown network type '{kind}'; known: {sorted(NETS)}")
    cfg_cls, net_cls = NETS[kind]
    return net_cls(from_dict(cfg_cls, config))


__all__ = [
    "NETS",
    "MLPFlowMap",
    "MLPNetConfig",
    "SmallFlowMapNet",
    "SmallNetConfig",
    "build_net",
    "register_net",
]
