"""Samplers as plain functions over a time grid ``1 = t_0 > t_1 > … > t_N = 0`` (NFE = N).

``flowmap_solve`` composes flow-map jumps ``X(x; t_i → t_{i+1})``; ``euler_solve`` integrates a
velocity model (the diagonal ``u(x, t, t)``) with explicit Euler — the flow-matching baseline;
``consistency_solve`` is multistep consistency sampling on the noise-free SR path (FlowSR): jump
to the HR end, re-interpolate with the source at the next time, jump again. :data:`SOLVERS`
names them for a pipeline's ``solver`` setting.
Both are differentiable (the adversarial stage backpropagates through a 1- or 2-jump solve);
call them under ``torch.no_grad()`` for inference.
Reference: k-diffusion's "one sampler, one function" style; flow-map sampling of Boffi et al.
2025 (composition over a grid).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from flowmapsr.flowmap import Condition
from flowmapsr.paths.bridge import broadcast_time


def time_grid(
    steps: int, kind: str = "uniform", device=None, dtype=torch.float32, start: float = 1.0
) -> torch.Tensor:
    """``(steps + 1,)`` decreasing times from ``start`` (the source's time, 1 by default) to 0.

    kind: ``uniform`` (equal steps) or ``late`` (smaller steps near t = 0, where detail forms;
    ``t_i = start·(1 − i/N)^2``). ``start < 1``: a model whose source sits inside the path, as
    FluxSR's LR latent at ``T_L`` (one step is then ``x − T_L·u(x, T_L, ·)``, seed 003 Eq. 18).
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if not 0.0 < start <= 1.0:
        raise ValueError(f"the grid's start time must lie in (0, 1], got {start}")
    s = torch.linspace(0.0, 1.0, steps + 1, device=device, dtype=torch.float64)
    if kind == "uniform":
        grid = start * (1.0 - s)
    elif kind == "late":
        grid = start * (1.0 - s) ** 2
    else:
        raise ValueError(f"unknown time grid '{kind}' (uniform, late)")
    grid[0], grid[-1] = start, 0.0
    return grid.to(dtype)


def _times(grid: torch.Tensor, i: int, x: torch.Tensor):
    t = grid[i].to(device=x.device, dtype=x.dtype).expand(x.shape[0])
    r = grid[i + 1].to(device=x.device, dtype=x.dtype).expand(x.shape[0])
    return t, r


def flowmap_solve(
    net,
    src: torch.Tensor,
    grid: torch.Tensor,
    cond: Condition | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Jump from ``src`` (t = grid[0]) to t = grid[-1] with one network call per interval."""
    x = src
    for i in range(len(grid) - 1):
        t, r = _times(grid, i, x)
        x = x - broadcast_time(t - r, x) * net(x, t, r, cond)
        if callback is not None:
            callback(i, x)
    return x


def euler_solve(
    net,
    src: torch.Tensor,
    grid: torch.Tensor,
    cond: Condition | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Explicit Euler on the velocity ``u(x, t, t)``: ``x ← x − (t_i − t_{i+1})·v(x, t_i)``."""
    x = src
    for i in range(len(grid) - 1):
        t, r = _times(grid, i, x)
        x = x - broadcast_time(t - r, x) * net(x, t, t, cond)
        if callback is not None:
            callback(i, x)
    return x


def consistency_solve(
    net,
    src: torch.Tensor,
    grid: torch.Tensor,
    cond: Condition | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Multistep consistency sampling for a map trained only towards ``r = 0`` (FlowSR).

    ``x̂ ← X(x; t_i → 0)`` with ``x = src`` at ``t_0 = 1`` and ``x = (1 − t_i)·x̂ + t_i·src`` after:
    the noise-free path's point at ``t_i`` if ``x̂`` were the HR image, so each step refines the
    previous estimate (the deterministic analogue of a consistency model's re-noising). One
    network call per step; 1 step equals ``flowmap_solve`` on ``[1, 0]``.
    Reference: Song et al. 2023 (consistency models, Algorithm 1) on FlowSR's LR → HR path.
    """
    est = src
    for i in range(len(grid) - 1):
        t, _ = _times(grid, i, src)
        x = src if i == 0 else (1 - broadcast_time(t, src)) * est + broadcast_time(t, src) * src
        est = x - broadcast_time(t, x) * net(x, t, torch.zeros_like(t), cond)
        if callback is not None:
            callback(i, est)
    return est


def prompt_cfg(net, scale: float, negative: Condition):
    """Classifier-free guidance between the positive and the negative prompt, as FlowSR samples:
    ``u = u(· | neg) + scale·(u(· | pos) − u(· | neg))`` — two network calls per step (1 = off).

    Returns a network with the usual call ``(x, t, r, cond)``; ``cond`` carries the positive
    prompt, ``negative`` the same condition with the negative prompt. Unlike the trained-in ω of
    FlowMapSR (``Condition.omega``: 1 call), this costs a second evaluation per step.
    Reference: Ho & Salimans 2022 (Eq. 6) with FlowSR's positive/negative prompts (g = 1 default).
    """

    def guided(x, t, r, cond=None):
        pos = net(x, t, r, cond)
        neg = net(x, t, r, negative)
        return neg + scale * (pos - neg)

    return guided


#: Solvers by the name a pipeline config stores (``solver``).
SOLVERS = {"flowmap": flowmap_solve, "euler": euler_solve, "consistency": consistency_solve}
