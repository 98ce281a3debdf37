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
