"""The perceptual loss terms: values, gradients, and the named fallback without weights."""

import pytest
import torch

from flowmapsr.objectives.perceptual import (
    LPIPSLoss,
    PerceptualConfig,
    SobelL1,
    TVLPIPSLoss,
    VGGFeatureLoss,
    build_perceptual,
    total_variation_map,
)

KINDS = ["lpips", "vgg", "tv_lpips"]


def test_total_variation_map():
    x = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])  # (1, 1, 2, 3)
    # ∂h at (0,0)=2, (0,1)=1; ∂w at (0,0)=1, (0,1)=2
    torch.testing.assert_close(total_variation_map(x), torch.tensor([[[[3.0, 3.0]]]]))


@pytest.mark.parametrize("kind", KINDS)
def test_each_loss_is_zero_on_equal_images_and_has_gradients(perceptual_weights, gen, kind):
    m, desc = build_perceptual(PerceptualConfig(kind=kind, weight=1.0))
    assert "pretrained" in desc or desc.startswith("vgg features")
    y = torch.rand(2, 3, 40, 40, generator=gen) * 2 - 1
    assert m(y, y).abs().max() < 1e-5
    x = (y + 0.3 * torch.randn(2, 3, 40, 40, generator=gen)).requires_grad_(True)
    loss = m(x, y)
    assert loss.shape == (2,) and (loss > 0).all()
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert not any(p.requires_grad for p in m.parameters())


def test_tv_lpips_is_lpips_at_gamma_zero_and_adds_the_tv_term(perceptual_weights, gen):
    x = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    y = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    lp = LPIPSLoss("alex")
    torch.testing.assert_close(TVLPIPSLoss("alex", gamma=0.0)(x, y), lp(x, y))
    expected = lp(x, y) + 0.5 * lp(total_variation_map(x), total_variation_map(y))
    torch.testing.assert_close(TVLPIPSLoss("alex", gamma=0.5)(x, y), expected)


def test_vgg_layers_are_weighted_by_name(perceptual_weights, gen):
    x = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    y = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    a = VGGFeatureLoss({"conv3_3": 1.0})(x, y)
    b = VGGFeatureLoss({"conv1_2": 1.0})(x, y)
    # the order of the names does not matter, the weights do
    both = VGGFeatureLoss({"conv3_3": 2.0, "conv1_2": 0.5})(x, y)
    torch.testing.assert_close(both, 2 * a + 0.5 * b)
    with pytest.raises(ValueError, match="unknown VGG16 layer"):
        VGGFeatureLoss({"conv6_1": 1.0})


@pytest.mark.parametrize("kind", KINDS)
def test_missing_weights_fall_back_by_name(monkeypatch, tmp_path, kind):
    monkeypatch.setenv("FLOWMAPSR_WEIGHTS_DIR", str(tmp_path))
    m, desc = build_perceptual(PerceptualConfig(kind=kind, weight=0.1))
    assert isinstance(m, SobelL1) and desc.startswith("sobel_l1")
    assert f"{kind} unavailable" in desc and "flowmapsr weights fetch" in desc
    m, desc = build_perceptual(PerceptualConfig(kind=kind, fallback="none", weight=0.1))
    assert m is None and desc.startswith("none (")


def test_off_and_unknown():
    assert build_perceptual(PerceptualConfig(kind="lpips", weight=0.0)) == (None, "none")
    assert build_perceptual(PerceptualConfig(kind="none", weight=1.0)) == (None, "none")
    with pytest.raises(ValueError, match="unknown perceptual kind"):
        build_perceptual(PerceptualConfig(kind="ssim", weight=1.0))
