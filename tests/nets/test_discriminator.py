import dataclasses

import pytest
import torch

from flowmapsr.nets.discriminator import (
    DISCRIMINATORS,
    Discriminator,
    DiscriminatorConfig,
    build_discriminator,
)
from flowmapsr.objectives.adversarial import discriminator_step_loss, generator_step_loss


def _config(kind: str, **kw) -> DiscriminatorConfig:
    return DiscriminatorConfig(kind=kind, channels=8, spectral_norm=kind == "unet", **kw)


def test_output_is_one_logit_per_image_and_depends_on_the_source(gen):
    d = Discriminator(DiscriminatorConfig(channels=8, depth=3))
    x = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    s = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    out = d(x, s)
    assert out.shape == (2,)
    assert not torch.allclose(out, d(x, -s))
    with pytest.raises(ValueError, match="source"):
        d(x)


def test_unconditional_and_input_gradients(gen):
    d = Discriminator(DiscriminatorConfig(channels=8, depth=2, conditional=False))
    x = (torch.rand(3, 3, 16, 16, generator=gen) * 2 - 1).requires_grad_(True)
    (g,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    assert g.shape == x.shape and g.abs().sum() > 0
    # Double backward (needed by R1/R2) reaches the weights.
    g.pow(2).sum().backward()
    assert d.conv_in.weight.grad is not None and d.conv_in.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", sorted(DISCRIMINATORS))
def test_every_discriminator_runs_the_rpgan_steps_with_r1_r2(kind, gen):
    torch.manual_seed(0)
    d = build_discriminator(_config(kind, depth=3))
    real = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    src = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    fake = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
    out = d(real, src)
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    assert not torch.allclose(out, d(real, -src))  # conditional: the source matters
    res = discriminator_step_loss(d, real, fake, src, gamma=1.0)
    assert res.loss.dim() == 0 and res.logs["r1"] > 0 and res.logs["r2"] > 0
    res.loss.backward()  # through the double backward of R1/R2
    grads = [p.grad for p in d.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    g = generator_step_loss(d, real, fake, src)
    (gf,) = torch.autograd.grad(g.loss, fake)
    assert gf.abs().sum() > 0


def test_unet_gives_a_logit_per_pixel_that_sees_local_changes(gen):
    d = build_discriminator(_config("unet", depth=3, conditional=False)).eval()
    x = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    out = d(x)
    assert out.shape == (1, 32, 32)
    y = x.clone()
    y[..., :4, :4] = -y[..., :4, :4]  # change one corner
    diff = (d(y) - out).abs()
    # The corner's logits move most: the full-resolution head judges local texture.
    assert diff[0, :4, :4].mean() > diff[0, -4:, -4:].mean()


def test_unet_spectral_norm_bounds_the_weights_and_resumes_exactly(gen):
    a = build_discriminator(_config("unet", depth=2))
    x = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1
    for _ in range(3):  # power iterations in training mode update the u/v buffers
        a(x, x)
    w = a.down[0].weight  # the normalised weight
    sigma = float(torch.linalg.matrix_norm(w.detach().flatten(1), ord=2))
    assert sigma == pytest.approx(1.0, abs=0.05)
    b = build_discriminator(_config("unet", depth=2))
    b.load_state_dict(a.state_dict())  # the u/v vectors are buffers: a checkpoint holds them
    a.eval(), b.eval()
    assert torch.equal(a(x, x), b(x, x))


def test_unknown_kind_and_spectral_norm_on_patch_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown discriminator 'resnet'"):
        build_discriminator(dataclasses.replace(DiscriminatorConfig(), kind="resnet"))
    with pytest.raises(ValueError, match="only the unet"):
        build_discriminator(DiscriminatorConfig(spectral_norm=True))
