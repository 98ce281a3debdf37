from __future__ import annotations

import pytest
import torch

from flowmapsr.paths import PairSampler, PairSamplerConfig, TimeSampler, TimeSamplerConfig
from flowmapsr.paths.time_sampling import PAIR_SAMPLERS, diagonal_mask, register_pair_sampler


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


# -- the pair-sampler registry ---------------------------------------------------------------
LBM_VALUES = [0, 0.25, 0.5, 0.75, 1, 1, 1, 1]  # model-training/default/README.md's recipe
TIME_KINDS = [
    TimeSamplerConfig(),
    TimeSamplerConfig(kind="logit_normal", mean=0.5, std=2.0),
    TimeSamplerConfig(kind="discrete", values=LBM_VALUES),
]


@pytest.mark.parametrize("time", TIME_KINDS, ids=lambda c: c.kind)
@pytest.mark.parametrize("name", sorted(PAIR_SAMPLERS))
def test_every_registered_pair_sampler(name, time):
    ps = PairSampler(PairSamplerConfig(sampler=name, time=time, diagonal_fraction=0.25))
    t, r, diag = ps(801, torch.Generator().manual_seed(4))
    assert t.shape == r.shape == diag.shape == (801,) and diag.dtype == torch.bool
    assert int(diag.sum()) == round(801 * 0.25)
    assert torch.all(r[diag] == t[diag])
    assert torch.all(r[~diag] < t[~diag])  # strictly: no ties off the diagonal
    assert torch.all((0 <= r) & (t <= 1))
    again = ps(801, torch.Generator().manual_seed(4))
    assert all(torch.equal(x, y) for x, y in zip((t, r, diag), again, strict=True))
    other = ps(801, torch.Generator().manual_seed(5))
    assert not torch.equal(t, other[0])


def test_default_sampler_is_max_min_and_keeps_the_random_stream():
    """No off-diagonal tie → the same numbers as the rule before the registry existed."""
    assert PairSamplerConfig().sampler == "max_min"
    ps = PairSampler(PairSamplerConfig(diagonal_fraction=0.5))
    t, r, diag = ps(64, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    a, b = torch.rand(64, generator=g), torch.rand(64, generator=g)
    assert torch.equal(t, torch.maximum(a, b))
    assert torch.equal(r, torch.where(diag, t, torch.minimum(a, b)))


def test_discrete_times_have_no_off_diagonal_ties():
    time = TimeSamplerConfig(kind="discrete", values=LBM_VALUES)
    ps = PairSampler(PairSamplerConfig(time=time, diagonal_fraction=0.0))
    t, r, _ = ps(20_000, torch.Generator().manual_seed(0))
    assert torch.all(r < t)
    grid = set(LBM_VALUES)
    assert set(t.tolist()) <= grid and set(r.tolist()) <= grid
    # The pairs follow (a, b) given a ≠ b: P(t = 1) = P(one of the two draws is 1 | a ≠ b)
    # = 2·(1/2)·(1/2) / (1 − 20/64) = 0.727…; 1 is never r, 0 never t.
    assert abs(float((t == 1).double().mean()) - (0.5 / (44 / 64))) < 0.01
    assert not torch.any(r == 1) and not torch.any(t == 0)


def test_continuous_ties_are_redrawn():
    """A saturated logit-normal gives many t = 1 draws in float32; pairs stay strict."""
    time = TimeSamplerConfig(kind="logit_normal", mean=30.0, std=10.0)
    sampler = TimeSampler(time)
    draws = sampler(4000, torch.Generator().manual_seed(0))
    assert (draws == 1).float().mean() > 0.9  # the case: most draws are exactly 1.0
    ps = PairSampler(PairSamplerConfig(time=time, diagonal_fraction=0.0))
    t, r, _ = ps(4000, torch.Generator().manual_seed(0))
    assert torch.all(r < t)


def test_pairs_that_cannot_differ_are_refused():
    for time in (
        TimeSamplerConfig(kind="discrete", values=[1, 1]),
        TimeSamplerConfig(t_min=0.5, t_max=0.5),
    ):
        with pytest.raises(ValueError, match="no pair has r < t"):
            PairSampler(PairSamplerConfig(time=time, diagonal_fraction=0.5))(4, torch.Generator())
        # Diagonal only (and fm, which draws single times): nothing to refuse.
        PairSampler(PairSamplerConfig(time=time, diagonal_fraction=1.0))(4, torch.Generator())
    with pytest.raises(ValueError, match=r"unknown pair sampler 'nope' \(registered: .*max_min"):
        PairSampler(PairSamplerConfig(sampler="nope"))


def test_a_registered_rule_is_selected_by_config():
    def all_to_zero(config, time, n, generator=None, device=None):
        t = time(n, generator, device).clamp_min(1e-3)
        diag = diagonal_mask(n, config.diagonal_fraction, device)
        return t, torch.where(diag, t, torch.zeros_like(t)), diag

    register_pair_sampler("to_zero", all_to_zero)
    try:
        t, r, diag = PairSampler(PairSamplerConfig(sampler="to_zero"))(8, torch.Generator())
        assert torch.all(r[~diag] == 0) and int(diag.sum()) == 6
    finally:
        del PAIR_SAMPLERS["to_zero"]
