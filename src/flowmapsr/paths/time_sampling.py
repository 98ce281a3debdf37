"""Time samplers for ``t`` and pair samplers for ``(t, r)`` with ``r ≤ t``.

Pair rules are plain functions in :data:`PAIR_SAMPLERS`, chosen by ``PairSamplerConfig.sampler``
(``objective.pairs.sampler`` in a training config); :func:`register_pair_sampler` adds one.
Every rule returns ``(t, r, diag)`` with ``r == t`` exactly where ``diag`` and ``r < t`` strictly
elsewhere (an off-diagonal pair with ``t = r`` would train the diagonal under the off-diagonal
loss). All draws take an explicit ``torch.Generator`` (DESIGN.md §1) so runs are reproducible.
Reference: uniform / logit-normal times (Esser et al. 2024, SD3 §3.1); the diagonal fraction and
"max/min of two draws" pair rule follow Boffi et al. 2025 (flow-map self-distillation) and
MeanFlow (Geng et al. 2025, 75 % of the batch with r = t).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch


@dataclass
class TimeSamplerConfig:
    kind: Literal["uniform", "logit_normal", "discrete"] = "uniform"
    mean: float = 0.0  # logit-normal location
    std: float = 1.0  # logit-normal scale
    t_min: float = 0.0
    t_max: float = 1.0
    values: list[float] = field(default_factory=list)  # for kind = discrete (e.g. LBM's 4 times)


class TimeSampler:
    """Draws ``t`` in ``[t_min, t_max]``: uniform, logit-normal, or from a discrete set."""

    def __init__(self, config: TimeSamplerConfig | None = None):
        self.config = config or TimeSamplerConfig()
        if self.config.kind == "discrete" and not self.config.values:
            raise ValueError("time sampler 'discrete' needs a non-empty list of values")

    def can_differ(self) -> bool:
        """Whether two draws can differ (a strict pair ``r < t`` is possible)."""
        c = self.config
        if c.kind == "discrete":
            return len(set(c.values)) >= 2
        return c.t_max > c.t_min

    def __call__(
        self, n: int, generator: torch.Generator | None = None, device=None
    ) -> torch.Tensor:
        c = self.config
        if c.kind == "uniform":
            u = torch.rand(n, generator=generator, device=device)
        elif c.kind == "logit_normal":
            u = torch.sigmoid(c.mean + c.std * torch.randn(n, generator=generator, device=device))
        elif c.kind == "discrete":
            vals = torch.tensor(c.values, device=device, dtype=torch.float32)
            idx = torch.randint(len(vals), (n,), generator=generator, device=device)
            return vals[idx]
        else:
            raise ValueError(f"unknown time sampler kind '{c.kind}'")
        return c.t_min + (c.t_max - c.t_min) * u


@dataclass
class PairSamplerConfig:
    sampler: str = "max_min"  # a rule of PAIR_SAMPLERS
    time: TimeSamplerConfig = field(default_factory=TimeSamplerConfig)
    diagonal_fraction: float = 0.75  # share of the batch with r = t (flow-matching term)
    min_gap: float = 0.0  # off-diagonal pairs get t − r ≥ min_gap where possible
    # fast_slow only (FlowSR): r on the slow grid, t = r + 1/fast_steps (or 1/slow_steps with
    # probability slow_jump), clipped to 1; ``time`` is not used (FlowSR presets: no diagonal).
    slow_steps: int = 1000
    fast_steps: int = 4
    slow_jump: float = 0.0


#: ``rule(config, time, n, generator, device) -> (t, r, diag)``, all ``(n,)``; see module docstring.
PairRule = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
PAIR_SAMPLERS: dict[str, PairRule] = {}


def register_pair_sampler(name: str, rule: PairRule) -> PairRule:
    """Make ``rule`` selectable as ``pairs.sampler: name`` (``objective.pairs.sampler``) and
    return it. A rule must keep the module's contract: ``r == t`` exactly on ``diag``, ``r < t``
    elsewhere, every draw from ``generator``."""
    PAIR_SAMPLERS[name] = rule
    return rule


def diagonal_mask(n: int, fraction: float, device=None) -> torch.Tensor:
    """``(n,)`` bool: the first ``round(n · fraction)`` samples are diagonal, so that the split
    is exact and a batch's composition does not depend on the random draw."""
    diag = torch.zeros(n, dtype=torch.bool, device=device)
    diag[: int(round(n * fraction))] = True
    return diag


