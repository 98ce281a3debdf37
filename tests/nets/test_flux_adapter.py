from __future__ import annotations

import copy

import pytest
import torch

from flowmapsr.flowmap import PROMPT_NEG, PROMPT_POS, Condition
from flowmapsr.nets.diffusers_common import PromptEmbeds
from flowmapsr.nets.flux_adapter import (
    FluxAdapterConfig,
    FluxFlowMap,
    build,
    image_ids,
    pack,
    tiny_flux_config,
    unpack,
)
from flowmapsr.nets.prompt_bank import encode_prompts
from flowmapsr.testing.adapters import assert_backbone_at_init_then_wired, randomise_new_inputs
from flowmapsr.testing.text_encoders import write_text_encoders

diffusers = pytest.importorskip("diffusers")


def _inputs(gen, dtype=torch.float32, n=2, h=16, w=12):
    x = torch.randn(n, 4, h, w, generator=gen, dtype=dtype)
    src = torch.randn(n, 4, h, w, generator=gen, dtype=dtype)
    t = torch.tensor([0.9, 0.3], dtype=dtype)[:n]
    prompt = PromptEmbeds(
        tokens=torch.randn(n, 7, 32, generator=gen, dtype=dtype),
        pooled=torch.randn(n, 32, generator=gen, dtype=dtype),
    )
    return x, t, Condition(prompt=prompt, source=src, omega=torch.full((n,), 2.5, dtype=dtype))


def _randomise_extra(net, gen):
    randomise_new_inputs(net, net.backbone.x_embedder, net.packed_channels, gen)


def test_pack_unpack_and_ids(gen):
    x = torch.randn(2, 4, 6, 8, generator=gen)
    tokens = pack(x)
    assert tokens.shape == (2, 3 * 4, 16)
    torch.testing.assert_close(unpack(tokens, 6, 8), x)
    # Token (row 1, col 2) holds the 2×2 patch x[:, :, 2:4, 4:6], features ordered (c, i, j).
    torch.testing.assert_close(tokens[:, 1 * 4 + 2], x[:, :, 2:4, 4:6].reshape(2, 16))
    ids = image_ids(6, 8)
    assert ids.shape == (12, 3) and ids[1 * 4 + 2].tolist() == [0.0, 1.0, 2.0]


def test_at_init_the_adapter_is_its_backbone(gen):
    """Zero-initialised t − r / ω embeddings and source inputs: the adapter equals the plain
    transformer called as a FLUX pipeline calls it (packed latents, ids, guidance 3.5)."""
    torch.manual_seed(0)
    flux = diffusers.FluxTransformer2DModel.from_config(tiny_flux_config()).double()
    ref = copy.deepcopy(flux)
    net = FluxFlowMap(FluxAdapterConfig(), backbone=flux)
    x, t, cond = _inputs(gen, torch.float64)
    want = ref(
        hidden_states=pack(x),
        encoder_hidden_states=cond.prompt.tokens,
        pooled_projections=cond.prompt.pooled,
        timestep=t,
        img_ids=image_ids(16, 12, dtype=torch.float64),
        txt_ids=torch.zeros(7, 3, dtype=torch.float64),
        guidance=torch.full((2,), 3.5, dtype=torch.float64),
    ).sample
    want = unpack(want, 16, 12)
    base = assert_backbone_at_init_then_wired(
        net, x, t, cond, want, net.backbone.x_embedder, net.packed_channels, gen
    )
    # The fixed guidance scale reaches the backbone's guidance embedding.
    net.config.guidance = 1.0
    assert not torch.allclose(net(x, t, t, cond), base)


def test_shapes_mask_and_errors(gen):
    torch.manual_seed(0)
    net = build(FluxAdapterConfig()).double()
    x, t, cond = _inputs(gen, torch.float64)
    full = net(x, t, t * 0, cond)
    assert full.shape == x.shape
    # Masked text tokens do not matter (a boolean mask over the joint [text; image] sequence).
    p = cond.prompt
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[:, -3:] = 0
    changed = p.tokens.clone()
    changed[:, -3:] = 7.0
    a = net(x, t, t * 0, cond.replace(prompt=PromptEmbeds(p.tokens, p.pooled, mask)))
    b = net(x, t, t * 0, cond.replace(prompt=PromptEmbeds(changed, p.pooled, mask)))
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(a, full)
    with pytest.raises(ValueError, match="even latent"):
        net(x[..., :-1], t, t, cond.replace(source=cond.source[..., :-1]))
    with pytest.raises(ValueError, match="4-channel"):
        net(x[:, :3], t, t, cond)
    with pytest.raises(ValueError, match="pooled"):
        net(x, t, t, cond.replace(prompt=p.tokens))
    with pytest.raises(ValueError, match="cond.source"):
        net(x, t, t, cond.replace(source=None))
    with pytest.raises(ValueError, match="guidance"):
        build(FluxAdapterConfig(guidance=None))
    plain = build(
        FluxAdapterConfig(concat_source=False, backbone={"guidance_embeds": False}, guidance=None)
    )
    assert (
        plain(x.float(), t.float(), t.float(), Condition(prompt=p.to(torch.float32))).shape
        == x.shape
    )


