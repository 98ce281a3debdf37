from __future__ import annotations

import torch

from flowmapsr.paths import BridgePath


def test_endpoints_and_velocity(gen):
    hr, src = torch.randn(4, 3, 8, 8, generator=gen), torch.randn(4, 3, 8, 8, generator=gen)
    path = BridgePath(bridge_noise=0.0)
    torch.testing.assert_close(path.sample(hr, src, torch.zeros(4)), hr)
    torch.testing.assert_close(path.sample(hr, src, torch.ones(4)), src)
    t = torch.rand(4, generator=gen)
    x = path.sample(hr, src, t)
    tb = t.view(4, 1, 1, 1)
    torch.testing.assert_close(x, (1 - tb) * hr + tb * src)
    torch.testing.assert_close(path.velocity(hr, src), src - hr)


def test_bridge_noise_vanishes_at_ends_and_is_seeded():
    hr, src = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    path = BridgePath(bridge_noise=0.5)
    for t in (0.0, 1.0):
        x = path.sample(hr, src, torch.full((2,), t), generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(x, hr if t == 0 else src)
    t = torch.full((2,), 0.5)
    a = path.sample(hr, src, t, generator=torch.Generator().manual_seed(1))
    b = path.sample(hr, src, t, generator=torch.Generator().manual_seed(1))
    c = path.sample(hr, src, t, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # noise std at t = 0.5 is b·sqrt(0.25) = 0.25
    big = path.sample(
        torch.zeros(64, 1, 32, 32),
        torch.zeros(64, 1, 32, 32),
        torch.full((64,), 0.5),
        generator=torch.Generator().manual_seed(3),
    )
    assert abs(big.std().item() - 0.25) < 0.01
