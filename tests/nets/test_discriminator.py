import pytest
import torch

from flowmapsr.nets.discriminator import Discriminator, DiscriminatorConfig


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
