"""Extra loss terms of the training step: a registry of small modules summed beside the objective.

The stage's objective (fm, shortcut, consistency, ftd, …) is the *anchor*; each configured term
adds ``weight · loss`` on the step's **one-step sample** ``fake = X(src; 1 → 0)`` (computed once
per step, with gradients, when any term needs it). A term is built from its
:class:`TermConfig` (and the run's :class:`~flowmapsr.training.config.TrainConfig` for settings
that live elsewhere, e.g. the discriminator), declares what it needs in :attr:`LossTerm.needs`,
and returns ``(loss, logs)`` from :meth:`LossTerm.forward` on a :class:`TermInputs`.

Registered terms (:data:`TERMS`):

- ``gan``: RpGAN generator loss ``softplus(−(D(x̂) − D(x)))`` on a conditional discriminator; its
  discriminator step (RpGAN + γ/2·(R1 + R2)) runs in :meth:`Trainer.train_step` with the settings
  this term holds. Reference: Huang et al. 2024, "The GAN is dead; long live the GAN!".
- ``perceptual``: any kind of :func:`flowmapsr.objectives.perceptual.build_perceptual` (LPIPS,
  VGG features, TV-LPIPS, the sobel_l1 stand-in) on ``fake`` against HR. Reference: Zhang et al.
  2018 (LPIPS); Wang et al. 2021, Real-ESRGAN §3.3 (VGG feature loss).
- ``l1`` / ``l2``: pixel ``mean|x̂ − x|`` / ``mean (x̂ − x)²``. Reference: Wang et al. 2021,
  Real-ESRGAN §3.3 (ℓ1 pixel loss beside the perceptual and GAN losses).
- ``adl``: FluxSR's attention diversification loss (:mod:`flowmapsr.objectives.adl`) on the
  tokens of the network's layers (``layers``, a regex; ``auto`` = the known backbones' blocks)
  recorded during the one-step sample's forward — the forward that made ``fake``, so its gradient
  trains the map that is sampled. Reference: Li et al. 2025, FluxSR (seed 003 Eq. 22–23).

Configuration (:func:`term_configs`): the adversarial stage's keys map onto terms exactly as the
step computed them before the registry (``adversarial.weight`` → ``gan``,
``adversarial.perceptual.*`` → ``perceptual``); ``TrainConfig.terms`` adds any others, e.g. a
perceptual + ℓ1 fine-tune without a GAN.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn

from flowmapsr.objectives.adl import adl_loss
from flowmapsr.objectives.adversarial import generator_step_loss
from flowmapsr.objectives.perceptual import PerceptualConfig, build_perceptual

#: What a term may ask for: the one-step sample, the HR target, the clean source, the tokens of
#: the network's layers during the one-step sample's forward (:attr:`LossTerm.layers` names them).
INPUTS = ("fake", "hr", "source", "tokens")


@dataclass
class TermConfig:
    """One extra loss term of the training step (an item of ``TrainConfig.terms``)."""

    name: str = ""  # a registered term: gan | perceptual | l1 | l2 | adl
    weight: float = 1.0  # its weight in the step's loss
    label: str = ""  # its train.csv column ("" = the name; g_adv for gan)
    # perceptual only: which network (its own ``weight`` is ignored: the term's weight counts)
    perceptual: PerceptualConfig = field(
        default_factory=lambda: PerceptualConfig(kind="lpips", weight=1.0)
    )
    # adl only: the layers whose output tokens it reads — "auto" (every known backbone's blocks),
    # a backbone name (small | flux | unet) or a regex fully matching named_modules() names
    layers: str = "auto"


@dataclass
class TermInputs:
    """What the step hands every term; tensors ``(B, C, H, W)`` in the flow's space."""

    fake: torch.Tensor | None  # X(src; 1 → 0), with gradients to the generator
    hr: torch.Tensor
    source: torch.Tensor | None  # the clean source (the discriminator's condition)
    # layers setting → the tokens (B, N, C) its layers output during the one-step sample's
    # forward(s), with their graph (one entry per hooked layer and network call)
    tokens: dict[str, list[torch.Tensor]] | None = None


class LossTerm(nn.Module):
    """Base of a loss term: ``forward(TermInputs) → (loss (), logs {column: float})``."""

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    weight: float
    description: str  # one line for the log (what network, which fallback)
    layers: str | None = None  # the layers whose tokens it reads (terms that need "tokens")

    def __init__(self, config: TermConfig):
        super().__init__()
        self.weight = float(config.weight)
        self.label = config.label or config.name
        self.description = config.name

    @classmethod
    def build(cls, config: TermConfig, train) -> tuple[LossTerm | None, str]:
        """The term (or None where it computes nothing, with the reason) and its description."""
        term = cls(config)
        return term, term.description


