"""Tiling: exact when one tile covers the image, ≥ 45 dB from untiled otherwise, no border seams."""

from __future__ import annotations

import math

import pytest
import torch

import flowmapsr.inference.tiling as tiling
from flowmapsr.inference.pipeline import model_scale_for, output_size
from flowmapsr.inference.random_model import random_pipeline
from flowmapsr.inference.tiling import NoiseField, gaussian_weights, plan_tiles, upscale_tiled

TINY = {"type": "small", "channels": 16, "blocks": 2}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def textured(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """``(1, 3, h, w)`` in [0, 1]: smooth colour regions plus fine noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(h // 8, 1), max(w // 8, 1), generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")
    return (img + 0.08 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def pipe():
    # Random weights everywhere (zero-initialised layers too) and source noise on: tiles that
    # did not share context or noise would disagree visibly.
    return random_pipeline(TINY, seed=3, source_noise=0.1)


@pytest.mark.parametrize("h,w,scale,tile,overlap", [(50, 37, 4, 16, 4), (64, 64, 2, 24, 8)])
def test_plan_covers_image_with_overlap(h, w, scale, tile, overlap):
    plan = plan_tiles(h, w, scale, 4, tile, overlap, border_pad=32)
    q = 4 // math.gcd(4, scale)
    assert plan.height % q == 0 and plan.width % q == 0
    assert (plan.height * scale) % 4 == 0 and (plan.width * scale) % 4 == 0
    top, bottom, left, right = plan.pad
    assert plan.height == h + top + bottom and plan.width == w + left + right
    assert top >= 1 and left >= 1  # the image border lies inside tiles, not on a tile edge
    for starts, size, length in ((plan.ys, plan.th, plan.height), (plan.xs, plan.tw, plan.width)):
        assert starts[0] == 0 and starts[-1] + size == length
        assert all(s % q == 0 for s in starts)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert all(size - g >= overlap - q for g in gaps)  # overlap kept (up to alignment)


def test_plan_rejects_bad_overlap():
    with pytest.raises(ValueError, match="overlap"):
        plan_tiles(64, 64, 4, 4, 16, 16, border_pad=32)


def test_one_tile_covering_the_image_equals_untiled_exactly(pipe):
    lr = textured(30, 22)
    untiled = pipe.upscale_tensor(lr, scale=4, seed=5)
    for tile in (64, 1000):
        tiled = pipe.upscale_tensor(lr, scale=4, seed=5, tile=tile, overlap=8)
        assert torch.equal(tiled, untiled)
    assert not torch.equal(untiled, pipe.upscale_tensor(lr, scale=4, seed=6))  # noise matters


def _border_and_interior_error(a, b, band):
    e = (a - b).abs()
    mask = torch.zeros_like(e, dtype=torch.bool)
    mask[..., :band, :] = mask[..., -band:, :] = True
    mask[..., :, :band] = mask[..., :, -band:] = True
    return float(e[mask].mean()), float(e[~mask].mean())


def test_tiled_matches_untiled_and_borders_are_not_worse(pipe):
    lr = textured(48, 40, seed=1)
    untiled = pipe.upscale_tensor(lr, scale=4, seed=2, steps=2)
    tiled = pipe.upscale_tensor(lr, scale=4, seed=2, steps=2, tile=16, overlap=6)
    assert tiled.shape == untiled.shape == (1, 3, 192, 160)
    assert psnr(tiled, untiled) >= 45.0
    # No blurry / seamed border regions: the error next to the image border is no larger than
    # in the interior (tiles at the border are reflect-padded like the untiled run).
    border, interior = _border_and_interior_error(tiled, untiled, band=16)
    assert border <= 2.0 * interior + 1e-6


def test_shared_noise_is_what_makes_tiles_agree(pipe, monkeypatch):
    """Negative control: noise drawn per tile (not once per image) breaks the 45 dB target."""
    lr = textured(48, 40, seed=1)
    untiled = pipe.upscale_tensor(lr, scale=4, seed=2)

    def per_tile(self, batch, y0, y1, x0, x1):
        g = torch.Generator().manual_seed(y0 * 100_003 + x0)
        return torch.randn(batch, self.channels, y1 - y0, x1 - x0, generator=g)

    monkeypatch.setattr(tiling.NoiseField, "crop", per_tile)
    tiled = pipe.upscale_tensor(lr, scale=4, seed=2, tile=16, overlap=6)
    assert psnr(tiled, untiled) < 45.0


def test_strips_arrive_once_in_order_and_stay_small(pipe):
    lr = textured(40, 28)
    strips = []
    tiles_seen = []
    g = torch.Generator().manual_seed(0)
    size = upscale_tiled(
        pipe,
        lr,
        4,
        lambda y0, s: strips.append((y0, s.shape)),
        generator=g,
        tile=12,
        overlap=4,
        on_tile=lambda n, total: tiles_seen.append((n, total)),
    )
    assert size == (160, 112)
    y = 0
    for y0, shape in strips:
        assert y0 == y and shape[3] == 112
        assert shape[2] <= 12 * 4  # one tile row at most: memory bounded by the tile size
        y += shape[2]
    assert y == 160
    total = tiles_seen[-1][1]
    assert [n for n, _ in tiles_seen] == list(range(1, total + 1)) and total > 4


def test_noise_field_crops_agree_and_are_gaussian():
    field = NoiseField(3, torch.Generator().manual_seed(0), block=16)
    big = field.crop(2, 0, 70, 5, 90)
    part = field.crop(2, 13, 40, 30, 61)
    assert torch.equal(part, big[:, :, 13:40, 25:56])
    assert not torch.equal(big[0], big[1])  # every image of a batch has its own noise
    assert abs(float(big.mean())) < 0.05 and abs(float(big.std()) - 1) < 0.05
    other = NoiseField(3, torch.Generator().manual_seed(1), block=16).crop(2, 13, 40, 30, 61)
    assert not torch.equal(part, other)


def test_gaussian_weights_peak_in_the_middle_and_vanish_at_edges():
    w = gaussian_weights(64)
    assert torch.allclose(w, w.flip(0))
    assert float(w.max()) == pytest.approx(float(w[31]), rel=1e-6)
    assert float(w[0]) < 1e-4


def test_scales_and_sizes():
    assert model_scale_for(4, [2, 4, 8]) == 4
    assert model_scale_for(3, [2, 4, 8]) == 4
    assert model_scale_for(1, [2, 4, 8]) == 2
    assert model_scale_for(16, [2, 4, 8]) == 8
    assert output_size(7, 5, 2.5) == (18, 12)
    with pytest.raises(ValueError):
        model_scale_for(0.5, [2, 4])


@pytest.mark.parametrize("scale,tile,overlap", [(2, 16, 8), (8, 8, 4), (1.5, 16, 8)])
def test_other_scales_run_tiled_and_untiled(pipe, scale, tile, overlap):
    lr = textured(36, 30)
    a = pipe.upscale_tensor(lr, scale=scale)
    b = pipe.upscale_tensor(lr, scale=scale, tile=tile, overlap=overlap)
    assert a.shape == b.shape == (1, 3, *output_size(36, 30, scale))
    assert psnr(a, b) >= 45.0


def test_bf16_runs_close_to_fp32():
    pipe = random_pipeline(TINY, seed=3)
    lr = textured(24, 24)
    ref = pipe.upscale_tensor(lr, scale=4)
    pipe.to(dtype=torch.bfloat16)
    low = pipe.upscale_tensor(lr, scale=4)
    assert low.dtype == torch.float32 and low.shape == ref.shape
    assert 25.0 < psnr(low, ref) < math.inf  # bf16 changes the result, but not by much


def test_batches_tile_like_single_images():
    pipe = random_pipeline(TINY, seed=3)
    lr = torch.cat([textured(20, 24, seed=1), textured(20, 24, seed=2)])
    both = pipe.upscale_tensor(lr, scale=4, tile=12, overlap=4)
    for i in range(2):
        one = pipe.upscale_tensor(lr[i : i + 1], scale=4, tile=12, overlap=4)
        torch.testing.assert_close(both[i : i + 1], one, atol=1e-5, rtol=0)
