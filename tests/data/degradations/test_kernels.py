import math

import numpy as np
import pytest
import scipy.ndimage
import torch

from flowmapsr.data.degradations.config import KernelConfig
from flowmapsr.data.degradations.kernels import (
    delta_kernel,
    draw_kernel,
    filter2d,
    gaussian_kernel,
    generalized_gaussian_kernel,
    make_kernel,
    pad_kernel,
    plateau_kernel,
    sinc_kernel,
    usm_sharpen,
)

ALL = [
    ("gauss_iso", lambda: gaussian_kernel(21, 2.0, 2.0)),
    ("gauss_aniso", lambda: gaussian_kernel(21, 3.0, 0.7, 0.6)),
    ("gen_iso", lambda: generalized_gaussian_kernel(15, 1.5, 1.5, 0.0, 0.6)),
    ("gen_aniso", lambda: generalized_gaussian_kernel(15, 2.5, 1.0, -1.0, 3.0)),
    ("plateau_iso", lambda: plateau_kernel(13, 1.2, 1.2, 0.0, 1.5)),
    ("plateau_aniso", lambda: plateau_kernel(13, 2.0, 0.5, 2.0, 1.8)),
    ("sinc", lambda: sinc_kernel(17, math.pi / 4)),
]


@pytest.mark.parametrize("name,make", ALL)
def test_kernels_sum_to_one_and_are_point_symmetric(name, make):
    k = make()
    assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
    # Every kernel here is even: k(-x) = k(x), so correlation equals convolution.
    assert torch.allclose(k, k.flip(0).flip(1), atol=1e-15)


@pytest.mark.parametrize("name", ["gauss_iso", "gen_iso", "plateau_iso", "sinc"])
def test_isotropic_kernels_have_all_mirror_symmetries(name):
    k = dict(ALL)[name]()
    assert torch.allclose(k, k.flip(0), atol=1e-15)
    assert torch.allclose(k, k.flip(1), atol=1e-15)
    assert torch.allclose(k, k.t(), atol=1e-15)


def test_anisotropic_kernel_is_not_mirror_symmetric():
    k = gaussian_kernel(21, 3.0, 0.7, 0.6)
    assert not torch.allclose(k, k.flip(0), atol=1e-6)


def test_gaussian_matches_separable_formula():
    k = gaussian_kernel(9, 1.3, 1.3)
    ax = torch.arange(9, dtype=torch.float64) - 4
    g1 = torch.exp(-0.5 * (ax / 1.3) ** 2)
    g1 = g1 / g1.sum()
    assert torch.allclose(k, torch.outer(g1, g1), atol=1e-12)


def test_rotation_by_90_degrees_swaps_axes():
    a = gaussian_kernel(15, 3.0, 1.0, 0.0)
    b = gaussian_kernel(15, 1.0, 3.0, 0.0)
    c = gaussian_kernel(15, 3.0, 1.0, math.pi / 2)
    assert torch.allclose(b, c, atol=1e-12)
    # sigma_x is along columns (x): the wide kernel varies slowly along a row.
    assert a[7, 0] > a[0, 7]


def test_sinc_kernel_values_and_padding():
    k = sinc_kernel(11, math.pi / 3)
    assert k[5, 5] == k.max()
    assert (k < 0).any()  # ringing lobes: a sinc is not a positive blur
    p = sinc_kernel(11, math.pi / 3, pad_to=21)
    assert p.shape == (21, 21)
    assert torch.allclose(p[5:16, 5:16], k) and p.sum().item() == pytest.approx(1.0)


def test_pad_kernel_and_delta():
    d = delta_kernel(5)
    assert d.sum() == 1 and d[2, 2] == 1
    assert pad_kernel(d, 9)[4, 4] == 1
    with pytest.raises(ValueError):
        pad_kernel(d, 6)


def test_draw_kernel_respects_config(gen):
    cfg = KernelConfig(sizes=[7, 9], sigma=[0.5, 1.0], sinc_prob=0.0)
    for _ in range(40):
        p = draw_kernel(gen, cfg)
        assert p["size"] in (7, 9)
        assert 0.5 <= p["sigma_x"] <= 1.0 and 0.5 <= p["sigma_y"] <= 1.0
        if p["type"].endswith("iso") and not p["type"].endswith("aniso"):
            assert p["sigma_x"] == p["sigma_y"] and p["theta"] == 0.0
        if p["type"].startswith("generalized"):
            assert 0.5 <= p["beta"] <= 4.0
        k = make_kernel(p)
        assert k.shape == (p["size"], p["size"])
    sinc = draw_kernel(gen, KernelConfig(sinc_prob=1.0))
    assert sinc["type"] == "sinc" and math.pi / 5 <= sinc["omega_c"] <= math.pi


def test_draw_kernel_follows_type_probabilities():
    g = torch.Generator().manual_seed(0)
    cfg = KernelConfig(types=["iso", "aniso"], probs=[0.9, 0.1], sinc_prob=0.0)
    kinds = [draw_kernel(g, cfg)["type"] for _ in range(300)]
    assert 0.8 < kinds.count("iso") / 300 < 0.97


def test_filter2d_matches_scipy_mirror_correlation(gen):
    x = torch.rand(2, 3, 20, 17, generator=gen, dtype=torch.float64)
    k1 = gaussian_kernel(7, 2.0, 0.8, 0.4)
    k2 = plateau_kernel(7, 1.0, 1.0, 0.0, 1.2)
    y = filter2d(x, torch.stack([k1, k2]))
    for i, k in enumerate((k1, k2)):
        for c in range(3):
            ref = scipy.ndimage.correlate(x[i, c].numpy(), k.numpy(), mode="mirror")
            np.testing.assert_allclose(y[i, c].numpy(), ref, atol=1e-12)


def test_filter2d_identity_and_constant(gen):
    x = torch.rand(1, 3, 12, 12, generator=gen)
    assert torch.allclose(filter2d(x, delta_kernel(5)), x)
    c = torch.full((1, 3, 12, 12), 0.3)
    assert torch.allclose(filter2d(c, gaussian_kernel(9, 2.0, 2.0)), c, atol=1e-6)
    # Kernel larger than the image: replicate padding instead of a reflect error.
    tiny = torch.rand(1, 3, 4, 4, generator=gen)
    assert filter2d(tiny, gaussian_kernel(21, 2.0, 2.0)).shape == tiny.shape


def test_usm_sharpen_boosts_edges_and_keeps_flat_areas():
    x = torch.full((1, 3, 64, 64), 0.4)
    assert torch.allclose(usm_sharpen(x), x, atol=1e-6)
    x[..., 32:] = 0.6
    y = usm_sharpen(x)
    assert y.min() >= 0 and y.max() <= 1
    assert y[0, 0, 10, 33] > 0.6 and y[0, 0, 10, 30] < 0.4  # overshoot on both sides
