"""What every objective shares: the batch, the result type, the config, and the driver.

Every objective is a small ``nn.Module`` (it may own parameters: the learned weighting λ(t, r))
with one call signature::

    result = objective(net, batch, t=None, r=None, generator=None, teacher=None, frozen=None)

with the networks by role: ``net`` the student (with gradients), ``teacher`` its EMA copy (the
self-distillation target; ``net`` when None), ``frozen`` a frozen teacher of an earlier stage
for objectives that declare ``needs_frozen_teacher`` (FlowSR's consistency distillation).

and one result type, :class:`ObjectiveResult` (scalar loss, per-sample loss, float logs).
A batch is split into its diagonal part (``r = t``: the flow-matching term, optionally with the
guided target) and its off-diagonal part (the objective's own self-distillation term). The
split, the weighting and guidance are handled here once; subclasses supply only
:meth:`FlowMapObjective.off_diagonal_target`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from flowmapsr.flowmap import Condition
from flowmapsr.objectives.distance import DistanceConfig
from flowmapsr.objectives.guidance import Guidance, GuidanceConfig
from flowmapsr.objectives.perceptual import PerceptualConfig
from flowmapsr.objectives.weighting import LearnedWeighting
from flowmapsr.paths.bridge import BridgePath
from flowmapsr.paths.time_sampling import PairSampler, PairSamplerConfig


@dataclass
class FlowBatch:
    """A training batch on the bridge path.

    hr: ``(B, …)`` targets at t = 0.   src: ``(B, …)`` sources at t = 1.
    hr_neg: ``(B, …)`` low-quality targets for the negative prompt (guidance), or None.
    cond: the condition (the source image for concat backbones, prompts, ω), or None.
    noise: ``(B, …)`` bridge noise ε, or None (drawn from the generator when needed); for
        ``ftd`` the teacher pair's noise (required), with ``hr`` its image z_0 and ``src`` the
        LR latent z_L at ``T_L``.
    hr_image: ``(B, 3, H, W)`` the HR pixels when ``hr`` is a codec's latents (image-space
        losses compare with it); None: ``hr`` is the image.
    """

    hr: torch.Tensor
    src: torch.Tensor
    hr_neg: torch.Tensor | None = None
    cond: Condition | None = None
    noise: torch.Tensor | None = None
    hr_image: torch.Tensor | None = None


@dataclass
class ObjectiveResult:
    """loss: scalar to backpropagate; per_sample: ``(B,)`` detached; logs: floats for the log."""

    loss: torch.Tensor
    per_sample: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class ConsistencyWeights:
    """FlowSR stage 2: ``cd·L_cd + hr·L_hr + flow·L_flow`` (the paper prints no weights: ours).

    teacher_step: ``euler`` (the paper: ``x̂ = x_t' − (t' − t)·v_φ(x_t', t')``) or ``map``
    (``X_φ(x_t'; t' → t)``, exact when the teacher is itself a flow map).
    """

    cd: float = 1.0
    hr: float = 1.0
    flow: float = 1.0
    teacher_step: str = "euler"
    # CLIP image-quality alignment (objectives/clip_iqa.py) on the student's HR estimate
    # f_θ(x_t, t): weight and a local CLIP folder. Off by default: no CLIP weights here.
    iqa: float = 0.0
    iqa_model: str = ""


def _tv_lpips_distance() -> DistanceConfig:
    # L_Rec = MSE + λ·TV-LPIPS (seed 003 Eq. 21) with λ = 1 and γ = 1: the paper prints neither.
    return DistanceConfig(l2=1.0, perceptual=PerceptualConfig(kind="tv_lpips", weight=1.0))


@dataclass
class FTDConfig:
    """FluxSR (objective ``ftd``): ``ftd·L_FTD + rec·L_Rec + adl·L_ADL`` (seed 003 Algorithm 1).

    ftd: L_FTD's weight (1; 0 = the paper's "w/o FTD" ablation: the one-step generator trained
    on L_Rec alone, Table 4).
    t_low: ``T_L``, the time of the LR latent on the teacher's noise → image line; t ~ U[T_L, 1].
    distance: ``L_Rec``'s image distance, ``MSE + λ·TV-LPIPS`` (λ = ``perceptual.weight``,
        γ = ``perceptual.tv_gamma``). adl: μ; adl_layers: a regex (``re.fullmatch`` over the
        network's module names) of the layers ADL reads, ``auto`` = the known backbones'
        (:data:`flowmapsr.objectives.adl.ADL_LAYERS`). The paper prints none of T_L, λ, γ, μ:
        the defaults are ours (see :mod:`flowmapsr.objectives.ftd`).
    """

    t_low: float = 0.5
    ftd: float = 1.0
    rec: float = 1.0
    adl: float = 0.01
    adl_layers: str = "auto"
    distance: DistanceConfig = field(default_factory=_tv_lpips_distance)


@dataclass
class ObjectiveConfig:
    name: str = "shortcut"  # fm | lagrangian | eulerian | shortcut | srflow | consistency | ftd
    pairs: PairSamplerConfig = field(default_factory=PairSamplerConfig)
    bridge_noise: float = 0.0  # b of the bridge path (LBM uses 1e-3–5e-3)
    # λ(t, r): each term becomes exp(−w)·ℓ + w with |w| ≤ weighting_bound. Off by default: on
    # the 2-D benchmark it did not beat uniform weights, and unbounded it diverged (toy2d notes).
    learned_weighting: bool = False
    weighting_bound: float = 1.0
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    # shortcut: first jump covers a fraction h of [r, t] (0.5 = shortcut, "uniform" = random h)
    split: float = 0.5
    split_uniform: bool = False
    # eulerian: v in the tangent (v, 1, 0) is the model's own diagonal ("model") or src − hr
    eulerian_velocity: str = "model"
    # lagrangian/eulerian: backpropagate through the JVP term (DESIGN formula) or stop it
    # (MeanFlow-style; same fixed point, half the memory). Default: stop.
    tangent_grad: bool = False
    # srflow / consistency (FlowSR): the image distance d, the consistency loss weights
    distance: DistanceConfig = field(default_factory=DistanceConfig)
    velocity_l2: float = 1.0  # srflow: weight of ‖v − (src − hr)‖² beside d(x̂_0, hr)
    consistency: ConsistencyWeights = field(default_factory=lambda: ConsistencyWeights())
    ftd: FTDConfig = field(default_factory=FTDConfig)  # FluxSR flow trajectory distillation


def squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: ``(B, …) → (B,)``, in at least fp32 (bf16 nets included)."""
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    return (a.to(dtype) - b.to(dtype)).pow(2).flatten(1).mean(dim=1)


class FlowMapObjective(nn.Module):
    """Base objective: diagonal flow matching + an off-diagonal self-distillation term."""

    name = "base"
    uses_off_diagonal = True
    needs_frozen_teacher = False
    uses_jvp = False  # forward-mode AD through the network (no gradient checkpointing then)

    def __init__(self, config: ObjectiveConfig | None = None):
        super().__init__()
        self.config = config or ObjectiveConfig(name=self.name)
        self.path = BridgePath(self.config.bridge_noise)
        self.pairs = PairSampler(self.config.pairs)
        self.guidance = Guidance(self.config.guidance)
        self.weighting = (
            LearnedWeighting(bound=self.config.weighting_bound)
            if self.config.learned_weighting
            else None
        )

    # -- the space the flow runs in ----------------------------------------------------------
    def set_codec(self, codec) -> None:
        """The codec whose latents the flow runs on (None: pixels); objectives with image-space
        terms decode through it. Held outside the module tree: frozen weights, not training
        state of the objective (its checkpoint stays the same with and without a codec)."""
        object.__setattr__(self, "_codec", codec)

    def to_image(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, C, h, w)`` → pixels ``(B, 3, H, W)`` (with gradients); pixels as is."""
        codec = getattr(self, "_codec", None)
        return z if codec is None else codec.decode(z)

    @staticmethod
    def hr_image(batch: FlowBatch) -> torch.Tensor:
        return batch.hr if batch.hr_image is None else batch.hr_image

    # -- hooks -------------------------------------------------------------------------------
    def off_diagonal_target(
        self, net, teacher, x, t, r, cond, u, v_diag, generator=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(student, target)`` for the off-diagonal samples.

        ``student`` carries gradients, ``target`` does not. ``u`` is the student's output
        ``net(x, t, r, cond)`` (with grad), ``v_diag`` the (possibly guided) diagonal target at
        ``(x, t)``, for objectives that use it. Anything random is drawn from ``generator``
        (the step's, on the batch's device).
        """
        raise NotImplementedError

    # -- driver ------------------------------------------------------------------------------
    def sample_times(self, n, generator, device):
        if not self.uses_off_diagonal:
            t = self.pairs.time(n, generator, device)
            return t, t.clone(), torch.ones(n, dtype=torch.bool, device=device)
        return self.pairs(n, generator, device)

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
        hr, device = batch.hr, batch.hr.device
        n = hr.shape[0]
        if t is None:
            t, r, diag = self.sample_times(n, generator, device)
        else:
            # Diagonal-only objectives (fm) ignore r: u(x_t, t, t) is what they train.
            r = t.clone() if r is None or not self.uses_off_diagonal else r
            diag = r == t
        t, r = t.to(device=device, dtype=hr.dtype), r.to(device=device, dtype=hr.dtype)
        teacher = net if teacher is None else teacher
        batch = self.guidance.prepare(batch, generator)
        cond = batch.cond

        x = self.path.sample(batch.hr, batch.src, t, batch.noise, generator)
        v_emp = self.path.velocity(batch.hr, batch.src)
        with torch.no_grad():
            v_target = self.guidance.diagonal_target(teacher, x, t, cond, v_emp)

        u = net(x, t, r, cond)
        loss_dtype = torch.promote_types(u.dtype, torch.float32)
        per_sample = torch.zeros(n, device=device, dtype=loss_dtype)
        logs: dict[str, float] = {}
        off = ~diag
        if diag.any():
            per_sample = per_sample.index_put(
                (diag.nonzero().squeeze(1),), squared_error(u[diag], v_target[diag])
            )
            logs["loss_diag"] = float(per_sample[diag].mean().detach())
        if off.any():
            sub = None if cond is None else cond.index(off)
            student, target = self.off_diagonal_target(
                net, teacher, x[off], t[off], r[off], sub, u[off], v_target[off], generator
            )
            err = squared_error(student, target.detach())
            per_sample = per_sample.index_put((off.nonzero().squeeze(1),), err)
            logs["loss_off"] = float(err.mean().detach())
        raw = per_sample
        if self.weighting is not None:
            w = self.weighting(t, r)
            per_sample = torch.exp(-w) * raw + w
        loss = per_sample.mean()
        logs["loss"] = float(loss.detach())
        logs["mse"] = float(raw.mean().detach())
        return ObjectiveResult(loss=loss, per_sample=raw.detach(), logs=logs)
