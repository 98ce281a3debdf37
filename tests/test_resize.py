from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from flowmapsr.resize import imresize


def test_upsampling_matches_pillow_bicubic_in_the_interior(gen):
    # Pillow's BICUBIC is the same a = −0.5 Keys kernel; borders differ (Pillow renormalises a
    # clipped kernel, MATLAB mirrors), so compare away from them.
    x = torch.rand(1, 1, 37, 53, generator=gen)
    y = imresize(x, scale=4)
    assert y.shape == (1, 1, 148, 212)
    ref = np.asarray(Image.fromarray(x[0, 0].numpy(), mode="F").resize((212, 148), Image.BICUBIC))
    assert np.abs(ref - y[0, 0].numpy())[8:-8, 8:-8].max() < 1e-5


def test_constant_image_stays_constant_and_sizes():
    x = torch.full((2, 3, 20, 30), 0.3)
    for kw in ({"scale": 0.25}, {"scale": 3}, {"size": (7, 11)}):
        y = imresize(x, **kw)
        torch.testing.assert_close(y, torch.full_like(y, 0.3))
    assert imresize(x, size=(7, 11)).shape == (2, 3, 7, 11)
    with pytest.raises(ValueError):
        imresize(x)


def test_antialiased_downscale_removes_aliasing():
    # A pixel-level checkerboard averages to grey with antialiasing, aliases without.
    x = (torch.arange(64).view(1, -1) + torch.arange(64).view(-1, 1)) % 2
    x = x.float().view(1, 1, 64, 64)
    aa = imresize(x, scale=0.25)
    assert (aa - 0.5).abs().max() < 0.02
    # Without antialiasing the kernel is not stretched: white noise keeps more variance.
    noise = torch.rand(1, 1, 128, 128, generator=torch.Generator().manual_seed(0))
    assert (
        imresize(noise, scale=0.25, antialias=False).std() > 2 * imresize(noise, scale=0.25).std()
    )


def _gather_resize(x, s):
    """The generic gather path on both axes (the integer fast path's reference)."""
    from flowmapsr.resize import _axis_weights

    def axis(v, out):
        idx, w = _axis_weights(v.shape[-1], out, float(s), True, v.device, v.dtype)
        return (v[..., idx] * w).sum(-1)

    h, w = x.shape[-2:]
    return axis(axis(x.transpose(-1, -2), h * s).transpose(-1, -2), w * s)


@pytest.mark.parametrize("s", [2, 3, 4, 8])
@pytest.mark.parametrize("n", [4, 5, 17])
def test_integer_upscale_fast_path_equals_the_gather_path(s, n):
    x = torch.rand(2, 3, n + 2, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    torch.testing.assert_close(imresize(x, scale=s), _gather_resize(x, s), rtol=0, atol=1e-12)
