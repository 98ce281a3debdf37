"""Shared fixtures: small deterministic inputs; no test relies on ../shared being present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


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
