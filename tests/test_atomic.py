"""Atomic writes: a live temp file is locked, so the stale-temp cleaner never takes it."""

from __future__ import annotations

import os

import pytest

from flowmapsr.atomic import atomic_write, remove_stale_temps

pytest.importorskip("fcntl")


def test_a_live_temp_is_not_stale(tmp_path):
    seen = []

    def write(f):
        f.write(b"first half ")
        seen.append(sorted(os.listdir(tmp_path)))
        assert remove_stale_temps(tmp_path, [".png"]) == []  # another run starting meanwhile
        f.write(b"second half")

    atomic_write(tmp_path / "a.png", write)
    assert (tmp_path / "a.png").read_bytes() == b"first half second half"
    assert len(seen[0]) == 1 and seen[0][0].startswith(".a.png.") and seen[0][0].endswith(".tmp")
    assert os.listdir(tmp_path) == ["a.png"]


def test_a_dead_writers_temp_is_stale(tmp_path):
    def write(f):
        raise KeyboardInterrupt  # dropped by atomic_write itself

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "a.png", write)
    assert os.listdir(tmp_path) == []
    (tmp_path / ".b.png.abcd_123.tmp").write_bytes(b"left by a SIGKILL")
    assert remove_stale_temps(tmp_path, [".png"]) == [tmp_path / ".b.png.abcd_123.tmp"]
    assert remove_stale_temps(tmp_path / "missing", [".png"]) == []
