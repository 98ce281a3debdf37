from __future__ import annotations

import pytest
import torch

from flowmapsr.paths import PairSampler, PairSamplerConfig, TimeSampler, TimeSamplerConfig


@pytest.mark.parametrize("kind", ["uniform", "logit_normal"])
def test_time_sampler_range_and_reproducible(kind):
    s = TimeSampler(TimeSamplerConfig(kind=kind, t_min=0.1, t_max=0.9))
    a = s(10_000, torch.Generator().manual_seed(0))
    b = s(10_000, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert a.min() >= 0.1 and a.max() <= 0.9


def test_logit_normal_concentrates_around_sigmoid_mean():
    s = TimeSampler(TimeSamplerConfig(kind="logit_normal", mean=1.0, std=0.5))
    t = s(20_000, torch.Generator().manual_seed(0))
    assert abs(t.median().item() - torch.sigmoid(torch.tensor(1.0)).item()) < 0.01
    u = TimeSampler()(20_000, torch.Generator().manual_seed(0))
    assert abs(u.mean().item() - 0.5) < 0.01


def test_discrete_times():
    s = TimeSampler(TimeSamplerConfig(kind="discrete", values=[0.25, 0.5, 1.0]))
    t = s(1000, torch.Generator().manual_seed(0))
    assert set(t.unique().tolist()) == {0.25, 0.5, 1.0}
    with pytest.raises(ValueError):
        TimeSampler(TimeSamplerConfig(kind="discrete"))


def test_pair_sampler_diagonal_fraction_and_order():
    ps = PairSampler(PairSamplerConfig(diagonal_fraction=0.75))
    t, r, diag = ps(400, torch.Generator().manual_seed(0))
    assert diag.sum() == 300
    assert torch.all(r <= t)
    assert torch.all(r[diag] == t[diag]) and torch.all(r[~diag] < t[~diag])


def test_pair_sampler_min_gap():
    ps = PairSampler(PairSamplerConfig(diagonal_fraction=0.0, min_gap=0.2))
    t, r, _ = ps(1000, torch.Generator().manual_seed(0))
    ok = t >= 0.2
    assert torch.all(t[ok] - r[ok] >= 0.2 - 1e-6)
