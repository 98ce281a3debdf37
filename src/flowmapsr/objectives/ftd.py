"""FluxSR: flow trajectory distillation (FTD) + reconstruction + attention diversification.

The teacher is a noise → image flow (t = 1 noise ε, t = 0 its image z_0); the LR latent z_L
sits at the intermediate time ``T_L`` on the student's line to the same noise. Batch mapping
(:class:`~flowmapsr.objectives.base.FlowBatch`): ``hr`` = z_0 (the teacher's image end of an
offline pair), ``src`` = z_L (the encoded LR image), ``noise`` = ε (the pair's noise, required),
``hr_image`` the HR pixels ``L_Rec`` compares with (None: ``hr`` is the image). All latents
``(B, …)``; ``v_θ(z, t) = net(z, t, t, cond)`` is the flow map's diagonal. Per sample::

    t   ~ U[T_L, 1]
    z_t = (1 − t)/(1 − T_L)·z_L + (t − T_L)/(1 − T_L)·ε                 (Eq. 16)
    u_t = ε − z_0                                                        (the teacher's velocity)
    v_φ = (u_t − T_L·v_θ(z_t, t))/(1 − T_L)                              (Eq. 15)
    L_FTD = ‖(1 − T_L)·v_φ − (ε − z_L)‖²                                 (Eq. 17, first line)
          = ‖T_L·v_θ(z_t, t) − (z_L − z_0)‖²                             (rearranged)
    ẑ_0 = z_L − T_L·v_θ(z_L, T_L)                                        (Eq. 18, one step)
    L_Rec = d(D(ẑ_0), x_H),  d = MSE + λ·TV-LPIPS                       (Eq. 19–21)
    loss = L_FTD + rec·L_Rec + μ·L_ADL                                   (Algorithm 1, line 19)

``‖·‖²`` is the per-sample mean of squares (as every objective here). ``D`` decodes through the
objective's codec (``to_image``; pixels as is). ``L_ADL`` (:mod:`.adl`) reads the layers of the
*one-step* forward ``v_θ(z_L, T_L)`` — the generator users get — with hooks attached for that
forward only (the FTD forward at ``z_t`` records nothing).
The exported model starts at ``t = T_L`` from z_L, not at t = 1: its 1-NFE output is ẑ_0.

Where the paper is silent (it prints none of T_L, λ, γ, μ), ours: ``T_L = 0.5`` (the middle of
the line; a config value to sweep), ``λ = 1`` and ``γ = 1`` (the weights FlowSR's distance
uses here), ``rec = 1`` (Algorithm 1 adds L_Rec unweighted), ``μ = 0.01``: ADL lies in
[−1, 1] and only ``Σ_i ‖A_i‖·cos(A_i, Ā) ≥ 0`` is bounded, so a network can drive the mean
cosine negative by anti-aligning its small-norm tokens. On a 300-step toy run (small net,
32² crops, T_L = 0.5, L2-only L_Rec) μ = 0.1 did exactly that (ADL 0.38 → −0.60) and cost
0.14 dB of one-step PSNR against μ = 0 (18.09 vs 18.23 dB), μ = 0.01 cost none (18.23 dB).
Reference: FluxSR (Li et al., ICML 2025), seed 003 §4.1–4.3, Eq. 15–23 and Algorithm 1;
DESIGN.md §2 "trajectory".
"""

from __future__ import annotations

import torch

from flowmapsr.objectives.adl import adl_loss, capture_tokens
from flowmapsr.objectives.base import (
    FlowBatch,
    FlowMapObjective,
    ObjectiveConfig,
    ObjectiveResult,
    squared_error,
)
from flowmapsr.objectives.distance import Distance
from flowmapsr.paths.bridge import broadcast_time


def trajectory_point(
    z_low: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, t_low: float
) -> torch.Tensor:
    """Eq. 16: ``z_t = (1 − t)/(1 − T_L)·z_L + (t − T_L)/(1 − T_L)·ε``; ``(B, …), (B, …), (B,)``
    → ``(B, …)``, z_L at ``t = T_L`` and ε at ``t = 1``."""
    tt = broadcast_time(t, z_low)
    return (1 - tt) / (1 - t_low) * z_low + (tt - t_low) / (1 - t_low) * noise


