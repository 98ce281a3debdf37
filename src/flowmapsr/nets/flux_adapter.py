"""A diffusers ``FluxTransformer2DModel`` as a flow-map network (DESIGN.md §3, "large"; FluxSR).

``u = net(x_t, t, r, cond)`` with ``x_t`` latents ``(B, C, h, w)`` (h, w even), ``t``, ``r``
``(B,)`` in ``[0, 1]`` and ``cond.prompt`` a
:class:`~flowmapsr.nets.diffusers_common.PromptEmbeds` (T5 tokens ``(B, L, joint_attention_dim)``,
CLIP pooled ``(B, pooled_projection_dim)``, optional mask); returns ``u`` ``(B, C, h, w)``.

- Latents are packed as FLUX pipelines pack them: each 2×2 patch becomes one token of
  ``4·C`` features, ``(B, C, h, w) → (B, h/2 · w/2, 4C)``; the output is unpacked the same way.
  Image position ids are ``(0, row, col)`` per token, text ids zeros (FLUX's RoPE layout).
- FLUX's timestep is ``t ∈ [0, 1]`` (it multiplies by 1000 itself: ``timestep_scale`` 1), and
  t = 1 is noise in FLUX as t = 1 is the source here. Guidance-distilled backbones
  (``guidance_embeds``, FLUX.1-dev) get the fixed ``guidance`` scale through their guidance
  embedding; the flow map's own ω enters, like ``t − r``, through a zero-initialised embedding
  added to the backbone's conditioning vector ``temb`` (so at init the adapter is the backbone).
- With ``concat_source`` the packed source latent is concatenated to the packed ``x_t`` on the
  feature axis and ``x_embedder`` gets ``4C`` extra zero-initialised inputs.
- JVP-safe as the UNet adapter (math SDPA under a forward tangent).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from flowmapsr.flowmap import Condition
from flowmapsr.nets.diffusers_common import (
    AddToOutput,
    ExtraTimeEmbedding,
    RuntimeSettable,
    architecture,
    attention_context,
    checkpoint_block,
    load_backbone,
    torch_dtype,
    widen_input,
)
from flowmapsr.nets.prompt_bank import (
    PromptBankConfig,
    build_bank,
    resolve_prompt,
    saved_bank_config,
)


@dataclass
class FluxAdapterConfig:
    type: str = "flux"
    pretrained: str | None = None  # local diffusers folder or single checkpoint file; None = tiny
    subfolder: str = "transformer"
    weights_variant: str | None = None  # diffusers file variant, e.g. "fp16"
    single_file_config: str | None = None  # local diffusers folder giving a single file's config
    # dtype the pretrained weights are read in (None: float32). The trainer sets "bfloat16" for a
    # LoRA stage with frozen_dtype=bfloat16, so a 12 B backbone never exists in fp32 in memory.
    load_dtype: str | None = None
    backbone: dict = field(default_factory=dict)  # transformer config keys over the tiny config
    concat_source: bool = True  # packed source latent through zero-initialised x_embedder inputs
    timestep_scale: float = 1.0  # FLUX scales t ∈ [0, 1] by 1000 itself
    guidance: float | None = 3.5  # fixed distilled-guidance scale for guidance_embeds backbones
    freq_dim: int = 256
    omega_scale: float = 100.0
    attention: str = "auto"  # "auto" (math SDPA under forward AD), "math", "default"
    # Recompute the backbone's blocks in backward instead of keeping their activations (diffusers'
    # enable_gradient_checkpointing): less memory for large backbones, same loss and gradients.
    gradient_checkpointing: bool = False
    # Cached text-encoder outputs of the null / pos / neg prompts (nets/prompt_bank.py).
    prompts: PromptBankConfig = field(default_factory=PromptBankConfig)


def tiny_flux_config() -> dict:
    """A tiny FLUX-shaped transformer: 4 latent channels (16 packed features), one double- and
    one single-stream block, 2 heads × 16, RoPE axes 4 + 4 + 8, 32-d T5 / pooled embeddings."""
    return {
        "patch_size": 1,
        "in_channels": 16,
        "num_layers": 1,
        "num_single_layers": 1,
        "attention_head_dim": 16,
        "num_attention_heads": 2,
        "joint_attention_dim": 32,
        "pooled_projection_dim": 32,
        "guidance_embeds": True,
        "axes_dims_rope": [4, 4, 8],
    }


def pack(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w) → (B, h/2 · w/2, 4C)``: 2×2 patches to tokens, row-major, features (c, i, j)
    as FLUX pipelines order them."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`pack`: ``(B, h/2 · w/2, 4C) → (B, C, h, w)``."""
    b, _, d = tokens.shape
    x = tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h, w)


