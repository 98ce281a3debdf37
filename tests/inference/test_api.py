"""``flowmapsr.upscale``: PIL in → PIL out, arrays in → arrays out, same layout and dtype."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import flowmapsr
from flowmapsr.inference.api import load_pipeline, upscale
from flowmapsr.inference.random_model import random_pipeline

RNG = np.random.default_rng(1)


@pytest.fixture(scope="module")
def pipe():
    return random_pipeline({"type": "small", "channels": 16, "blocks": 2}, seed=5)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_pil_in_pil_out(pipe, mode):
    im = Image.fromarray(RNG.integers(0, 256, (10, 14, 4), dtype=np.uint8)).convert(mode)
    out = flowmapsr.upscale(im, scale=4, pipeline=pipe)
    assert isinstance(out, Image.Image) and out.mode == mode and out.size == (56, 40)


def test_pil_16bit_grey_stays_16bit(pipe):
    im = Image.fromarray(RNG.integers(0, 65536, (8, 8), dtype=np.uint16))
    out = upscale(im, scale=2, pipeline=pipe)
    assert out.mode == "I;16" and out.size == (16, 16)


@pytest.mark.parametrize(
    "shape,dtype",
    [
        ((9, 11, 3), np.uint8),
        ((9, 11, 4), np.uint8),
        ((9, 11), np.uint16),
        ((9, 11, 1), np.float32),
    ],
)
def test_array_in_array_out(pipe, shape, dtype):
    if dtype == np.float32:
        a = RNG.random(shape).astype(dtype)
    else:
        a = RNG.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    out = upscale(a, scale=2, steps=2, pipeline=pipe)
    assert out.dtype == dtype and out.shape == (18, 22, *shape[2:])
    if dtype == np.float32:
        assert 0.0 <= out.min() and out.max() <= 1.0


def test_any_scale_and_knobs(pipe):
    a = RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out = upscale(a, scale=2.5, pipeline=pipe, tile=8, overlap=2, color_fix="wavelet", seed=3)
    assert out.shape == (30, 25, 3)
    # The result is the pipeline's tensor path, quantised.
    lr = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    ref = pipe.upscale_tensor(lr, scale=4)
    got = upscale(a, scale=4, pipeline=pipe)
    expect = (ref[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(got, expect)


def test_model_folder_and_errors(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "m")
    a = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = upscale(a, scale=2, model=tmp_path / "m")
    np.testing.assert_array_equal(out, upscale(a, scale=2, pipeline=pipe))
    with pytest.raises(TypeError, match="PIL image or a numpy array"):
        upscale([[1, 2]], pipeline=pipe)
    with pytest.raises(ValueError, match="array"):
        upscale(np.zeros((4, 4, 2), np.uint8), pipeline=pipe)
    with pytest.raises(ValueError, match="precision"):
        load_pipeline(tmp_path / "m", precision="fp8")


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("declared", ["fp32", "bf16"])
def test_auto_precision_follows_model_and_cpu(tmp_path, monkeypatch, fast, declared):
    """``auto`` is bf16 only where the model declares its bf16 cost measured and the CPU has fast
    bf16 kernels; explicit choices are taken as given."""
    import flowmapsr.inference.precision as precision

    monkeypatch.setattr(precision, "bf16_fast_on_cpu", lambda: fast)
    model = random_pipeline({"type": "small", "channels": 8, "blocks": 1}, seed=1)
    model.config.cpu_precision = declared
    model.save_pretrained(tmp_path / "m")
    expect = torch.bfloat16 if fast and declared == "bf16" else torch.float32
    assert load_pipeline(tmp_path / "m").dtype == expect
    assert load_pipeline(tmp_path / "m", precision="fp32").dtype == torch.float32
    assert load_pipeline(tmp_path / "m", precision="bf16").dtype == torch.bfloat16


def test_cpu_precision_is_checked_at_load(tmp_path):
    import json

    random_pipeline({"type": "small", "channels": 8, "blocks": 1}).save_pretrained(tmp_path / "m")
    cfg = tmp_path / "m" / "config.json"
    raw = json.loads(cfg.read_text())
    raw["cpu_precision"] = "fp8"
    cfg.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="cpu_precision"):
        load_pipeline(tmp_path / "m")
