import json

import pytest
import torch
from safetensors.torch import load_file

from flowmapsr.cli.main import main
from flowmapsr.inference.pipeline import SRPipeline
from flowmapsr.training.export import export_checkpoint, find_checkpoint
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.recipe import stage_done
from flowmapsr.training.trainer import train


def _stage4(tmp_path, tiny, steps=2):
    base = train(resolve_config("flowmapsr-stage1-fm", tiny(tmp_path / "s1", "max_steps=1")))
    more = [
        f"max_steps={steps}",
        f"init_from={base}",
        "checkpoint.every=1",
        "checkpoint.keep=5",
        "adversarial.disc.depth=2",
        "adversarial.disc.channels=8",
        "adversarial.lora.rank=2",
    ]
    cfg = resolve_config("flowmapsr-stage4-adversarial", tiny(tmp_path / "s4", *more))
    return cfg, train(cfg)


def test_last_checkpoint_exports_what_the_stage_exported(tmp_path, tiny):
    cfg, stage_export = _stage4(tmp_path, tiny)
    run = tmp_path / "s4"
    assert find_checkpoint(run).name == "step-00000002"  # a run folder means its latest
    out = export_checkpoint(run, tmp_path / "x2")
    for name in ("model.safetensors", "lora.safetensors"):
        a, b = load_file(str(out / name)), load_file(str(stage_export / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    info = json.loads((out / "config.json").read_text())["info"]
    assert info["step"] == 2 and info["complete"] is False and info["weights"] == "ema"
    # It loads and upscales like any model, LoRA knob included.
    pipe = SRPipeline.from_pretrained(out)
    y = pipe.upscale_tensor(torch.rand(1, 3, 8, 8), scale=4, lora_scale=1.0)
    assert y.shape == (1, 3, 32, 32)
    # Written over the stage's own export, a recipe would not take it for a finished stage.
    export_checkpoint(run / "checkpoints" / "step-00000001", stage_export)
    assert not stage_done(cfg)


def test_earlier_checkpoints_and_raw_weights_differ(tmp_path, tiny):
    _, stage_export = _stage4(tmp_path, tiny)
    ckpts = tmp_path / "s4" / "checkpoints"
    first = export_checkpoint(ckpts / "step-00000001", tmp_path / "x1")
    raw = export_checkpoint(ckpts / "step-00000002", tmp_path / "raw", weights="model")
    final = load_file(str(stage_export / "lora.safetensors"))
    for other in (first, raw):
        lora = load_file(str(other / "lora.safetensors"))
        assert any(not torch.equal(lora[k], final[k]) for k in final)


def test_cli_exports_and_names_a_missing_checkpoint(tmp_path, tiny, capsys):
    _stage4(tmp_path, tiny, steps=1)
    assert main(["export", str(tmp_path / "s4"), "-o", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "lora.safetensors").is_file()
    assert main(["export", str(tmp_path / "nothing"), "-o", str(tmp_path / "y")]) == 1
    err = capsys.readouterr().err
    assert "flowmapsr export: error:" in err and "nothing" in err and "no checkpoint" in err
    with pytest.raises(ValueError, match="weights must be"):
        export_checkpoint(tmp_path / "s4", tmp_path / "z", weights="disc")
