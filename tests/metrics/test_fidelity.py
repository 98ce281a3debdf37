"""PSNR / SSIM on Y: calibration on made-up images, and the published bicubic x4 values."""

from __future__ import annotations

import math

import pytest
import torch

from flowmapsr.metrics import create_metric
from flowmapsr.metrics.fidelity import psnr_from_mse
from flowmapsr.metrics.files import list_images, load_image, load_image_info, quantize
from flowmapsr.resize import imresize

Y_SUM = (65.481 + 128.553 + 24.966) / 255.0  # dY/dv for an equal change v of R, G and B


def test_psnr_of_known_mse(gen):
    ref = torch.rand(2, 3, 24, 20, generator=gen, dtype=torch.float64) * 0.8
    delta = torch.tensor([0.01, 0.05], dtype=torch.float64).view(2, 1, 1, 1)
    pred = ref + delta  # every pixel's Y moves by delta·219/255 (in [0,1] units)
    got = create_metric("psnr")(pred, ref)
    for i, d in enumerate([0.01, 0.05]):
        mse = (d * Y_SUM * 255.0) ** 2
        assert got[i].item() == pytest.approx(10 * math.log10(255.0**2 / mse), abs=1e-6)
        assert got[i].item() == pytest.approx(psnr_from_mse(mse), abs=1e-6)


def test_psnr_crop_border_ignores_the_border(gen):
    ref = torch.rand(1, 3, 32, 32, generator=gen)
    pred = ref.clone()
    pred[..., :4, :] = 0.0  # damage only the top 4 rows
    assert math.isfinite(create_metric("psnr")(pred, ref).item())
    assert math.isinf(create_metric("psnr", crop_border=4)(pred, ref).item())


def test_ssim_identity_and_monotonic(gen):
    ref = torch.rand(1, 3, 48, 48, generator=gen)
    ssim = create_metric("ssim")
    assert ssim(ref, ref).item() == pytest.approx(1.0, abs=1e-12)
    noise = torch.randn(1, 3, 48, 48, generator=gen)
    values = [ssim((ref + s * noise).clamp(0, 1), ref).item() for s in (0.02, 0.1, 0.3)]
    assert values[0] > values[1] > values[2]


def test_ssim_of_flat_images_matches_closed_form():
    # Constant images: variances and covariance vanish, SSIM = (2ab + C1) / (a² + b² + C1).
    a_v, b_v = 0.3, 0.6
    a = torch.full((1, 3, 16, 16), a_v, dtype=torch.float64)
    b = torch.full((1, 3, 16, 16), b_v, dtype=torch.float64)
    ya, yb = (16 + 255 * Y_SUM * a_v), (16 + 255 * Y_SUM * b_v)
    c1 = (0.01 * 255) ** 2
    expect = (2 * ya * yb + c1) / (ya**2 + yb**2 + c1)
    assert create_metric("ssim")(a, b).item() == pytest.approx(expect, rel=1e-10)


def test_grey_files_use_grey_values(gen):
    g = torch.rand(1, 1, 20, 20, generator=gen).expand(1, 3, 20, 20)
    h = (g + 0.1).clamp(0, 1)
    psnr = create_metric("psnr")
    mse_grey = ((g - h) * 255).double().pow(2).mean().item()
    grey = psnr(g, h, grey=torch.tensor([True])).item()
    assert grey == pytest.approx(psnr_from_mse(mse_grey), abs=1e-6)
    assert psnr(g, h).item() != pytest.approx(grey, abs=1e-3)  # Y = 16 + 219/255·v differs


def test_grey_pair_with_a_colour_prediction_compares_luma(gen):
    # A colour pipeline's output for a grey file has channels that differ by rounding: it must
    # be compared on its luma, on the reference's grey scale (not on Y against grey values).
    g = torch.rand(1, 1, 20, 20, generator=gen, dtype=torch.float64).expand(1, 3, 20, 20)
    tint = torch.tensor([1e-3, 0.0, -1e-3], dtype=torch.float64).view(1, 3, 1, 1)
    pred = g + tint
    luma = (pred * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)).sum(
        1, keepdim=True
    )
    mse = ((luma - g[:, :1]) * 255).pow(2).mean().item()
    got = create_metric("psnr")(pred, g, grey=torch.tensor([True])).item()
    assert got == pytest.approx(psnr_from_mse(mse), rel=1e-9)
    assert got > 55  # nearly identical images, not the ~17 dB of a Y-vs-grey mismatch


def test_shape_checks(gen):
    x = torch.rand(1, 3, 16, 16, generator=gen)
    with pytest.raises(ValueError, match="differ"):
        create_metric("psnr")(x, x[..., :8])
    with pytest.raises(ValueError, match="full-reference"):
        create_metric("ssim")(x)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        create_metric("psnr")(x[:, :1], x[:, :1])


@pytest.mark.parametrize(
    ("name", "psnr", "ssim"), [("Set5", 28.42, 0.8104), ("Set14", 26.00, 0.7027)]
)
def test_published_bicubic_x4(shared_data, name, psnr, ssim):
    """Bicubic x4 (MATLAB kernel) on the classic sets: Y channel, border 4, 8-bit outputs."""
    hr_dir, lr_dir = (
        shared_data / "bench" / name / "x4" / "HR",
        shared_data / "bench" / name / "x4" / "LR",
    )
    if not hr_dir.is_dir():
        pytest.skip(f"{hr_dir} missing")
    m_psnr, m_ssim = create_metric("psnr", crop_border=4), create_metric("ssim", crop_border=4)
    ps, ss = [], []
    for hr_path in list_images(hr_dir):
        hr, grey = load_image_info(hr_path)
        lr = load_image(lr_dir / hr_path.name.replace("_HR", "_LR"))
        sr = quantize(imresize(lr, scale=4))
        hr = hr[..., : sr.shape[-2], : sr.shape[-1]]
        g = torch.tensor([grey])
        ps.append(m_psnr(sr, hr, grey=g).item())
        ss.append(m_ssim(sr, hr, grey=g).item())
    assert sum(ps) / len(ps) == pytest.approx(psnr, abs=0.02)
    assert sum(ss) / len(ss) == pytest.approx(ssim, abs=0.002)