class GANTerm(LossTerm):
    """RpGAN generator loss on a conditional discriminator it owns (Huang et al. 2024, eq. 2).

    Holds the discriminator and the settings of its step (``gamma``, ``r_every``, ``disc_lr``,
    ``disc_betas``), read from ``adversarial.*``; the trainer's discriminator step reads them here.
    Reference: Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline".
    """

    name = "gan"
    needs = frozenset({"fake", "hr", "source"})

    def __init__(self, config: TermConfig, train):
        super().__init__(config)
        from flowmapsr.nets.discriminator import build_discriminator

        adv = train.adversarial
        self.disc = build_discriminator(adv.disc)
        self.gamma, self.r_every = float(adv.gamma), int(adv.r_every)
        self.disc_lr, self.disc_betas = float(adv.disc_lr), tuple(adv.disc_betas)
        d = adv.disc
        kind = f"{d.kind}{' + spectral norm' if d.spectral_norm else ''} discriminator"
        self.description = (
            f"gan (RpGAN, {kind}, γ={self.gamma:g}, R1/R2 every {max(self.r_every, 1)})"
        )

    @classmethod
    def build(cls, config, train):
        term = cls(config, train)
        return term, term.description

    def forward(self, x: TermInputs):
        g = generator_step_loss(self.disc, x.hr, x.fake, x.source)
        return g.loss, dict(g.logs)  # g_adv: the column name the adversarial stage always had


class PerceptualTerm(LossTerm):
    """A perceptual distance of ``fake`` to HR, batch mean; the network is frozen.

    Reference: Zhang et al. 2018 (LPIPS); Wang et al. 2021, Real-ESRGAN §3.3 (VGG feature loss).
    """

    name = "perceptual"
    needs = frozenset({"fake", "hr"})

    def __init__(self, config: TermConfig, net: nn.Module, description: str):
        super().__init__(config)
        self.net, self.description = net, description

    @classmethod
    def build(cls, config, train):
        # build_perceptual returns None for weight ≤ 0: the term's weight is the one that counts.
        net, desc = build_perceptual(replace(config.perceptual, weight=config.weight))
        return (None if net is None else cls(config, net, desc)), desc

    def forward(self, x: TermInputs):
        p = self.net(x.fake.float(), x.hr.float()).mean()
        return p, {self.label: float(p.detach())}


class PixelTerm(LossTerm):
    """``mean|x̂ − x|^p`` over every element (p = 1: ``l1``, p = 2: ``l2``), in the flow's space
    (pixels; latents under a latent codec).

    Reference: Wang et al. 2021, "Real-ESRGAN", §3.3 (the ℓ1 pixel loss, weight 1).
    """

    needs = frozenset({"fake", "hr"})
    power: ClassVar[int] = 1

    def forward(self, x: TermInputs):
        d = x.fake.float() - x.hr.float()
        loss = d.abs().mean() if self.power == 1 else d.pow(2).mean()
        return loss, {self.label: float(loss.detach())}


class L1Term(PixelTerm):
    """Pixel ℓ1 on the one-step sample. Reference: Wang et al. 2021, Real-ESRGAN §3.3."""

    name, power = "l1", 1


class L2Term(PixelTerm):
    """Pixel ℓ2 (MSE) on the one-step sample. Reference: Wang et al. 2021, Real-ESRGAN §3.3."""

    name, power = "l2", 2


class ADLTerm(LossTerm):
    """FluxSR's attention diversification loss on the one-step sample's forward: the mean over
    the recorded layer outputs of ``(1/N)·Σ_i cos(A_i, Ā)`` (tokens ``A_i``, their mean ``Ā``),
    batch mean. 1 when every token is the same vector (periodic artefacts), lower as they spread.

    With NFE > 1 every call of the network in the sample is recorded, so the mean runs over
    layers × calls. Reference: Li et al. 2025, "One Diffusion Step to Real-World
    Super-Resolution via Flow Trajectory Distillation" (FluxSR), seed 003 Eq. 22–23.
    """

    name = "adl"
    needs = frozenset({"tokens"})

    def __init__(self, config: TermConfig):
        super().__init__(config)
        self.layers = config.layers
        self.description = f"adl (layers {config.layers})"

    def forward(self, x: TermInputs):
        if x.tokens is None or self.layers not in x.tokens:
            raise ValueError(f"loss term {self.label}: no tokens of layers '{self.layers}' given")
        loss = adl_loss(x.tokens[self.layers]).mean()
        return loss, {self.label: float(loss.detach())}


#: name → term class; ``TrainConfig.terms[i].name`` must be one of these.
TERMS: dict[str, type[LossTerm]] = {
    t.name: t for t in (GANTerm, PerceptualTerm, L1Term, L2Term, ADLTerm)
}


def term_configs(train) -> list[TermConfig]:
    """The terms a :class:`TrainConfig` asks for: the adversarial stage's, then ``terms``.

    ``adversarial.enabled`` → ``gan`` with ``adversarial.weight`` and, when
    ``adversarial.perceptual`` has a kind and a weight, ``perceptual`` with that config and
    weight; in this order, which is the order the step summed them in before the registry.
    """
    out = []
    adv = train.adversarial
    if adv.enabled:
        out.append(TermConfig(name="gan", weight=adv.weight))
        out.append(
            TermConfig(name="perceptual", weight=adv.perceptual.weight, perceptual=adv.perceptual)
        )
    return out + list(train.terms)


def build_terms(train) -> tuple[list[LossTerm], list[tuple[str, str]]]:
    """The built terms of a :class:`TrainConfig` (in :func:`term_configs` order) and
    ``(name, description)`` per configured term (a perceptual term that computes nothing — no
    kind, weight 0, or its network absent with no fallback — is left out; its description says
    why)."""
    terms, notes = [], []
    for c in term_configs(train):
        if c.name not in TERMS:
            raise ValueError(f"unknown loss term '{c.name}' (registered: {', '.join(TERMS)})")
        term, note = TERMS[c.name].build(c, train)
        notes.append((c.name, note))
        if term is not None:
            terms.append(term)
    return terms, notes
