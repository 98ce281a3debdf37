"""ncnn peers: a hand-written tiny ncnn model checks the runner and the tiling exactly; the real
Real-ESRGAN / SPAN files are exercised when their wheels are installed (the ``peers`` extra)."""

from __future__ import annotations

import importlib.util
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("ncnn")

from flowmapsr.peers import ncnn_models  # noqa: E402
from flowmapsr.peers.ncnn_models import PEERS, NcnnUpscaler, PeerUnavailable  # noqa: E402


@pytest.fixture
def conv_up_model(tmp_path):
    """3×3 convolution (zero padding 1, bias) then nearest ×2: ``(param, bin, weight, bias)``."""
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.3, size=(3, 3, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, size=3).astype(np.float32)
    param = tmp_path / "tiny.param"
    param.write_text(
        "7767517\n3 3\n"
        "Input data 0 1 data\n"
        "Convolution conv 1 1 data c 0=3 1=3 4=1 5=1 6=81\n"
        "Interp up 1 1 c output 0=1 1=2.000000e+00 2=2.000000e+00\n"
    )
    binf = tmp_path / "tiny.bin"
    # ncnn model bin: a 4-byte tag (0 = raw float32) before conv weights; bias is raw.
    binf.write_bytes(struct.pack("<I", 0) + weight.tobytes() + bias.tobytes())
    return param, binf, torch.from_numpy(weight), torch.from_numpy(bias)


def _expected(x, weight, bias):
    return F.interpolate(F.conv2d(x, weight, bias, padding=1), scale_factor=2, mode="nearest")


def test_runner_matches_torch(conv_up_model, gen):
    param, binf, w, b = conv_up_model
    net = NcnnUpscaler(param, binf, scale=2, threads=1)
    x = torch.rand(1, 3, 20, 26, generator=gen) * 0.5
    got = net.upscale_tensor(x)
    assert got.shape == (1, 3, 40, 52)
    torch.testing.assert_close(got, _expected(x, w, b).clamp(0, 1), atol=1e-4, rtol=0)


def test_tiling_is_exact_with_enough_context(conv_up_model, gen):
    param, binf, _, _ = conv_up_model
    x = torch.rand(1, 3, 21, 30, generator=gen) * 0.5
    whole = NcnnUpscaler(param, binf, scale=2, threads=1).upscale_tensor(x)
    tiled = NcnnUpscaler(param, binf, scale=2, tile=8, tile_pad=1, threads=1).upscale_tensor(x)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
    # Without context the 3×3 kernel sees zero padding at the seams: results differ there.
    bare = NcnnUpscaler(param, binf, scale=2, tile=8, tile_pad=0, threads=1).upscale_tensor(x)
    assert (bare - whole).abs().max() > 1e-3


def test_missing_wheel_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(ncnn_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PeerUnavailable, match=r"flowmapsr\[peers\]"):
        NcnnUpscaler.from_peer("span")
    with pytest.raises(KeyError, match="realesrgan"):
        NcnnUpscaler.from_peer("edsr")


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_real_peer_models(peer, gen):
    if importlib.util.find_spec(PEERS[peer].package) is None:
        pytest.skip(f"{PEERS[peer].distribution} not installed")
    # A smooth image: a 4x4 random field upsampled, so a sane SR model stays close to bicubic.
    x = F.interpolate(torch.rand(1, 3, 4, 4, generator=gen), size=(24, 24), mode="bilinear")
    out = NcnnUpscaler.from_peer(peer, threads=1).upscale_tensor(x)
    assert out.shape == (1, 3, 96, 96) and 0 <= out.min() and out.max() <= 1
    bic = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    mse = (out - bic).pow(2).mean().item()
    # Same picture: measured 19 dB (Real-ESRGAN, which sharpens) and more for SPAN; feeding
    # [0, 255] instead of [0, 1] gives about 7 dB.
    assert 10 * np.log10(1 / mse) > 15
