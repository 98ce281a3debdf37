"""Eulerian self-distillation (ESD), the MeanFlow identity:
``u(x_t, t, r) = v(x_t, t) − (t − r)·(v·∇_x u + ∂_t u)``.

The target is ``sg(v − (t − r)·JVP)``, where JVP is one forward-mode product with tangents
``(v, 1, 0)`` in ``(x, t, r)``; ``v`` is the model's own diagonal (self-distillation, default) or
the empirical ``src − hr`` (MeanFlow). Shapes: x ``(B, …)``, t, r ``(B,)``.
Reference: Boffi et al. 2025 (ESD, ∂_s X_{s,t} + ∇X·b_s = 0); Geng et al. 2025 (MeanFlow,
arXiv 2505.13447, eq. 6–8).
"""

from __future__ import annotations

import torch

from flowmapsr.objectives.base import FlowMapObjective
from flowmapsr.objectives.jvp import jvp
from flowmapsr.paths.bridge import broadcast_time


class Eulerian(FlowMapObjective):
    name = "eulerian"
    uses_jvp = True

    def material_derivative(self, net, x, t, r, cond, v):
        """``(u, d/dt u)`` with ``d/dt u = v·∇_x u + ∂_t u`` by one JVP."""
        return jvp(
            lambda xx, tt, rr: net(xx, tt, rr, cond),
            (x, t, r),
            (v, torch.ones_like(t), torch.zeros_like(r)),
        )

    def off_diagonal_target(self, net, teacher, x, t, r, cond, u, v_diag, generator=None):
        gap = broadcast_time(t - r, x)
        with torch.no_grad():
            if self.config.eulerian_velocity == "model":
                v = teacher(x, t, t, cond)
            elif self.config.eulerian_velocity == "empirical":
                v = v_diag
            else:
                raise ValueError(
                    f"eulerian_velocity must be 'model' or 'empirical', "
                    f"got '{self.config.eulerian_velocity}'"
                )
        if self.config.tangent_grad:
            u_j, dudt = self.material_derivative(net, x, t, r, cond, v)
            return u_j + gap * dudt, v
        with torch.no_grad():
            _, dudt = self.material_derivative(net, x, t, r, cond, v)
        return u, v - gap * dudt
