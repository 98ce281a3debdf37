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