def image_ids(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(h/2 · w/2, 3)`` position ids of packed tokens: ``(0, row, col)``."""
    rows = torch.arange(h // 2, device=device, dtype=dtype)
    cols = torch.arange(w // 2, device=device, dtype=dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
    return torch.cat([torch.zeros_like(grid[:, :1]), grid], 1)


class FluxFlowMap(RuntimeSettable, nn.Module):
    """``FluxTransformer2DModel`` presenting ``u = net(x_t, t, r, cond)``; see module docstring."""

    size_multiple = 2  # latents are packed in 2×2 patches

    def __init__(self, config: FluxAdapterConfig | None = None, backbone: nn.Module | None = None):
        super().__init__()
        from diffusers import FluxTransformer2DModel

        c = self.config = config or FluxAdapterConfig()
        if backbone is None:
            if c.pretrained is not None:
                backbone = load_backbone(
                    FluxTransformer2DModel,
                    c.pretrained,
                    c.subfolder,
                    c.weights_variant,
                    c.single_file_config,
                    dtype=torch_dtype(c.load_dtype),
                )
            else:
                backbone = FluxTransformer2DModel.from_config({**tiny_flux_config(), **c.backbone})
        self.backbone = backbone
        if c.gradient_checkpointing:
            backbone.enable_gradient_checkpointing(checkpoint_block)
        cfg = backbone.config
        if cfg.patch_size != 1 or cfg.in_channels % 4:
            raise ValueError(
                "the flux adapter packs 2×2 latent patches itself: the transformer "
                f"needs patch_size 1 and in_channels a multiple of 4, got "
                f"{cfg.patch_size}, {cfg.in_channels}"
            )
        if cfg.guidance_embeds and c.guidance is None:
            raise ValueError("this FLUX transformer embeds a guidance scale: set guidance")
        self.packed_channels = cfg.in_channels
        self.latent_channels = cfg.in_channels // 4
        if c.concat_source:
            backbone.x_embedder = widen_input(backbone.x_embedder, cfg.in_channels)
        inner = backbone.x_embedder.out_features
        self.extra = ExtraTimeEmbedding(inner, c.freq_dim, 1000.0, c.omega_scale)
        self._add = AddToOutput(backbone.time_text_embed)
        self.extra.to(next(backbone.parameters()).dtype)
        self.prompts = build_bank(
            c.prompts, cfg.joint_attention_dim, cfg.pooled_projection_dim, c.pretrained, "flux"
        )

    @classmethod
    def from_pretrained(cls, path: str, **fields) -> FluxFlowMap:
        """The adapter over local weights (a diffusers folder with ``transformer/`` inside, e.g.
        ``black-forest-labs/FLUX.1-dev`` as ``snapshot_download`` leaves it, or a single file with
        ``single_file_config``); other config fields by name."""
        return cls(FluxAdapterConfig(pretrained=str(path), **fields))

    def architecture_config(self) -> FluxAdapterConfig:
        """This config with the full architecture in ``backbone`` and no ``pretrained`` path (see
        ``UNetFlowMap.architecture_config``)."""
        arch = architecture(self.backbone)
        arch["in_channels"] = self.packed_channels
        bank = saved_bank_config(self.config.prompts, self.prompts)
        return replace(self.config, pretrained=None, load_dtype=None, backbone=arch, prompts=bank)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor, cond: Condition | None = None
    ) -> torch.Tensor:
        """``x`` ``(B, C, h, w)`` latents, ``t``, ``r`` ``(B,)`` → ``u`` ``(B, C, h, w)``."""
        c = self.config
        n, ch, h, w = x.shape
        if ch != self.latent_channels:
            raise ValueError(
                f"the flux adapter takes {self.latent_channels}-channel latents, got {ch}"
            )
        if h % 2 or w % 2:
            raise ValueError(f"the flux adapter needs even latent H and W, got {(h, w)}")
        if cond is None:
            raise ValueError("the flux adapter needs cond (text embeddings in cond.prompt)")
        prompt = resolve_prompt(self.prompts, cond.prompt, n, x.dtype, "the flux adapter")
        if prompt.pooled is None:
            raise ValueError("FLUX needs the pooled text embedding (PromptEmbeds.pooled)")
        tokens = pack(x.contiguous())
        if c.concat_source:
            if cond.source is None:
                raise ValueError("this network concatenates the source latent: pass cond.source")
            tokens = torch.cat([tokens, pack(cond.source.to(x.dtype).contiguous())], -1)
        img_ids = image_ids(h, w, x.device, x.dtype)
        txt_ids = torch.zeros(prompt.tokens.shape[1], 3, device=x.device, dtype=x.dtype)
        guidance = None
        if self.backbone.config.guidance_embeds:
            guidance = torch.full((n,), float(c.guidance), device=x.device, dtype=x.dtype)
        kwargs = None
        if prompt.mask is not None:
            # Joint attention runs over [text; image]: image tokens always take part.
            keep = torch.cat(
                [prompt.mask.bool(), prompt.mask.new_ones(n, tokens.shape[1]).bool()], 1
            )
            kwargs = {"attention_mask": keep[:, None, None, :]}
        extra = self.extra(t - r, cond.omega)
        param = self.backbone.x_embedder.weight
        with (
            attention_context(c.attention, x, t, r, cond.source, prompt.tokens, param),
            self._add.adding(extra),
        ):
            out = self.backbone(
                hidden_states=tokens,
                encoder_hidden_states=prompt.tokens,
                pooled_projections=prompt.pooled,
                timestep=t * c.timestep_scale,
                img_ids=img_ids,
                txt_ids=txt_ids,
                guidance=guidance,
                joint_attention_kwargs=kwargs,
                return_dict=False,
            )[0]
        return unpack(out, h, w)


def build(config: FluxAdapterConfig | None = None) -> FluxFlowMap:
    """The adapter for ``config`` (the ``NETS`` registry's constructor)."""
    return FluxFlowMap(config)


def lora_targets() -> tuple[str, ...]:
    """Regexes (``re.fullmatch`` over module names) of the FLUX layers LoRA adapts: the
    double-stream blocks' image and context attention projections and feed-forwards, the
    single-stream blocks' attention and fused MLP / output projections."""
    return (
        r".*transformer_blocks\.\d+\.attn\.to_q",
        r".*transformer_blocks\.\d+\.attn\.to_k",
        r".*transformer_blocks\.\d+\.attn\.to_v",
        r".*transformer_blocks\.\d+\.attn\.to_out\.0",
        r".*transformer_blocks\.\d+\.attn\.add_q_proj",
        r".*transformer_blocks\.\d+\.attn\.add_k_proj",
        r".*transformer_blocks\.\d+\.attn\.add_v_proj",
        r".*transformer_blocks\.\d+\.attn\.to_add_out",
        r".*transformer_blocks\.\d+\.ff\.net\.0\.proj",
        r".*transformer_blocks\.\d+\.ff\.net\.2",
        r".*transformer_blocks\.\d+\.ff_context\.net\.0\.proj",
        r".*transformer_blocks\.\d+\.ff_context\.net\.2",
        r".*single_transformer_blocks\.\d+\.proj_mlp",
        r".*single_transformer_blocks\.\d+\.proj_out",
    )


def lora_target_regex() -> str:
    """:func:`lora_targets` as one regex, for ``LoRAConfig.targets``."""
    return "(?:" + "|".join(lora_targets()) + ")"
