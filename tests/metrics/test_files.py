"""Folder helpers: stem pairing, loading with clear errors, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowmapsr.metrics.files import (
    atomic_write_text,
    base_stem,
    list_images,
    load_image_info,
    pair_by_stem,
)


def test_base_stem_strips_resolution_tags():
    assert base_stem("img_001_SRF_4_HR") == base_stem("img_001_SRF_4_LR") == "img_001_SRF_4"
    assert base_stem("baby_x4") == "baby"
    assert base_stem("00003") == "00003"


def test_pairing_prefers_exact_stems():
    preds = [Path("p/a.png"), Path("p/img_1_LR.png"), Path("p/zzz.png")]
    refs = [Path("r/a.png"), Path("r/a_HR.png"), Path("r/img_1_HR.png"), Path("r/lonely.png")]
    pairs, lonely, unused = pair_by_stem(preds, refs)
    assert pairs == [(preds[0], refs[0]), (preds[1], refs[2])]
    assert lonely == [preds[2]]
    assert unused == [refs[1], refs[3]]


def test_load_image_info_and_errors(tmp_path):
    Image.fromarray(np.full((5, 6), 77, np.uint8), "L").save(tmp_path / "g.png")
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "c.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["bad.png", "c.png", "g.png"]
    x, grey = load_image_info(tmp_path / "g.png")
    assert grey and x.shape == (1, 3, 5, 6) and abs(x[0, 1, 0, 0].item() - 77 / 255) < 1e-7
    assert not load_image_info(tmp_path / "c.png")[1]
    with pytest.raises(ValueError, match="bad.png"):
        load_image_info(tmp_path / "bad.png")
    with pytest.raises(NotADirectoryError):
        list_images(tmp_path / "nope")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "sub" / "f.json", "{}")
    atomic_write_text(tmp_path / "sub" / "f.json", "[1]")
    assert (tmp_path / "sub" / "f.json").read_text() == "[1]"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.json"]
