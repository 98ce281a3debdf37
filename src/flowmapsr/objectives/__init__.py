"""Training objectives, one module each, one call signature, one result type.

``build_objective(config)`` returns the objective named by ``config.name``.
"""

from flowmapsr.objectives.base import (
    FlowBatch,
    FlowMapObjective,
    ObjectiveConfig,
    ObjectiveResult,
)
from flowmapsr.objectives.consistency import Consistency
from flowmapsr.objectives.eulerian import Eulerian
from flowmapsr.objectives.fm import FlowMatching
from flowmapsr.objectives.ftd import FTD
from flowmapsr.objectives.guidance import Guidance, GuidanceConfig
from flowmapsr.objectives.jvp import ForwardADUnsupported, jvp
from flowmapsr.objectives.lagrangian import Lagrangian
from flowmapsr.objectives.shortcut import Shortcut
from flowmapsr.objectives.srflow import SRFlow
from flowmapsr.objectives.weighting import LearnedWeighting

OBJECTIVES = {
    cls.name: cls
    for cls in (FlowMatching, Lagrangian, Eulerian, Shortcut, SRFlow, Consistency, FTD)
}


def build_objective(config: ObjectiveConfig) -> FlowMapObjective:
    try:
        cls = OBJECTIVES[config.name]
    except KeyError:
        raise ValueError(
            f"unknown objective '{config.name}'; choose one of {sorted(OBJECTIVES)}"
        ) from None
    return cls(config)


__all__ = [
    "OBJECTIVES",
    "build_objective",
    "Consistency",
    "SRFlow",
    "Eulerian",
    "FTD",
    "FlowBatch",
    "FlowMapObjective",
    "FlowMatching",
    "ForwardADUnsupported",
    "Guidance",
    "GuidanceConfig",
    "Lagrangian",
    "LearnedWeighting",
    "ObjectiveConfig",
    "ObjectiveResult",
    "Shortcut",
    "jvp",
]
