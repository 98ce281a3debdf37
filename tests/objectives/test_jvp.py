"""Every JVP the objectives use equals a central finite difference; unsupported ops fail loudly."""

from __future__ import annotations

import pytest
import torch

from flowmapsr.flowmap import Condition
from flowmapsr.nets import build_net
from flowmapsr.objectives import Eulerian, ForwardADUnsupported, Lagrangian, ObjectiveConfig, jvp
from flowmapsr.testing import GaussianFlow


def _times(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.rand(n, generator=g).double(), torch.rand(n, generator=g).double()
    return torch.maximum(a, b) * 0.9 + 0.05, torch.minimum(a, b) * 0.9 + 0.05


def _nets():
    oracle = GaussianFlow(dim=3, seed=0)
    small = build_net({"type": "small", "channels": 8, "blocks": 2, "emb_dim": 16}).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # make every layer non-trivial (zero-init layers would hide terms)
        for p in small.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    x_small = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    return [
        (oracle, torch.randn(5, 3, dtype=torch.float64), None),
        (small, x_small, Condition(source=x_small.flip(-1))),
    ]


@pytest.mark.parametrize("which", [0, 1], ids=["oracle", "small_net"])
def test_lagrangian_jvp_matches_finite_difference(which):
    net, x, cond = _nets()[which]
    t, r = _times(x.shape[0])
    obj = Lagrangian(ObjectiveConfig(name="lagrangian"))
    u, du = obj.d_dr(net, x, t, r, cond)
    h = 1e-7
    fd = (net(x, t, r + h, cond) - net(x, t, r - h, cond)) / (2 * h)
    torch.testing.assert_close(u, net(x, t, r, cond))
    torch.testing.assert_close(du, fd, rtol=1e-5, atol=1e-7)
    assert du.abs().max() > 1e-3  # the derivative is not trivially zero


@pytest.mark.parametrize("which", [0, 1], ids=["oracle", "small_net"])
def test_eulerian_jvp_matches_finite_difference(which):
    net, x, cond = _nets()[which]
    t, r = _times(x.shape[0], seed=1)
    v = torch.randn_like(x)
    obj = Eulerian(ObjectiveConfig(name="eulerian"))
    _, dudt = obj.material_derivative(net, x, t, r, cond, v)
    h = 1e-7
    fd = (net(x + h * v, t + h, r, cond) - net(x - h * v, t - h, r, cond)) / (2 * h)
    torch.testing.assert_close(dudt, fd, rtol=1e-5, atol=1e-7)
    assert dudt.abs().max() > 1e-3


def test_oracle_derivatives_match_closed_form():
    """∂_r X(x; t → r) = v(X, r): the Lagrangian identity on the analytic flow."""
    oracle = GaussianFlow(dim=3, seed=2)
    x = torch.randn(6, 3, dtype=torch.float64)
    t, r = _times(6, seed=2)
    _, dXdr = jvp(lambda rr: oracle.exact_map(x, t, rr), (r,), (torch.ones_like(r),))
    X = oracle.exact_map(x, t, r)
    torch.testing.assert_close(dXdr, oracle(X, r, r))


class _NoForwardAD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


class _Opaque(torch.nn.Module):
    def forward(self, x, t, r, cond=None):
        return _NoForwardAD.apply(x) * r.unsqueeze(-1)


def test_unsupported_forward_ad_raises_clear_error():
    x = torch.randn(2, 3)
    t = torch.ones(2)
    r = torch.zeros(2)
    obj = Lagrangian(ObjectiveConfig(name="lagrangian"))
    with pytest.raises(ForwardADUnsupported, match="shortcut"):
        obj.d_dr(_Opaque(), x, t, r, None)
