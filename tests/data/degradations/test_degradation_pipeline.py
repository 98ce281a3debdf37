import json

import pytest
import torch

from flowmapsr.config import ConfigError
from flowmapsr.data.degradations import (
    Degradation,
    load_degradation_config,
    preset_names,
    quantize_8bit,
    seeded_generator,
)
from flowmapsr.resize import imresize

PRESETS = ["realesrgan", "mild", "bicubic"]


def _hr(b=3, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Smooth structure plus texture, so blur and noise change it measurably.
    base = torch.rand(b, 3, size // 8, size // 8, generator=g)
    base = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear")
    return (0.8 * base + 0.2 * torch.rand(b, 3, size, size, generator=g)).clamp(0, 1)


def _gens(seed, n):
    return [seeded_generator(seed, i) for i in range(n)]


def test_shipped_presets_load():
    assert set(PRESETS) <= set(preset_names())
    for name in preset_names():
        assert load_degradation_config(name).name == name


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_shapes_range_and_8bit(preset, scale):
    hr = _hr()
    lr, params = Degradation.from_preset(preset)(hr, scale, _gens(0, 3))
    assert lr.shape == (3, 3, 64 // scale, 64 // scale) and lr.dtype == hr.dtype
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.equal(lr, quantize_8bit(lr))
    assert len(params) == 3
    json.dumps(params)  # JSON-able
    assert params[0]["lr_size"] == [64 // scale, 64 // scale]


@pytest.mark.parametrize("preset", ["realesrgan", "mild"])
def test_same_seed_same_bytes_other_seed_differs(preset):
    deg = Degradation.from_preset(preset)
    hr = _hr()
    a, pa = deg(hr, 4, _gens(7, 3))
    b, pb = deg(hr, 4, _gens(7, 3))
    c, pc = deg(hr, 4, _gens(8, 3))
    assert torch.equal(a, b) and pa == pb
    assert not torch.equal(a, c) and pa != pc


def test_input_is_not_modified():
    hr = _hr()
    before = hr.clone()
    Degradation.from_preset("realesrgan")(hr, 4, _gens(0, 3))
    assert torch.equal(hr, before)


def test_parameters_do_not_depend_on_the_batch():
    deg = Degradation.from_preset("realesrgan")
    hr = _hr(b=3)
    _, batch_params = deg(hr, 4, _gens(3, 3))
    _, alone = deg(hr[1:2], 4, [seeded_generator(3, 1)])
    assert alone[0] == batch_params[1]


def test_bicubic_preset_is_matlab_imresize():
    hr = _hr(b=2)
    lr, params = Degradation.from_preset("bicubic")(hr, 4, _gens(0, 2))
    assert torch.equal(lr, quantize_8bit(imresize(hr, scale=1 / 4)))
    assert params[0]["stage1"] is None and params[0]["final"]["jpeg"] is None


def test_realesrgan_degrades_more_than_bicubic():
    hr = _hr(b=4)
    ref = quantize_8bit(imresize(hr, scale=1 / 4))
    lr, params = Degradation.from_preset("realesrgan")(hr, 4, _gens(1, 4))
    assert (lr - ref).abs().mean() > 0.01
    p = params[0]
    assert p["stage1"]["blur"] is not None and p["stage1"]["jpeg"]["quality"] >= 30
    assert p["final"]["order"] in ("resize_first", "jpeg_first")


def test_second_order_prob_zero_skips_stage2():
    deg = Degradation.from_preset("realesrgan", overrides=["second_order_prob=0"])
    _, params = deg(_hr(b=2), 4, _gens(0, 2))
    assert all(p["stage2"] is None for p in params)
    _, params = Degradation.from_preset("realesrgan")(_hr(b=2), 4, _gens(0, 2))
    assert all(p["stage2"] is not None for p in params)


def test_sharpen_target():
    hr = _hr(b=1)
    assert Degradation.from_preset("realesrgan").sharpen_target(hr) is hr
    deg = Degradation.from_preset("realesrgan", overrides=["usm.enabled=true"])
    sharp = deg.sharpen_target(hr)
    assert sharp.shape == hr.shape and not torch.equal(sharp, hr)
    assert sharp.min() >= 0 and sharp.max() <= 1


def test_bad_inputs_and_configs(tmp_path):
    deg = Degradation.from_preset("mild")
    with pytest.raises(ValueError, match="multiple of scale"):
        deg(torch.rand(1, 3, 30, 30), 4, _gens(0, 1))
    with pytest.raises(ValueError, match="one generator per sample"):
        deg(torch.rand(2, 3, 32, 32), 4, _gens(0, 1))
    with pytest.raises(ConfigError, match="unknown degradation preset"):
        Degradation.from_preset("nope")
    with pytest.raises(ConfigError, match="did you mean"):
        Degradation.from_preset("mild", overrides=["second_order_prb=0.5"])
    with pytest.raises(ConfigError, match="final.sinc_prob"):
        Degradation.from_preset("mild", overrides=["final.sinc_prob=2"])
    with pytest.raises(ConfigError, match="not found"):
        Degradation.from_preset(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstage1:\n  noise:\n    prob: 1.5\n")
    with pytest.raises(ConfigError, match="stage1.noise.prob"):
        Degradation.from_preset(str(bad))


def test_custom_yaml_preset(tmp_path):
    path = tmp_path / "blur_only.yaml"
    path.write_text(
        "name: blur_only\n"
        "stage1:\n"
        "  kernel: {sizes: [9], types: [iso], probs: [1.0], sigma: [2.0, 2.0], sinc_prob: 0}\n"
        "  resize: {probs: [0, 0, 1]}\n"
        "  noise: {prob: 0}\n"
        "  jpeg: {prob: 0}\n"
        "final: {resize_modes: [area], sinc_prob: 0, jpeg: {prob: 0}}\n"
    )
    deg = Degradation.from_preset(str(path))
    hr = _hr(b=2)
    lr, _ = deg(hr, 2, _gens(0, 2))
    from flowmapsr.data.degradations.kernels import filter2d, gaussian_kernel

    expected = quantize_8bit(
        torch.nn.functional.avg_pool2d(filter2d(hr, gaussian_kernel(9, 2.0, 2.0)), 2)
    )
    assert torch.allclose(lr, expected, atol=1.5 / 255)
