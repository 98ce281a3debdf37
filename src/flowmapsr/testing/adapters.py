"""Shared checks for the diffusers adapters (nets/unet_adapter.py, nets/flux_adapter.py).

Both adapters add zero-initialised inputs (t − r and ω embeddings in ``net.extra``, extra input
columns for the source latent on their first layer) to a pretrained backbone: at init they must
equal the backbone for any r, ω and source, and once those layers have weights each new input
must change the output.
"""

from __future__ import annotations

import torch
from torch import nn


def randomise_new_inputs(net: nn.Module, layer: nn.Module, first_new: int, gen) -> None:
    """Give the zero-initialised layers weights: ``net.extra`` and ``layer``'s input columns
    from ``first_new`` on (the source latent's)."""
    with torch.no_grad():
        for p in net.extra.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
        w = layer.weight[:, first_new:]
        w.copy_(torch.randn(w.shape, generator=gen, dtype=w.dtype) * 0.1)


def assert_backbone_at_init_then_wired(net, x, t, cond, want, layer, first_new, gen):
    """``net(x, t, r, cond) == want`` (the plain backbone) for several r, another source and no
    ω; then, with :func:`randomise_new_inputs`, r, ω and the source each change the output.
    Returns the output of the randomised net at ``r = t`` for further checks."""
    for r in (t, t * 0.25, torch.zeros_like(t)):
        torch.testing.assert_close(net(x, t, r, cond), want, rtol=1e-10, atol=1e-10)
    other = cond.replace(source=torch.randn(x.shape, generator=gen, dtype=x.dtype), omega=None)
    torch.testing.assert_close(net(x, t, t * 0.5, other), want, rtol=1e-10, atol=1e-10)
    randomise_new_inputs(net, layer, first_new, gen)
    base = net(x, t, t, cond)
    assert not torch.allclose(net(x, t, t * 0.25, cond), base)
    assert not torch.allclose(net(x, t, t, cond.replace(omega=torch.ones_like(t))), base)
    assert not torch.allclose(net(x, t, t, other.replace(omega=cond.omega)), base)
    return base
