"""Offline teacher pairs: seeds, contents, atomic shards, resumption after SIGKILL, the CLI."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flowmapsr.cli.main import main
from flowmapsr.config import to_dict
from flowmapsr.convert import model_to_unit, unit_to_model
from flowmapsr.data.degradations import Degradation
from flowmapsr.data.pairs import (
    MANIFEST,
    PairsError,
    generate_pairs,
    list_shards,
    noise_for,
    read_manifest,
    shard_name,
)
from flowmapsr.flowmap import Condition
from flowmapsr.inference.pipeline import PipelineConfig, SRPipeline
from flowmapsr.inference.solvers import euler_solve, time_grid
from flowmapsr.nets import build_net
from flowmapsr.resize import upsample_source
from flowmapsr.training.data import make_generator

SRC = str(Path(__file__).resolve().parents[2] / "src")
SETTINGS = dict(count=10, size=32, scale=4, steps=3, seed=5, shard_size=4)


@pytest.fixture
def teacher(tmp_path) -> Path:
    torch.manual_seed(0)
    net = build_net({"type": "small", "channels": 8, "blocks": 1, "emb_dim": 16,
                     "concat_source": False})  # fmt: skip
    for p in net.parameters():  # zero-initialised branches on: a teacher that does something
        torch.nn.init.normal_(p, std=0.05)
    folder = tmp_path / "teacher"
    SRPipeline(net, PipelineConfig(net=to_dict(net.config))).save_pretrained(folder)
    return folder


def _all(folder: Path) -> dict[str, torch.Tensor]:
    _, paths = list_shards(folder)
    parts = [load_file(str(p)) for p in paths]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def test_pairs_hold_the_teacher_ode_its_decoded_image_and_the_degraded_lr(tmp_path, teacher):
    out = generate_pairs(teacher, tmp_path / "pairs", progress=False, log=lambda m: None,
                         **SETTINGS)  # fmt: skip
    got = _all(out)
    assert got["index"].tolist() == list(range(10))
    assert got["eps"].shape == got["z0"].shape == got["zl"].shape == (10, 3, 32, 32)
    assert got["x0"].shape == (10, 3, 32, 32) and got["lr"].shape == (10, 3, 8, 8)
    assert got["lr"].dtype == torch.uint8
    # ε of pair i is a function of (seed, i) alone.
    for i in (0, 7):
        assert torch.equal(got["eps"][i], noise_for(5, i, (3, 32, 32)))
    # z_0 is 3 Euler steps of the teacher from ε; x_0 its (identity-)decoded, clamped image.
    pipe = SRPipeline.from_pretrained(teacher)
    with torch.no_grad():
        z0 = euler_solve(pipe.net, got["eps"][:4], time_grid(3), Condition())
    torch.testing.assert_close(got["z0"][:4], z0)
    assert not torch.allclose(got["z0"], got["eps"], atol=1e-2)  # the teacher moved it
    torch.testing.assert_close(got["x0"], got["z0"].clamp(-1, 1))
    # The LR is the Real-ESRGAN degradation of x_0 with pair i's generator; z_L its source.
    i = 6
    deg = Degradation.from_preset("realesrgan")
    lr, _ = deg(model_to_unit(got["x0"][i : i + 1]).clamp(0, 1), 4, [make_generator(5, 53, i)])
    assert torch.equal((lr * 255).round().to(torch.uint8)[0], got["lr"][i])
    src = unit_to_model(upsample_source(got["lr"][i : i + 1].float() / 255, (32, 32)))
    torch.testing.assert_close(got["zl"][i : i + 1], src)
    man = read_manifest(out)
    assert man["complete"] and man["shards"] == 3
    assert man["settings"]["teacher"] == str(teacher.resolve())
    assert {"count", "size", "scale", "steps", "seed", "degradation"} <= set(man["settings"])


def test_a_pair_is_the_same_whatever_the_shard_size(tmp_path, teacher):
    a = _all(generate_pairs(teacher, tmp_path / "a", progress=False, log=lambda m: None,
                            **SETTINGS))  # fmt: skip
    b = _all(generate_pairs(teacher, tmp_path / "b", progress=False, log=lambda m: None,
                            **{**SETTINGS, "shard_size": 3}))  # fmt: skip
    assert torch.equal(a["eps"], b["eps"]) and torch.equal(a["lr"], b["lr"])
    torch.testing.assert_close(a["z0"], b["z0"])


_KILLER = """
import os, signal, sys
sys.path.insert(0, {src!r})
import flowmapsr.data.pairs as P
from flowmapsr.atomic import atomic_write

