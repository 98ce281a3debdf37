"""NIQE: the pristine model, the AGGD fit against known parameters, behaviour, reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from flowmapsr.metrics import create_metric
from flowmapsr.metrics.files import load_image
from flowmapsr.metrics.niqe import aggd_fit, niqe_window, pristine_model


def test_pristine_model_shapes_and_window():
    mu, cov = pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert np.allclose(cov, cov.T)
    from importlib import resources

    ref = resources.files("flowmapsr.metrics") / "data" / "niqe_pris_params.npz"
    with resources.as_file(ref) as p, np.load(p) as d:
        assert np.allclose(d["gaussian_window"], niqe_window(), atol=1e-12)


@pytest.mark.parametrize("alpha", [0.8, 2.0, 3.0])
def test_aggd_fit_recovers_generalised_gaussian(alpha):
    rng = np.random.default_rng(0)
    n, beta_l, beta_r = 200_000, 0.7, 1.3
    # |x|/β ~ Gamma(1/α)^(1/α) gives a GGD of shape α; β is the AGGD scale of each side.
    mag = rng.gamma(1.0 / alpha, 1.0, size=n) ** (1.0 / alpha)
    left = rng.random(n) < beta_l / (beta_l + beta_r)  # side weights of the AGGD density
    x = np.where(left, -beta_l * mag, beta_r * mag)
    a, bl, br = aggd_fit(x)
    assert a == pytest.approx(alpha, rel=0.05)
    assert bl == pytest.approx(beta_l, rel=0.05) and br == pytest.approx(beta_r, rel=0.05)


def _natural_like(seed: int, size: int = 192) -> torch.Tensor:
    """A 1/f-spectrum random image (natural-image-like statistics), (1, 3, size, size) in [0, 1]."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    amp = 1.0 / np.maximum(np.hypot(*np.meshgrid(f, f)), 1.0 / size)
    phase = np.exp(2j * np.pi * rng.random((size, size)))
    img = np.real(np.fft.ifft2(amp * phase))
    img = (img - img.min()) / (img.max() - img.min())
    return torch.from_numpy(img).float().expand(1, 3, size, size).contiguous()


def test_niqe_rates_noise_and_blur_worse():
    niqe = create_metric("niqe")
    assert niqe.lower_better and not niqe.full_reference
    clean = _natural_like(1)
    rng = torch.Generator().manual_seed(0)
    noisy = (clean + 0.15 * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
    blurred = torch.from_numpy(gaussian_filter(clean.numpy(), sigma=(0, 0, 3, 3)))
    scores = niqe(torch.cat([clean, noisy, blurred]))
    assert scores[1] > scores[0] + 1.0 and scores[2] > scores[0] + 1.0
    assert all(math.isfinite(v) for v in scores.tolist())


def test_niqe_needs_two_blocks():
    with pytest.raises(ValueError, match="96x96"):
        create_metric("niqe")(torch.rand(1, 3, 96, 120))


# Reference values: BasicSR 1.4.2's niqe() (from the PyPI sdist, run on its own with the float64
# Y image, as MATLAB computes in double); see the issue-5 note for the script.
BASICSR_NIQE = {
    "bench/RealSR/HR/Canon_001_LR4.png": 6.38782,
    "bench/Set14/x4/HR/img_002_SRF_4_HR.png": 4.58391,
    "bench/ImageNetVal_RealESRGANdeg/HR/ILSVRC2012_val_00000067.png": 11.74329,
}


@pytest.mark.parametrize("rel", sorted(BASICSR_NIQE))
def test_niqe_matches_basicsr(shared_data, rel):
    path = shared_data / rel
    if not path.is_file():
        pytest.skip(f"{path} missing")
    got = create_metric("niqe")(load_image(path)).item()
    assert got == pytest.approx(BASICSR_NIQE[rel], abs=0.05)
