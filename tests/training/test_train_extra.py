"""Training on a slim install (no ``train`` extra) stops with one line saying what to install."""

from __future__ import annotations

import sys

from flowmapsr.cli.main import main


def test_train_without_accelerate_names_the_train_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "accelerate", None)  # import accelerate → ImportError
    rc = main(["train", "flowmapsr-stage3-guidance", f"output_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err == "flowmapsr train: training needs accelerate: pip install 'flowmapsr[train]'"
