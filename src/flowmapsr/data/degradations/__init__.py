"""Random image degradations for real-world SR training pairs (DESIGN.md §4).

- :class:`Degradation` — the Real-ESRGAN second-order pipeline and its presets
  (``realesrgan``, ``mild``, ``bicubic``; YAML files in ``presets/``), batched, seeded per sample.
- :func:`make_negative` — same-size low-quality targets for the negative guidance prompt.
- The single operations: :mod:`.kernels` (blur kernels, ``filter2d``, USM), :mod:`.noise`,
  :mod:`.jpeg`, :mod:`.resize_ops`.
"""

from __future__ import annotations

from flowmapsr.data.degradations.config import (
    DegradationConfig,
    FinalConfig,
    JpegConfig,
    KernelConfig,
    NoiseConfig,
    ResizeConfig,
    StageConfig,
    USMConfig,
    load_degradation_config,
    preset_names,
    validate_degradation_config,
)
from flowmapsr.data.degradations.negative import NegativeConfig, draw_negative, make_negative
from flowmapsr.data.degradations.pipeline import Degradation, quantize_8bit
from flowmapsr.data.degradations.sampling import seeded_generator

__all__ = [
    "Degradation",
    "DegradationConfig",
    "FinalConfig",
    "JpegConfig",
    "KernelConfig",
    "NegativeConfig",
    "NoiseConfig",
    "ResizeConfig",
    "StageConfig",
    "USMConfig",
    "draw_negative",
    "load_degradation_config",
    "make_negative",
    "preset_names",
    "quantize_8bit",
    "seeded_generator",
    "validate_degradation_config",
]
