"""The fidelity / balanced / realism modes: resolution order, errors, and the pipeline path."""

import json

import pytest
import torch

from flowmapsr.inference.pipeline import (
    MODES,
    PipelineConfig,
    SRPipeline,
    check_modes,
    mode_knobs,
)
from flowmapsr.nets import build_net


def _config(**kw):
    modes = {"fidelity": {"lora_scale": 0.0}, "realism": {"steps": 2, "guidance": 2.0}}
    return PipelineConfig(steps=1, guidance=1.0, lora_scale=0.5, modes=modes, **kw)


def test_explicit_over_mode_over_defaults():
    c = _config()
    assert mode_knobs(c) == {"steps": 1, "guidance": 1.0, "lora_scale": 0.5}  # balanced
    assert mode_knobs(c, "fidelity") == {"steps": 1, "guidance": 1.0, "lora_scale": 0.0}
    assert mode_knobs(c, "realism") == {"steps": 2, "guidance": 2.0, "lora_scale": 0.5}
    assert mode_knobs(c, "realism", steps=4, lora_scale=1.0) == {
        "steps": 4, "guidance": 2.0, "lora_scale": 1.0
    }  # fmt: skip


def test_unknown_or_undefined_modes_are_clear_errors():
    with pytest.raises(ValueError, match="unknown mode 'sharp'; choose from fidelity"):
        mode_knobs(_config(), "sharp")
    bare = PipelineConfig()
    assert mode_knobs(bare, "balanced")["steps"] == bare.steps
    with pytest.raises(ValueError, match=r"defines no 'realism' mode \(it has: balanced\)"):
        mode_knobs(bare, "realism")
    with pytest.raises(ValueError, match="unknown mode 'turbo'"):
        check_modes({"turbo": {"steps": 1}}, "x.json")
    with pytest.raises(ValueError, match="must map steps, guidance, lora_scale"):
        check_modes({"realism": {"sharpness": 1}}, "x.json")
    with pytest.raises(ValueError, match="steps 0 < 1"):
        check_modes({"realism": {"steps": 0}}, "x.json")


def test_cli_choices_match_the_pipeline():
    from flowmapsr.cli.upscale import MODE_CHOICES

    assert MODE_CHOICES == MODES


def test_mode_reaches_the_network(tmp_path, gen):
    torch.manual_seed(0)
    cfg = PipelineConfig(net={"type": "small", "channels": 8, "blocks": 1}, scales=[4],
                         modes={"realism": {"steps": 2}})  # fmt: skip
    net = build_net(cfg.net)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    SRPipeline(net, cfg).save_pretrained(tmp_path)
    pipe = SRPipeline.from_pretrained(tmp_path)
    lr = torch.rand(1, 3, 8, 8, generator=gen)
    realism = pipe.upscale_tensor(lr, mode="realism")
    torch.testing.assert_close(realism, pipe.upscale_tensor(lr, steps=2))
    assert not torch.equal(realism, pipe.upscale_tensor(lr))
    # a config with a bad mode is refused at load, naming the file
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["modes"] = {"realism": {"steps": -1}}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="config.json: mode 'realism' has steps -1"):
        SRPipeline.from_pretrained(tmp_path)
