"""``flowmapsr latents build``: the command line over :mod:`flowmapsr.data.latents`."""

from __future__ import annotations

from flowmapsr.cli.main import main
from flowmapsr.data.latents import list_shards, read_manifest


def test_build_writes_a_cache_and_rerunning_it_keeps_the_shards(tmp_path, capsys):
    out = tmp_path / "cache"
    argv = ["latents", "build", "tiny-sdxl-flowmapsr", "--out", str(out), "--count", "3",
            "--batch", "2", "--shard-size", "2", "data.synthetic_count=4"]  # fmt: skip
    assert main(argv) == 0
    man, shards = list_shards(out)
    assert man["complete"] and len(shards) == 2 and man["stage"] == "tiny-sdxl-flowmapsr"
    assert man["settings"]["data"]["synthetic_count"] == 4  # the override after the options
    assert "3 entries in" in capsys.readouterr().err
    before = [p.stat().st_mtime_ns for p in shards]
    assert main(argv) == 0
    assert "2 of 2 shards already in" in capsys.readouterr().err
    assert [p.stat().st_mtime_ns for p in shards] == before
    assert read_manifest(out) == man


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    out = tmp_path / "cache"
    assert main(["latents", "build", "flowmapsr-stage1-fm", "--out", str(out), "--count", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flowmapsr latents: error: ") and "codec is identity" in err
    assert "\n" not in err and not out.exists()
    assert main(["latents", "build", "no-such-preset", "--out", str(out), "--count", "1"]) == 2
    assert "unknown preset 'no-such-preset'" in capsys.readouterr().err
    assert main(["latents"]) == 2
    assert "choose an action: build" in capsys.readouterr().err
