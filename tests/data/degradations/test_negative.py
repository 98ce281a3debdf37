import torch

from flowmapsr.data.degradations import NegativeConfig, draw_negative, make_negative
from flowmapsr.data.degradations.sampling import seeded_generator


def _gens(seed, n):
    return [seeded_generator(seed, i) for i in range(n)]


def test_negative_targets_are_same_size_lower_quality_and_seeded():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 3, 48, 48, generator=g)  # pure texture: any degradation changes it
    neg = make_negative(hr, _gens(0, 3))
    assert neg.shape == hr.shape and neg.min() >= 0 and neg.max() <= 1
    assert ((neg - hr).abs().flatten(1).mean(1) > 0.02).all()

    # Lower quality: less high-frequency energy than the HR.
    def hf(x):
        return (x[..., 1:] - x[..., :-1]).abs().mean()

    assert hf(neg) < hf(hr)
    assert torch.equal(neg, make_negative(hr, _gens(0, 3)))
    assert not torch.equal(neg, make_negative(hr, _gens(1, 3)))


def test_draw_negative_always_does_something():
    cfg = NegativeConfig(blur_prob=0.0, downup_prob=0.0, jpeg_prob=0.0)
    for i in range(10):
        p = draw_negative(seeded_generator(i), cfg)
        assert sum(v is not None for v in p.values()) == 1
