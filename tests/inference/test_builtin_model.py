"""The model shipped in the package loads and upscales without --model."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from flowmapsr.cli.main import main
from flowmapsr.inference.pipeline import BUILTIN_DIR, SRPipeline


def test_builtin_model_is_shipped_as_safetensors_under_30_mb():
    names = sorted(p.name for p in BUILTIN_DIR.iterdir())
    assert "config.json" in names and "model.safetensors" in names
    assert all(n == "config.json" or n.endswith(".safetensors") for n in names)  # no pickles
    assert sum(p.stat().st_size for p in BUILTIN_DIR.iterdir()) < 30 * 2**20


def test_builtin_model_loads_and_serves_x4_and_x8():
    pipe = SRPipeline.from_pretrained(None)
    assert set(pipe.config.scales) >= {4, 8}
    lr = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    for scale in (4, 8):
        out = pipe.upscale_tensor(lr, scale=scale, steps=1)
        assert out.shape == (1, 3, 12 * scale, 10 * scale)
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_cli_upscale_without_model_uses_builtin(tmp_path):
    img = (np.random.default_rng(0).random((16, 20, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "photo.png")
    assert main(["upscale", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "photo.png").size == (80, 64)


def test_builtin_model_defines_the_three_modes():
    from flowmapsr.inference.pipeline import MODES, SRPipeline, mode_knobs

    pipe = SRPipeline.from_pretrained(None)
    assert set(pipe.config.modes) | {"balanced"} == set(MODES)
    fidelity, balanced, realism = (mode_knobs(pipe.config, m) for m in MODES)
    # the realism end runs the adapters harder than the default; fidelity never harder
    assert realism["lora_scale"] > balanced["lora_scale"] >= fidelity["lora_scale"]
    assert "modes" in pipe.config.info  # how they were chosen
