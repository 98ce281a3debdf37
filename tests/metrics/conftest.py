"""Run torch single-threaded here: on the shared 2-core test machine OpenMP threads spin against
the other test processes and run several times slower than one thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