def one_step(net, z_low: torch.Tensor, t_low: float, cond=None) -> torch.Tensor:
    """Eq. 18, the one-step generator: ``ẑ_0 = z_L − T_L·v_θ(z_L, T_L)``, ``(B, …) → (B, …)``."""
    t = torch.full((z_low.shape[0],), float(t_low), device=z_low.device, dtype=z_low.dtype)
    return z_low - t_low * net(z_low, t, t, cond)


class FTD(FlowMapObjective):
    """FluxSR's training objective (see the module docstring); every sample is diagonal."""

    name = "ftd"
    uses_off_diagonal = False

    def __init__(self, config: ObjectiveConfig | None = None):
        super().__init__(config)
        c = self.config.ftd
        if not 0.0 < c.t_low < 1.0:
            raise ValueError(f"objective ftd: t_low (T_L) must lie in (0, 1), got {c.t_low}")
        if self.config.guidance.enabled:
            raise ValueError("objective ftd: guidance is not part of FluxSR (guidance.enabled)")
        if c.ftd < 0 or c.rec < 0 or c.adl < 0:
            raise ValueError(
                f"objective ftd: ftd, rec and adl must be >= 0, got {c.ftd}, {c.rec}, {c.adl}"
            )
        if c.ftd == 0 and c.rec == 0:
            raise ValueError("objective ftd: ftd and rec are both 0: nothing trains the map")
        self.distance = Distance(c.distance)

    def off_diagonal_target(self, net, teacher, x, t, r, cond, u, v_diag, generator=None):
        raise RuntimeError("ftd has no off-diagonal term (r is forced to t)")

    def sample_times(self, n, generator, device):
        t_low = self.config.ftd.t_low
        t = t_low + (1 - t_low) * torch.rand(n, generator=generator, device=device)
        return t, t.clone(), torch.ones(n, dtype=torch.bool, device=device)

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
        c = self.config.ftd
        t_low = c.t_low
        z0, z_low, eps = batch.hr, batch.src, batch.noise
        if eps is None:
            raise ValueError(
                "objective ftd: the batch has no noise (FlowBatch.noise = the teacher pair's ε)"
            )
        n, device = z0.shape[0], z0.device
        if t is None:
            t = self.sample_times(n, generator, device)[0]
        t = t.to(device=device, dtype=z0.dtype)
        if bool((t < t_low - 1e-6).any() or (t > 1 + 1e-6).any()):
            raise ValueError(f"objective ftd: t must lie in [T_L, 1] = [{t_low:g}, 1]")

        # FTD (Eq. 15–17), written as the paper writes it.
        if c.ftd > 0:
            z_t = trajectory_point(z_low, eps, t, t_low)
            v_theta = net(z_t, t, t, batch.cond)
            u_t = eps - z0
            v_phi = (u_t - t_low * v_theta) / (1 - t_low)
            ftd = squared_error((1 - t_low) * v_phi, eps - z_low)
        else:  # "w/o FTD": no trajectory term (and no network call for it)
            ftd = z0.new_zeros(n)

        # The one-step generator (Eq. 18) with ADL's hooks on its forward only.
        rec = torch.zeros_like(ftd)
        adl = torch.zeros_like(ftd)
        if c.rec > 0 or c.adl > 0:
            if c.adl > 0:
                with capture_tokens(net, c.adl_layers) as tokens:
                    z0_hat = one_step(net, z_low, t_low, batch.cond)
                adl = adl_loss(tokens).to(ftd.dtype)
            else:
                z0_hat = one_step(net, z_low, t_low, batch.cond)
            if c.rec > 0:
                rec = self.distance(self.to_image(z0_hat), self.hr_image(batch)).to(ftd.dtype)
        per_sample = c.ftd * ftd + c.rec * rec + c.adl * adl
        loss = per_sample.mean()
        logs = {
            "loss": float(loss.detach()),
            "loss_ftd": float(ftd.mean().detach()),
            "loss_rec": float(rec.mean().detach()),
            "loss_adl": float(adl.mean().detach()),
        }
        return ObjectiveResult(loss=loss, per_sample=per_sample.detach(), logs=logs)