def distinct_pairs(
    time: TimeSampler, n: int, generator: torch.Generator | None = None, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs ``(a, b)`` of time draws with ``a != b``: ``(a, b)`` conditioned on a ≠ b.

    Discrete times draw the pair at once from the ordered pairs of distinct grid values (weights
    ``p_i·p_j``, ``i ≠ j``; repeated values in ``values`` weigh more), which equals re-drawing
    ties until none is left but needs no loop. Continuous times re-draw the tied pairs (ties
    come only from float rounding or a saturated sigmoid, so this runs once or not at all).
    """
    c = time.config
    if not time.can_differ():
        raise ValueError(f"time sampler {c}: every draw is the same time, no pair has r < t")
    if c.kind == "discrete":
        grid, counts = torch.tensor(c.values, dtype=torch.float32).unique(return_counts=True)
        p = counts.double() / counts.sum()
        w = torch.outer(p, p).fill_diagonal_(0.0).flatten()
        gen_device = torch.device("cpu") if generator is None else generator.device
        idx = torch.multinomial(w.to(gen_device), n, replacement=True, generator=generator)
        grid, k = grid.to(gen_device), len(grid)
        return grid[idx // k].to(device), grid[idx % k].to(device)
    a = time(n, generator, device)
    b = time(n, generator, device)
    for _ in range(100):
        tie = a == b
        if not tie.any():
            return a, b
        m = int(tie.sum())
        a[tie], b[tie] = time(m, generator, device), time(m, generator, device)
    raise RuntimeError(f"time sampler {c}: could not draw distinct times in 100 rounds")


def max_min_pairs(
    config: PairSamplerConfig,
    time: TimeSampler,
    n: int,
    generator: torch.Generator | None = None,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Today's rule: ``t = max(a, b)``, ``r = min(a, b)`` of two independent time draws; the
    first ``round(n · diagonal_fraction)`` samples get ``r = t``.

    Off-diagonal pairs that tie (``a == b``: likely with discrete times) are re-drawn as a
    distinct pair (:func:`distinct_pairs`); the stream of random numbers is today's whenever no
    off-diagonal pair ties, which for continuous times is always in practice.
    """
    a = time(n, generator, device)
    b = time(n, generator, device)
    diag = diagonal_mask(n, config.diagonal_fraction, device)
    tie = (a == b) & ~diag
    if tie.any():
        a, b = a.clone(), b.clone()
        a[tie], b[tie] = distinct_pairs(time, int(tie.sum()), generator, device)
    t, r = torch.maximum(a, b), torch.minimum(a, b)
    if config.min_gap > 0:
        r = torch.minimum(r, (t - config.min_gap).clamp_min(0.0))
    r = torch.where(diag, t, r)
    return t, r, diag


register_pair_sampler("max_min", max_min_pairs)


def fast_slow_pairs(
    config: PairSamplerConfig,
    time: TimeSampler,
    n: int,
    generator: torch.Generator | None = None,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FlowSR's fast–slow schedule: adjacent times from two grids, no diagonal samples.

    With ``S = slow_steps`` and ``F = fast_steps``: the lower time ``r = k/S`` with ``k``
    uniform on ``{0, …, S − 1}``; the upper time ``t = min(r + Δ, 1)`` with ``Δ = 1/F`` (the
    fast grid's step), or ``Δ = 1/S`` (the slow grid's) with probability ``slow_jump``. So
    ``r < t ≤ 1`` always, ``t − r`` is ``1/F`` except where clipped (``r > 1 − 1/F``: a share
    ``1/F`` of the draws, minus one slow step, end at ``t = 1``, where inference starts).
    The first ``round(n · diagonal_fraction)`` samples get ``r = t`` as in every rule (FlowSR's
    presets set the fraction to 0: every sample is a consistency pair); ``time`` is unused.
    In FlowSR's naming ``t' = t`` (the student's point) and ``t = r`` (the teacher's Euler step
    lands there). Reference: FlowSR (Xu et al., ICCV 2025), "fast–slow scheduling"; the paper
    gives 4 and 1000 as examples, the distribution of the slow draw is our reading (uniform).
    """
    s, f = config.slow_steps, config.fast_steps
    if s < 1 or f < 1:
        raise ValueError(f"fast_slow pairs need slow_steps, fast_steps ≥ 1, got {s}, {f}")
    k = torch.randint(s, (n,), generator=generator, device=device)
    r = k.to(torch.float32) / s
    step = torch.full((n,), 1.0 / f, device=device)
    if config.slow_jump > 0:
        slow = torch.rand(n, generator=generator, device=device) < config.slow_jump
        step = torch.where(slow, torch.full_like(step, 1.0 / s), step)
    t = torch.clamp(r + step, max=1.0)
    diag = diagonal_mask(n, config.diagonal_fraction, device)
    return t, torch.where(diag, t, r), diag


register_pair_sampler("fast_slow", fast_slow_pairs)


class PairSampler:
    """Draws ``(t, r)`` with ``r ≤ t`` and a boolean mask of diagonal samples (``r == t``)
    by the rule ``config.sampler`` names in :data:`PAIR_SAMPLERS` (default ``max_min``).

    Off-diagonal pairs always have ``r < t`` strictly.
    """

    def __init__(self, config: PairSamplerConfig | None = None):
        self.config = config or PairSamplerConfig()
        if self.config.sampler not in PAIR_SAMPLERS:
            known = ", ".join(sorted(PAIR_SAMPLERS))
            raise ValueError(f"unknown pair sampler '{self.config.sampler}' (registered: {known})")
        self.rule = PAIR_SAMPLERS[self.config.sampler]
        self.time = TimeSampler(self.config.time)

    def __call__(
        self, n: int, generator: torch.Generator | None = None, device=None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.rule(self.config, self.time, n, generator, device)
