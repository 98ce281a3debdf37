"""``flowmapsr degrade`` end to end on a few generated images (through the command's own parser,
so the test does not depend on the other sub-commands being importable)."""

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from flowmapsr.cli import degrade


def _run(*argv) -> int:
    parser = argparse.ArgumentParser()
    degrade.add_parser(parser.add_subparsers())
    return degrade.run(parser.parse_args(["degrade", *map(str, argv)]))


@pytest.fixture
def hr_dir(tmp_path):
    d = tmp_path / "hr"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"one.png": (64, 64), "two.jpg": (70, 90), "three.bmp": (48, 40)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / name)
    return d


def _png(path):
    with Image.open(path) as im:
        return im.size, im.mode, path.read_bytes()


def test_degrade_writes_lr_and_params(hr_dir, tmp_path):
    out = tmp_path / "out"
    assert _run(hr_dir, "-o", out, "--scale", 4, "--preset", "realesrgan", "--seed", 0) == 0
    sizes = {p.stem: _png(p)[:2] for p in out.glob("*.png")}
    # 70x90 is cropped to 68x88 before the x4 degradation.
    assert sizes == {"one": ((16, 16), "RGB"), "two": ((22, 17), "RGB"), "three": ((10, 12), "RGB")}
    params = json.loads((out / "params.json").read_text())
    assert set(params["images"]) == {"one", "two", "three"} and params["failed"] == []
    assert params["images"]["two"]["hr_size"] == [68, 88]
    assert params["config"]["name"] == "realesrgan"
    assert not list(out.glob(".*tmp"))  # no temporary files left behind


def test_degrade_is_seeded(hr_dir, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert _run(hr_dir, "-o", tmp_path / name, "--scale", 2, "--seed", seed) == 0
    a, b, c = ((tmp_path / n / "one.png").read_bytes() for n in "abc")
    assert a == b and a != c


@pytest.mark.parametrize("preset,scale", [("bicubic", 8), ("mild", 2)])
def test_degrade_other_presets_and_scales(hr_dir, tmp_path, preset, scale):
    out = tmp_path / "out"
    assert _run(hr_dir, "-o", out, "--scale", scale, "--preset", preset) == 0
    assert _png(out / "one.png")[0] == (64 // scale, 64 // scale)


def test_degrade_skips_bad_files_and_exits_nonzero(hr_dir, tmp_path, capsys):
    (hr_dir / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    assert _run(hr_dir, "-o", out, "--scale", 4) == 1
    err = capsys.readouterr().err
    assert "broken.png: not an image" in err  # the package reader's one-line message
    assert {p.stem for p in out.glob("*.png")} == {"one", "two", "three"}
    assert json.loads((out / "params.json").read_text())["failed"][0].startswith(str(hr_dir))


def test_degrade_never_overwrites_inputs(hr_dir, capsys):
    before = sorted(p.name for p in hr_dir.iterdir()), (hr_dir / "one.png").read_bytes()
    assert _run(hr_dir, "-o", hr_dir, "--scale", 4) == 2
    assert "must differ" in capsys.readouterr().err
    # Output inside the input tree, read recursively: the .png input is not overwritten.
    sub = hr_dir / "sub"
    sub.mkdir()
    (sub / "one.png").write_bytes(before[1])
    assert _run(hr_dir, "-o", sub, "--scale", 4, "--recursive") == 1
    assert (sub / "one.png").read_bytes() == before[1]
    assert "would overwrite an input" in capsys.readouterr().err


def test_degrade_bad_preset_and_missing_dir(tmp_path, capsys):
    assert _run(tmp_path, "-o", tmp_path / "o", "--preset", "nope") == 2
    assert _run(tmp_path / "missing", "-o", tmp_path / "o") == 2
    assert "no such file" in capsys.readouterr().err
