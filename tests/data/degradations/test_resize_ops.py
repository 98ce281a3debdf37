import pytest
import torch
import torch.nn.functional as F

from flowmapsr.data.degradations.config import ResizeConfig
from flowmapsr.data.degradations.resize_ops import draw_resize, resize
from flowmapsr.resize import imresize


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic", "matlab_bicubic"])
def test_resize_shapes(mode, gen):
    x = torch.rand(2, 3, 24, 20, generator=gen)
    assert resize(x, (7, 33), mode).shape == (2, 3, 7, 33)
    assert resize(x, (24, 20), mode) is x


def test_resize_modes_are_the_library_ops(gen):
    x = torch.rand(1, 3, 16, 16, generator=gen)
    assert torch.allclose(resize(x, (8, 8), "area"), F.avg_pool2d(x, 2))
    assert torch.equal(resize(x, (4, 4), "matlab_bicubic"), imresize(x, size=(4, 4)))
    ref = F.interpolate(x, size=(5, 9), mode="bicubic", align_corners=False)
    assert torch.equal(resize(x, (5, 9), "bicubic"), ref)
    with pytest.raises(ValueError):
        resize(x, (4, 4), "lanczos")


def test_draw_resize_ranges(gen):
    cfg = ResizeConfig(probs=[0.0, 1.0, 0.0], range=[0.5, 1.5])
    for _ in range(30):
        p = draw_resize(gen, cfg, (100, 60))
        assert p["updown"] == "down" and 0.5 <= p["factor"] <= 1.0
        assert p["size"] == [int(100 * p["factor"]), int(60 * p["factor"])]
    up = draw_resize(gen, ResizeConfig(probs=[1, 0, 0], range=[0.5, 1.5]), (10, 10))
    assert 1.0 <= up["factor"] <= 1.5
    keep = draw_resize(gen, ResizeConfig(probs=[0, 0, 1]), (10, 12))
    assert keep["size"] == [10, 12]
    tiny = draw_resize(gen, ResizeConfig(probs=[0, 1, 0], range=[0.01, 0.02]), (1, 1))
    assert tiny["size"] == [1, 1]
