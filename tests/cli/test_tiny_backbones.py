"""The tiny diffusers backbones end to end: every objective takes a CPU step on each, and each
``tiny-*-flowmapsr`` preset trains, exports and upscales from the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from flowmapsr.cli.main import main as cli
from flowmapsr.codecs import build_codec
from flowmapsr.flowmap import Condition
from flowmapsr.nets import build_net
from flowmapsr.objectives import (
    OBJECTIVES,
    FlowBatch,
    GuidanceConfig,
    ObjectiveConfig,
    build_objective,
)
from flowmapsr.objectives.distance import DistanceConfig
from flowmapsr.objectives.perceptual import PerceptualConfig
from flowmapsr.training.presets import list_presets

pytest.importorskip("diffusers")

TINY_PRESETS = [p for p in list_presets() if p.startswith("tiny-") and p.endswith("-flowmapsr")]
BACKBONES = {"sdxl": {"type": "unet", "variant": "sdxl"},
             "sd21": {"type": "unet", "variant": "sd21"}, "flux": {"type": "flux"}}  # fmt: skip
# Every registered objective, plus FlowMapSR's guidance trained into the map.
VARIANTS = [(name, False) for name in sorted(OBJECTIVES)] + [("shortcut", True)]
CHEAP = DistanceConfig(l2=1.0, perceptual=PerceptualConfig(kind="sobel_l1", weight=0.5))


def test_the_three_tiny_presets_exist():
    assert sorted(TINY_PRESETS) == [
        "tiny-flux-flowmapsr",
        "tiny-sd21-flowmapsr",
        "tiny-sdxl-flowmapsr",
    ]


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("name,guided", VARIANTS, ids=lambda v: str(v))
def test_every_objective_takes_a_step_on_each_tiny_backbone(backbone, name, guided):
    torch.manual_seed(0)
    net, codec = build_net(BACKBONES[backbone]), build_codec({"type": "vae"})
    g = torch.Generator().manual_seed(1)
    hr_px = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        hr = codec.encode(hr_px)
        src = codec.encode(torch.nn.functional.avg_pool2d(hr_px, 2).repeat_interleave(2, -1)
                           .repeat_interleave(2, -2))  # fmt: skip
    kw = {"distance": CHEAP}
    if guided:
        kw["guidance"] = GuidanceConfig(enabled=True)
    obj = build_objective(ObjectiveConfig(name=name, learned_weighting=False, **kw))
    obj.set_codec(codec)
    batch = FlowBatch(hr=hr, src=src, cond=Condition(source=src), hr_image=hr_px)
    if guided:
        batch.hr_neg = hr + 0.1 * torch.randn(hr.shape, generator=g)
    if name == "ftd":
        batch.noise = torch.randn(hr.shape, generator=g)
    extra = {"frozen": net} if obj.needs_frozen_teacher else {}
    res = obj(net, batch, generator=g, teacher=net, **extra)
    assert torch.isfinite(res.loss), res.logs
    res.loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(x).all() for x in grads)


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_tiny_preset_trains_exports_and_upscales_from_the_cli(tmp_path, preset, capsys):
    run = tmp_path / "run"
    assert cli(["train", preset, f"output_dir={run}", "max_steps=2", "log_every=1"]) == 0
    model = tmp_path / "model"
    assert cli(["export", str(run), "-o", str(model)]) == 0
    Image.fromarray((np.random.default_rng(0).random((24, 40, 3)) * 255).astype("uint8")).save(
        tmp_path / "in.png"
    )
    for args, out in (((), "plain"), (("--tile", "16", "--overlap", "4"), "tiled")):
        argv = [str(tmp_path / "in.png"), "-o", str(tmp_path / out), "--model", str(model), *args]
        assert cli(["upscale", *argv]) == 0, capsys.readouterr().err
        with Image.open(tmp_path / out / "in.png") as im:
            assert im.size == (160, 96)
