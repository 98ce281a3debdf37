from __future__ import annotations

import torch

from flowmapsr.training.ema import EMA


def test_ema_tracks_with_warmup_and_decay():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.9, warmup=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.shadow.weight.fill_(0.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow.weight, torch.full((2, 2), 0.1))
    assert not ema.shadow.weight.requires_grad
    warm = EMA(model, decay=0.999, warmup=True)
    assert warm.current_decay() == 0.1  # (1 + 0) / (10 + 0)
    x = torch.randn(3, 2)
    torch.testing.assert_close(warm(x), model(x))


def test_frozen_weights_are_shared_not_copied_and_only_trainable_ones_are_averaged():
    """A LoRA run's frozen base: the shadow holds the model's own tensors (no second copy)."""
    import torch
    from torch import nn

    from flowmapsr.training.ema import EMA

    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    net[0].requires_grad_(False)
    ema = EMA(net, decay=0.5, warmup=False)
    assert ema.shadow[0].weight is net[0].weight and ema.shadow[0].bias is net[0].bias
    assert ema.shadow[1].weight is not net[1].weight
    assert not ema.shadow[1].weight.requires_grad and not net[0].weight.requires_grad
    assert net[1].weight.requires_grad  # the model's trainable weights stay trainable
    before = ema.shadow[1].weight.clone()
    with torch.no_grad():
        net[1].weight.add_(1.0)
    ema.update(net)
    torch.testing.assert_close(ema.shadow[1].weight, before + 0.5)
    # The shadow computes what the frozen base and averaged head compute.
    x = torch.randn(2, 4)
    want = nn.functional.linear(net[0](x), ema.shadow[1].weight, ema.shadow[1].bias)
    torch.testing.assert_close(ema(x), want)
    # state_dict keys are unchanged (checkpoints keep their format).
    assert ema.shadow.state_dict().keys() == net.state_dict().keys()
