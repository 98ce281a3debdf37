"""Solvers on the analytic flow: one flow-map step is the exact map; Euler converges to it."""

from __future__ import annotations

import pytest
import torch

from flowmapsr.inference.solvers import euler_solve, flowmap_solve, time_grid
from flowmapsr.testing import GaussianFlow


@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("kind", ["uniform", "late"])
def test_flowmap_solve_with_oracle_equals_exact_map(steps, kind):
    oracle = GaussianFlow(dim=4, seed=1)
    g = torch.Generator().manual_seed(0)
    _, src = oracle.sample_pairs(50, g)
    grid = time_grid(steps, kind, dtype=torch.float64)
    out = flowmap_solve(oracle, src, grid)
    one = torch.ones(50, dtype=torch.float64)
    exact = oracle.exact_map(src, one, 0 * one)
    torch.testing.assert_close(out, exact, rtol=1e-10, atol=1e-10)


def test_euler_converges_to_exact_map():
    oracle = GaussianFlow(dim=3, seed=2)
    _, src = oracle.sample_pairs(64, torch.Generator().manual_seed(0))
    one = torch.ones(64, dtype=torch.float64)
    exact = oracle.exact_map(src, one, 0 * one)
    errs = [
        (euler_solve(oracle, src, time_grid(n, dtype=torch.float64)) - exact).abs().max().item()
        for n in (4, 16, 64)
    ]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.25 * errs[0]


def test_time_grid_endpoints_and_order():
    for kind in ("uniform", "late"):
        g = time_grid(5, kind)
        assert g[0] == 1 and g[-1] == 0 and torch.all(g[1:] < g[:-1])
    with pytest.raises(ValueError):
        time_grid(0)
    with pytest.raises(ValueError):
        time_grid(2, "cosine")


def test_callback_sees_every_step():
    oracle = GaussianFlow(dim=2, seed=0)
    seen = []
    flowmap_solve(
        oracle,
        torch.zeros(3, 2, dtype=torch.float64),
        time_grid(4, dtype=torch.float64),
        callback=lambda i, x: seen.append(i),
    )
    assert seen == [0, 1, 2, 3]


def test_solvers_are_differentiable():
    """The adversarial stage backpropagates through X(src; 1 → 0)."""
    net = torch.nn.Linear(2, 2)

    def u(x, t, r, cond=None):
        return net(x) * (1 + t - r).unsqueeze(-1)

    out = flowmap_solve(u, torch.ones(3, 2), time_grid(2))
    out.sum().backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0
