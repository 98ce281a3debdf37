"""``flowmapsr eval`` and ``flowmapsr bench`` end to end on folders the test makes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from flowmapsr.cli.main import main
from flowmapsr.convert import unit_to_pil
from flowmapsr.inference.pipeline import PipelineConfig
from flowmapsr.metrics import create_metric
from flowmapsr.metrics.evaluate import PERCEPTUAL_FR, default_fr
from flowmapsr.metrics.files import load_image
from flowmapsr.resize import imresize


def _smooth(gen: torch.Generator, h: int, w: int) -> torch.Tensor:
    """A smooth random picture ``(1, 3, h, w)`` in [0, 1] (upsampled coarse noise + texture)."""
    base = imresize(torch.rand(1, 3, h // 16, w // 16, generator=gen), size=(h, w))
    return (0.8 * base + 0.2 * torch.rand(1, 3, h, w, generator=gen)).clamp(0, 1)


@pytest.fixture
def folders(tmp_path):
    """HR 256×192 images (two NIQE blocks after a 4-px crop), their x4 LR, bicubic outputs."""
    gen = torch.Generator().manual_seed(5)
    hr_dir, lr_dir, pred_dir = (tmp_path / n for n in ("hr", "lr", "pred"))
    for d in (hr_dir, lr_dir, pred_dir):
        d.mkdir()
    for name in ("a", "b"):
        hr = _smooth(gen, 256, 192)
        unit_to_pil(hr).save(hr_dir / f"{name}.png")
        lr = imresize(hr, scale=0.25).clamp(0, 1)
        unit_to_pil(lr).save(lr_dir / f"{name}.png")
        unit_to_pil(imresize(load_image(lr_dir / f"{name}.png"), scale=4).clamp(0, 1)).save(
            pred_dir / f"{name}.png"
        )
    return hr_dir, lr_dir, pred_dir


def test_eval_json_csv_match_direct_metrics(folders, tmp_path):
    hr_dir, _, pred_dir = folders
    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    rc = main(
        ["eval", "--pred", str(pred_dir), "--ref", str(hr_dir), "--scale", "4"]
        + ["--crop-border", "4", "--json", str(out), "--csv", str(csv)]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    # LPIPS / DISTS join the defaults exactly when their weights are fetched
    perceptual = [m for m in default_fr() if m in PERCEPTUAL_FR]
    assert set(res["metrics"]) == {"psnr", "ssim", "niqe", *perceptual}
    assert set(res["per_image"]) == {"a", "b"}
    for stem in ("a", "b"):
        p, r = load_image(pred_dir / f"{stem}.png"), load_image(hr_dir / f"{stem}.png")
        for name in ["psnr", *perceptual]:
            assert res["per_image"][stem][name] == pytest.approx(
                create_metric(name, crop_border=4)(p, r).item(), abs=1e-6
            )
    mean = (res["per_image"]["a"]["ssim"] + res["per_image"]["b"]["ssim"]) / 2
    assert res["metrics"]["ssim"] == pytest.approx(mean, abs=1e-12)
    lines = csv.read_text().splitlines()
    assert set(lines[0].split(",")) == {"image", "psnr", "ssim", "niqe", *perceptual}
    assert lines[-1].startswith("mean,")


def test_eval_without_ref_is_no_reference_only(folders, tmp_path):
    _, _, pred_dir = folders
    out = tmp_path / "nr.json"
    assert main(["eval", "--pred", str(pred_dir), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert list(res["metrics"]) == ["niqe"]
    assert all(v["niqe"] > 0 for v in res["per_image"].values())


def test_eval_reports_bad_files_and_goes_on(folders, tmp_path, capsys):
    hr_dir, _, pred_dir = folders
    (pred_dir / "broken.png").write_bytes(b"\x89PNG garbage")
    unit_to_pil(torch.rand(1, 3, 100, 100)).save(pred_dir / "orphan.png")
    Image.fromarray(np.zeros((192, 192, 3), np.uint8)).save(hr_dir / "broken.png")
    out = tmp_path / "r.json"
    rc = main(["eval", "--pred", str(pred_dir), "--ref", str(hr_dir), "--json", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "orphan.png: no reference image" in err
    assert "broken.png: not an image" in err  # the package reader's one-line message
    res = json.loads(out.read_text())
    assert set(res["per_image"]) == {"a", "b"} and len(res["errors"]) == 2


class FakePipeline:
    """Stands in for SRPipeline: bicubic plus a tiny step-dependent offset."""

    config = PipelineConfig(steps=1)
    device = torch.device("cpu")  # fp32 config: precision auto resolves to fp32

    @classmethod
    def from_pretrained(cls, path=None):
        return cls()

    def upscale_tensor(self, lr, scale=4, steps=1, **kw):
        return imresize(lr, scale=scale) + 0.01 * steps


def test_bench_writes_report(folders, tmp_path, monkeypatch):
    hr_dir, lr_dir, _ = folders
    import flowmapsr.inference.pipeline as pipeline

    monkeypatch.setattr(pipeline, "SRPipeline", FakePipeline)
    out = tmp_path / "bench"
    rc = main(
        ["bench", "--lr", str(lr_dir), "--hr", str(hr_dir), "--out", str(out), "--grid", "2"]
        + ["--methods", "bicubic,flowmapsr:steps=1,flowmapsr:steps=2", "--scale", "4"]
    )
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    methods = res["methods"]
    assert list(methods) == ["bicubic", "flowmapsr:steps=1", "flowmapsr:steps=2"]
    for entry in methods.values():
        assert entry["sec_per_mp"] > 0 and entry["n_images"] == 2
        assert set(entry["metrics"]) == {
            "psnr",
            "ssim",
            "niqe",
            *(m for m in default_fr() if m in PERCEPTUAL_FR),
        }
        assert entry["peak_rss_mb"] > 0 and entry["cpu_sec_per_mp"] >= 0
    assert [methods[k]["nfe"] for k in methods] == [0, 1, 2]
    # The offsets move PSNR away from bicubic's (0.01, then 0.02 off everywhere).
    assert methods["bicubic"]["metrics"]["psnr"] > methods["flowmapsr:steps=1"]["metrics"]["psnr"]
    assert (
        methods["flowmapsr:steps=1"]["metrics"]["psnr"]
        > methods["flowmapsr:steps=2"]["metrics"]["psnr"]
    )
    md = (out / "results.md").read_text()
    assert "| `flowmapsr:steps=2` | 2 |" in md
    for name in ("crops.png", "quality_vs_nfe.png", "perception_distortion.png"):
        assert (out / name).is_file(), name


def test_bench_reports_a_missing_method_and_goes_on(folders, tmp_path, capsys):
    hr_dir, lr_dir, _ = folders
    out = tmp_path / "bench"
    rc = main(
        ["bench", "--lr", str(lr_dir), "--hr", str(hr_dir), "--out", str(out)]
        + ["--methods", f"bicubic,flowmapsr:model={tmp_path / 'none'}", "--metrics", "psnr"]
    )
    assert rc == 1
    assert "cannot run" in capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert list(res["methods"]) == ["bicubic"] and len(res["failed_methods"]) == 1


def test_bench_rejects_bad_method_text(tmp_path, capsys):
    rc = main(["bench", "--lr", str(tmp_path), "--out", str(tmp_path / "o"), "--methods", "x"])
    assert rc == 2 and "unknown method" in capsys.readouterr().err


def test_bench_grid_methods_choose_the_grid_columns(folders, tmp_path, monkeypatch, capsys):
    import flowmapsr.inference.pipeline as pipeline

    hr_dir, lr_dir, _ = folders
    monkeypatch.setattr(pipeline, "SRPipeline", FakePipeline)
    base = ["bench", "--lr", str(lr_dir), "--hr", str(hr_dir), "--metrics", "psnr"]
    methods = ["--methods", "bicubic,flowmapsr:steps=1,flowmapsr:steps=2"]
    widths = {}
    for name, extra in (("all", []), ("two", ["--grid-methods", "flowmapsr:steps=2"])):
        assert main(base + methods + ["--out", str(tmp_path / name)] + extra) == 0
        widths[name] = Image.open(tmp_path / name / "crops.png").width
        res = json.loads((tmp_path / name / "results.json").read_text())
        assert len(res["methods"]) == 3  # every method is still measured
    # LR + 3 methods + HR = 5 columns, LR + 1 + HR = 3 columns
    assert widths["two"] * 5 == pytest.approx(widths["all"] * 3, rel=0.05)
    rc = main(base + methods + ["--out", str(tmp_path / "x"), "--grid-methods", "span"])
    assert rc == 2 and "not in --methods" in capsys.readouterr().err
