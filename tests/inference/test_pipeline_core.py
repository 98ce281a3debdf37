"""Pipeline folders save and load exactly (safetensors + config.json), LoRA included."""

from __future__ import annotations

import json

import pytest
import torch

from flowmapsr.inference.pipeline import PipelineConfig, SRPipeline
from flowmapsr.nets import build_net
from flowmapsr.nets.lora import LoRAConfig, attach_lora


def _pipe(lora=False):
    torch.manual_seed(0)
    cfg = PipelineConfig(net={"type": "small", "channels": 8, "blocks": 2}, info={"by": "test"})
    net = build_net(cfg.net)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    if lora:
        cfg.lora = LoRAConfig(rank=2)
        attach_lora(net, cfg.lora)
        for n, p in net.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)
    return SRPipeline(net, cfg)


@pytest.mark.parametrize("lora", [False, True])
def test_save_load_roundtrip(tmp_path, lora):
    pipe = _pipe(lora)
    pipe.save_pretrained(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        ["config.json", "model.safetensors"] + (["lora.safetensors"] if lora else [])
    )
    assert json.loads((tmp_path / "config.json").read_text())["info"] == {"by": "test"}
    again = SRPipeline.from_pretrained(tmp_path)
    lr = torch.rand(1, 3, 9, 13)
    a = pipe.upscale_tensor(lr, scale=4, steps=2)
    b = again.upscale_tensor(lr, scale=4, steps=2)
    assert a.shape == (1, 3, 36, 52)
    torch.testing.assert_close(a, b)
    if lora:
        off = again.upscale_tensor(lr, scale=4, lora_scale=0.0)
        assert not torch.allclose(off, again.upscale_tensor(lr, scale=4))


def test_missing_or_broken_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        SRPipeline.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        SRPipeline.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"net": {"type": "small"}}))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        SRPipeline.from_pretrained(tmp_path)


def test_odd_output_sizes_are_padded_and_cropped():
    pipe = _pipe()
    out = pipe.upscale_tensor(torch.rand(1, 3, 7, 5), scale=3)
    assert out.shape == (1, 3, 21, 15)
    assert out.min() >= 0 and out.max() <= 1
