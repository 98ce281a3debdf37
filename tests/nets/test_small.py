from __future__ import annotations

import pytest
import torch

from flowmapsr.flowmap import Condition
from flowmapsr.nets import SmallNetConfig, build_net


def _cond(x, n):
    return Condition(source=x, omega=torch.ones(n), prompt=torch.ones(n, dtype=torch.long))


def test_shapes_and_config_roundtrip():
    net = build_net({"type": "small", "channels": 16, "blocks": 2})
    x = torch.randn(2, 3, 32, 24)
    u = net(x, torch.rand(2), torch.rand(2) * 0, _cond(x, 2))
    assert u.shape == x.shape
    assert isinstance(net.config, SmallNetConfig) and net.config.channels == 16
    with pytest.raises(ValueError, match="divisible by 4"):
        net(
            torch.randn(1, 3, 30, 32),
            torch.rand(1),
            torch.rand(1),
            _cond(torch.randn(1, 3, 30, 32), 1),
        )
    with pytest.raises(ValueError, match="cond.source"):
        net(x, torch.rand(2), torch.rand(2), None)
    with pytest.raises(ValueError, match="unknown network type"):
        build_net({"type": "huge"})


def test_new_inputs_start_as_no_ops():
    """t − r, ω and prompt embeddings are zero-initialised: a warm-started diagonal network's
    output does not change when they are switched on."""
    torch.manual_seed(0)
    net = build_net({"type": "small", "channels": 16, "blocks": 2})
    for block in net.blocks:  # give the FiLM path non-zero weights so embeddings matter
        torch.nn.init.normal_(block.film.weight, std=0.1)
        torch.nn.init.normal_(block.conv2.weight, std=0.1)
    x = torch.randn(2, 3, 16, 16)
    t = torch.tensor([0.9, 0.4])
    base = net(x, t, t, Condition(source=x))
    torch.testing.assert_close(net(x, t, t * 0.2, Condition(source=x)), base)
    full = Condition(source=x, omega=torch.full((2,), 3.0), prompt=torch.tensor([1, 2]))
    torch.testing.assert_close(net(x, t, t, full), base)
    assert not torch.allclose(net(x, t * 0.5, t * 0.5, Condition(source=x)), base)


def test_without_source_concat():
    net = build_net({"type": "small", "channels": 8, "blocks": 1, "concat_source": False})
    x = torch.randn(1, 3, 8, 8)
    assert net(x, torch.ones(1), torch.zeros(1)).shape == x.shape


def test_first_jump_fold_matches_the_concatenated_input():
    # x is the source itself on a solve's first jump: the net folds conv_in's two input halves.
    torch.manual_seed(0)
    net = build_net({"type": "small", "channels": 16, "blocks": 2}).double()
    for p in net.parameters():  # zero-initialised layers would hide a wrong fold
        torch.nn.init.normal_(p, std=0.2)
    src = torch.randn(2, 3, 16, 20, dtype=torch.float64)
    t, r = torch.full((2,), 1.0, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    cond = Condition(source=src, omega=torch.ones(2), prompt=torch.ones(2, dtype=torch.long))
    cond.omega = cond.omega.double()
    folded = net(src, t, r, cond)
    g_folded = torch.autograd.grad(folded.square().sum(), net.conv_in.weight)[0]
    plain = net(src.clone(), t, r, cond)
    g_plain = torch.autograd.grad(plain.square().sum(), net.conv_in.weight)[0]
    torch.testing.assert_close(folded, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_folded, g_plain, rtol=1e-10, atol=1e-12)
    # A different x must not take the folded path.
    other = net(src + 0.5, t, r, cond)
    assert (other - folded).abs().max() > 1e-3
