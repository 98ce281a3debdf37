from __future__ import annotations

import pytest

from flowmapsr.cli.main import main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("upscale", "degrade", "eval", "bench", "train", "recipe", "export", "serve"):
        assert name in out


def test_overrides_after_options_still_count(capsys, tmp_path):
    out_dir = str(tmp_path / "r")
    assert main(["recipe", "flowmapsr-smoke", "--output", out_dir, "seed=7", "--dry-run"]) == 0
    assert "seed: 7" in capsys.readouterr().out


def test_stray_arguments_are_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["recipe", "--list", "--bogus"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("preset,expect", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_wait_policy_is_passive_unless_set(preset, expect):
    # In a fresh interpreter: the entry point must set it before anything imports torch.
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = (
        "import os, sys; import flowmapsr.cli.main as m; m.main([]); "
        "print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == f"False {expect}", out.stderr


def test_python_dash_m_flowmapsr_is_the_command():
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "flowmapsr", "upscale", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: flowmapsr upscale")
