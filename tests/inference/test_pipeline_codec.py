"""The pipeline in a codec's latent space: source → encode → solve → decode, tiled in LR pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from flowmapsr.codecs import CODECS, IdentityCodec, build_codec
from flowmapsr.config import to_dict
from flowmapsr.inference.pipeline import CODEC_NAME, PipelineConfig, SRPipeline
from flowmapsr.nets import build_net

LATENT = sorted(n for n in CODECS if n != "identity")


def _latent_pipe(codec_type: str, **cfg) -> SRPipeline:
    torch.manual_seed(0)
    codec = build_codec({"type": codec_type})
    net_cfg = {"type": "small", "in_channels": codec.channels, "channels": 8, "blocks": 2}
    net = build_net(net_cfg)
    for p in net.parameters():  # off the zero init, so the output depends on every weight
        torch.nn.init.normal_(p, std=0.05)
    config = PipelineConfig(net=net_cfg, codec=to_dict(codec.config), **cfg)
    return SRPipeline(net, config, codec)


def _lr(h=13, w=10, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_identity_is_the_default_and_old_configs_load_unchanged():
    assert PipelineConfig().codec == {"type": "identity"}
    # the first-generation built-in model: its config.json predates codecs
    old = Path(__file__).resolve().parents[2] / "model-training" / "default" / "shipped"
    assert "codec" not in json.loads((old / "config.json").read_text())
    pipe = SRPipeline.from_pretrained(old)
    assert isinstance(pipe.codec, IdentityCodec)
    assert pipe.size_multiple == 4  # the small net's unshuffle, times f = 1


@pytest.mark.parametrize("name", LATENT)
def test_latent_pipeline_output_size_tiled_and_untiled(name):
    pipe = _latent_pipe(name)
    f = pipe.codec.factor
    assert pipe.size_multiple == 4 * f  # the small net's multiple is in latent pixels
    lr = _lr()
    untiled = pipe.upscale_tensor(lr, scale=4)
    assert untiled.shape == (1, 3, 52, 40) and torch.isfinite(untiled).all()
    tiled = pipe.upscale_tensor(lr, scale=4, tile=8, overlap=4)
    assert tiled.shape == untiled.shape and torch.isfinite(tiled).all()
    assert not torch.equal(tiled, untiled)  # several tiles really ran
    covering = pipe.upscale_tensor(lr, scale=4, tile=64, overlap=8)
    assert torch.equal(covering, untiled)  # one tile = the untiled run, bit for bit
    odd = pipe.upscale_tensor(lr, scale=3)  # a scale the model runs at 4 and resizes
    assert odd.shape == (1, 3, 39, 30)


def test_a_sampling_vae_encodes_the_source_to_its_mean():
    """``codec.latent=sample`` (training draws latents) upscales without a generator, and the
    same as the mean codec: inference adds no encoder noise."""
    torch.manual_seed(0)
    sampling = build_codec({"type": "vae", "latent": "sample"})
    mean = build_codec({"type": "vae", "latent": "mean"})
    mean.load_state_dict(sampling.state_dict())
    net_cfg = {"type": "small", "in_channels": sampling.channels, "channels": 8, "blocks": 2}
    net = build_net(net_cfg)
    outs = []
    for codec in (sampling, mean):
        cfg = PipelineConfig(net=net_cfg, codec=to_dict(codec.config))
        outs.append(SRPipeline(net, cfg, codec).upscale_tensor(_lr(16, 16), scale=4))
    assert outs[0].shape == (1, 3, 64, 64)
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("name", LATENT)
def test_latent_source_noise_is_drawn_in_latent_space(name):
    pipe = _latent_pipe(name, source_noise=0.5)
    lr = _lr(16, 8)
    a = pipe.upscale_tensor(lr, scale=2, seed=1)
    assert torch.equal(pipe.upscale_tensor(lr, scale=2, seed=1), a)
    assert not torch.equal(pipe.upscale_tensor(lr, scale=2, seed=2), a)
    assert torch.equal(pipe.upscale_tensor(lr, scale=2, seed=1, tile=64), a)
    assert pipe.upscale_tensor(lr, scale=2, seed=1, tile=8, overlap=4).shape == a.shape
    src = torch.zeros(1, 3, 32, 32)
    f, c = pipe.codec.factor, pipe.codec.channels
    assert pipe.sample(src, noise=torch.randn(1, c, 32 // f, 32 // f)).shape == src.shape


@pytest.mark.parametrize("name", LATENT)
def test_latent_pipeline_saves_its_codec_and_loads_identically(tmp_path, name):
    pipe = _latent_pipe(name)
    with torch.no_grad():
        for i, p in enumerate(pipe.codec.parameters()):
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(i)))
    pipe.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["config.json", "model.safetensors", CODEC_NAME]
    )
    saved = json.loads((tmp_path / "config.json").read_text())["codec"]
    assert saved["type"] == name and saved["pretrained"] is None and saved["vae"]
    again = SRPipeline.from_pretrained(tmp_path)
    assert type(again.codec) is type(pipe.codec)
    lr = _lr()
    assert torch.equal(again.upscale_tensor(lr, 4), pipe.upscale_tensor(lr, 4))

    (tmp_path / CODEC_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=f"{CODEC_NAME} is missing"):
        SRPipeline.from_pretrained(tmp_path)


def test_unknown_codec_in_config_names_the_file(tmp_path):
    pipe = _latent_pipe("tiny_vae")
    pipe.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    raw = json.loads(path.read_text())
    raw["codec"] = {"type": "vqgan"}
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"config\.json: codec\.type: unknown codec type 'vqgan'"):
        SRPipeline.from_pretrained(tmp_path)


def test_network_and_codec_channels_must_agree():
    net = build_net({"type": "small", "channels": 8, "blocks": 2})  # 3-channel (pixel) input
    with pytest.raises(ValueError, match="3-channel inputs but codec 'vae' has 4 latent"):
        SRPipeline(net, PipelineConfig(codec={"type": "vae"}))
