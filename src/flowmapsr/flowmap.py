"""The flow-map parametrisation ``X(x; t → r) = x − (t − r) · u(x, t, r, c)`` (DESIGN.md §1).

One network ``u = net(x_t, t, r, cond)`` serves both flow matching (on the diagonal ``r = t``,
``u`` is the instantaneous velocity ``dx/dt``) and every flow-map objective (off the diagonal,
``u`` is the average velocity over ``[r, t]``). ``X(x; t → t) = x`` holds by construction.
Reference: Boffi, Albergo, Vanden-Eijnden 2025 (arXiv 2505.18825), eq. for X_{s,t} = x + (t−s)v.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from flowmapsr.paths.bridge import broadcast_time

# Prompt condition ids for backbones with learned prompt embeddings (the small net).
PROMPT_NULL, PROMPT_POS, PROMPT_NEG = 0, 1, 2


@dataclass
class Condition:
    """What a backbone is conditioned on, besides ``(x_t, t, r)``.

    prompt: ``(B,)`` long ids (null / pos / neg) for the small net, or ``(B, L, D)`` text
        embeddings for text-conditioned backbones; None = null.
    omega: ``(B,)`` guidance scale ω fed to the network (None = 1).
    source: ``(B, C, H, W)`` the SR source (upsampled LR) for backbones that concatenate it.
    """

    prompt: torch.Tensor | None = None
    omega: torch.Tensor | None = None
    source: torch.Tensor | None = None

    def index(self, idx) -> Condition:
        """The condition of a sub-batch (``idx``: bool mask or index tensor)."""

        def pick(v):
            return None if v is None else v[idx]

        return Condition(pick(self.prompt), pick(self.omega), pick(self.source))

    def replace(self, **kw) -> Condition:
        return replace(self, **kw)


def jump(net, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor, cond: Condition | None = None):
    """Apply the flow map once: returns ``(X(x; t → r), u)``; ``x``: (B, …), ``t``, ``r``: (B,)."""
    u = net(x, t, r, cond)
    return x - broadcast_time(t - r, x) * u, u


def velocity(net, x: torch.Tensor, t: torch.Tensor, cond: Condition | None = None):
    """The instantaneous velocity ``dx/dt = u(x, t, t, c)`` (the diagonal of the flow map)."""
    return net(x, t, t, cond)
