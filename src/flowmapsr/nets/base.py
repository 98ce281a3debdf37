"""What every backbone config shares: the ``type`` tag that picks the backbone.

:class:`NetConfig` is the declared type of every config field that holds a backbone config
(``TrainConfig.net``); the concrete dataclass is the one registered under the tag in
:data:`flowmapsr.nets.NETS`, so configuration, training, export and loading look the backbone
up by name and never read one backbone's fields. A config without ``type`` is the small net
(configs and exported ``config.json`` files written before the tag existed).
"""

from __future__ import annotations

from dataclasses import dataclass

from flowmapsr.config import TaggedConfig

DEFAULT_NET = "small"


@dataclass
class NetConfig(TaggedConfig):
    """Base of the registered backbone configs; ``type`` names the registered backbone."""

    tag = "type"
    default_kind = DEFAULT_NET
    what = "network type"

    type: str = DEFAULT_NET

    @classmethod
    def variants(cls) -> dict[str, type]:
        from flowmapsr.nets import NETS  # the registry imports the backbones, which import this

        return {name: spec.config_cls for name, spec in NETS.items()}
