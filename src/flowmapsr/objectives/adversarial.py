"""Relativistic pairing GAN (RpGAN) with R1 and R2 gradient penalties (DESIGN.md §2).

Discriminator: ``softplus(−(D(x) − D(x̂))) + γ/2·(R1 + R2)`` with ``R1 = ‖∇_x D(x)‖²`` on real
images and ``R2 = ‖∇_x̂ D(x̂)‖²`` on generated ones; generator: ``softplus(−(D(x̂) − D(x)))``.
Real and fake are paired per sample (same LR source); a discriminator with per-pixel logits
``(B, H, W)`` (the U-Net one) pairs them per pixel — they are aligned, so pixel ``p`` of the
real image is the relativistic partner of pixel ``p`` of the fake — and the losses average over
pixels to ``(B,)``; its R1/R2 penalise the gradient of the per-image mean logit.
Reference: Huang et al. 2024, "The GAN is dead; long live the GAN!" (R3GAN, arXiv 2501.05441)
eq. 2 and §2.2; FlowMapSR §4.3; per-pixel logits: Wang et al. 2021, Real-ESRGAN §3.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    """``(B, ...) → (B,)``: the mean over everything but the batch (identity on ``(B,)``)."""
    return v if v.dim() == 1 else v.flatten(1).mean(dim=1)


def rpgan_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """``(B, ...), (B, ...) → (B,)``: ``softplus(−(D(x) − D(x̂)))``, pixel mean for maps."""
    return _per_sample(F.softplus(-(d_real - d_fake)))


def rpgan_g_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """``(B, ...), (B, ...) → (B,)``: ``softplus(−(D(x̂) − D(x)))``, pixel mean for maps."""
    return _per_sample(F.softplus(-(d_fake - d_real)))


def gradient_penalty(d_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``‖∇_x D(x)‖²`` per sample ``(B,)`` of the per-image (mean) logit; ``x`` must require
    grad; keeps the graph (R1/R2)."""
    (grad,) = torch.autograd.grad(_per_sample(d_out).sum(), x, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1)


@dataclass
class RpGANResult:
    loss: torch.Tensor
    logs: dict


def discriminator_step_loss(disc, real, fake, source=None, gamma: float = 1.0) -> RpGANResult:
    """The discriminator's loss on a paired batch; ``fake`` is detached here.

    real, fake, source: ``(B, 3, H, W)``. Returns the mean of
    ``softplus(−(D(x) − D(x̂))) + γ/2·(R1 + R2)``.
    """
    real = real.detach().requires_grad_(gamma > 0)
    fake = fake.detach().requires_grad_(gamma > 0)
    d_real, d_fake = disc(real, source), disc(fake, source)
    adv = rpgan_d_loss(d_real, d_fake)
    logs = {
        "d_adv": float(adv.mean().detach()),
        "d_real": float(d_real.mean().detach()),
        "d_fake": float(d_fake.mean().detach()),
    }
    loss = adv
    if gamma > 0:
        r1, r2 = gradient_penalty(d_real, real), gradient_penalty(d_fake, fake)
        loss = loss + 0.5 * gamma * (r1 + r2)
        logs.update(r1=float(r1.mean().detach()), r2=float(r2.mean().detach()))
    loss = loss.mean()
    logs["d_loss"] = float(loss.detach())
    return RpGANResult(loss, logs)


def generator_step_loss(disc, real, fake, source=None) -> RpGANResult:
    """The generator's RpGAN loss ``softplus(−(D(x̂) − D(x)))`` (gradients flow through ``fake``)."""
    with torch.no_grad():
        d_real = disc(real, source)
    d_fake = disc(fake, source)
    loss = rpgan_g_loss(d_real, d_fake).mean()
    return RpGANResult(loss, {"g_adv": float(loss.detach())})
