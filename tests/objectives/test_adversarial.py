import torch
import torch.nn.functional as F
from torch import nn

from flowmapsr.objectives.adversarial import (
    discriminator_step_loss,
    generator_step_loss,
    gradient_penalty,
    rpgan_d_loss,
    rpgan_g_loss,
)
from flowmapsr.objectives.perceptual import PerceptualConfig, SobelL1, build_perceptual


class LinearD(nn.Module):
    """D(x) = <w, x> + <v, source>: ∇_x D = w exactly, so R1 = R2 = ‖w‖²."""

    def __init__(self, shape, gen):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape, generator=gen))
        self.v = nn.Parameter(torch.randn(shape, generator=gen))

    def forward(self, x, source=None):
        out = (x * self.w).flatten(1).sum(1)
        return out if source is None else out + (source * self.v).flatten(1).sum(1)


def test_rpgan_formulas():
    a, b = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.0])
    assert torch.allclose(rpgan_d_loss(a, b), F.softplus(-(a - b)))
    assert torch.allclose(rpgan_g_loss(a, b), F.softplus(-(b - a)))
    # Relativistic: shifting both logits by a constant changes nothing.
    assert torch.allclose(rpgan_d_loss(a + 3, b + 3), rpgan_d_loss(a, b))


def test_gradient_penalty_matches_the_analytic_value(gen):
    d = LinearD((3, 4, 4), gen)
    x = torch.randn(2, 3, 4, 4, generator=gen, requires_grad=True)
    pen = gradient_penalty(d(x), x)
    assert torch.allclose(pen, d.w.pow(2).sum().expand(2))


def test_discriminator_loss_is_adv_plus_half_gamma_r1_r2(gen):
    d = LinearD((3, 4, 4), gen)
    real, fake, src = (torch.randn(2, 3, 4, 4, generator=gen) for _ in range(3))
    res = discriminator_step_loss(d, real, fake, src, gamma=2.0)
    expect = F.softplus(-(d(real, src) - d(fake, src))).mean() + 0.5 * 2.0 * 2 * d.w.pow(2).sum()
    assert torch.allclose(res.loss, expect)
    res.loss.backward()
    assert d.w.grad is not None
    no_pen = discriminator_step_loss(d, real, fake, src, gamma=0.0)
    assert "r1" not in no_pen.logs


def test_generator_loss_pushes_fakes_toward_higher_scores(gen):
    d = LinearD((3, 4, 4), gen)
    real = torch.randn(2, 3, 4, 4, generator=gen)
    fake = torch.randn(2, 3, 4, 4, generator=gen, requires_grad=True)
    res = generator_step_loss(d, real, fake)
    (g,) = torch.autograd.grad(res.loss, fake)
    with torch.no_grad():  # a small step against the gradient lowers the loss
        stepped = fake - 0.01 * g
    assert generator_step_loss(d, real, stepped).loss < res.loss
    assert torch.allclose(res.loss, F.softplus(-(d(fake) - d(real))).mean())


def test_perceptual_choice_is_reported():
    m, desc = build_perceptual(PerceptualConfig(kind="lpips", fallback="sobel_l1", weight=0.1))
    assert desc.startswith("lpips") or (isinstance(m, SobelL1) and "stand-in" in desc)
    m, desc = build_perceptual(PerceptualConfig(kind="lpips", fallback="none", weight=0.1))
    assert desc.startswith("lpips") or (m is None and desc.startswith("none"))
    assert build_perceptual(PerceptualConfig(kind="sobel_l1", weight=0.0)) == (None, "none")


def test_sobel_l1_is_zero_on_equal_images_and_sees_blur(gen):
    p = SobelL1()
    x = torch.rand(2, 3, 32, 32, generator=gen)
    assert torch.allclose(p(x, x), torch.zeros(2))
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert (p(blurred, x) > 0).all()
