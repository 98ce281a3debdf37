from __future__ import annotations

import copy

import pytest
import torch

from flowmapsr.flowmap import PROMPT_NEG, PROMPT_NULL, PROMPT_POS, Condition
from flowmapsr.nets.diffusers_common import PromptEmbeds
from flowmapsr.nets.prompt_bank import PromptBankConfig, encode_prompts
from flowmapsr.nets.unet_adapter import TINY, UNetAdapterConfig, UNetFlowMap, build
from flowmapsr.testing.adapters import assert_backbone_at_init_then_wired, randomise_new_inputs
from flowmapsr.testing.text_encoders import write_text_encoders

diffusers = pytest.importorskip("diffusers")


def _prompt(variant, n=2, length=7, gen=None, dtype=torch.float32):
    tokens = torch.randn(n, length, 32, generator=gen, dtype=dtype)
    pooled = torch.randn(n, 32, generator=gen, dtype=dtype) if variant == "sdxl" else None
    return PromptEmbeds(tokens=tokens, pooled=pooled)


def _inputs(variant, gen, dtype=torch.float32, n=2):
    x = torch.randn(n, 4, 16, 16, generator=gen, dtype=dtype)
    src = torch.randn(n, 4, 16, 16, generator=gen, dtype=dtype)
    t = torch.tensor([0.9, 0.3], dtype=dtype)[:n]
    cond = Condition(
        prompt=_prompt(variant, n, gen=gen, dtype=dtype),
        source=src,
        omega=torch.full((n,), 2.5, dtype=dtype),
    )
    return x, t, cond


def _randomise_extra(net, gen):
    randomise_new_inputs(net, net.backbone.conv_in, net.latent_channels, gen)


