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
    a = save(tmp_path / "a.png", 40, 36)
    assert run(a, "-o", tmp_path / "t", "--model", model, "--tile", "16", "--overlap", "4") == 0
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
    assert run(a, "-o", tmp_path / "o", "--model", tmp_path, "--tile", "16", "--overlap", "16") == 2
    assert "--overlap must be below --tile" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--scale", "0.5"),
        ("--scale", "0"),
        ("--scale", "-2"),
        ("--scale", "inf"),
        ("--scale", "nan"),
        ("--scale", "1e9"),
        ("--scale", "17"),
        ("--scale", "four"),
        ("--tile", "1"),
        ("--tile", "-256"),
        ("--tile", "1e9"),
        ("--overlap", "-1"),
        ("--steps", "0"),
        ("--steps", "-3"),
        ("--steps", "inf"),
        ("--quality", "0"),
        ("--guidance", "nan"),
    ],
)
def test_numbers_are_bounded_at_parse_time(tmp_path, capsys, flag, value):
    a = save(tmp_path / "a.png")
    with pytest.raises(SystemExit) as exit_:
        run(a, "-o", tmp_path / "o", "--model", tmp_path / "nope", f"{flag}={value}")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"argument {flag}:" in err[-1] and value in err[-1], err
    assert "Traceback" not in "".join(err)
    assert not (tmp_path / "o").exists()  # nothing made, nothing loaded


def test_bounded_numbers_accept_their_range(tmp_path, model):
    a = save(tmp_path / "a.png")
    args = ("-o", tmp_path / "o", "--model", model, "--steps", "1")
    assert run(a, *args, "--scale", "16", "--tile", "0") == 0
    assert size_of(tmp_path / "o" / "a.png") == (160, 192)


# -- hostile input (issue 18) -------------------------------------------------------------------
def test_another_input_is_never_overwritten(tmp_path, model, capsys):
    # a.webp's output name is the input a.png: both keep their suffix instead, nothing is lost.
    d = tmp_path / "d"
    save(d / "a.png")
    Image.open(d / "a.png").save(d / "a.webp", lossless=True)
    before = (d / "a.png").read_bytes()
    assert run(d / "a.webp", d / "a.png", "-o", d, "--model", model, "--overwrite") == 0
    assert (d / "a.png").read_bytes() == before
    assert size_of(d / "a.webp.png") == (40, 48) and size_of(d / "a.png.png") == (40, 48)
    captured = capsys.readouterr()
    assert "2 done, 0 skipped, 0 failed, 2 renamed" in captured.out
    assert "written as" in captured.err


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_an_input_reached_through_a_link_is_never_overwritten(tmp_path, model, capsys, link):
    real = save(tmp_path / "real" / "a.png")
    before = real.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    # out/a.png is the input file itself under another name; b.jpg's output would land on it.
    (out / "a.png").symlink_to(real) if link == "symlink" else os.link(real, out / "a.png")
    save(tmp_path / "other" / "a.jpg")
    rc = run(real, tmp_path / "other" / "a.jpg", "-o", out, "--model", model, "--overwrite")
    assert real.read_bytes() == before
    err = capsys.readouterr().err
    # the two inputs collide on out/a.png and are renamed, so both are written beside it
    assert rc == 0, err
    assert size_of(out / "a.png.png") == (40, 48) and size_of(out / "a.jpg.png") == (40, 48)
    # alone, the input's output path is the input itself: refused, whatever the flags
    assert run(out / "a.png", "-o", tmp_path / "real", "--model", model, "--overwrite") == 1
    assert real.read_bytes() == before
    assert "refusing to overwrite an input" in capsys.readouterr().err


