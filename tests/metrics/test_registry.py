"""The metric registry: names, attributes, unavailable metrics with reasons."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from flowmapsr.metrics import MetricUnavailable, create_metric, learned, list_metrics


def test_names_and_directions():
    assert {"psnr", "ssim", "niqe", "lpips", "dists", "fid"} <= set(list_metrics())
    assert not create_metric("psnr").lower_better and create_metric("psnr").full_reference
    assert not create_metric("SSIM").lower_better
    niqe = create_metric("niqe")
    assert niqe.lower_better and not niqe.full_reference


def test_unknown_metric_names_the_known_ones():
    with pytest.raises(KeyError, match="psnr"):
        create_metric("psnrr")


def test_fid_without_its_package_is_reported(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        learned.importlib.util,
        "find_spec",
        lambda mod, *a: None if mod in {"torchmetrics"} else real(mod),
    )
    with pytest.raises(MetricUnavailable, match="fid: needs the package"):
        create_metric("fid")


@pytest.mark.parametrize("name", ["lpips", "lpips-vgg", "dists"])
def test_missing_perceptual_weights_name_the_fetch_command(monkeypatch, tmp_path, name):
    monkeypatch.setenv("FLOWMAPSR_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(MetricUnavailable, match="flowmapsr weights fetch"):
        create_metric(name)


def test_missing_fid_weights_are_reported(monkeypatch, tmp_path):
    # Pretend every package is importable: the weight file is then what is missing.
    monkeypatch.setattr(learned.importlib.util, "find_spec", lambda mod, *a: object())
    monkeypatch.setenv("FLOWMAPSR_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(learned.torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MetricUnavailable, match=learned.INCEPTION_WEIGHTS):
        create_metric("fid")
    assert learned.find_weights(learned.INCEPTION_WEIGHTS) is None
    (tmp_path / learned.INCEPTION_WEIGHTS).write_bytes(b"x")
    assert learned.find_weights(learned.INCEPTION_WEIGHTS) == tmp_path / learned.INCEPTION_WEIGHTS


@pytest.mark.parametrize("name", list_metrics())
def test_every_metric_is_batched_and_ranks_a_degraded_image_worse(name, gen):
    """Each registered metric, on what this machine has: ``(B,)`` values, batch = one by one,
    and (full-reference) the reference itself scores better than a noisy copy."""
    try:
        m = create_metric(name)
    except MetricUnavailable as err:
        pytest.skip(str(err))
    if m.set_metric:
        pytest.skip("set metric: compared on image sets, not per image")
    ref = torch.rand(2, 3, 96, 192, generator=gen)  # NIQE needs two 96² blocks
    ref = torch.nn.functional.avg_pool2d(ref, 5, stride=1, padding=2)  # some structure
    noisy = (ref + 0.15 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    out = m(noisy, ref if m.full_reference else None)
    assert out.shape == (2,) and out.dtype == torch.float64 and torch.isfinite(out).all()
    one = m(noisy[1:], ref[1:] if m.full_reference else None)
    torch.testing.assert_close(one, out[1:], atol=1e-4, rtol=1e-4)
    if m.full_reference:
        clean = m(ref, ref)
        worse = (out > clean) if m.lower_better else (out < clean)
        assert worse.all()
