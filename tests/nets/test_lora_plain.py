"""LoRA without peft (issue 14, slim install): :class:`PlainLoRA` + our merge equal peft's."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from flowmapsr.flowmap import Condition
from flowmapsr.nets import build_net
from flowmapsr.nets.lora import (
    LoRAConfig,
    PlainLoRA,
    attach_lora,
    has_lora,
    lora_scales,
    lora_state_dict,
    merged_copy,
    set_lora_scale,
)
from flowmapsr.nets.lora import attach_lora_for_inference as attach_plain_if_no_peft


def _attach_plain(net: nn.Module, config: LoRAConfig, monkeypatch) -> nn.Module:
    """``attach_lora_for_inference`` where peft is not installed."""
    with monkeypatch.context() as m:
        m.setitem(__import__("sys").modules, "peft", None)
        return attach_plain_if_no_peft(net, config)


def _randomise_adapters(net: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for name, p in net.named_parameters():
        if "lora_" in name:
            p.data.copy_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_plain_merge_equals_peft_merge_bit_for_bit_on_the_small_net(dtype, monkeypatch):
    torch.manual_seed(0)
    base = build_net({"type": "small", "channels": 8, "blocks": 2, "emb_dim": 16})
    cfg = LoRAConfig(rank=4, alpha=8.0)
    with_peft = attach_lora(copy.deepcopy(base), cfg)
    _randomise_adapters(with_peft, 1)
    plain = _attach_plain(copy.deepcopy(base), cfg, monkeypatch)
    assert any(isinstance(m, PlainLoRA) for m in plain.modules())
    assert not any(type(m).__module__.startswith("peft") for m in plain.modules())
    # Same state-dict names, so one lora.safetensors serves both.
    assert set(plain.state_dict()) == set(with_peft.state_dict())
    plain.load_state_dict(lora_state_dict(with_peft), strict=False)
    with_peft.to(dtype)
    plain.to(dtype)
    assert has_lora(plain)
    for scale in (0.0, 0.5, 1.0, 1.7, -0.3):
        set_lora_scale(with_peft, scale)
        set_lora_scale(plain, scale)
        assert lora_scales(plain) == lora_scales(with_peft)
        ref, ours = merged_copy(with_peft).state_dict(), merged_copy(plain).state_dict()
        assert set(ours) == set(ref)
        for k in ref:
            assert ref[k].dtype == ours[k].dtype == dtype
            assert torch.equal(ref[k], ours[k]), (scale, k)
    # The adapted net keeps its unmerged base weights: a new scale re-merges from them.
    set_lora_scale(plain, 0.0)
    for k, v in merged_copy(plain).state_dict().items():
        assert torch.equal(v, base.to(dtype).state_dict()[k]), k


def test_plain_merge_equals_peft_for_1x1_conv_and_linear(monkeypatch):
    torch.manual_seed(0)
    base = nn.Sequential(nn.Conv2d(6, 5, 3, padding=1), nn.Conv2d(5, 7, 1), nn.Flatten(),
                         nn.Linear(7 * 4 * 4, 9))  # fmt: skip
    cfg = LoRAConfig(rank=3, alpha=5.0, targets=r"[013]")
    with_peft = attach_lora(copy.deepcopy(base), cfg)
    _randomise_adapters(with_peft, 2)
    plain = _attach_plain(copy.deepcopy(base), cfg, monkeypatch)
    assert sum(isinstance(m, PlainLoRA) for m in plain.modules()) == 3
    plain.load_state_dict(lora_state_dict(with_peft), strict=False)
    x = torch.randn(2, 6, 4, 4)
    for scale in (1.0, 0.25, 3.0):
        set_lora_scale(with_peft, scale)
        set_lora_scale(plain, scale)
        ref, ours = merged_copy(with_peft), merged_copy(plain)
        for k, v in ref.state_dict().items():
            assert torch.equal(v, ours.state_dict()[k]), (scale, k)
        # The unmerged PlainLoRA forward is W x + s·B A x, like peft's.
        torch.testing.assert_close(plain(x), with_peft(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours(x), plain(x), rtol=1e-4, atol=1e-4)


def test_plain_lora_refuses_what_it_cannot_do(monkeypatch):
    net = build_net({"type": "small", "channels": 8, "blocks": 2, "emb_dim": 16})
    with pytest.raises(ValueError, match="match no Conv2d/Linear"):
        _attach_plain(copy.deepcopy(net), LoRAConfig(targets=r"nothing\.here"), monkeypatch)
    with pytest.raises(ImportError, match=r"need peft here: pip install 'flowmapsr\[train\]'"):
        _attach_plain(copy.deepcopy(net), LoRAConfig(extra={"use_rslora": True}), monkeypatch)
    # peft's options (here rsLoRA) still load through peft where it is installed.
    rs = attach_plain_if_no_peft(copy.deepcopy(net), LoRAConfig(extra={"use_rslora": True}))
    assert has_lora(rs) and not any(isinstance(m, PlainLoRA) for m in rs.modules())
    x = torch.randn(1, 3, 16, 16)
    t = torch.full((1,), 0.5)
    plain = _attach_plain(copy.deepcopy(net), LoRAConfig(rank=2), monkeypatch)
    # lora_B starts at zero as in peft, so a fresh adapter changes nothing.
    c = Condition(source=x)
    torch.testing.assert_close(plain(x, t, t, c), net(x, t, t, c))
    with pytest.raises(ValueError, match="grouped"):
        PlainLoRA(nn.Conv2d(4, 4, 3, groups=2), 2, 2.0)


def test_training_without_peft_says_how_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "peft", None)
    net = build_net({"type": "small", "channels": 8, "blocks": 2, "emb_dim": 16})
    with pytest.raises(ImportError, match=r"pip install 'flowmapsr\[train\]'"):
        attach_lora(net, LoRAConfig())