@pytest.mark.parametrize("variant", ["sdxl", "sd21"])
def test_at_init_the_adapter_is_its_backbone(variant, gen):
    """Zero-initialised t − r / ω embeddings and source channels: the adapter's output equals the
    plain backbone's (original conv_in, timestep t·1000) for any r, ω and source."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel.from_config(TINY[variant]()).double()
    ref = copy.deepcopy(unet)
    net = UNetFlowMap(UNetAdapterConfig(variant=variant), backbone=unet)
    x, t, cond = _inputs(variant, gen, torch.float64)
    p = cond.prompt
    added = None
    if variant == "sdxl":
        ids = torch.tensor([[128.0, 128, 0, 0, 128, 128]] * 2, dtype=torch.float64)
        added = {"text_embeds": p.pooled, "time_ids": ids}
    want = ref(x, t * 1000, encoder_hidden_states=p.tokens, added_cond_kwargs=added).sample
    assert_backbone_at_init_then_wired(
        net, x, t, cond, want, net.backbone.conv_in, net.latent_channels, gen
    )


@pytest.mark.parametrize("variant", ["sdxl", "sd21"])
def test_tiny_builds_shapes_and_errors(variant, gen):
    net = build(UNetAdapterConfig(variant=variant))
    x, t, cond = _inputs(variant, gen)
    assert net(x, t, t * 0, cond).shape == x.shape
    assert net.size_multiple == 2
    # A batch-1 prompt (one cached prompt for the batch) broadcasts; a bare tensor is the tokens.
    one = PromptEmbeds(
        cond.prompt.tokens[:1], None if cond.prompt.pooled is None else cond.prompt.pooled[:1]
    )
    assert net(x, t, t, cond.replace(prompt=one)).shape == x.shape
    if variant == "sd21":
        net(x, t, t, cond.replace(prompt=cond.prompt.tokens))
    else:
        with pytest.raises(ValueError, match="pooled"):
            net(x, t, t, cond.replace(prompt=cond.prompt.tokens))
    # Role ids (and None = null) go through the prompt bank: the same as its embeddings.
    ids = torch.tensor([PROMPT_POS, PROMPT_NEG])
    with torch.no_grad():
        by_id = net(x, t, t, cond.replace(prompt=ids))
        torch.testing.assert_close(
            by_id, net(x, t, t, cond.replace(prompt=net.prompts.lookup(ids)))
        )
        null = net(x, t, t, cond.replace(prompt=None))
        torch.testing.assert_close(
            null, net(x, t, t, cond.replace(prompt=torch.full((2,), PROMPT_NULL)))
        )
        assert not torch.allclose(by_id, null)
    with pytest.raises(ValueError, match="prompt ids must be in"):
        net(x, t, t, cond.replace(prompt=torch.tensor([1, 7])))
    with pytest.raises(ValueError, match="cond.source"):
        net(x, t, t, cond.replace(source=None))
    plain = build(UNetAdapterConfig(variant=variant, concat_source=False))
    assert plain.backbone.conv_in.in_channels == 4
    assert plain(x, t, t, cond.replace(source=None)).shape == x.shape
    with pytest.raises(ValueError, match="addition_embed_type"):
        wrong = {"addition_embed_type": None} if variant == "sdxl" else TINY["sdxl"]()
        build(UNetAdapterConfig(variant=variant, backbone=wrong))


def test_sub_batches_and_masked_tokens(gen):
    """``Condition.index`` picks sub-batches of the prompt; masked tokens do not matter."""
    torch.manual_seed(0)
    net = build(UNetAdapterConfig(variant="sdxl")).double()
    x, t, cond = _inputs("sdxl", gen, torch.float64)
    full = net(x, t, t, cond)
    sub = cond.index(torch.tensor([False, True]))
    torch.testing.assert_close(net(x[1:], t[1:], t[1:], sub), full[1:])
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[:, -2:] = 0
    p = cond.prompt
    masked = PromptEmbeds(p.tokens, p.pooled, mask)
    changed = p.tokens.clone()
    changed[:, -2:] = 5.0
    a = net(x, t, t, cond.replace(prompt=masked))
    b = net(x, t, t, cond.replace(prompt=PromptEmbeds(changed, p.pooled, mask)))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # the mask is a −1e4 bias, not −inf
    assert not torch.allclose(a, full)


def test_from_pretrained_folder_and_save_load(tmp_path, gen):
    """``from_pretrained`` reads a diffusers folder (``unet/`` inside) from local files; the
    architecture config rebuilds the same module without that folder."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel.from_config(TINY["sdxl"]())
    unet.save_pretrained(tmp_path / "sdxl" / "unet")
    (tmp_path / "sdxl" / "model_index.json").write_text("{}")
    write_text_encoders(tmp_path / "sdxl", "sdxl", 32, 32, tokens=8)
    ref = UNetFlowMap(UNetAdapterConfig(), backbone=copy.deepcopy(unet))
    net = UNetFlowMap.from_pretrained(tmp_path / "sdxl")
    # The prompt bank holds the folder's encoders' outputs for the three prompts.
    want = encode_prompts(tmp_path / "sdxl", "sdxl", max_length=8)
    for role, e in want.items():
        torch.testing.assert_close(net.prompts.tokens[role], e.tokens[0])
        torch.testing.assert_close(net.prompts.pooled[role], e.pooled[0])
    x, t, cond = _inputs("sdxl", gen)
    torch.testing.assert_close(net(x, t, t * 0.5, cond), ref(x, t, t * 0.5, cond))
    # The model's own folder (config.json inside) loads too.
    with pytest.raises(ValueError, match="lacks the sdxl tokenizers"):
        build(UNetAdapterConfig(pretrained=str(tmp_path / "sdxl" / "unet")))
    encoders = PromptBankConfig(encoders=str(tmp_path / "sdxl"))
    direct = build(UNetAdapterConfig(pretrained=str(tmp_path / "sdxl" / "unet"), prompts=encoders))
    torch.testing.assert_close(direct(x, t, t, cond), ref(x, t, t, cond))
    # save → load: the architecture config (no weights folder) + the state dict.
    _randomise_extra(net, gen)
    arch = net.architecture_config()
    assert arch.pretrained is None and arch.backbone["block_out_channels"] == [32, 64]
    again = build(arch)
    again.load_state_dict(net.state_dict())
    torch.testing.assert_close(again(x, t, t * 0.5, cond), net(x, t, t * 0.5, cond))
    ids = cond.replace(prompt=torch.tensor([PROMPT_POS, PROMPT_NEG]))
    torch.testing.assert_close(again(x, t, t * 0.5, ids), net(x, t, t * 0.5, ids))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build(UNetAdapterConfig(pretrained=str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a diffusers model folder"):
        build(UNetAdapterConfig(pretrained=str(tmp_path / "empty")))
    (tmp_path / "sd.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="single_file_config"):
        build(UNetAdapterConfig(pretrained=str(tmp_path / "sd.safetensors")))


def test_deepcopy_keeps_its_own_extra_embedding(gen):
    """EMA targets are deep copies: a copy's hook must add the copy's embedding, not the
    original's."""
    net = build(UNetAdapterConfig(variant="sd21"))
    ema = copy.deepcopy(net)
    _randomise_extra(net, gen)
    x, t, cond = _inputs("sd21", gen)
    fresh = build(UNetAdapterConfig(variant="sd21"))
    fresh.load_state_dict(ema.state_dict())
    torch.testing.assert_close(ema(x, t, t * 0.2, cond), fresh(x, t, t * 0.2, cond))
    assert not torch.allclose(net(x, t, t * 0.2, cond), ema(x, t, t * 0.2, cond))


def _central_difference(f, x, v, eps):
    return (f(x + eps * v) - f(x - eps * v)) / (2 * eps)


@pytest.mark.parametrize("variant", ["sdxl", "sd21"])
def test_jvp_matches_finite_differences(variant, gen):
    """``torch.func.jvp`` through the adapter (default ``attention="auto"``: math SDPA under a
    forward tangent) equals central differences: x-tangents in fp64 tightly; t-tangents loosely
    in fp32, because the backbone's sinusoidal timestep features are computed in fp32."""
    torch.manual_seed(0)
    net = build(UNetAdapterConfig(variant=variant)).double()
    _randomise_extra(net, gen)
    x, t, cond = _inputs(variant, gen, torch.float64)
    r = t * 0.4
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    u, du = torch.func.jvp(lambda x: net(x, t, r, cond), (x,), (v,))
    torch.testing.assert_close(u, net(x, t, r, cond))
    fd = _central_difference(lambda x: net(x, t, r, cond), x, v, 1e-6)
    torch.testing.assert_close(du, fd, rtol=1e-6, atol=1e-8)
    # t-tangent (with r fixed, so t − r moves too) in fp32. The features oscillate at up to 1000
    # rad per unit t: the step must be small (measured: 1e-3 → 50 % error, 3e-5 → 0.08 %).
    net = net.float()
    x, cond32 = (
        x.float(),
        Condition(
            prompt=cond.prompt.to(torch.float32),
            source=cond.source.float(),
            omega=cond.omega.float(),
        ),
    )
    t32, r32 = t.float(), r.float()
    _, dt = torch.func.jvp(lambda s: net(x, s, r32, cond32), (t32,), (torch.ones_like(t32),))
    fd_t = _central_difference(lambda s: net(x, s, r32, cond32), t32, torch.ones_like(t32), 3e-5)
    err = (dt - fd_t).norm() / fd_t.norm()
    assert err < 5e-3, f"relative error of the t-tangent {err:.2e}"


def test_jvp_through_channels_last_input(gen):
    """A channels-last latent (as a conv stack may hand over) is made contiguous first: forward AD
    through the backbone rejects channels-last strides."""
    net = build(UNetAdapterConfig(variant="sd21"))
    x, t, cond = _inputs("sd21", gen)
    xc = x.to(memory_format=torch.channels_last)
    u, du = torch.func.jvp(lambda x: net(x, t, t, cond), (xc,), (torch.ones_like(xc),))
    assert torch.isfinite(du).all() and u.shape == x.shape


@pytest.mark.parametrize("variant", ["sdxl", "sd21"])
def test_lora_targets_hit_attention_feed_forward_and_resnets_and_start_at_the_backbone(
    variant, gen
):
    from flowmapsr.nets.lora import LoRAConfig, attach_lora, has_lora
    from flowmapsr.nets.unet_adapter import lora_target_regex

    net = build(UNetAdapterConfig(variant=variant))
    x, t, cond = _inputs(variant, gen)
    with torch.no_grad():
        before = net(x, t, t * 0.5, cond)
    also = r"^(backbone\.conv_in|extra)\."
    attach_lora(net, LoRAConfig(rank=2, targets=lora_target_regex(variant), also_train=also))
    assert has_lora(net)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in net.named_parameters() if ".lora_A" in n}
    kinds = {"attn1.to_q", "attn2.to_k", "ff.net.2", "proj_in", "resnets.0.conv1"}
    assert all(any(k in name for name in adapted) for k in kinds), sorted(adapted)[:8]
    assert not any("prompts" in name for name in adapted)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert any(n.startswith("backbone.conv_in.") for n in trainable)
    assert any(n.startswith("extra.") for n in trainable)
    assert all("lora_" in n or n.startswith(("backbone.conv_in.", "extra.")) for n in trainable)
    with torch.no_grad():  # lora_B starts at zero: the adapted net is the backbone
        torch.testing.assert_close(net(x, t, t * 0.5, cond), before)
