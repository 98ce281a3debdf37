"""Shared fixtures: small deterministic inputs; no test relies on ../shared being present."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch loads OpenMP: idle threads sleep instead of spinning (on a shared 2-core machine
# spinning threads made training steps ~10× slower).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests run torch single-threaded: their tensors are small, so OpenMP threads cost more than
    they give, and on a shared 2-core machine they spin against other processes (measured 7×
    slower with 2 threads for a small upscale)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; tests that use it skip when it is absent (fresh clones elsewhere)."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not present")
    return path


@pytest.fixture
def perceptual_weights() -> Path:
    """The fetched LPIPS / DISTS weights folder; skips (saying how to fetch) when incomplete."""
    from flowmapsr.pretrained import list_weights

    rows = list_weights()
    missing = [r["name"] for r in rows if not r["present"]]
    if missing:
        pytest.skip(f"perceptual weights {missing} absent: run `flowmapsr weights fetch all`")
    return Path(rows[0]["path"]).parent
