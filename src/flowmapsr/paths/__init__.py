"""Interpolating paths between the HR image (t = 0) and the source (t = 1), and time samplers."""

from flowmapsr.paths.bridge import BridgePath, broadcast_time
from flowmapsr.paths.time_sampling import (
    PairSampler,
    PairSamplerConfig,
    TimeSampler,
    TimeSamplerConfig,
)

__all__ = [
    "BridgePath",
    "broadcast_time",
    "PairSampler",
    "PairSamplerConfig",
    "TimeSampler",
    "TimeSamplerConfig",
]
