"""The perceptual networks against their authors' published example values."""

import numpy as np
import pytest
import torch
from PIL import Image

from flowmapsr.nets.perceptual import VGG16_LAYERS, DISTSNet, FeatureStack, L2Pool, LPIPSNet


def _img(path) -> torch.Tensor:
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1)[None]


@pytest.fixture
def ref_dir(shared_data):
    return shared_data / "reference" / "perceptual"


@pytest.mark.parametrize(
    "net, other, value",
    [("alex", "ex_p0", 0.722), ("alex", "ex_p1", 0.138)],
)
def test_lpips_matches_the_published_example(perceptual_weights, ref_dir, net, other, value):
    m = LPIPSNet(net)
    d = m(_img(ref_dir / "ex_ref.png") * 2 - 1, _img(ref_dir / f"{other}.png") * 2 - 1)
    assert d.shape == (1,)
    assert abs(d.item() - value) < 0.002


def test_lpips_vgg_orders_the_example_like_alex(perceptual_weights, ref_dir):
    m = LPIPSNet("vgg")
    ref = _img(ref_dir / "ex_ref.png") * 2 - 1
    d0 = m(ref, _img(ref_dir / "ex_p0.png") * 2 - 1)
    d1 = m(ref, _img(ref_dir / "ex_p1.png") * 2 - 1)
    assert d1 < d0
    assert m(ref, ref).abs().max() < 1e-6


def test_dists_matches_the_published_example(perceptual_weights, ref_dir):
    d = DISTSNet()(_img(ref_dir / "r0.png"), _img(ref_dir / "r1.png"))
    assert abs(d.item() - 0.3347) < 0.0002


def test_batched_equals_one_by_one(perceptual_weights, gen):
    x = torch.rand(3, 3, 48, 40, generator=gen)
    y = torch.rand(3, 3, 48, 40, generator=gen)
    for m, scale in [(LPIPSNet("alex"), 2), (DISTSNet(), 1)]:
        batched = m(x * scale - (scale - 1), y * scale - (scale - 1))
        single = torch.cat([m(x[i : i + 1] * scale - scale + 1, y[i : i + 1] * scale - scale + 1)
                            for i in range(3)])  # fmt: skip
        torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
        assert not any(p.requires_grad for p in m.parameters())


def test_feature_stack_shapes_without_weights():
    alex = FeatureStack("alexnet")
    outs = alex(torch.zeros(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 192, 384, 256, 256]
    vgg = FeatureStack("vgg16", pool="l2")
    outs = vgg(torch.zeros(1, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)
    ]  # fmt: skip
    assert VGG16_LAYERS["conv1_1"] == 0 and VGG16_LAYERS["relu5_3"] == 29


def test_l2pool_of_a_constant_is_the_constant_inside():
    out = L2Pool(2)(torch.full((1, 2, 8, 8), 3.0))
    torch.testing.assert_close(out[..., 1:, 1:], torch.full((1, 2, 3, 3), 3.0))
