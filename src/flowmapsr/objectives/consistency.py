"""FlowSR stage 2: HR-regularised consistency distillation on the LR → HR flow.

Three networks: the student θ (``net``), its EMA θ⁻ (``teacher``) and the frozen stage-1 SR
flow φ (``frozen``). The consistency function is the flow map to the HR end,
``f(x, t) = X(x; t → 0) = x − t·u(x, t, 0)`` — FlowSR's ``x − t·v_θ(x, t)`` with the flow map's
second time fixed at 0 — so the stage's 1-NFE export is ``f(src, 1)``. For a pair
``r < t`` (FlowSR's ``t < t'``, from the ``fast_slow`` pair sampler)::

    x_t   = (1 − t)·hr + t·src                         (the noise-free SR path)
    x̂_r   = x_t − (t − r)·v_φ(x_t, t)                  (one frozen-teacher Euler step)
    L_cd   = d(f_θ(x_t, t), sg f_θ⁻(x̂_r, r))
    L_hr   = d(f_θ(x̂_r, r), hr)                        (HR regularisation of the perturbed point)
    L_flow = d(f_θ(x_t, t), hr)
    loss   = cd·L_cd + hr·L_hr + flow·L_flow           (weights: ``objective.consistency``)

``d`` is :class:`~flowmapsr.objectives.distance.Distance` (ℓ2 + LPIPS by default), on images:
on a latent codec every ``f`` is decoded first (FlowSR draws its losses after the VAE
decoder), and the HR side is the HR pixels. The GAN
term is the trainer's adversarial stage (``adversarial.enabled``; its fake is the 1-NFE output
``f_θ(src, 1)``, where FlowSR's discriminator sees ``f_θ(x̂_r, r)``: at ``t = 1`` they coincide,
elsewhere ours judges the output users get). The CLIP image-quality term
(:mod:`~flowmapsr.objectives.clip_iqa`, ``consistency.iqa`` > 0 with ``iqa_model`` a local CLIP
folder) is added on the student's HR estimate ``f_θ(x_t, t)``: ``+ iqa·L_iqa``. No CLIP weights
exist on our machines, so it is off in the presets and the log says so.
Where the paper is silent (weights, ``d``, the distribution of the slow draw) the choices are
ours and are stated in the configs. ``teacher_step = map`` replaces the Euler step by the
teacher's own jump ``X_φ(x_t; t → r)``, exact when φ is a flow map (e.g. a FlowMapSR export).
Reference: FlowSR (Xu et al., ICCV 2025), "HR-regularized consistency distillation";
method-notes §3.3; consistency distillation of Song et al. 2023 (Eq. 7, EMA target).
"""

from __future__ import annotations

import torch

from flowmapsr.objectives.base import FlowBatch, FlowMapObjective, ObjectiveConfig, ObjectiveResult
from flowmapsr.objectives.distance import Distance
from flowmapsr.paths.bridge import broadcast_time

TEACHER_STEPS = ("euler", "map")


def to_hr_end(net, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
    """The consistency function ``f(x, t) = x − t·u(x, t, 0)``: ``(B, …) → (B, …)``."""
    return x - broadcast_time(t, x) * net(x, t, torch.zeros_like(t), cond)


class Consistency(FlowMapObjective):
    """Consistency distillation with HR regularisation (see the module docstring)."""

    name = "consistency"
    needs_frozen_teacher = True

    def __init__(self, config: ObjectiveConfig | None = None):
        super().__init__(config)
        if self.config.guidance.enabled:
            raise ValueError(
                "objective consistency: guidance is not part of FlowSR (guidance.enabled)"
            )
        step = self.config.consistency.teacher_step
        if step not in TEACHER_STEPS:
            raise ValueError(
                f"objective.consistency.teacher_step must be one of {TEACHER_STEPS}, got {step!r}"
            )
        self.distance = Distance(self.config.distance)
        w = self.config.consistency
        self._iqa: tuple = ()
        self.iqa_note = "off (objective.consistency.iqa = 0: needs a local CLIP folder)"
        if w.iqa > 0:
            from flowmapsr.nets.prompt_bank import PromptTexts
            from flowmapsr.objectives.clip_iqa import CLIPQualityLoss

            texts = PromptTexts()
            self._iqa = (CLIPQualityLoss(w.iqa_model, texts.pos, texts.neg),)
            self.iqa_note = f"{w.iqa:g}·CLIP IQA ({w.iqa_model})"

    def _apply(self, fn, recurse=True):
        # The frozen CLIP model is held outside the module tree (not training state).
        super()._apply(fn, recurse)
        for m in self._iqa:
            m._apply(fn)
        return self

    def off_diagonal_target(self, net, teacher, x, t, r, cond, u, v_diag, generator=None):
        raise RuntimeError("consistency computes its own targets (see forward)")

    def teacher_step(self, frozen, x, t, r, cond) -> torch.Tensor:
        """``x̂_r`` from ``x_t``: one Euler step of ``v_φ`` (or the teacher's map)."""
        if self.config.consistency.teacher_step == "map":
            return x - broadcast_time(t - r, x) * frozen(x, t, r, cond)
        return x - broadcast_time(t - r, x) * frozen(x, t, t, cond)

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
        if frozen is None:
            raise ValueError("objective consistency needs the frozen stage-1 teacher (frozen=)")
        hr, src, cond = batch.hr, batch.src, batch.cond
        n, device = hr.shape[0], hr.device
        if t is None:
            t, r, _ = self.pairs(n, generator, device)
        elif r is None:
            raise ValueError("objective consistency: pass both t and r")
        t, r = t.to(device=device, dtype=hr.dtype), r.to(device=device, dtype=hr.dtype)
        ema = net if teacher is None else teacher
        w = self.config.consistency

        x_t = self.path.sample(hr, src, t, batch.noise, generator)
        with torch.no_grad():
            x_r = self.teacher_step(frozen, x_t, t, r, cond)
            target = to_hr_end(ema, x_r, r, cond)
            target = self.to_image(target)
        hr_px = self.hr_image(batch)
        main = self.to_image(to_hr_end(net, x_t, t, cond))
        l_cd = self.distance(main, target.detach())
        l_flow = self.distance(main, hr_px) if w.flow else torch.zeros_like(l_cd)
        if w.hr:
            l_hr = self.distance(self.to_image(to_hr_end(net, x_r, r, cond)), hr_px)
        else:
            l_hr = torch.zeros_like(l_cd)
        per_sample = w.cd * l_cd + w.hr * l_hr + w.flow * l_flow
        logs = {}
        for m in self._iqa:
            l_iqa = m(main)
            per_sample = per_sample + w.iqa * l_iqa.to(per_sample.dtype)
            logs["loss_iqa"] = float(l_iqa.mean().detach())
        loss = per_sample.mean()
        logs.update(
            loss=float(loss.detach()),
            loss_cd=float(l_cd.mean().detach()),
            loss_hr=float(l_hr.mean().detach()),
            loss_flow=float(l_flow.mean().detach()),
        )
        return ObjectiveResult(loss=loss, per_sample=per_sample.detach(), logs=logs)
