"""Positive/negative prompt guidance trained into the flow map (DESIGN.md §2).

Each sample gets a prompt: *pos* (target: the real HR, guidance scale ω ∈ [1, ω_max] fed to the
network), *neg* (target: the HR mildly re-degraded, ω = 1) or *null* (target: the real HR,
ω = 1). The diagonal target of a positive sample is the guided velocity

    v_ω = v_θ(x_t, t | neg) + ω · ((src − hr) − v_θ(x_t, t | neg)),

with ``v_θ(· | neg)`` from the teacher; the off-diagonal objectives then distil the guided
diagonal because they evaluate the teacher with the same (prompt, ω). Inference costs one
evaluation per step for any ω.
Reference: FlowMapSR (arXiv 2601.16660) §4.2, positive–negative prompting as CFG generalised to
flow maps; the trained-in CFG target of MeanFlow (Geng et al. 2025, eq. 13–15).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from flowmapsr.flowmap import PROMPT_NEG, PROMPT_NULL, PROMPT_POS, Condition


@dataclass
class GuidanceConfig:
    enabled: bool = False
    omega_max: float = 3.5  # ω is drawn uniformly in [1, omega_max] for positive samples
    neg_fraction: float = 0.2  # share of samples trained toward the low-quality target
    null_fraction: float = 0.1  # share trained without a prompt (plain flow to HR)


class Guidance:
    """Assigns prompts and ω to a batch and builds the guided diagonal target."""

    def __init__(self, config: GuidanceConfig | None = None):
        self.config = config or GuidanceConfig()

    def prepare(self, batch, generator: torch.Generator | None = None):
        """Return a batch whose ``cond`` carries prompt ids and ω (when guidance is enabled).

        A batch whose condition already holds prompts is left as is (tests and callers can fix
        them). Negative samples have ``hr`` replaced by ``hr_neg``.
        """
        c = self.config
        if not c.enabled:
            return batch
        cond = batch.cond or Condition()
        if cond.prompt is not None:
            return batch
        if batch.hr_neg is None:
            raise ValueError("guidance is enabled but the batch has no hr_neg (low-quality target)")
        n, device = batch.hr.shape[0], batch.hr.device
        u = torch.rand(n, generator=generator, device=device)
        prompt = torch.full((n,), PROMPT_POS, dtype=torch.long, device=device)
        prompt[u < c.neg_fraction + c.null_fraction] = PROMPT_NULL
        prompt[u < c.neg_fraction] = PROMPT_NEG
        w = 1.0 + (c.omega_max - 1.0) * torch.rand(n, generator=generator, device=device)
        omega = torch.where(prompt == PROMPT_POS, w, torch.ones_like(w)).to(batch.hr.dtype)
        neg = (prompt == PROMPT_NEG).view(n, *([1] * (batch.hr.ndim - 1)))
        hr = torch.where(neg, batch.hr_neg, batch.hr)
        return replace(batch, hr=hr, cond=cond.replace(prompt=prompt, omega=omega))

    def diagonal_target(self, teacher, x, t, cond: Condition | None, v_emp: torch.Tensor):
        """The (guided) flow-matching target at ``(x, t)``: ``(B, …)``.

        For samples with ω = 1 (and whenever guidance is off) this is exactly ``src − hr``.
        """
        if not self.config.enabled or cond is None or cond.omega is None:
            return v_emp
        omega = cond.omega
        guided = omega != 1
        if not bool(guided.any()):
            return v_emp
        idx = guided.nonzero().squeeze(1)
        sub = cond.index(idx)
        if sub.prompt is None or sub.prompt.dtype != torch.long:
            raise ValueError("guidance needs prompt ids (null/pos/neg) in the condition")
        neg_cond = sub.replace(
            prompt=torch.full_like(sub.prompt, PROMPT_NEG), omega=torch.ones_like(sub.omega)
        )
        v_neg = teacher(x[idx], t[idx], t[idx], neg_cond)
        w = omega[idx].view(-1, *([1] * (x.ndim - 1)))
        v_guided = v_neg + w * (v_emp[idx] - v_neg)
        return v_emp.index_put((idx,), v_guided.to(v_emp.dtype))
