"""The bridge path ``x_t = (1 − t)·hr + t·src (+ b·sqrt(t(1 − t))·ε)`` (DESIGN.md §1).

t = 1 is the source (upsampled LR, or noise for FluxSR), t = 0 the HR image. The velocity along
the path, ``dx_t/dt = src − hr``, ignores the derivative of the small bridge-noise term (as LBM
does: it is O(b) and b is 1e-3–5e-3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def broadcast_time(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A per-sample time ``(B,)`` (or scalar) reshaped to ``(B, 1, …, 1)`` to multiply ``like``."""
    if not torch.is_tensor(t):
        t = torch.full((like.shape[0],), float(t), device=like.device, dtype=like.dtype)
    t = t.to(device=like.device, dtype=like.dtype)
    if t.ndim == 0:
        t = t.expand(like.shape[0])
    return t.reshape(t.shape[0], *([1] * (like.ndim - 1)))


@dataclass
class BridgePath:
    """Linear bridge between ``hr`` (t = 0) and ``src`` (t = 1) with optional bridge noise ``b``."""

    bridge_noise: float = 0.0

    def sample(
        self,
        hr: torch.Tensor,
        src: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``x_t`` for per-sample times ``t`` (B,); ``hr``, ``src``: (B, …).

        Noise is drawn from ``generator`` only when ``bridge_noise > 0`` and ``noise`` is None.
        """
        tb = broadcast_time(t, hr)
        x = (1.0 - tb) * hr + tb * src
        if self.bridge_noise > 0:
            if noise is None:
                noise = torch.randn(hr.shape, generator=generator, device=hr.device, dtype=hr.dtype)
            x = x + self.bridge_noise * torch.sqrt((tb * (1.0 - tb)).clamp_min(0)) * noise
        return x

    @staticmethod
    def velocity(hr: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """``dx_t/dt = src − hr`` (the flow-matching target)."""
        return src - hr
