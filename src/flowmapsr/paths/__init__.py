"""Interpolating paths between the HR image (t = 0) and the source (t = 1), and time samplers."""

from flowmapsr.paths.bridge import BridgePath, broadcast_time
from flowmapsr.paths.time_sampling import (
    PAIR_SAMPLERS,
    PairSampler,
    PairSamplerConfig,
    TimeSampler,
    TimeSamplerConfig,
    register_pair_sampler,
)

__all__ = [
    "PAIR_SAMPLERS",
    "BridgePath",
    "broadcast_time",
    "PairSampler",
    "PairSamplerConfig",
    "TimeSampler",
    "TimeSamplerConfig",
    "register_pair_sampler",
]
