"""``gradient_checkpointing`` on the diffusers adapters: same loss and gradients, and what forward-
mode AD (the JVP objectives) does with it."""

from __future__ import annotations

import pytest
import torch

from flowmapsr.flowmap import Condition
from flowmapsr.nets.diffusers_common import PromptEmbeds

pytest.importorskip("diffusers")


def _net(kind, checkpointing):
    torch.manual_seed(0)
    if kind == "flux":
        from flowmapsr.nets.flux_adapter import FluxAdapterConfig, build
    else:
        from flowmapsr.nets.unet_adapter import UNetAdapterConfig as FluxAdapterConfig
        from flowmapsr.nets.unet_adapter import build
    extra = {} if kind == "flux" else {"variant": kind}
    net = build(FluxAdapterConfig(gradient_checkpointing=checkpointing, **extra)).double()
    for p in net.parameters():  # the zero-initialised extras on, so every input matters
        if not p.abs().sum():
            torch.nn.init.normal_(p, std=0.02)
    return net.train()


def _inputs(kind, gen):
    x = torch.randn(2, 4, 16, 16, generator=gen, dtype=torch.float64)
    pooled = torch.randn(2, 32, generator=gen, dtype=torch.float64)
    prompt = PromptEmbeds(
        tokens=torch.randn(2, 7, 32, generator=gen, dtype=torch.float64),
        pooled=pooled if kind in ("sdxl", "flux") else None,
    )
    src = torch.randn(2, 4, 16, 16, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.9, 0.3], dtype=torch.float64)
    cond = Condition(prompt=prompt, source=src, omega=torch.full((2,), 2.0, dtype=torch.float64))
    return x, t, 0.5 * t, cond


@pytest.mark.parametrize("kind", ["sdxl", "sd21", "flux"])
def test_checkpointing_gives_the_same_loss_and_gradients(kind, gen):
    x, t, r, cond = _inputs(kind, gen)
    plain, ckpt = _net(kind, False), _net(kind, True)
    assert ckpt.backbone.is_gradient_checkpointing and not plain.backbone.is_gradient_checkpointing
    losses = []
    for net in (plain, ckpt):
        loss = net(x, t, r, cond).pow(2).mean()
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1])
    for (name, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        if a.grad is None:
            assert b.grad is None, name
            continue
        torch.testing.assert_close(a.grad, b.grad, msg=name)


@pytest.mark.parametrize("kind", ["sd21", "flux"])
def test_jvp_goes_through_but_its_backward_does_not_so_jvp_objectives_refuse_it(kind, gen):
    """The tangent through checkpointed blocks equals the plain one, but a backward through it
    (what the Lagrangian / Eulerian objectives do) fails in torch.utils.checkpoint; so those
    objectives with ``gradient_checkpointing`` are a one-line config error."""
    from torch.utils.checkpoint import CheckpointError

    from flowmapsr.config import ConfigError
    from flowmapsr.training.presets import resolve_config

    x, t, r, cond = _inputs(kind, gen)
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    tangents = []
    for checkpointing in (False, True):
        net = _net(kind, checkpointing)
        u, du = torch.func.jvp(lambda x, net=net: net(x, t, r, cond), (x,), (v,))
        tangents.append(du.detach())
    torch.testing.assert_close(tangents[0], tangents[1])
    with pytest.raises(CheckpointError):
        du.pow(2).mean().backward()
    preset = "tiny-flux-flowmapsr" if kind == "flux" else "tiny-sd21-flowmapsr"
    for name in ("lagrangian", "eulerian"):
        with pytest.raises(ConfigError, match="net.gradient_checkpointing must be false") as err:
            resolve_config(preset, [f"objective.name={name}", "net.gradient_checkpointing=true"])
        assert "\n" not in str(err.value)
    ok = resolve_config(preset, ["objective.name=shortcut", "net.gradient_checkpointing=true"])
    assert ok.net.gradient_checkpointing
