"""Report pieces: table, plots, crop choice and grid."""

from __future__ import annotations

import torch

from flowmapsr.metrics.report import (
    crop_grid,
    knob_sweeps,
    make_plots,
    markdown_table,
    pick_crop,
)


def _results():
    def entry(kind, nfe, psnr, niqe, spm):
        return {
            "kind": kind,
            "nfe": nfe,
            "metrics": {"psnr": psnr, "ssim": 0.7, "niqe": niqe},
            "sec_per_mp": spm,
            "peak_rss_mb": 500.0,
        }

    return {
        "settings": {"lr": "x"},
        "methods": {
            "bicubic": entry("bicubic", 0, 25.0, 9.0, 0.05),
            "flowmapsr:steps=1": entry("flowmapsr", 1, 26.0, 6.0, 0.5),
            "flowmapsr:steps=2": entry("flowmapsr", 2, 25.5, 5.0, 1.0),
        },
    }


def test_markdown_table_rows_and_arrows():
    table = markdown_table(_results())
    lines = table.strip().splitlines()
    assert lines[0].startswith("| method | NFE | PSNR ↑ | SSIM ↑ | NIQE ↓ |")
    assert len(lines) == 2 + 3
    assert (
        "| `flowmapsr:steps=2` | 2 | 25.50 | 0.7000 | 5.00 | 1.000 | 500 |" in table
    )  # no CPU column


def test_plots_are_written(tmp_path):
    names = make_plots(_results(), tmp_path, report=lambda m: None)
    assert set(names) == {"quality_vs_nfe.png", "quality_vs_time.png", "perception_distortion.png"}
    for n in names:
        assert (tmp_path / n).stat().st_size > 1000


def test_pick_crop_finds_the_textured_corner(gen):
    img = torch.full((1, 3, 64, 64), 0.5)
    img[..., 40:, 40:] = torch.rand(1, 3, 24, 24, generator=gen)
    top, left, size = pick_crop(img, 16)
    assert size == 16 and top >= 36 and left >= 36


def test_crop_grid_layout(gen):
    cells = [("a", torch.rand(1, 3, 8, 8, generator=gen)), ("b", torch.rand(1, 3, 32, 32))]
    grid = crop_grid([("img1", cells), ("img2", cells)], cell=64)
    assert grid.size == (2 * (64 + 4) + 4, 18 + 2 * (64 + 18 + 4) + 4)


def _knob_results():
    def run(steps, omega, lora, psnr, niqe, model="built-in"):
        st = {"model": model, "steps": steps, "guidance": omega, "lora_scale": lora}
        return {
            "kind": "flowmapsr",
            "nfe": steps,
            "settings": st,
            "metrics": {"psnr": psnr, "niqe": niqe},
            "sec_per_mp": 0.5,
        }

    return {
        "settings": {"lr": "x"},
        "methods": {
            "bicubic": {"kind": "bicubic", "nfe": 0, "metrics": {"psnr": 27.0, "niqe": 9.0}},
            "a": run(1, 1.0, 1.0, 27.3, 8.0),
            "b": run(2, 1.0, 1.0, 27.2, 7.8),
            "c": run(4, 1.0, 1.0, 27.1, 7.7),
            "d": run(1, 3.5, 1.0, 27.0, 7.0),
            "e": run(1, 1.0, 0.0, 27.2, 8.5),
            "f": run(1, 1.0, 2.0, 26.8, 6.5),
            "g": run(2, 1.0, 1.0, 20.0, 5.0, model="other"),  # another model: no sweep with b
        },
    }


def test_knob_sweeps_group_runs_that_differ_in_one_knob():
    sweeps = knob_sweeps(_knob_results()["methods"])
    assert sorted((k, [lb for _, lb in m]) for k, m in sweeps) == [
        ("guidance", ["a", "d"]),
        ("lora_scale", ["e", "a", "f"]),
        ("steps", ["a", "b", "c"]),
    ]


def test_perception_distortion_plot_with_sweeps(tmp_path):
    names = make_plots(_knob_results(), tmp_path, report=lambda m: None)
    assert "perception_distortion.png" in names
    assert (tmp_path / "perception_distortion.png").stat().st_size > 1000


def test_lpips_gets_its_own_perception_distortion_plane(tmp_path):
    res = _results()
    for i, e in enumerate(res["methods"].values()):
        e["metrics"].update(lpips=0.4 - 0.05 * i, dists=0.25 - 0.01 * i)
    names = make_plots(res, tmp_path, report=lambda m: None)
    assert {"perception_distortion.png", "perception_distortion_lpips.png"} <= set(names)
    assert (tmp_path / "perception_distortion_lpips.png").stat().st_size > 1000
    assert "LPIPS" in markdown_table(res) and "DISTS" in markdown_table(res)
