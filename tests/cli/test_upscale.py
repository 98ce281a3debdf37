"""``flowmapsr upscale``: files, folders, globs, bad inputs, exit codes, never touching inputs."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
import torch
from PIL import Image

from flowmapsr.cli import upscale as cmd
from flowmapsr.inference.random_model import random_pipeline

RNG = np.random.default_rng(2)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    random_pipeline({"type": "small", "channels": 16, "blocks": 2}, seed=7).save_pretrained(path)
    return path


def run(*argv) -> int:
    parser = argparse.ArgumentParser(prog="flowmapsr")
    cmd.add_parser(parser.add_subparsers())
    return cmd.run(parser.parse_args(["upscale", *map(str, argv)]))


def save(path, h=12, w=10, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 4 if mode == "RGBA" else 3  # RGBA gets a real (not fully opaque) alpha
    a = RNG.integers(0, 256, (h, w, channels), dtype=np.uint8)
    Image.fromarray(a).convert(mode).save(path)
    return path


def size_of(path):
    with Image.open(path) as im:
        return im.size


def test_files_folders_and_globs(tmp_path, model, capsys):
    a = save(tmp_path / "in" / "a.png")
    save(tmp_path / "in" / "sub" / "b.jpg", 8, 6)
    save(tmp_path / "g" / "c.png", 5, 7)
    save(tmp_path / "g" / "d.png", 6, 6)
    out = tmp_path / "out"
    assert run(a, "-o", out, "--model", model) == 0
    assert size_of(out / "a.png") == (40, 48)
    assert run(tmp_path / "in", tmp_path / "g" / "*.png", "-o", out / "2", "--model", model) == 0
    assert size_of(out / "2" / "a.png") == (40, 48)
    assert size_of(out / "2" / "sub" / "b.png") == (24, 32)  # folders keep their layout
    assert size_of(out / "2" / "c.png") == (28, 20) and (out / "2" / "d.png").is_file()
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "4 done, 0 skipped, 0 failed" in summary and "s per output megapixel" in summary


@pytest.mark.parametrize("scale,expect", [("2", (20, 24)), ("8", (80, 96)), ("3", (30, 36))])
def test_scales(tmp_path, model, scale, expect):
    a = save(tmp_path / "a.png")
    assert run(a, "-o", tmp_path / "o", "--model", model, "--scale", scale, "--steps", "2") == 0
    assert size_of(tmp_path / "o" / "a.png") == expect


def test_tiled_cli_matches_untiled(tmp_path, model):
    a = save(tmp_path / "a.png", 30, 26)
    assert run(a, "-o", tmp_path / "t", "--model", model, "--tile", "12", "--overlap", "4") == 0
    assert run(a, "-o", tmp_path / "u", "--model", model, "--tile", "0") == 0
    t = np.asarray(Image.open(tmp_path / "t" / "a.png")).astype(float)
    u = np.asarray(Image.open(tmp_path / "u" / "a.png")).astype(float)
    mse = ((t - u) ** 2).mean() / 255**2
    assert mse == 0 or 10 * np.log10(1 / mse) >= 45


def test_bad_inputs_fail_alone(tmp_path, model, capsys):
    good = save(tmp_path / "good.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image")
    rc = run(
        tmp_path / "missing.png",
        tmp_path / "empty.png",
        tmp_path / "notes.png",
        good,
        tmp_path / "nothing*.png",
        "-o",
        tmp_path / "out",
        "--model",
        model,
    )
    assert rc == 1
    assert size_of(tmp_path / "out" / "good.png") == (40, 48)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    for name in ("missing.png", "empty.png", "notes.png", "nothing*.png"):
        assert sum(name in line for line in errors) == 1, (name, errors)
    assert "1 done, 0 skipped, 4 failed" in captured.out


def test_existing_outputs_kept_unless_overwrite(tmp_path, model, capsys):
    a = save(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"old")
    assert run(a, "-o", out, "--model", model) == 0
    assert (out / "a.png").read_bytes() == b"old"
    assert "exists, kept" in capsys.readouterr().err
    assert run(a, "-o", out, "--model", model, "--overwrite") == 0
    assert size_of(out / "a.png") == (40, 48)
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # no temp files left behind


def test_input_is_never_overwritten(tmp_path, model, capsys):
    a = save(tmp_path / "a.png")
    before = a.read_bytes()
    assert run(a, "-o", tmp_path, "--model", model, "--overwrite") == 1
    assert a.read_bytes() == before
    assert "refusing to overwrite an input" in capsys.readouterr().err


def test_outputs_inside_an_input_folder_are_not_reprocessed(tmp_path, model):
    save(tmp_path / "a.png")
    assert run(tmp_path, "-o", tmp_path / "out", "--model", model) == 0
    assert run(tmp_path, "-o", tmp_path / "out", "--model", model, "--overwrite") == 0
    assert not (tmp_path / "out" / "out").exists()


def test_formats_and_modes(tmp_path, model):
    save(tmp_path / "g.png", mode="L")
    save(tmp_path / "t.png", mode="RGBA")
    out = tmp_path / "o"
    args = ("-o", out, "--model", model, "--scale", "2")
    assert run(tmp_path / "g.png", tmp_path / "t.png", *args, "--format", "webp") == 0
    assert Image.open(out / "t.webp").mode == "RGBA"
    assert run(tmp_path / "g.png", *args, "--format", "jpg", "--quality", "80") == 0
    assert Image.open(out / "g.jpg").mode == "L"
    assert run(tmp_path / "t.png", *args, "--color-fix", "adain", "--precision", "bf16") == 0
    assert Image.open(out / "t.png").mode == "RGBA"


def test_max_pixels(tmp_path, model, capsys):
    a = save(tmp_path / "a.png", 40, 40)
    assert run(a, "-o", tmp_path / "o", "--model", model, "--max-pixels", "1000") == 1
    assert "exceeds the limit" in capsys.readouterr().err


def test_missing_model_and_bad_options(tmp_path, capsys, monkeypatch):
    a = save(tmp_path / "a.png")
    import flowmapsr.inference.pipeline as pipeline

    monkeypatch.setattr(pipeline, "BUILTIN_DIR", tmp_path / "no-such-dir")
    assert run(a, "-o", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "no built-in model is installed" in err and "--model DIR" in err
    assert run(a, "-o", tmp_path / "o", "--model", tmp_path / "nope") == 2
    assert "cannot load model" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert run(a, "-o", tmp_path / "o", "--model", tmp_path, "--device", "cuda") == 2
        assert "CUDA is not available" in capsys.readouterr().err
    for bad in (["--scale", "0.5"], ["--steps", "0"], ["--tile", "8", "--overlap", "8"]):
        assert run(a, "-o", tmp_path / "o", "--model", tmp_path, *bad) == 2
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")
