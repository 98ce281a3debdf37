"""The built-in small model's output on a fixed image is pinned bit for bit.

The hashes were computed with the code before issue 14's backbone refactor (commit 43de1dc):
the type-tagged net config, codec layer and prompt bank must not change what the small model
does at inference. A failure here means the built-in model's output changed.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from flowmapsr.inference.pipeline import SRPipeline

REFERENCE = [
    (
        dict(scale=4, steps=1),
        "197d142875aa7633c4e01db183363ee331a0f3d83bb5e54afecf13c6186bc190",
        11581.282660126686,
    ),
    (
        dict(scale=4, steps=2),
        "bce6d6a75624ec44aff3b540b33e665a468500f03e0a94dc3e500fb22ff6ae83",
        11559.738030701876,
    ),
    (
        dict(scale=4, steps=1, tile=12, overlap=4),
        "659fb0c6b700dabe98ec9a52a887f9a1369cc8c87939d3bdad3af545adc044ff",
        11585.14016325337,
    ),
]


@pytest.mark.parametrize("kwargs,digest,total", REFERENCE, ids=["1nfe", "2nfe", "tiled"])
def test_builtin_output_is_bit_identical_to_the_pre_refactor_reference(kwargs, digest, total):
    pipe = SRPipeline.from_pretrained(None)
    lr = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(1234))
    out = pipe.upscale_tensor(lr, **kwargs)
    assert out.shape == (1, 3, 96, 80)
    # The sum first: on a mismatch it says how far off, the hash then says "bit for bit".
    assert float(out.double().sum()) == pytest.approx(total, abs=1e-6)
    assert hashlib.sha256(out.numpy().astype(np.float32).tobytes()).hexdigest() == digest