def test_from_pretrained_folder_and_save_load(tmp_path, gen):
    torch.manual_seed(0)
    flux = diffusers.FluxTransformer2DModel.from_config(tiny_flux_config())
    flux.save_pretrained(tmp_path / "flux" / "transformer")
    write_text_encoders(tmp_path / "flux", "flux", 32, 32, tokens=8)
    ref = FluxFlowMap(FluxAdapterConfig(), backbone=copy.deepcopy(flux))
    net = FluxFlowMap.from_pretrained(tmp_path / "flux")
    want = encode_prompts(tmp_path / "flux", "flux", max_length=8)  # T5 tokens, CLIP pooled
    for role, e in want.items():
        torch.testing.assert_close(net.prompts.tokens[role], e.tokens[0])
        torch.testing.assert_close(net.prompts.pooled[role], e.pooled[0])
    x, t, cond = _inputs(gen)
    torch.testing.assert_close(net(x, t, t * 0.5, cond), ref(x, t, t * 0.5, cond))
    _randomise_extra(net, gen)
    arch = net.architecture_config()
    assert arch.pretrained is None and arch.backbone["in_channels"] == 16
    again = build(arch)
    again.load_state_dict(net.state_dict())
    torch.testing.assert_close(again(x, t, t * 0.5, cond), net(x, t, t * 0.5, cond))
    ids = cond.replace(prompt=torch.tensor([PROMPT_POS, PROMPT_NEG]))
    torch.testing.assert_close(again(x, t, t * 0.5, ids), net(x, t, t * 0.5, ids))
    ema = copy.deepcopy(net)  # a deep copy's hook adds the copy's own embedding
    with torch.no_grad():
        net.extra.gap[-1].bias.add_(1.0)
    torch.testing.assert_close(ema(x, t, t * 0.5, cond), again(x, t, t * 0.5, cond))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build(FluxAdapterConfig(pretrained=str(tmp_path / "nowhere")))


def test_jvp_matches_finite_differences(gen):
    """Forward-mode AD through the adapter (math SDPA under a tangent, automatically) equals
    central differences: x in fp64, t in fp32 (FLUX's timestep features are fp32)."""
    torch.manual_seed(0)
    net = build(FluxAdapterConfig()).double()
    _randomise_extra(net, gen)
    x, t, cond = _inputs(gen, torch.float64)
    r = t * 0.4
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    u, du = torch.func.jvp(lambda x: net(x, t, r, cond), (x,), (v,))
    torch.testing.assert_close(u, net(x, t, r, cond))
    # diffusers computes RMSNorm's variance and RoPE in fp32 even in an fp64 model, so the
    # differences have a rounding floor ∝ 1/eps (measured: eps 1e-6 → 5e-4 relative error,
    # 1e-3 → 1.2e-6, 1e-2 → 1e-4 from truncation): take the step at the bottom of that curve.
    eps = 1e-3
    fd = (net(x + eps * v, t, r, cond) - net(x - eps * v, t, r, cond)) / (2 * eps)
    err = (du - fd).norm() / fd.norm()
    assert err < 2e-4, f"relative error of the x-tangent {err:.2e}"
    net = net.float()
    x32 = x.float()
    c32 = Condition(
        prompt=cond.prompt.to(torch.float32), source=cond.source.float(), omega=cond.omega.float()
    )
    t32, r32 = t.float(), r.float()
    one = torch.ones_like(t32)
    _, dt = torch.func.jvp(lambda s: net(x32, s, r32, c32), (t32,), (one,))
    eps = 3e-5  # features oscillate at up to 1000 rad per unit t (see the UNet test)
    fd_t = (net(x32, t32 + eps, r32, c32) - net(x32, t32 - eps, r32, c32)) / (2 * eps)
    err = (dt - fd_t).norm() / fd_t.norm()
    assert err < 5e-3, f"relative error of the t-tangent {err:.2e}"
