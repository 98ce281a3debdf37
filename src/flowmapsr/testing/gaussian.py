"""A Gaussian-to-Gaussian flow whose velocity and flow map are closed-form ("oracle" networks).

HR ``x_0 ~ N(μ0, Σ0)`` and source ``x_1 ~ N(μ1, Σ1)``, independently coupled, on the path
``x_t = (1 − t)·x_0 + t·x_1``. The covariances are full (non-diagonal) but share their
eigenvectors ``Q`` (``Σ0 = Q diag(a) Qᵀ``, ``Σ1 = Q diag(b) Qᵀ``): for non-commuting
covariances the flow map has no closed form. Then per eigen-direction, with
``σ_t² = (1 − t)²·a + t²·b`` and ``m_t = (1 − t)·μ0 + t·μ1``:

* velocity  ``v(x, t) = (μ1 − μ0) + Q diag(c_t / σ_t²) Qᵀ (x − m_t)``, ``c_t = t·b − (1 − t)·a``;
* flow map  ``X(x; t → r) = m_r + Q diag(σ_r / σ_t) Qᵀ (x − m_t)``;
* so ``u(x, t, r) = (x − X)/(t − r) = (μ1 − μ0) + Q diag(k) Qᵀ (x − m_t)`` with
  ``k = [b·(t + r) − a·(2 − t − r)] / ((σ_t + σ_r)·σ_t)`` — smooth through ``r = t``.

:meth:`GaussianFlow.conditional_pairs` draws ``x_t`` from the marginal and returns pairs
``(hr, src)`` on the tangent line (``src − hr = v(x_t, t)``), so that even the empirical
flow-matching target equals the true velocity and *every* objective is exactly zero at the
oracle. The guided variant shifts the HR mean per prompt: the guided velocity
``v_neg + ω(v_pos − v_neg)`` is then exactly the flow to the extrapolated mean, again closed-form.
"""

from __future__ import annotations

import torch

from flowmapsr.flowmap import PROMPT_NEG, Condition


def _random_orthogonal(d: int, g: torch.Generator, dtype) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=dtype))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


class GaussianFlow(torch.nn.Module):
    """Oracle "network" ``u(x, t, r, cond)`` for vectors ``x: (B, d)``, ``t, r: (B,)``."""

    def __init__(self, dim: int = 3, seed: int = 0, dtype=torch.float64):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.register_buffer("Q", _random_orthogonal(dim, g, dtype))
        self.register_buffer("a", 0.3 + torch.rand(dim, generator=g, dtype=dtype))  # HR eigenvalues
        self.register_buffer("b", 0.5 + 2 * torch.rand(dim, generator=g, dtype=dtype))
        self.register_buffer("mu0", torch.randn(dim, generator=g, dtype=dtype))
        self.register_buffer("mu1", torch.randn(dim, generator=g, dtype=dtype) + 1.0)

    # -- closed forms --------------------------------------------------------------------
    def hr_mean(self, cond: Condition | None, n: int) -> torch.Tensor:
        return self.mu0.expand(n, self.dim)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.unsqueeze(-1)
        return torch.sqrt((1 - t) ** 2 * self.a + t**2 * self.b)

    def mean(self, t: torch.Tensor, mu0: torch.Tensor) -> torch.Tensor:
        t = t.unsqueeze(-1)
        return (1 - t) * mu0 + t * self.mu1

    def _to_eig(self, x):
        return x @ self.Q

    def _from_eig(self, y):
        return y @ self.Q.T

    def forward(self, x, t, r, cond: Condition | None = None) -> torch.Tensor:
        mu0 = self.hr_mean(cond, x.shape[0])
        st, sr = self.sigma(t), self.sigma(r)
        tt, rr = t.unsqueeze(-1), r.unsqueeze(-1)
        k = (self.b * (tt + rr) - self.a * (2 - tt - rr)) / ((st + sr) * st)
        dev = self._to_eig(x - self.mean(t, mu0))
        return (self.mu1 - mu0) + self._from_eig(k * dev)

    def exact_map(self, x, t, r, cond: Condition | None = None) -> torch.Tensor:
        """``X(x; t → r)`` in closed form."""
        mu0 = self.hr_mean(cond, x.shape[0])
        dev = self._to_eig(x - self.mean(t, mu0))
        return self.mean(r, mu0) + self._from_eig(self.sigma(r) / self.sigma(t) * dev)

    # -- samples -------------------------------------------------------------------------
    def sample_marginal(self, t, cond=None, generator=None) -> torch.Tensor:
        n = t.shape[0]
        z = torch.randn(n, self.dim, generator=generator, dtype=self.a.dtype)
        return self.mean(t, self.hr_mean(cond, n)) + self._from_eig(self.sigma(t) * z)

    def sample_pairs(self, n, generator=None):
        """Independent ``(hr, src)`` pairs: ``hr ~ N(μ0, Σ0)``, ``src ~ N(μ1, Σ1)``."""
        z0 = torch.randn(n, self.dim, generator=generator, dtype=self.a.dtype)
        z1 = torch.randn(n, self.dim, generator=generator, dtype=self.a.dtype)
        hr = self.mu0 + self._from_eig(self.a.sqrt() * z0)
        src = self.mu1 + self._from_eig(self.b.sqrt() * z1)
        return hr, src

    def conditional_pairs(self, t, cond=None, generator=None):
        """Pairs whose empirical velocity equals the true velocity at ``x_t``: ``(hr, src)``."""
        x = self.sample_marginal(t, cond, generator)
        v = self.forward(x, t, t, cond)
        tt = t.unsqueeze(-1)
        return x - tt * v, x + (1 - tt) * v


