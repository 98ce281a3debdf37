"""flowmapsr: fast diffusion-quality image super-resolution with flow maps.

One engine, three systems (FlowMapSR, FlowSR, FluxSR). Conventions (DESIGN.md §1): images are
``(B, C, H, W)`` float tensors in ``[-1, 1]`` inside the library; time ``t = 1`` is the source
(the upsampled LR image), ``t = 0`` is the HR image; a flow map jumps from ``t`` down to ``r``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "upscale"]


def upscale(image, scale: float = 4, steps: int = 1, **kwargs):
    """Upscale a PIL image or ``(H, W, C)`` array; see :func:`flowmapsr.inference.api.upscale`."""
    # Imported lazily so that ``import flowmapsr`` stays cheap (no model load, no heavy imports).
    from flowmapsr.inference.api import upscale as _upscale

    return _upscale(image, scale=scale, steps=steps, **kwargs)
