from __future__ import annotations

import torch

from flowmapsr.flowmap import Condition
from flowmapsr.nets import build_net
from flowmapsr.nets.lora import (
    LoRAConfig,
    attach_lora,
    base_state_dict,
    has_lora,
    lora_scales,
    lora_state_dict,
    merged_copy,
    set_lora_scale,
)


def test_lora_trains_only_adapters_and_scale_knob():
    torch.manual_seed(0)
    net = build_net({"type": "small", "channels": 8, "blocks": 2})
    x = torch.randn(1, 3, 16, 16)
    t = torch.full((1,), 0.7)
    c = Condition(source=x)
    before = net(x, t, t, c).detach()
    plain_keys = set(net.state_dict())
    attach_lora(net, LoRAConfig(rank=2))
    assert has_lora(net)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    torch.testing.assert_close(net(x, t, t, c), before)  # lora_B starts at zero
    for n, p in net.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    adapted = net(x, t, t, c).detach()
    assert not torch.allclose(adapted, before)
    set_lora_scale(net, 0.0)
    torch.testing.assert_close(net(x, t, t, c), before)
    set_lora_scale(net, 2.0)
    doubled = net(x, t, t, c).detach()
    set_lora_scale(net, 1.0)
    torch.testing.assert_close(net(x, t, t, c), adapted)
    assert not torch.allclose(doubled, adapted)
    assert set(base_state_dict(net)) == plain_keys
    assert all("lora_" in k for k in lora_state_dict(net))


def _adapted_net():
    torch.manual_seed(0)
    net = build_net({"type": "small", "channels": 8, "blocks": 2})
    for p in net.parameters():  # zero-initialised layers too, so every path matters
        torch.nn.init.normal_(p, std=0.2)
    attach_lora(net, LoRAConfig(rank=2))
    for n, p in net.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    return net.double()  # fp64: merging reorders sums, only rounding may differ


def test_merged_copy_equals_adapted_net_at_every_scale():
    net = _adapted_net()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    t, r = torch.full((2,), 0.9, dtype=torch.float64), torch.full((2,), 0.1, dtype=torch.float64)
    c = Condition(source=x)
    for scale in (0.0, 0.5, 1.0, 2.0):
        set_lora_scale(net, scale)
        scales = lora_scales(net)
        with torch.no_grad():
            want = net(x, t, r, c)
            merged = merged_copy(net)
            got = merged(x, t, r, c)
        assert not has_lora(merged)
        assert not any(p.requires_grad for p in merged.parameters())
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        # the original keeps its adapters and its scale
        assert has_lora(net) and lora_scales(net) == scales
        torch.testing.assert_close(net(x, t, r, c), want)
