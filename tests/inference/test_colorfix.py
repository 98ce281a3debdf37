"""Colour fix: AdaIN matches channel statistics; the wavelet fix swaps low frequencies only."""

from __future__ import annotations

import pytest
import torch

from flowmapsr.inference.colorfix import adain, apply_color_fix, wavelet_fix, wavelet_low
from flowmapsr.inference.random_model import random_pipeline


def _pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.nn.functional.interpolate(torch.rand(2, 3, 4, 4, generator=g), size=(64, 64))
    detail = 0.1 * torch.randn(2, 3, 64, 64, generator=g)
    tint = torch.tensor([0.15, -0.1, 0.05]).view(1, 3, 1, 1)
    return ref, (ref * 0.8 + tint + detail)


def test_adain_matches_mean_and_std():
    ref, x = _pair()
    y = adain(x, ref)
    torch.testing.assert_close(y.mean((-2, -1)), ref.mean((-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std((-2, -1)), ref.std((-2, -1)), atol=1e-4, rtol=1e-4)


def test_wavelet_fix_takes_colour_from_reference_and_keeps_detail():
    ref, x = _pair()
    y = wavelet_fix(x, ref)
    # Colour (the per-channel mean) now follows the reference, not the tinted input.
    assert float((y.mean((-2, -1)) - ref.mean((-2, -1))).abs().max()) < 0.01
    assert float((x.mean((-2, -1)) - ref.mean((-2, -1))).abs().max()) > 0.05
    # The high-frequency part is the input's (away from the replicate-padded borders).
    hy, hx = y - wavelet_low(y), x - wavelet_low(x)
    inner = (..., slice(8, -8), slice(8, -8))
    torch.testing.assert_close(hy[inner], hx[inner], atol=0.03, rtol=0)
    assert float(hx.std()) > 0.05


def test_apply_color_fix_dispatch_and_clamp():
    ref, x = _pair()
    assert apply_color_fix(x, ref, "none") is x
    for m in ("adain", "wavelet"):
        y = apply_color_fix(x, ref, m)
        assert float(y.min()) >= 0 and float(y.max()) <= 1
    with pytest.raises(ValueError, match="colour fix"):
        apply_color_fix(x, ref, "histogram")


@pytest.mark.parametrize("method", ["adain", "wavelet"])
def test_pipeline_colour_fix_pulls_output_to_source_colour(method):
    pipe = random_pipeline({"type": "small", "channels": 16, "blocks": 2}, seed=4, u_std=0.3)
    lr = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    src = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic")
    plain = pipe.upscale_tensor(lr, scale=4)
    fixed = pipe.upscale_tensor(lr, scale=4, color_fix=method)
    err_plain = (plain.mean((-2, -1)) - src.mean((-2, -1))).abs().max()
    err_fixed = (fixed.mean((-2, -1)) - src.mean((-2, -1))).abs().max()
    assert err_fixed < 0.5 * err_plain
