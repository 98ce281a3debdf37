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


def test_inference_net_is_merged_and_follows_scale_and_weight_changes():
    pipe = _pipe(lora=True)
    lr = torch.rand(1, 3, 8, 8)
    src = pipe.make_source(lr, (32, 32))
    merged = pipe.inference_net()
    assert merged is not pipe.net and pipe.inference_net() is merged  # cached
    with torch.no_grad():
        x, t, r = src, torch.ones(1), torch.zeros(1)
        from flowmapsr.flowmap import Condition

        assert torch.allclose(
            merged(x, t, r, Condition(source=src)),
            pipe.net(x, t, r, Condition(source=src)),
            atol=1e-5,
        )
        pipe.set_lora_scale(0.0)
        assert pipe.inference_net() is not merged  # a new scale → a new merge
        for n, p in pipe.net.named_parameters():
            if "lora_B" in n:
                p.mul_(3.0)  # in place, as an optimizer step would
        again = pipe.inference_net()
        pipe.set_lora_scale(1.0)
        assert pipe.inference_net() is not again
        want = pipe.net(x, t, r, Condition(source=src))
        got = pipe.inference_net()(x, t, r, Condition(source=src))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_solver_and_prompt_cfg_come_from_the_config(tmp_path):
    from flowmapsr.inference.solvers import SOLVERS

    pipe = _pipe()
    torch.nn.init.normal_(pipe.net.emb_prompt.weight, std=0.5)  # pos and neg rows differ
    src = torch.rand(1, 3, 16, 16) * 2 - 1
    outs = {}
    for name in SOLVERS:
        pipe.config.solver = name
        outs[name] = pipe.sample(src, steps=2)
    assert not torch.allclose(outs["flowmap"], outs["consistency"])
    pipe.config.solver = "consistency"
    pipe.save_pretrained(tmp_path)
    again = SRPipeline.from_pretrained(tmp_path)
    assert again.config.solver == "consistency"
    torch.testing.assert_close(again.sample(src, steps=2), outs["consistency"])
    plain = again.sample(src, steps=1)
    torch.testing.assert_close(again.sample(src, steps=1, cfg_scale=1.0), plain)
    assert not torch.allclose(again.sample(src, steps=1, cfg_scale=2.0), plain)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "solver": "rk4"}))
    with pytest.raises(ValueError, match="solver must be one of"):
        SRPipeline.from_pretrained(tmp_path)