def test_a_failed_read_does_not_skip_a_same_stem_input(tmp_path, model, capsys):
    (tmp_path / "photo.jpg").write_text("not an image")
    save(tmp_path / "photo.png")
    out = tmp_path / "out"
    assert run(tmp_path / "photo.jpg", tmp_path / "photo.png", "-o", out, "--model", model) == 1
    captured = capsys.readouterr()
    assert "already written" not in captured.err
    assert size_of(out / "photo.png.png") == (40, 48)
    assert "1 done, 0 skipped, 1 failed, 2 renamed" in captured.out
    # the same file twice is upscaled once, not a failure
    twice = (tmp_path / "photo.png", tmp_path / "photo.png")
    assert run(*twice, "-o", out / "2", "--model", model) == 0
    assert os.listdir(out / "2") == ["photo.png"]
    assert "listed more than once" in capsys.readouterr().err


def test_bad_output_folder_fails_before_the_model_loads(tmp_path, capsys):
    a = save(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        # --model names no folder: a model load would fail with "cannot load model"
        assert run(a, "-o", out, "--model", tmp_path / "nope") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(out) in err, err
        assert "cannot load model" not in err and ".tmp" not in err


def test_write_errors_name_the_output_not_a_temp_file(tmp_path, model, capsys):
    a = save(tmp_path / "a.png")
    save(tmp_path / "in" / "sub" / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where the sub-folder should go")
    assert run(a, tmp_path / "in", "-o", out, "--model", model) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and str(out / "sub" / "b.png") in err[0] and ".tmp" not in err[0], err
    assert size_of(out / "a.png") == (40, 48)


def test_rerun_with_every_output_in_place_loads_no_model(tmp_path, model, capsys):
    a, b = save(tmp_path / "a.png"), save(tmp_path / "b.png")
    out = tmp_path / "out"
    assert run(a, b, "-o", out, "--model", model) == 0
    capsys.readouterr()
    # the model folder is gone: any model load would fail with exit code 2
    assert run(a, b, "-o", out, "--model", tmp_path / "no-model") == 0
    captured = capsys.readouterr()
    assert captured.err.count("exists, kept") == 2
    assert "0 done, 2 skipped, 0 failed" in captured.out and "model not loaded" in captured.out


def test_progress_is_one_line_per_image_in_a_log(tmp_path, model, capsys):
    files = [save(tmp_path / f"{n}.png") for n in "abc"]
    assert run(*files, "-o", tmp_path / "o", "--model", model) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "] " in line]
    assert [line.split("]")[0][-4:] for line in lines] == ["[1/3", "[2/3", "[3/3"], lines
    assert all(" -> " in line and " s)" in line for line in lines)


def test_stale_temps_of_ours_are_removed_and_nothing_else(tmp_path, model, capsys):
    import fcntl

    a = save(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".a.png.k3j_9xq0.tmp", out / ".other.webp.abcdefgh.tmp"]
    kept = [
        out / ".notes.txt.abcdefgh.tmp",  # not an image output of ours
        out / ".a.png.short.tmp",  # not mkstemp's 8-character random part
        out / "a.png.abcdefgh.tmp",  # not hidden
        out / ".b.png.abcdefgh.tmp.bak",
        out / ".c.png.livelive.tmp",  # locked: a live writer (another run) owns it
    ]
    for path in stale + kept:
        path.write_bytes(b"partial")
    with open(out / ".c.png.livelive.tmp", "rb") as live:
        fcntl.flock(live, fcntl.LOCK_EX)
        assert run(a, "-o", out, "--model", model) == 0
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    err = capsys.readouterr().err
    assert "removed 2 temp file(s) an interrupted run left in" in err and str(out) in err


def test_sigterm_mid_write_drops_the_temp_and_prints_the_summary(
    tmp_path, model, capsys, monkeypatch
):
    import signal

    import flowmapsr.imageio as images

    files = [save(tmp_path / "in" / f"{n}.png") for n in "abc"]
    real_write, writes = images.write_image, []

    def write_image(path, pic, **kwargs):
        writes.append(path)
        if len(writes) < 2:
            return real_write(path, pic, **kwargs)

        def killed_while_writing(f):
            f.write(b"half a PNG")
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs right here

        images.atomic_write(path, killed_while_writing)

    monkeypatch.setattr(images, "write_image", write_image)
    out = tmp_path / "out"
    assert run(*files, "-o", out, "--model", model) == 128 + signal.SIGTERM
    assert os.listdir(out) == ["a.png"]  # b's temp dropped, c never started
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "1 done, 0 skipped, 0 failed, interrupted by SIGTERM (2 not written)" in summary
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_sigterm_from_outside_stops_cleanly(tmp_path, model):
    import signal
    import subprocess
    import sys
    import time

    for n in range(40):
        save(tmp_path / "in" / f"{n:02d}.png", 64, 64)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd_line = [sys.executable, "-m", "flowmapsr.cli.main", "upscale", str(tmp_path / "in")]
    cmd_line += ["-o", str(out), "--model", str(model), "--tile", "16"]
    proc = subprocess.Popen(cmd_line, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(out.glob("*.png")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr.decode()[-2000:]
    assert "interrupted by SIGTERM" in stdout.decode()
    assert "Traceback" not in stderr.decode()
    names = os.listdir(out)
    assert names and all(n.endswith(".png") and not n.startswith(".") for n in names), names
    assert len(names) < 40


def test_multi_frame_input_is_refused_unless_first_frame(tmp_path, model, capsys):
    """An animated GIF is never silently cut to its first frame: refused (exit 1, the batch goes
    on), or upscaled from frame 0 with ``--first-frame``, which the run says."""
    frames = [Image.new("RGB", (10, 8), c) for c in ("red", "green")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    save(tmp_path / "still.png")
    out = tmp_path / "out"
    args = ("--model", model, "--scale", "2", "-o", out)
    assert run(tmp_path / "anim.gif", tmp_path / "still.png", *args) == 1
    err = capsys.readouterr().err
    assert "anim.gif: animated GIF with 2 frames" in err and "--first-frame" in err
    assert sorted(p.name for p in out.iterdir()) == ["still.png"]
    assert run(tmp_path / "anim.gif", *args, "--first-frame") == 0
    assert "2 frames; frame 0 only" in capsys.readouterr().err
    with Image.open(out / "anim.png") as im:
        assert im.size == (20, 16) and getattr(im, "n_frames", 1) == 1


def test_a_probe_left_by_a_killed_run_is_removed_by_the_next(tmp_path, model, monkeypatch):
    # A kill between prepare_out_dir's probe and its unlink (here: the unlink never happens)
    # must not leave a file that no later run removes.
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(cmd.os, "unlink", lambda path: None)
        assert cmd.prepare_out_dir(out) is None
    assert len(os.listdir(out)) == 1  # the probe, left behind
    assert run(save(tmp_path / "a.png"), "-o", out, "--model", model) == 0
    assert os.listdir(out) == ["a.png"]


# -- bounded cost (issue 18) --------------------------------------------------------------------
def _fixed_cost(monkeypatch, seconds_per_mp, **kwargs):
    """Every CostMeter the run makes uses this figure (s per output MP per NFE): nothing timed."""
    import functools

    from flowmapsr.inference import cost

    meter = functools.partial(cost.CostMeter, seconds_per_mp, **kwargs)
    monkeypatch.setattr(cost, "CostMeter", meter)


def test_cost_ceiling_defaults_agree_with_the_cost_module():
    from flowmapsr.inference import cost

    assert cmd.DEFAULT_MAX_MEGAPIXELS == cost.DEFAULT_MAX_MEGAPIXELS
    assert cmd.DEFAULT_MAX_SECONDS == cost.DEFAULT_MAX_SECONDS


def test_an_image_over_the_estimated_seconds_is_refused_and_the_batch_goes_on(
    tmp_path, model, capsys, monkeypatch
):
    # 64×64 at x4: 0.065536 MP of output; at 1000 s/MP (1 step) that is 66 s > 10 s.
    _fixed_cost(monkeypatch, 1000.0)
    big, small = save(tmp_path / "big.png", 64, 64), save(tmp_path / "small.png")
    out = tmp_path / "out"
    assert run(big, small, "-o", out, "--model", model, "--steps", "1", "--max-seconds", "10") == 1
    assert os.listdir(out) == ["small.png"]
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    assert str(big) in errors[0] and "estimated 66 s" in errors[0], errors
    assert "256×256" in errors[0] and "--max-seconds" in errors[0], errors
    # 48×40 = 0.00192 MP → 1.9 s: within the limit, and the log line says so
    logged = [line for line in captured.err.splitlines() if "] " in line]
    assert len(logged) == 1 and "small.png" in logged[0] and "estimated 1.9 s" in logged[0]
    assert "1 done, 0 skipped, 1 failed, 1 over the cost ceiling" in captured.out
    # the limit lifted (0 = none): the same image goes through
    assert run(big, "-o", out, "--model", model, "--steps", "1", "--max-seconds", "0") == 0
    assert size_of(out / "big.png") == (256, 256)


def test_the_estimate_scales_with_the_steps(tmp_path, model, capsys, monkeypatch):
    _fixed_cost(monkeypatch, 1000.0)
    small = save(tmp_path / "small.png")
    assert run(small, "-o", tmp_path / "o", "--model", model, "--steps", "3") == 0
    assert "estimated 5.8 s" in capsys.readouterr().err  # 0.00192 MP × 3 × 1000 s/MP


def test_an_output_over_the_megapixel_limit_is_refused_before_decoding(
    tmp_path, model, capsys, monkeypatch
):
    big, small = save(tmp_path / "big.png", 64, 64), save(tmp_path / "small.png")
    import flowmapsr.imageio as images

    decoded = []
    real_read = images.read_image
    monkeypatch.setattr(
        images, "read_image", lambda p, **kw: decoded.append(p) or real_read(p, **kw)
    )
    out = tmp_path / "out"
    assert run(big, small, "-o", out, "--model", model, "--max-megapixels", "0.05") == 1
    assert os.listdir(out) == ["small.png"] and decoded == [small]
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and str(big) in err[0], err
    assert "output 256×256 = 0.1 MP exceeds the limit of 0.05 MP" in err[0], err
    assert "--max-megapixels" in err[0]
    # at x2 the same input fits
    assert run(big, "-o", out, "--model", model, "--max-megapixels", "0.05", "--scale", "2") == 0


def test_the_first_image_is_extrapolated_from_its_first_tiles(tmp_path, model, capsys, monkeypatch):
    """Nothing measured yet: the first image starts, its tiles are timed (a clock that ticks 1 s
    per reading: every tile takes 1 s), the first is the warm-up, and the extrapolation from
    the second refuses it there."""
    ticks = iter(range(10**6))
    _fixed_cost(monkeypatch, None, clock=lambda: float(next(ticks)), min_sample_mp=0.0)
    big, small = save(tmp_path / "big.png", 64, 64), save(tmp_path / "small.png")
    out = tmp_path / "out"
    argv = ("-o", out, "--model", model, "--steps", "1", "--tile", "16", "--overlap", "4")
    from flowmapsr.inference import tiling
    from flowmapsr.inference.pipeline import SRPipeline

    pipe = SRPipeline.from_pretrained(model)
    plan = tiling.plan_tiles(64, 64, 4, pipe.size_multiple, 16, 4, pipe.config.border_pad)
    assert plan.count > 3  # big.png has tiles left when its second one is timed
    assert run(big, small, *argv, "--max-seconds", str(plan.count - 0.5)) == 1
    assert os.listdir(out) == ["small.png"]
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(err) == 1 and str(big) in err[0] and "from its first 2 tile(s)" in err[0], err
    assert f"estimated {plan.count} s" in err[0] and "--max-seconds" in err[0], err
    # the ceiling lifted, it is estimated at its second tile and goes through
    assert run(big, *argv, "--max-seconds", str(plan.count + 0.5)) == 0
    logged = [line for line in capsys.readouterr().err.splitlines() if "] " in line]
    assert f"estimated {plan.count} s" in logged[0], logged


# -- bit depth: float in → float out (issue 18) -------------------------------------------------
def _write_input(path, kind):
    """A 12×10 input of ``kind``; returns the samples as written (RGB order)."""
    import cv2

    if kind == "float-rgb":  # Pillow has no float RGB mode: OpenCV writes it (BGR order)
        a = RNG.random((12, 10, 3), dtype=np.float32)
        cv2.imwrite(str(path), np.ascontiguousarray(a[:, :, ::-1]))
    elif kind == "float-grey":
        a = RNG.random((12, 10), dtype=np.float32)
        Image.fromarray(a, mode="F").save(path)
    elif kind == "float-above-1":
        a = np.linspace(0.0, 3.0, 120, dtype=np.float32).reshape(12, 10)
        Image.fromarray(a, mode="F").save(path)
    elif kind == "16-bit-rgb":
        a = RNG.integers(0, 65536, (12, 10, 3), dtype=np.uint16)
        cv2.imwrite(str(path), np.ascontiguousarray(a[:, :, ::-1]))
    else:  # "8-bit-rgb"
        a = RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)
        Image.fromarray(a).save(path)
    return a


@pytest.mark.parametrize(
    "kind,suffix,fmt,dtype,note",
    [
        ("float-rgb", ".tif", "tif", np.float32, None),
        ("float-grey", ".tif", "tif", np.float32, None),
        ("float-above-1", ".tif", "tif", np.float32, "values outside are clipped"),
        ("float-rgb", ".tif", "png", np.uint16, "float32 input written as 16-bit PNG"),
        ("16-bit-rgb", ".png", "png", np.uint16, None),
        ("16-bit-rgb", ".png", "tif", np.uint16, None),
        ("16-bit-rgb", ".png", "jpg", np.uint8, "16-bit input written as 8-bit JPG"),
        ("8-bit-rgb", ".png", "tif", np.uint8, None),
        ("8-bit-rgb", ".png", "png", np.uint8, None),
    ],
)
def test_bit_depth_is_kept_where_the_format_holds_it(
    tmp_path, model, capsys, kind, suffix, fmt, dtype, note
):
    """The written file, read back, has the input's sample type (as far as the format goes) and
    exactly the values the API computes in memory (lossless formats)."""
    import cv2

    from flowmapsr.imageio import read_image, to_8bit, to_16bit
    from flowmapsr.inference.api import load_pipeline, upscale_picture

    src = tmp_path / f"in{suffix}"
    written = _write_input(src, kind)
    out = tmp_path / "out"
    assert run(src, "-o", out, "--model", model, "--scale", "2", "--format", fmt) == 0
    err = capsys.readouterr().err
    assert (note in err) if note else ("note:" not in err), err
    back = cv2.imread(str(out / f"in.{fmt}"), cv2.IMREAD_UNCHANGED)
    assert back is not None and back.dtype == dtype
    assert back.shape[:2] == (24, 20) and back.ndim == written.ndim
    if back.ndim == 3:
        back = back[:, :, ::-1]  # BGR → RGB
    pic = read_image(src)
    expect = upscale_picture(load_pipeline(model), pic, scale=2, tile=256, overlap=32).color
    if fmt == "jpg":
        luma = np.array([0.299, 0.587, 0.114])  # JPEG keeps luma; chroma is subsampled
        assert np.abs((back - to_8bit(expect).astype(float)) @ luma).mean() < 8
    else:
        assert np.array_equal(back, to_16bit(expect) if dtype != expect.dtype else expect)
    if dtype == np.float32:
        assert 0.0 <= back.min() and back.max() <= 1.0
        off_grid = np.abs(back * 255 - np.round(back * 255)) > 1e-3
        assert off_grid.mean() > 0.5  # float precision, not 8 bits in a float file
