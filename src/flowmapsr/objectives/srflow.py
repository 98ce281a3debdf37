"""FlowSR stage 1, the SR flow: flow matching on the noise-free LR → HR path plus ``d(x̂_0, hr)``.

On ``x_t = (1 − t)·hr + t·src`` (``objective.bridge_noise = 0``: FlowSR adds no noise) the
target velocity is ``v* = src − hr``; the network's one-step estimate of the HR image from
``x_t`` is ``x̂_0 = x_t − t·v_θ(x_t, t)``. Per sample::

    loss = velocity_l2·‖v_θ(x_t, t) − v*‖² + d(x̂_0, hr)

with ``d = distance.l2·MSE + distance.perceptual.weight·LPIPS`` (:mod:`.distance`) on the
image: on a latent codec ``x̂_0`` is decoded first (with gradients) and compared with the HR
pixels.
Where the paper is silent: it says "ℓ2 + LPIPS in image space"; ℓ2 on ``x̂_0`` alone equals
``t²·‖v − v*‖²``, which vanishes near ``t = 0``, so the plain flow-matching term is kept beside
it (``velocity_l2``, 1 by default) and ``d`` adds the image-space terms.
``v_θ(x, t) = u(x, t, t)``: the flow map's diagonal, so the stage's export is a flow-map model
whose 1-NFE jump is ``x̂_0`` from ``src``.
Reference: FlowSR (Xu et al., ICCV 2025), stage 1 "SR-flow pretraining"; method-notes §3.2.
"""

from __future__ import annotations

import torch

from flowmapsr.objectives.base import (
    FlowBatch,
    FlowMapObjective,
    ObjectiveConfig,
    ObjectiveResult,
    squared_error,
)
from flowmapsr.objectives.distance import Distance
from flowmapsr.paths.bridge import broadcast_time


class SRFlow(FlowMapObjective):
    """``x: (B, …)`` images; every sample is diagonal (``r = t``, ``t`` from the time sampler)."""

    name = "srflow"
    uses_off_diagonal = False

    def __init__(self, config: ObjectiveConfig | None = None):
        super().__init__(config)
        if self.config.guidance.enabled:
            raise ValueError("objective srflow: guidance is not part of FlowSR (guidance.enabled)")
        self.distance = Distance(self.config.distance)

    def off_diagonal_target(self, net, teacher, x, t, r, cond, u, v_diag, generator=None):
        raise RuntimeError("srflow has no off-diagonal term (r is forced to t)")

    def forward(
        self,
        net,
        batch: FlowBatch,
        t: torch.Tensor | None = None,
        r: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        teacher=None,
        frozen=None,
    ) -> ObjectiveResult:
        hr, src = batch.hr, batch.src
        n, device = hr.shape[0], hr.device
        if t is None:
            t = self.pairs.time(n, generator, device)
        t = t.to(device=device, dtype=hr.dtype)
        x = self.path.sample(hr, src, t, batch.noise, generator)
        v = net(x, t, t, batch.cond)
        flow = squared_error(v, self.path.velocity(hr, src))
        x0 = x - broadcast_time(t, x) * v
        image = self.distance(self.to_image(x0), self.hr_image(batch))
        per_sample = self.config.velocity_l2 * flow + image
        loss = per_sample.mean()
        logs = {
            "loss": float(loss.detach()),
            "loss_velocity": float(flow.mean().detach()),
            "loss_image": float(image.mean().detach()),
        }
        return ObjectiveResult(loss=loss, per_sample=per_sample.detach(), logs=logs)
