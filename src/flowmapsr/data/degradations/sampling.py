"""Scalar random draws from an explicit ``torch.Generator`` (uniform, choice, coin flips).

Every random number of the degradation pipeline comes from the per-sample generator the caller
passes, so one seed gives the same parameters (and bytes) on the same machine. Draws happen on
the generator's own device (a CUDA generator draws on its GPU); the value comes back as a Python
number so it can also be written to the per-sample parameter JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def uniform(g: torch.Generator, low: float, high: float) -> float:
    """One float drawn uniformly from ``[low, high)`` (``low`` when the range is empty)."""
    u = torch.rand((), generator=g, device=g.device, dtype=torch.float64).item()
    return float(low + (high - low) * u)


def coin(g: torch.Generator, p: float) -> bool:
    """True with probability ``p``. Always draws one number, so the stream stays aligned."""
    return uniform(g, 0.0, 1.0) < p


def choice(g: torch.Generator, items: Sequence, probs: Sequence[float] | None = None):
    """One element of ``items``; ``probs`` (need not be normalised) defaults to uniform."""
    if len(items) == 0:
        raise ValueError("choice from an empty list")
    if probs is None:
        probs = [1.0] * len(items)
    if len(probs) != len(items):
        raise ValueError(f"{len(items)} items but {len(probs)} probabilities")
    w = torch.tensor([float(p) for p in probs], dtype=torch.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"probabilities must be >= 0 with a positive sum, got {list(probs)}")
    cdf = torch.cumsum(w / w.sum(), 0)
    u = uniform(g, 0.0, 1.0)
    idx = int(torch.searchsorted(cdf, torch.tensor([u], dtype=torch.float64)).item())
    return items[min(idx, len(items) - 1)]


def seeded_generator(*keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator seeded from several integers (e.g. ``(seed, epoch, index)``).

    The integers are mixed through numpy's ``SeedSequence`` so nearby keys give unrelated streams.
    """
    import numpy as np

    state = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2)
    g = torch.Generator(device=device)
    g.manual_seed(int(state[0]) << 32 | int(state[1]))
    return g
