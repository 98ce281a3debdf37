from __future__ import annotations

import numpy as np
import torch

from flowmapsr.convert import (
    model_to_unit,
    pil_to_unit,
    rgb_to_y,
    uint8_to_unit,
    unit_to_model,
    unit_to_pil,
    unit_to_uint8,
)


def test_roundtrips():
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = uint8_to_unit(a)
    assert x.shape == (1, 3, 5, 7)
    assert np.array_equal(unit_to_uint8(x), a)
    assert np.array_equal(unit_to_uint8(model_to_unit(unit_to_model(x))), a)
    assert np.array_equal(np.asarray(unit_to_pil(pil_to_unit(unit_to_pil(x)))), a)


def test_model_range_clamps():
    assert model_to_unit(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]


def test_bt601_luma_matches_matlab_values():
    white = torch.ones(1, 3, 1, 1)
    black = torch.zeros(1, 3, 1, 1)
    assert abs(rgb_to_y(white).item() * 255 - 235.0) < 1e-3
    assert abs(rgb_to_y(black).item() * 255 - 16.0) < 1e-6
