"""A tiny training config: synthetic data, a 1-block 8-channel net, no TensorBoard, no bar."""

from __future__ import annotations

import pytest

TINY = [
    "data.kind=synthetic",
    "data.roots=[]",
    "data.degradation=bicubic",
    "data.crop_size=32",
    "data.batch_size=2",
    "data.scales=[4]",
    "data.synthetic_count=16",
    "net.channels=8",
    "net.blocks=1",
    "net.emb_dim=16",
    "validation.hr_dir=''",
    "validation.lr_dir=''",
    "validation.count=1",
    "validation.crop=32",
    "validation.steps=[1]",
    "validation.every=0",
    "validation.niqe=false",
    "optim.warmup_steps=2",
    "log_every=1",
    "progress=none",
    "tensorboard=false",
    "checkpoint.every=0",
    "checkpoint.keep=2",
]


@pytest.fixture
def tiny():
    """``tiny(tmp_path, *more)`` → the override list for a fast run writing into ``tmp_path``."""

    def make(out, *more):
        return [*TINY, f"output_dir={out}", *more]

    return make
