"""Tiled encode / decode: the blending geometry, seams, and tiled ≈ untiled for every codec."""

import pytest
import torch
import torch.nn.functional as F

from flowmapsr.codecs import CODECS, blend_tiles, build_codec
from flowmapsr.config import to_dict

NAMES = sorted(CODECS)


def _codec(name: str, **kw):
    torch.manual_seed(0)
    return build_codec(to_dict(CODECS[name].config_cls(**kw))).eval()


def _smooth_image(h, w, seed=0):
    """A smooth picture-like image in [-1, 1] (bicubic of coarse noise)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g) * 2 - 1
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)


def _rel(a, b):
    """Mean absolute difference relative to the mean magnitude of the reference ``b``."""
    return ((a - b).abs().mean() / b.abs().mean()).item()


# -- the blending loop on maps whose exact tiled result is known ------------------------------


def test_pointwise_maps_tile_exactly_at_any_rational_scale():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 4, 1, 1, generator=g)

    def up(z):  # latent → pixels, f = 8: a pointwise map then nearest upsampling
        return F.interpolate(F.conv2d(z, w), scale_factor=8, mode="nearest")

    z = torch.randn(2, 4, 13, 9, generator=g)
    assert torch.allclose(blend_tiles(up, z, 4, 2, num=8), up(z), atol=1e-6)

    def down(x):  # pixels → latent, f = 8: average pooling
        return F.avg_pool2d(x, 8)

    x = torch.randn(1, 3, 40, 72, generator=g)
    assert torch.allclose(blend_tiles(down, x, 16, 8, den=8), down(x), atol=1e-6)


def test_a_tile_covering_the_input_is_one_untiled_call():
    calls = []

    def fn(x):
        calls.append(x.shape)
        return x * 2

    x = torch.randn(1, 3, 16, 24)
    assert torch.equal(blend_tiles(fn, x, 64, 8), x * 2) and calls == [x.shape]


def test_tile_edges_get_no_weight_where_another_tile_covers_them():
    """A zero-padded blur is wrong at every tile edge; with an overlap wider than its reach
    the tiled result must still match the untiled one: no seams."""
    k = torch.ones(3, 1, 5, 5) / 25.0

    def blur(x):
        return F.conv2d(x, k, padding=2, groups=3)

    x = torch.randn(1, 3, 70, 46, generator=torch.Generator().manual_seed(1))
    tiled = blend_tiles(blur, x, 24, 12)
    per_tile_edge_error = (blur(x[:, :, :24, :24]) - blur(x)[:, :, :24, :24]).abs().max()
    assert per_tile_edge_error > 0.1  # the edges of a lone tile really are wrong
    assert (tiled - blur(x)).abs().max() < 1e-4


def test_bad_tiling_arguments_are_errors():
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="smaller than the tile"):
        blend_tiles(lambda v: v, x, 8, 8)
    with pytest.raises(ValueError, match="not a multiple of 8"):
        blend_tiles(lambda v: v, torch.randn(1, 3, 12, 16), 8, 0, den=8)
    with pytest.raises(ValueError, match="tile must be"):
        blend_tiles(lambda v: v, x, 0, 0)


# -- every codec, tiled vs untiled ----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_tiled_codec_matches_untiled_shapes_at_any_size(name):
    c = _codec(name)
    h, w = 100, 76  # not multiples of 8
    x = _smooth_image(h, w)
    with torch.no_grad():
        z = c.encode(x, tile=None)
        zt = c.encode(x, tile=48, overlap=24)
        assert zt.shape == z.shape == (1, c.channels, *c.latent_size(h, w))
        y = c.decode(z, size=(h, w), tile=None)
        yt = c.decode(z, size=(h, w), tile=48, overlap=24)
        assert yt.shape == y.shape == x.shape and torch.isfinite(yt).all()
        # One tile covering the image is exactly the untiled run.
        assert torch.equal(c.encode(x, tile=512, overlap=64), z)
        assert torch.equal(c.decode(z, size=(h, w), tile=512, overlap=64), y)
        # The config's tiling is the default.
        cfg = _codec(name, tile=48, overlap=24)
        assert torch.equal(cfg.encode(x), zt) and torch.equal(cfg.decode(z, size=(h, w)), yt)


def test_identity_tiled_is_exact():
    c = _codec("identity")
    x = _smooth_image(50, 30)
    assert torch.equal(c.decode(c.encode(x, tile=16, overlap=8), tile=16, overlap=8), x)


def test_tiny_vae_tiled_is_close_to_untiled():
    """AutoencoderTiny is convolutions and ReLUs only (no normalisation, no attention), so tiles
    with an overlap wider than most of its receptive field reproduce the untiled result.
    Measured on seeds 0–2 (100×76 image, 64-pixel tiles, 32 overlap): relative mean difference
    encode 0.0016–0.0043, decode ≤ 0.0001. Tolerances: 0.01 and 0.001."""
    c = _codec("tiny_vae")
    x = _smooth_image(100, 76)
    with torch.no_grad():
        z = c.encode(x, tile=None)
        assert _rel(c.encode(x, tile=64, overlap=32), z) < 0.01
        y = c.decode(z, tile=None)
        assert _rel(c.decode(z, tile=64, overlap=32), y) < 0.001


def test_vae_tiled_beats_diffusers_tiling_and_improves_with_tile_size():
    """AutoencoderKL normalises with GroupNorm over each tile and attends over each tile in its
    mid block, so any tiled AutoencoderKL differs from the untiled one, and a random tiny VAE
    strongly. Measured on this image (relative mean difference to untiled, 128-pixel tiles, 32
    overlap): ours encode 0.139, decode 0.344; diffusers' ``enable_tiling`` with the same tile
    and overlap (25 %) 0.204 and 0.547; ours at 192-pixel tiles, 64 overlap, decode 0.130. The
    check is therefore relative: ours at most diffusers', and bigger tiles closer."""
    c = _codec("vae")
    x = _smooth_image(256, 256, seed=3)
    vae = c.vae
    with torch.no_grad():
        z = c.encode(x, tile=None)
        y = c.decode(z, tile=None)
        ours_enc = _rel(c.encode(x, tile=128, overlap=32), z)
        ours_dec = _rel(c.decode(z, tile=128, overlap=32), y)
        vae.enable_tiling()
        vae.tile_sample_min_size, vae.tile_latent_min_size = 128, 128 // c.factor
        theirs_enc = _rel(vae.encode(x).latent_dist.mean * c.scale, z)
        theirs_dec = _rel(vae.decode(z / c.scale).sample, y)
        vae.disable_tiling()
        big_dec = _rel(c.decode(z, tile=192, overlap=64), y)
    assert 0 < ours_enc <= theirs_enc and 0 < ours_dec <= theirs_dec
    assert big_dec < ours_dec


def test_tiled_sampling_draws_once_over_the_whole_latent():
    """Tiles blend the distribution's mean and std; the noise is one draw over the whole latent,
    so the tiled sample's noise part lines up with the untiled one's (per-tile draws would be
    uncorrelated with it)."""
    c = _codec("vae", latent="sample")
    m = _codec("vae")
    x = _smooth_image(128, 96)

    def noise_part(tile):
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            return c.encode(x, generator=g, tile=tile, overlap=32) - m.encode(
                x, tile=tile, overlap=32
            )

    a, b = noise_part(None).flatten(), noise_part(64).flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.9
