"""Lagrangian self-distillation (LSD): ``∂_r X(x_t; t → r) = v(X(x_t; t → r), r)``.

With ``X = x − (t − r)·u`` this is ``u − (t − r)·∂_r u = sg(u_θ(sg X, r, r))``: one forward-mode
JVP in ``r`` (tangents (0, 0, 1) in (x, t, r)) and one teacher evaluation on the diagonal.
Shapes: x ``(B, …)``, t, r ``(B,)``.
Reference: Boffi, Albergo, Vanden-Eijnden 2025 (arXiv 2505.18825), the LSD loss (their eq. for
∂_t X_{s,t} = b_t(X_{s,t})), restated in DESIGN.md §2 for t = 1 source / t = 0 HR.
"""

from __future__ import annotations

import torch

from flowmapsr.objectives.base import FlowMapObjective
from flowmapsr.objectives.jvp import jvp
from flowmapsr.paths.bridge import broadcast_time


class Lagrangian(FlowMapObjective):
    name = "lagrangian"
    uses_jvp = True

    def d_dr(self, net, x, t, r, cond):
        """``(u, ∂_r u)`` at ``(x, t, r)`` by one JVP."""
        return jvp(lambda rr: net(x, t, rr, cond), (r,), (torch.ones_like(r),))

    def off_diagonal_target(self, net, teacher, x, t, r, cond, u, v_diag, generator=None):
        gap = broadcast_time(t - r, x)
        with torch.no_grad():
            X = x - gap * u.detach()
            v_end = teacher(X, r, r, cond)
        if self.config.tangent_grad:
            u_j, du_dr = self.d_dr(net, x, t, r, cond)
            return u_j - gap * du_dr, v_end
        with torch.no_grad():
            _, du_dr = self.d_dr(net, x, t, r, cond)
        # u = v(X, r) + (t − r)·∂_r u, with the JVP term stopped: same fixed point.
        return u, v_end + gap * du_dr
