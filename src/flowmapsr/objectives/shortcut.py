"""Shortcut / progressive self-distillation: the semigroup ``X(t → r) = X(m → r) ∘ X(t → m)``.

With ``m = t − h·(t − r)`` (h = ½: the shortcut midpoint) the velocity-space target is
``sg(h·u(x_t, t, m) + (1 − h)·u(X(x_t; t → m), m, r))``: no JVP, two extra teacher forwards.
``split_uniform`` draws h ~ U(0, 1) per sample (Boffi's uniform progressive variant) from the
step's generator, so a seeded step (and a resumed run) repeats.
Shapes: x ``(B, …)``, t, r ``(B,)``.
Reference: Frans et al. 2024 (shortcut models, arXiv 2410.12557, eq. 5); Boffi et al. 2025
(progressive self-distillation, ``pfmm``); FlowMapSR finds this the best and only guidance-stable
variant.
"""

from __future__ import annotations

import torch

from flowmapsr.objectives.base import FlowMapObjective
from flowmapsr.paths.bridge import broadcast_time


class Shortcut(FlowMapObjective):
    name = "shortcut"

    def teacher_target(self, teacher, x, t, r, cond, h):
        """``h·u(x, t, m) + (1 − h)·u(X(x; t → m), m, r)`` with ``m = t − h(t − r)``."""
        m = t - h * (t - r)
        u1 = teacher(x, t, m, cond)
        x_m = x - broadcast_time(t - m, x) * u1
        u2 = teacher(x_m, m, r, cond)
        hb = broadcast_time(h, x)
        return hb * u1 + (1.0 - hb) * u2

    def off_diagonal_target(self, net, teacher, x, t, r, cond, u, v_diag, generator=None):
        if self.config.split_uniform:
            h = torch.rand(t.shape, generator=generator, device=t.device, dtype=t.dtype)
        else:
            h = torch.full_like(t, self.config.split)
        with torch.no_grad():
            target = self.teacher_target(teacher, x, t, r, cond, h)
        return u, target
