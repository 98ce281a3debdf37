"""Flow matching on the diagonal (the warm start): ``‖u_θ(x_t, t, t) − (src − hr)‖²``.

Reference: Lipman et al. 2023 (flow matching, eq. 9) / Liu et al. 2023 (rectified flow) on the
bridge path of DESIGN.md §1; with guidance enabled the target is the guided velocity v_ω.
"""

from __future__ import annotations

from flowmapsr.objectives.base import FlowMapObjective


class FlowMatching(FlowMapObjective):
    """Diagonal-only objective: every sample has ``r = t`` (``t`` from the time sampler)."""

    name = "fm"
    uses_off_diagonal = False

    def off_diagonal_target(self, net, teacher, x, t, r, cond, u, v_diag, generator=None):
        raise RuntimeError("flow matching has no off-diagonal term (r is forced to t)")
