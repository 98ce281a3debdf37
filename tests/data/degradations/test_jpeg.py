import pytest
import torch

from flowmapsr.data.degradations.config import JpegConfig
from flowmapsr.data.degradations.jpeg import apply_jpeg, draw_jpeg, jpeg_roundtrip


def _smooth_image():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 40), indexing="ij")
    return torch.stack([xx, yy, 0.5 * (xx + yy)]).unsqueeze(0)


def _psnr(a, b):
    return (10 * torch.log10(1 / (a - b).pow(2).mean())).item()


def test_jpeg_quality_orders_the_error():
    x = _smooth_image()
    x[..., 20:28, 10:30] = 1.0  # an edge for the blocks to ring on
    hi, lo = jpeg_roundtrip(x, 95), jpeg_roundtrip(x, 10)
    assert hi.shape == x.shape and lo.shape == x.shape
    assert _psnr(hi, x) > 35 and _psnr(hi, x) > _psnr(lo, x) + 5
    assert torch.allclose(hi * 255, (hi * 255).round(), atol=1e-4)  # 8-bit values
    assert torch.equal(hi, jpeg_roundtrip(x, 95))  # deterministic


def test_jpeg_keeps_colour_order():
    x = torch.zeros(1, 3, 16, 16)
    x[:, 0] = 1.0  # pure red stays red (RGB/BGR not swapped)
    y = jpeg_roundtrip(x, 90)
    assert y[0, 0].mean() > 0.9 and y[0, 2].mean() < 0.1


def test_draw_and_apply_jpeg():
    g = torch.Generator().manual_seed(0)
    assert draw_jpeg(g, JpegConfig(prob=0.0)) is None
    qs = [draw_jpeg(g, JpegConfig(quality=[30, 40]))["quality"] for _ in range(50)]
    assert min(qs) >= 30 and max(qs) <= 40 and isinstance(qs[0], int)
    x = _smooth_image()
    assert torch.equal(apply_jpeg(x, None), x)
    with pytest.raises(ValueError):
        jpeg_roundtrip(torch.rand(2, 3, 8, 8), 50)