real, written = P._write_shard, []

def write_then_die(path, tensors, settings, k):
    if len(written) == 2:  # the third shard: half its bytes in the temp file, then SIGKILL
        def half(f):
            f.write(b"x" * 1000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        atomic_write(path, half)
    real(path, tensors, settings, k)
    written.append(k)

P._write_shard = write_then_die
P.generate_pairs({teacher!r}, {out!r}, progress=False, **{settings!r})
"""


def test_sigkill_mid_shard_then_rerun_gives_no_holes_no_duplicates_same_pairs(tmp_path, teacher):
    ref = _all(generate_pairs(teacher, tmp_path / "ref", progress=False, log=lambda m: None,
                              **SETTINGS))  # fmt: skip
    out = tmp_path / "cut"
    code = _KILLER.format(src=SRC, teacher=str(teacher), out=str(out), settings=SETTINGS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    names = sorted(p.name for p in out.iterdir())
    assert shard_name(0) in names and shard_name(1) in names and shard_name(2) not in names
    assert any(n.endswith(".tmp") for n in names)  # the killed write's temp file is there
    assert not read_manifest(out)["complete"]
    with pytest.raises(PairsError, match="1 of 3 shards missing"):
        list_shards(out)
    logs = []
    generate_pairs(teacher, out, progress=False, log=logs.append, **SETTINGS)
    assert any("2 of 3 shards already" in m for m in logs)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, *(shard_name(k) for k in range(3))]
    got = _all(out)
    assert got["index"].tolist() == list(range(10))  # exactly 0..n-1: no holes, no duplicates
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    assert read_manifest(out)["complete"]


def test_rerun_with_other_settings_is_one_line_error(tmp_path, teacher):
    out = tmp_path / "p"
    generate_pairs(teacher, out, progress=False, log=lambda m: None, **SETTINGS)
    with pytest.raises(PairsError, match=r"manifest.json: .*steps=3 \(now 4\)") as err:
        generate_pairs(teacher, out, progress=False, **{**SETTINGS, "steps": 4})
    assert "\n" not in str(err.value)


def test_cli_generates_resumes_and_names_bad_input(tmp_path, teacher, capsys):
    out = tmp_path / "cli"
    argv = ["pairs", "generate", "--teacher", str(teacher), "--output", str(out),
            "--count", "3", "--size", "16", "--shard-size", "2", "--steps", "2"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    # stderr is not a terminal here: one line per shard instead of a bar.
    assert "shard 1/2: pairs 0–1" in err and "shard 2/2: pairs 2–2" in err
    assert main(argv) == 0
    assert "2 of 2 shards already" in capsys.readouterr().err
    assert main([*argv[:-1], "5"]) == 2
    assert "steps=2 (now 5)" in capsys.readouterr().err
    bad = [*argv[:3], str(tmp_path / "nope"), argv[4], str(tmp_path / "o2"), *argv[6:]]
    assert main(bad) == 2
    msg = capsys.readouterr().err.strip()
    assert "nope" in msg and "config.json" in msg and len(msg.splitlines()) == 1
    sr = tmp_path / "sr-model"
    net = build_net({"type": "small", "channels": 8, "blocks": 1, "emb_dim": 16})
    SRPipeline(net, PipelineConfig(net=to_dict(net.config))).save_pretrained(sr)
    assert main([*argv[:3], str(sr), argv[4], str(tmp_path / "o3"), *argv[6:]]) == 2
    assert "not a noise → image teacher" in capsys.readouterr().err
    assert main([*argv, "--size", "18"]) == 2  # not a multiple of the scale
    assert "not a multiple of scale 4" in capsys.readouterr().err


def _photos(folder: Path, n: int = 3) -> Path:
    from PIL import Image

    folder.mkdir()
    g = torch.Generator().manual_seed(1)
    for k in range(n):
        a = (torch.rand(40 + 8 * k, 48, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(a).save(folder / f"p{k}.png")
    return folder


def test_inverted_pairs_hold_photo_crops_and_the_teachers_reverse_ode(tmp_path, teacher):
    photos = _photos(tmp_path / "photos")
    settings = {**SETTINGS, "steps": 8}
    out = generate_pairs(teacher, tmp_path / "inv", images=photos, progress=False,
                         log=lambda m: None, **settings)  # fmt: skip
    got = _all(out)
    assert got["eps"].shape == got["z0"].shape == (10, 3, 32, 32)
    # x_0 are 8-bit photo crops (identity codec: z_0 = x_0); pairs 0 and 3 are two crops of p0.
    q = (model_to_unit(got["x0"]) * 255).round() / 255
    torch.testing.assert_close(model_to_unit(got["x0"]), q, atol=1e-6, rtol=0)
    torch.testing.assert_close(got["z0"], got["x0"])
    assert not torch.equal(got["x0"][0], got["x0"][3])
    # ε is the reversed Euler solve from z_0; running the teacher forward from ε comes back near
    # z_0 (explicit Euler is not exactly invertible: the error shrinks with the steps).
    pipe = SRPipeline.from_pretrained(teacher)
    with torch.no_grad():
        eps = euler_solve(pipe.net, got["z0"][:4], time_grid(8).flip(0), Condition())
        back = euler_solve(pipe.net, got["eps"], time_grid(8), Condition())
    torch.testing.assert_close(got["eps"][:4], eps)
    assert not torch.allclose(got["eps"], got["z0"], atol=1e-2)
    err = (back - got["z0"]).abs().mean() / (got["eps"] - got["z0"]).abs().mean()
    assert err < 0.2, err
    # The LR is still the degradation of x_0 with pair i's generator.
    i = 4
    deg = Degradation.from_preset("realesrgan")
    lr, _ = deg(model_to_unit(got["x0"][i : i + 1]).clamp(0, 1), 4, [make_generator(5, 53, i)])
    assert torch.equal((lr * 255).round().to(torch.uint8)[0], got["lr"][i])
    man = read_manifest(out)
    assert man["settings"]["images"] == str(photos.resolve())
    assert "inverted" in man["solver"]
    # Same settings resume; other photos are the one-line settings error.
    generate_pairs(teacher, tmp_path / "inv", images=photos, progress=False,
                   log=lambda m: None, **settings)  # fmt: skip
    with pytest.raises(PairsError, match="other settings: images="):
        generate_pairs(teacher, tmp_path / "inv", progress=False, log=lambda m: None,
                       **settings)  # fmt: skip


def test_inverted_pairs_name_a_missing_or_empty_folder(tmp_path, teacher):
    with pytest.raises(PairsError, match="no such image folder"):
        generate_pairs(teacher, tmp_path / "x", images=tmp_path / "nope", progress=False,
                       **SETTINGS)  # fmt: skip
    (tmp_path / "empty").mkdir()
    with pytest.raises(PairsError, match="empty.*no readable images"):
        generate_pairs(teacher, tmp_path / "y", images=tmp_path / "empty", progress=False,
                       **SETTINGS)  # fmt: skip


def test_a_manifest_from_before_inversion_still_resumes(tmp_path, teacher):
    import json

    out = generate_pairs(teacher, tmp_path / "old", progress=False, log=lambda m: None,
                         **SETTINGS)  # fmt: skip
    man = json.loads((out / MANIFEST).read_text())
    for k in ("images", "max_side"):
        del man["settings"][k]
    (out / MANIFEST).write_text(json.dumps(man))
    generate_pairs(teacher, out, progress=False, log=lambda m: None, **SETTINGS)