class GuidedGaussianFlow(GaussianFlow):
    """Prompt-conditional oracle: HR mean μ0_pos (pos/null) or μ0_neg (neg); guided by ω.

    ``u(· | pos, ω)`` is the flow to the extrapolated HR mean ``μ0_neg + ω·(μ0_pos − μ0_neg)``,
    which equals the guided velocity ``v_neg + ω·(v_pos − v_neg)`` exactly (both are affine in
    the HR mean with the same covariances).
    """

    def __init__(self, dim: int = 3, seed: int = 0, dtype=torch.float64):
        super().__init__(dim, seed, dtype)
        g = torch.Generator().manual_seed(seed + 1)
        self.register_buffer("mu0_neg", self.mu0 + 0.7 * torch.randn(dim, generator=g, dtype=dtype))

    def hr_mean(self, cond: Condition | None, n: int) -> torch.Tensor:
        pos = self.mu0.expand(n, self.dim)
        if cond is None or cond.prompt is None:
            return pos
        omega = (
            (torch.ones(n, dtype=self.mu0.dtype) if cond.omega is None else cond.omega)
            .unsqueeze(-1)
            .to(self.mu0.dtype)
        )
        guided = self.mu0_neg + omega * (self.mu0 - self.mu0_neg)
        is_neg = (cond.prompt == PROMPT_NEG).unsqueeze(-1)
        return torch.where(is_neg, self.mu0_neg.expand(n, self.dim), guided)


class StraightGaussianFlow(torch.nn.Module):
    """Oracle for a *deterministic* coupling whose bridge lines are the flow's trajectories.

    ``hr ~ N(μ0, Q diag(a) Qᵀ)`` and ``src = A·hr + c`` with ``A = Q diag(α) Qᵀ``, ``α > 0``
    (an SR source is a function of its HR image). In eigen-coordinates ``h = Qᵀ hr`` every
    ``x_t = (1 − t)·hr + t·src`` has ``Qᵀx_t = (1 − t + t·α)⊙h + t·c̃``, so ``h`` is recovered
    from ``(x_t, t)`` and the lines do not cross: the velocity is ``src − hr`` on the whole line,
    the flow map is the straight jump along it, and ``u(x, t, r) = Q((α − 1)⊙h + c̃)`` for any
    ``r``. Every FlowSR loss (``L_cd`` with an Euler teacher step, ``L_hr``, ``L_flow``) is then
    exactly zero at the oracle — the setting FlowSR's "SR is a rectified flow" assumes.
    """

    def __init__(self, dim: int = 3, seed: int = 0, dtype=torch.float64):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.register_buffer("Q", _random_orthogonal(dim, g, dtype))
        self.register_buffer("a", 0.3 + torch.rand(dim, generator=g, dtype=dtype))
        self.register_buffer("alpha", 0.3 + 1.5 * torch.rand(dim, generator=g, dtype=dtype))
        self.register_buffer("mu0", torch.randn(dim, generator=g, dtype=dtype))
        self.register_buffer("c", torch.randn(dim, generator=g, dtype=dtype))  # c̃, eigen-coords

    def hr_of(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``h = Qᵀ hr`` of the line through ``x`` at time ``t``: ``(B, d), (B,) → (B, d)``."""
        tt = t.unsqueeze(-1)
        return (x @ self.Q - tt * self.c) / (1 - tt + tt * self.alpha)

    def forward(self, x, t, r, cond: Condition | None = None) -> torch.Tensor:
        return ((self.alpha - 1) * self.hr_of(x, t) + self.c) @ self.Q.T

    def pairs(self, n: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hr, src)``, each ``(n, d)``."""
        z = torch.randn(n, self.dim, generator=generator, dtype=self.a.dtype)
        h = self.mu0 @ self.Q + self.a.sqrt() * z
        return h @ self.Q.T, (self.alpha * h + self.c) @ self.Q.T
