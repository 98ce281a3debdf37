"""The metric registry: names, attributes, unavailable metrics with reasons."""

from __future__ import annotations

import importlib.util

import pytest

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


@pytest.mark.parametrize("name", ["lpips", "dists", "fid"])
def test_missing_package_is_reported(monkeypatch, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        learned.importlib.util,
        "find_spec",
        lambda mod, *a: None if mod in {"lpips", "DISTS_pytorch", "torchmetrics"} else real(mod),
    )
    with pytest.raises(MetricUnavailable, match=f"{name}: needs the package"):
        create_metric(name)


def test_missing_weights_are_reported(monkeypatch, tmp_path):
    # Pretend every package is importable: the weight file is then what is missing.
    monkeypatch.setattr(learned.importlib.util, "find_spec", lambda mod, *a: object())
    monkeypatch.setenv("FLOWMAPSR_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(learned.torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MetricUnavailable, match=learned.ALEXNET_WEIGHTS):
        create_metric("lpips")
    with pytest.raises(MetricUnavailable, match=learned.INCEPTION_WEIGHTS):
        create_metric("fid")
    assert learned.find_weights(learned.VGG16_WEIGHTS) is None
    (tmp_path / learned.VGG16_WEIGHTS).write_bytes(b"x")
    assert learned.find_weights(learned.VGG16_WEIGHTS) == tmp_path / learned.VGG16_WEIGHTS
