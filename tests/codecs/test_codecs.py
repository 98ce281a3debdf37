"""Every registered codec through the registry: shapes, round trips, save → load, forward AD."""

from dataclasses import dataclass, field, fields

import pytest
import torch

from flowmapsr.codecs import (
    CODECS,
    CodecConfig,
    IdentityCodecConfig,
    VAECodec,
    VAECodecConfig,
    build_codec,
    codec_config,
    describe_codec,
    register_codec,
)
from flowmapsr.config import ConfigError, apply_overrides, from_dict, to_dict

NAMES = sorted(CODECS)
# Codecs whose weights come from a diffusers folder: those whose config has a weights path.
LOADABLE = sorted(
    n for n in CODECS if "pretrained" in {f.name for f in fields(CODECS[n].config_cls)}
)


def _codec(name: str, **kw):
    torch.manual_seed(0)  # diffusers' from_config draws its random init from the global RNG
    return build_codec(to_dict(CODECS[name].config_cls(**kw))).eval()


def _image(b=2, h=40, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def test_the_three_codecs_are_registered():
    assert {"identity", "vae", "tiny_vae"} <= set(CODECS)
    assert len(LOADABLE) >= 2  # the two diffusers autoencoders


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_declared_sizes(name):
    c = _codec(name)
    assert c.config.type == name and isinstance(c.config, CODECS[name].config_cls)
    f, ch = c.factor, c.channels
    assert c.size_multiple == f and f >= 1 and ch >= 1
    x = _image(h=8 * f, w=4 * f)
    with torch.no_grad():
        z = c.encode(x)
        assert z.shape == (2, ch, 8, 4) and torch.isfinite(z).all()
        y = c.decode(z)
    assert y.shape == x.shape and torch.isfinite(y).all()
    line = describe_codec(to_dict(c.config))
    assert line.startswith(name) and "\n" not in line


@pytest.mark.parametrize("name", NAMES)
def test_any_image_size_pads_to_the_multiple_and_crops_back(name):
    c = _codec(name)
    f = c.factor
    h, w = 5 * f + 3, 3 * f + 1 if f > 1 else 7
    x = _image(1, h, w)
    with torch.no_grad():
        z = c.encode(x)
        assert z.shape[-2:] == c.latent_size(h, w) == (-(-h // f), -(-w // f))
        y = c.decode(z, size=(h, w))
    assert y.shape == x.shape
    with pytest.raises(ValueError, match="exceeds"):
        c.decode(z, size=(h + f, w))


@pytest.mark.parametrize("name", NAMES)
def test_bad_shapes_are_one_line_errors(name):
    c = _codec(name)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        c.encode(torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match=f"\\(B, {c.channels}, h, w\\)"):
        c.decode(torch.zeros(1, c.channels + 1, 2, 2))


def test_identity_round_trip_is_exact_and_keeps_the_tensor():
    c = build_codec(None)
    assert c.config == IdentityCodecConfig() and c.factor == 1 and c.channels == 3
    x = _image().to(torch.bfloat16)
    z = c.encode(x, tile=8, overlap=4)
    assert z is x  # no copy, no dtype change, tiling ignored
    assert torch.equal(c.decode(z), x)
    assert torch.equal(c.decode(z, size=(10, 7)), x[:, :, :10, :7])


@pytest.mark.parametrize("name", [n for n in NAMES if n != "identity"])
def test_latent_round_trip_runs(name):
    """Random weights reconstruct nothing in particular; the trip must run, keep the shape and
    give something that depends on the input."""
    c = _codec(name)
    x = _image(h=32, w=48)
    with torch.no_grad():
        y = c.decode(c.encode(x), size=(32, 48))
        y2 = c.decode(c.encode(-x), size=(32, 48))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(y, y2)


def test_vae_scale_and_shift_come_from_the_vae_config_or_the_codec_config():
    sd = _codec("vae")
    assert sd.scale == pytest.approx(0.18215) and sd.shift == 0.0  # AutoencoderKL defaults
    flux = _codec("vae", vae={"scaling_factor": 0.3611, "shift_factor": 0.1159})
    assert (flux.scale, flux.shift) == (pytest.approx(0.3611), pytest.approx(0.1159))
    x = _image(1, 16, 16)
    with torch.no_grad():
        raw = sd.vae.encode(x).latent_dist.mean
        assert torch.allclose(sd.encode(x), raw * 0.18215)
        raw_f = flux.vae.encode(x).latent_dist.mean
        z = flux.encode(x)
        assert torch.allclose(z, (raw_f - 0.1159) * 0.3611, atol=1e-6)
        assert torch.allclose(flux.decode(z), flux.vae.decode(raw_f).sample, atol=1e-5)
    over = _codec("vae", scaling_factor=0.5, shift_factor=0.25)
    assert (over.scale, over.shift) == (0.5, 0.25)


def test_vae_sample_mode_needs_a_generator_and_is_reproducible():
    c = _codec("vae", latent="sample")
    x = _image(1, 16, 16)
    with pytest.raises(ValueError, match="generator"):
        c.encode(x)
    with torch.no_grad():
        a = c.encode(x, generator=torch.Generator().manual_seed(1))
        b = c.encode(x, generator=torch.Generator().manual_seed(1))
        d = c.encode(x, generator=torch.Generator().manual_seed(2))
        mean = _codec("vae").encode(x)
    assert torch.equal(a, b) and not torch.equal(a, d) and not torch.allclose(a, mean)
    with pytest.raises(ValueError, match="latent 'mode'"):
        VAECodec(VAECodecConfig(latent="mode"))


@pytest.mark.parametrize("name", LOADABLE)
@pytest.mark.parametrize("layout", ["pipeline folder", "vae folder"])
def test_save_pretrained_then_our_loader_gives_equal_outputs(tmp_path, name, layout):
    c = _codec(name)
    with torch.no_grad():  # off the defaults, so equality is not an accident of the init
        for i, p in enumerate(c.parameters()):
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(i)))
    c.vae.save_pretrained(tmp_path / "pipe" / "vae")
    where = tmp_path / "pipe" if layout == "pipeline folder" else tmp_path / "pipe" / "vae"
    loaded = build_codec({"type": name, "pretrained": str(where)}).eval()
    assert (loaded.factor, loaded.channels, loaded.scale) == (c.factor, c.channels, c.scale)
    x = _image(1, 24, 32)
    with torch.no_grad():
        z = c.encode(x)
        assert torch.equal(loaded.encode(x), z)
        assert torch.equal(loaded.decode(z), c.decode(z))
    # The architecture config rebuilds the module without the folder; the state dict fills it.
    arch = build_codec(to_dict(loaded.architecture_config())).eval()
    arch.load_state_dict(loaded.state_dict())
    with torch.no_grad():
        assert torch.equal(arch.decode(z), c.decode(z))


@pytest.mark.parametrize("name", LOADABLE)
def test_missing_or_wrong_weights_are_clear_errors(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_codec({"type": name, "pretrained": str(tmp_path / "nope")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a diffusers model folder"):
        build_codec({"type": name, "pretrained": str(tmp_path / "empty")})
    single = tmp_path / "vae.safetensors"
    single.write_bytes(b"")
    with pytest.raises(ValueError, match="vae.safetensors"):
        build_codec({"type": name, "pretrained": str(single)})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_forward_mode_ad_through_decode_matches_finite_differences(name, layout):
    """torch.func.jvp through decode (float64): AutoencoderKL's GroupNorm rejects channels-last
    strides and the CPU SDPA kernel has no forward rule; the codec handles both."""
    c = _codec(name).double()
    g = torch.Generator().manual_seed(4)
    z = torch.randn(1, c.channels, 4, 4, generator=g, dtype=torch.float64)
    v = torch.randn(z.shape, generator=g, dtype=torch.float64)
    if layout == "channels_last":
        z, v = z.to(memory_format=torch.channels_last), v.to(memory_format=torch.channels_last)
    y, jv = torch.func.jvp(lambda q: c.decode(q), (z,), (v,))
    eps = 1e-6
    with torch.no_grad():
        fd = (c.decode(z + eps * v) - c.decode(z - eps * v)) / (2 * eps)
    assert y.shape == (1, 3, 4 * c.factor, 4 * c.factor)
    assert torch.allclose(jv, fd, rtol=1e-6, atol=1e-8 * fd.abs().max().item())


@dataclass
class _Holder:
    """Stands in for a TrainConfig with a ``codec`` section."""

    codec: CodecConfig = field(default_factory=IdentityCodecConfig)


def test_a_codec_section_is_selected_by_its_type_tag():
    assert isinstance(from_dict(_Holder, {}).codec, IdentityCodecConfig)
    assert isinstance(from_dict(_Holder, {"codec": {}}).codec, IdentityCodecConfig)
    h = apply_overrides(_Holder(), ["codec.type=vae", "codec.latent=sample", "codec.tile=256"])
    assert isinstance(h.codec, VAECodecConfig) and h.codec.latent == "sample"
    assert h.codec.tile == 256
    assert build_codec(h.codec).samples
    t = from_dict(_Holder, {"codec": {"type": "tiny_vae", "overlap": 32}}).codec
    assert t.type == "tiny_vae" and t.overlap == 32
    with pytest.raises(ConfigError, match="unknown codec type 'vqgan'.*identity, tiny_vae, vae"):
        apply_overrides(_Holder(), ["codec.type=vqgan"])
    with pytest.raises(ConfigError, match="codec.latnt"):
        apply_overrides(_Holder(), ["codec.type=vae", "codec.latnt=mean"])
    with pytest.raises(ConfigError, match="unknown config key 'codec.latent'"):
        codec_config({"type": "identity", "latent": "mean"})


def test_register_codec_checks_the_type_default():
    @dataclass
    class Wrong(CodecConfig):
        type: str = "other"

    with pytest.raises(ValueError, match="must default"):
        register_codec("mine", Wrong, build_codec)
    assert "mine" not in CODECS


SINGLE_FILE = sorted(
    n for n in CODECS if "single_file_config" in {f.name for f in fields(CODECS[n].config_cls)}
)


@pytest.mark.parametrize("name", SINGLE_FILE)
def test_single_file_checkpoint_loads_with_a_local_config_folder(tmp_path, name):
    """One weights file (diffusers' loader also reads diffusers-named keys) with the
    architecture from a local folder; nothing is looked up online."""
    from safetensors.torch import save_file

    c = _codec(name)
    c.vae.save_pretrained(tmp_path / "ref" / "vae")
    save_file(c.vae.state_dict(), str(tmp_path / "vae.safetensors"))
    loaded = build_codec(
        {
            "type": name,
            "pretrained": str(tmp_path / "vae.safetensors"),
            "single_file_config": str(tmp_path / "ref"),
        }
    ).eval()
    z = torch.randn(1, c.channels, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), c.decode(z))
