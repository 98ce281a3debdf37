"""FluxSR's attention diversification loss (seed 003 Eq. 22–23) and its forward hooks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from flowmapsr.flowmap import Condition
from flowmapsr.nets import build_net
from flowmapsr.objectives.adl import (
    ADL_LAYERS,
    adl_loss,
    as_tokens,
    capture_tokens,
    find_layers,
    token_similarity,
)


def test_identical_tokens_give_one_and_diverse_tokens_less(gen):
    a = torch.randn(3, 1, 8, generator=gen).expand(3, 50, 8) * 2.5
    torch.testing.assert_close(token_similarity(a), torch.ones(3))
    diverse = torch.randn(3, 50, 8, generator=gen)
    sim = token_similarity(diverse)
    assert sim.shape == (3,) and bool((sim < 0.5).all())
    # Half the tokens one vector, half its opposite: the mean is 0, cos is 0 (eps, no NaN).
    v = torch.randn(8, generator=gen)
    opposite = torch.stack([v, -v] * 5)[None]
    assert torch.isfinite(token_similarity(opposite)).all()
    # Not bounded below by 0: one large token along v, three small ones against it.
    skew = torch.stack([10 * v, -v, -v, -v])[None]
    torch.testing.assert_close(token_similarity(skew), torch.tensor([-0.5]))
    # Eq. 23 written out for one sample, one layer.
    mean = diverse[0].mean(0)
    want = torch.stack([F.cosine_similarity(tok, mean, dim=0) for tok in diverse[0]]).mean()
    torch.testing.assert_close(sim[0], want)
    # Layers are averaged.
    torch.testing.assert_close(adl_loss([a, diverse]), (1 + sim) / 2)


def test_conv_outputs_are_spatial_tokens_and_tuples_give_their_last_element(gen):
    x = torch.randn(2, 5, 3, 4, generator=gen)
    tok = as_tokens(x)
    assert tok.shape == (2, 12, 5)
    torch.testing.assert_close(tok[:, 4], x[:, :, 1, 0])  # row-major positions
    text, image = torch.randn(2, 7, 6), torch.randn(2, 9, 6)
    assert as_tokens((text, image)) is image
    with pytest.raises(ValueError, match="expected"):
        as_tokens(torch.randn(4, 5))


def _small(gen):
    net = build_net({"type": "small", "channels": 16, "blocks": 3, "concat_source": False})
    with torch.no_grad():  # conv2 starts at zero: give the blocks something to do
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return net


def test_small_net_hooks_record_every_residual_block_and_are_removed(gen):
    net = _small(gen)
    x, t = torch.randn(2, 3, 16, 16, generator=gen), torch.full((2,), 0.5)
    with capture_tokens(net, "auto") as tokens:
        net(x, t, t)
    assert len(tokens) == 3
    # unshuffle 4: a 16 × 16 image is a 4 × 4 map of 16 channels → 16 tokens of 16 features
    assert all(tok.shape == (2, 16, 16) for tok in tokens)
    loss = adl_loss(tokens)
    assert loss.shape == (2,) and bool(((loss > -1) & (loss < 1)).all())
    loss.mean().backward()
    assert net.conv_in.weight.grad.abs().sum() > 0  # gradients flow back into the net
    assert all(not b._forward_hooks for b in net.blocks)  # hooks gone after the block
    with capture_tokens(net, ADL_LAYERS["small"]) as again:
        pass
    assert again == []  # nothing recorded without a forward


def test_tiny_flux_adapter_hooks_record_image_tokens_of_both_block_kinds(gen):
    pytest.importorskip("diffusers")
    from flowmapsr.nets.diffusers_common import PromptEmbeds

    torch.manual_seed(0)
    net = build_net({"type": "flux"})
    n, h, w = 2, 8, 6
    x = torch.randn(n, 4, h, w, generator=gen)
    prompt = PromptEmbeds(
        tokens=torch.randn(n, 7, 32, generator=gen), pooled=torch.randn(n, 32, generator=gen)
    )
    cond = Condition(prompt=prompt, source=torch.randn(n, 4, h, w, generator=gen))
    t = torch.tensor([0.9, 0.4])
    names = [name for name, _ in net.named_modules()]
    assert "backbone.transformer_blocks.0" in names
    assert "backbone.single_transformer_blocks.0" in names
    with capture_tokens(net, "flux") as tokens:
        net(x, t, t, cond)
    inner = net.backbone.x_embedder.out_features
    # one double- and one single-stream block; image tokens only (h/2 · w/2), not the 7 text
    assert [tok.shape for tok in tokens] == [(n, (h // 2) * (w // 2), inner)] * 2
    loss = adl_loss(tokens).mean()
    loss.backward()
    grad = net.backbone.x_embedder.weight.grad.clone()
    assert grad.abs().sum() > 0
    # Under diffusers' gradient checkpointing (what a real-size FLUX run needs for memory) the
    # blocks run again in backward: the hooks are gone by then, the loss and gradient agree.
    net.zero_grad()
    net.backbone.enable_gradient_checkpointing()
    with capture_tokens(net, "flux") as again:
        net(x, t, t, cond)
    ckpt_loss = adl_loss(again).mean()
    ckpt_loss.backward()
    assert len(again) == 2
    torch.testing.assert_close(ckpt_loss, loss)
    torch.testing.assert_close(net.backbone.x_embedder.weight.grad, grad)


def test_find_layers_names_the_blocks_and_admits_a_wrapper_prefix(gen):
    net = _small(gen)
    assert [n for n, _ in find_layers(net, "auto")] == ["blocks.0", "blocks.1", "blocks.2"]
    assert [m for _, m in find_layers(net, r"blocks\.1")] == [net.blocks[1]]
    wrapped = torch.nn.ModuleDict({"module": net})  # DDP-style "module." prefix
    assert [n for n, _ in find_layers(wrapped, "small")][0] == "module.blocks.0"
    assert find_layers(net, r"nothing\.here") == []


def test_a_pattern_matching_nothing_is_a_one_line_error(gen):
    net = _small(gen)
    with pytest.raises(ValueError, match="no layer of the network"):
        with capture_tokens(net, r"nothing\.here"):
            pass


@pytest.mark.parametrize("variant", ["sd21", "sdxl"])
def test_tiny_unet_adapter_hooks_record_its_transformer_blocks(gen, variant):
    pytest.importorskip("diffusers")
    from flowmapsr.nets.diffusers_common import PromptEmbeds

    torch.manual_seed(0)
    net = build_net({"type": "unet", "variant": variant})
    n = 2
    x = torch.randn(n, 4, 16, 16, generator=gen)
    pooled = torch.randn(n, 32, generator=gen) if variant == "sdxl" else None
    prompt = PromptEmbeds(tokens=torch.randn(n, 7, 32, generator=gen), pooled=pooled)
    cond = Condition(prompt=prompt, source=torch.randn(n, 4, 16, 16, generator=gen))
    blocks = [k for k, _ in net.named_modules() if k.endswith("transformer_blocks.0")]
    t = torch.tensor([0.9, 0.4])
    with capture_tokens(net, "unet") as tokens:
        net(x, t, t, cond)
    assert blocks and len(tokens) == len(blocks)
    assert all(tok.ndim == 3 and tok.shape[0] == n for tok in tokens)
    adl_loss(tokens).mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    # and "auto" finds the same layers
    with capture_tokens(net, "auto") as auto:
        net(x, t, t, cond)
    assert len(auto) == len(tokens)
