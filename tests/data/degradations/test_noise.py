import pytest
import torch

from flowmapsr.data.degradations.config import NoiseConfig
from flowmapsr.data.degradations.noise import (
    apply_noise,
    draw_noise,
    gaussian_noise,
    poisson_noise,
)


def _g(seed):
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_strength_and_colour():
    x = torch.full((1, 3, 96, 96), 0.5)
    y = gaussian_noise(x, 20.0, gray=False, g=_g(0))
    n = y - x
    assert n.std().item() == pytest.approx(20 / 255, rel=0.05)
    assert abs(n.mean().item()) < 0.003
    assert not torch.equal(n[0, 0], n[0, 1])  # colour noise: channels differ
    grey = gaussian_noise(x, 20.0, gray=True, g=_g(0)) - x
    assert torch.equal(grey[0, 0], grey[0, 1]) and torch.equal(grey[0, 1], grey[0, 2])


def test_gaussian_noise_clips_and_is_seeded():
    x = torch.zeros(1, 3, 16, 16)
    y = gaussian_noise(x, 30.0, False, _g(1))
    assert y.min() >= 0 and y.max() <= 1 and y.max() > 0
    assert torch.equal(y, gaussian_noise(x, 30.0, False, _g(1)))
    assert not torch.equal(y, gaussian_noise(x, 30.0, False, _g(2)))


def test_poisson_noise_is_signal_dependent_and_unbiased():
    x = torch.zeros(1, 3, 96, 96)
    x[..., :48, :] = 0.1
    x[..., 48:, :] = 0.7
    x[..., 0, :] = torch.arange(96) / 255  # many distinct values -> vals = 128 photons per unit
    y = poisson_noise(x, 1.0, False, _g(0)) - x
    dark, bright = y[..., 8:40, :], y[..., 56:, :]
    # Poisson(λ·vals)/vals has variance λ/vals: it grows with the signal.
    assert dark.var().item() == pytest.approx(0.1 / 128, rel=0.15)
    assert bright.var().item() == pytest.approx(0.7 / 128, rel=0.15)
    assert abs(bright.mean().item()) < 0.003


def test_poisson_noise_scale_zero_is_identity_on_8bit_images():
    x = torch.randint(0, 256, (1, 3, 16, 16), generator=_g(3)).float() / 255
    assert torch.allclose(poisson_noise(x, 0.0, False, _g(0)), x)
    y = poisson_noise(x, 1.0, True, _g(0)) - x
    inner = (x > 0.05) & (x < 0.95)  # away from clipping the grey noise is shared
    diff01 = (y[0, 0] - y[0, 1])[inner[0, 0] & inner[0, 1]]
    assert diff01.abs().max() < 1e-6


def test_draw_noise_choices():
    g = _g(5)
    assert draw_noise(g, NoiseConfig(prob=0.0)) is None
    p = draw_noise(g, NoiseConfig(gaussian_prob=1.0, sigma=[3.0, 4.0]))
    assert p["type"] == "gaussian" and 3.0 <= p["sigma"] <= 4.0
    p = draw_noise(g, NoiseConfig(gaussian_prob=0.0, poisson_scale=[0.1, 0.2]))
    assert p["type"] == "poisson" and 0.1 <= p["scale"] <= 0.2
    x = torch.rand(1, 3, 8, 8, generator=g)
    assert torch.equal(apply_noise(x, None, g), x)
    with pytest.raises(ValueError):
        apply_noise(x, {"type": "speckle"}, g)
