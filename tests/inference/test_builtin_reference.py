"""The small models' outputs on a fixed image are pinned bit for bit.

``FIRST_GENERATION``: the first built-in model (kept as ``model-training/default/shipped``), whose
hashes were computed with the code before issue 14's backbone refactor (commit 43de1dc): the
type-tagged net config, codec layer and prompt bank must not change what the small model does
at inference. ``REFERENCE``: the built-in model installed on 2026-12-04 (issue 15), pinned by
this code when it was installed. A failure of either means a model's output changed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from flowmapsr.inference.pipeline import SRPipeline

KWARGS = [
    dict(scale=4, steps=1),
    dict(scale=4, steps=2),
    dict(scale=4, steps=1, tile=12, overlap=4),
]
REFERENCE = list(
    zip(
        KWARGS,
        [
            "e0df6b26cf6c7df878f72cc69726ae926572cc9828c3220d5357479195a5c87d",
            "010e3fdf9ad0e21e350ad7f0373a7bb8047d7c713e89e010494b27a8cc1500c6",
            "db507e6f04ec57057cf44d06f64214cccec342f485dc8206e3234f6972959f22",
        ],
        [11566.720052063465, 11572.215384423733, 11566.702673661255],
        strict=True,
    )
)
FIRST_GENERATION = list(
    zip(
        KWARGS,
        [
            "197d142875aa7633c4e01db183363ee331a0f3d83bb5e54afecf13c6186bc190",
            "bce6d6a75624ec44aff3b540b33e665a468500f03e0a94dc3e500fb22ff6ae83",
            "659fb0c6b700dabe98ec9a52a887f9a1369cc8c87939d3bdad3af545adc044ff",
        ],
        [11581.282660126686, 11559.738030701876, 11585.14016325337],
        strict=True,
    )
)
SHIPPED_BEFORE = Path(__file__).resolve().parents[2] / "model-training" / "default" / "shipped"
IDS = ["1nfe", "2nfe", "tiled"]


def _check(model, kwargs, digest, total):
    pipe = SRPipeline.from_pretrained(model)
    lr = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(1234))
    out = pipe.upscale_tensor(lr, **kwargs)
    assert out.shape == (1, 3, 96, 80)
    # The sum first: on a mismatch it says how far off, the hash then says "bit for bit".
    assert float(out.double().sum()) == pytest.approx(total, abs=1e-6)
    assert hashlib.sha256(out.numpy().astype(np.float32).tobytes()).hexdigest() == digest


@pytest.mark.parametrize("kwargs,digest,total", REFERENCE, ids=IDS)
def test_builtin_output_is_bit_identical_to_its_reference(kwargs, digest, total):
    _check(None, kwargs, digest, total)


@pytest.mark.parametrize("kwargs,digest,total", FIRST_GENERATION, ids=IDS)
def test_first_generation_output_is_bit_identical_to_the_pre_refactor_reference(
    kwargs, digest, total
):
    _check(SHIPPED_BEFORE, kwargs, digest, total)
