"""A diffusers ``UNet2DConditionModel`` as a flow-map network (DESIGN.md §3, "large").

``u = net(x_t, t, r, cond)`` with ``x_t`` latents ``(B, C, h, w)``, ``t``, ``r`` ``(B,)`` in
``[0, 1]`` and ``cond`` a :class:`~flowmapsr.flowmap.Condition` whose ``prompt`` is a
:class:`~flowmapsr.nets.diffusers_common.PromptEmbeds`; returns ``u`` ``(B, C, h, w)``.

- The backbone sees ``t · timestep_scale`` (1000: SD / SDXL were trained on timesteps 0…999;
  t = 1, the source end, maps to the noisiest timestep).
- ``t − r`` and ω enter through zero-initialised embeddings added to the backbone's time
  embedding (:class:`ExtraTimeEmbedding`), so at init ``u(x, t, r, c)`` is the backbone's output
  at ``t`` for every ``r`` and ω — a pretrained velocity model is a flow map on the diagonal.
- With ``concat_source`` the source latent ``cond.source`` ``(B, C, h, w)`` is concatenated to
  ``x_t`` and ``conv_in`` gets ``C`` extra zero-initialised input channels (same output at init).
- SDXL-style backbones (``addition_embed_type="text_time"``) take the pooled text embedding and
  ``add_time_ids`` from the prompt; missing time ids default to the latent size × ``latent_factor``
  (original = target size, no crop). SD 2.1-style backbones use cross-attention only.
- JVP-safe: see :func:`~flowmapsr.nets.diffusers_common.attention_context`; the input is made
  contiguous because the backbone's GroupNorm/views reject channels-last strides under forward AD.

Build with :func:`build` from :class:`UNetAdapterConfig`: ``pretrained`` None gives a tiny random
backbone (:func:`tiny_sdxl_config` / :func:`tiny_sd21_config`, overridable by ``backbone``),
a path loads real weights from local files (:func:`~flowmapsr.nets.diffusers_common.load_backbone`),
e.g. the ``stabilityai/stable-diffusion-xl-base-1.0`` folder as ``snapshot_download`` leaves it.
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

VARIANTS = ("sdxl", "sd21")


@dataclass
class UNetAdapterConfig:
    type: str = "unet"
    variant: str = "sdxl"  # "sdxl" (text_time added conditioning) or "sd21" (cross-attention)
    pretrained: str | None = None  # local diffusers folder or single checkpoint file; None = tiny
    subfolder: str = "unet"
    weights_variant: str | None = None  # diffusers file variant, e.g. "fp16"
    single_file_config: str | None = None  # local diffusers folder giving a single file's config
    # dtype the pretrained weights are read in (None: float32). The trainer sets "bfloat16" for a
    # LoRA stage with frozen_dtype=bfloat16, so a 12 B backbone never exists in fp32 in memory.
    load_dtype: str | None = None
    backbone: dict = field(default_factory=dict)  # UNet config keys over the tiny config
    concat_source: bool = True  # source latent through zero-initialised extra conv_in channels
    timestep_scale: float = 1000.0  # t ∈ [0, 1] → the backbone's timestep
    latent_factor: int = 8  # pixels per latent (SDXL default add_time_ids)
    freq_dim: int = 256  # sinusoidal features of t − r and ω
    omega_scale: float = 100.0
    attention: str = "auto"  # "auto" (math SDPA under forward AD), "math", "default"
    # Recompute the backbone's blocks in backward instead of keeping their activations (diffusers'
    # enable_gradient_checkpointing): less memory for large backbones, same loss and gradients.
    gradient_checkpointing: bool = False
    # Cached text-encoder outputs of the null / pos / neg prompts (nets/prompt_bank.py).
    prompts: PromptBankConfig = field(default_factory=PromptBankConfig)


def tiny_sdxl_config() -> dict:
    """A tiny SDXL-shaped UNet (two levels, text_time conditioning, ~1 M parameters): 4 latent
    channels, 32-d token embeddings, 32-d pooled embedding, 6 time ids × 8 features."""
    return {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "attention_head_dim": [2, 4],
        "transformer_layers_per_block": [1, 1],
        "use_linear_projection": True,
        "cross_attention_dim": 32,
        "norm_num_groups": 8,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 32 + 6 * 8,
    }


def tiny_sd21_config() -> dict:
    """A tiny SD 2.1-shaped UNet (two levels, cross-attention only, linear projections)."""
    return {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "attention_head_dim": [2, 4],
        "use_linear_projection": True,
        "cross_attention_dim": 32,
        "norm_num_groups": 8,
    }


TINY = {"sdxl": tiny_sdxl_config, "sd21": tiny_sd21_config}
SDXL_TIME_IDS = 6  # original h, w, crop top, left, target h, w


def cross_attention_dim(cfg) -> int:
    """D of the token embeddings a UNet config cross-attends to (one value for every block)."""
    d = cfg.cross_attention_dim
    if isinstance(d, (list, tuple)):
        if len(set(d)) != 1:
            raise ValueError(f"unet adapter: per-block cross_attention_dim {d} is not supported")
        d = d[0]
    return int(d)


def pooled_dim(cfg) -> int:
    """P of SDXL's pooled text embedding: the added-embedding input minus the time ids' part."""
    return int(cfg.projection_class_embeddings_input_dim) - SDXL_TIME_IDS * int(
        cfg.addition_time_embed_dim
    )


class UNetFlowMap(RuntimeSettable, nn.Module):
    """``UNet2DConditionModel`` presenting ``u = net(x_t, t, r, cond)``; see module docstring.

    ``backbone``: the diffusers UNet (its own parameter names, so LoRA targets and checkpoints
    read as diffusers'); ``extra``: the zero-initialised ``t − r`` / ω embeddings.
    """

    def __init__(self, config: UNetAdapterConfig | None = None, backbone: nn.Module | None = None):
        super().__init__()
        from diffusers import UNet2DConditionModel

        c = self.config = config or UNetAdapterConfig()
        if c.variant not in VARIANTS:
            raise ValueError(f"unet adapter variant '{c.variant}' is not one of {VARIANTS}")
        if backbone is None:
            if c.pretrained is not None:
                backbone = load_backbone(
                    UNet2DConditionModel,
                    c.pretrained,
                    c.subfolder,
                    c.weights_variant,
                    c.single_file_config,
                    dtype=torch_dtype(c.load_dtype),
                )
            else:
                backbone = UNet2DConditionModel.from_config({**TINY[c.variant](), **c.backbone})
        self.backbone = backbone
        if c.gradient_checkpointing:
            backbone.enable_gradient_checkpointing(checkpoint_block)
        cfg = backbone.config
        self.text_time = cfg.addition_embed_type == "text_time"
        if self.text_time != (c.variant == "sdxl"):
            raise ValueError(
                f"unet adapter variant '{c.variant}' but the backbone's "
                f"addition_embed_type is {cfg.addition_embed_type!r}"
            )
        self.latent_channels = cfg.in_channels
        # H and W of latents must be multiples of this (each down level halves them).
        self.size_multiple = 2 ** (len(cfg.block_out_channels) - 1)
        if c.concat_source:
            backbone.conv_in = widen_input(backbone.conv_in, cfg.in_channels)
        time_dim = backbone.time_embedding.linear_2.out_features
        self.extra = ExtraTimeEmbedding(time_dim, c.freq_dim, c.timestep_scale, c.omega_scale)
        self._add = AddToOutput(backbone.time_embedding)
        self.extra.to(next(backbone.parameters()).dtype)
        pooled = pooled_dim(cfg) if self.text_time else None
        self.prompts = build_bank(
            c.prompts, cross_attention_dim(cfg), pooled, c.pretrained, c.variant
        )

    @classmethod
    def from_pretrained(cls, path: str, **fields) -> UNetFlowMap:
        """The adapter over local weights: ``path`` is a diffusers folder (``unet/`` inside) or a
        single checkpoint file (then pass ``single_file_config``); other config fields by name."""
        return cls(UNetAdapterConfig(pretrained=str(path), **fields))

    def architecture_config(self) -> UNetAdapterConfig:
        """This adapter's config with the backbone's full architecture in ``backbone`` and no
        ``pretrained`` path: rebuilds the same module (random weights) without the weights folder,
        ready for a saved state dict (what a pipeline's ``config.json`` should hold)."""
        arch = architecture(self.backbone)
        arch["in_channels"] = self.latent_channels  # conv_in is widened by the adapter itself
        bank = saved_bank_config(self.config.prompts, self.prompts)
        return replace(self.config, pretrained=None, load_dtype=None, backbone=arch, prompts=bank)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor, cond: Condition | None = None
    ) -> torch.Tensor:
        """``x`` ``(B, C, h, w)`` latents, ``t``, ``r`` ``(B,)`` → ``u`` ``(B, C, h, w)``."""
        c = self.config
        n = x.shape[0]
        if cond is None:
            raise ValueError("the unet adapter needs cond (text embeddings in cond.prompt)")
        prompt = resolve_prompt(self.prompts, cond.prompt, n, x.dtype, "the unet adapter")
        x = x.contiguous()
        h = x
        if c.concat_source:
            if cond.source is None:
                raise ValueError("this network concatenates the source latent: pass cond.source")
            h = torch.cat([x, cond.source.to(x.dtype).contiguous()], 1)
        added = None
        if self.text_time:
            if prompt.pooled is None:
                raise ValueError(
                    "an SDXL-style unet needs the pooled text embedding (PromptEmbeds.pooled)"
                )
            time_ids = prompt.time_ids
            if time_ids is None:
                hh, ww = x.shape[-2] * c.latent_factor, x.shape[-1] * c.latent_factor
                time_ids = x.new_tensor([hh, ww, 0, 0, hh, ww]).expand(n, 6)
            added = {"text_embeds": prompt.pooled, "time_ids": time_ids.to(x.dtype)}
        extra = self.extra(t - r, cond.omega)
        param = self.backbone.conv_in.weight
        with (
            attention_context(c.attention, x, t, r, cond.source, prompt.tokens, param),
            self._add.adding(extra),
        ):
            out = self.backbone(
                h,
                t * c.timestep_scale,
                encoder_hidden_states=prompt.tokens,
                encoder_attention_mask=prompt.mask,
                added_cond_kwargs=added,
                return_dict=False,
            )[0]
        return out


def build(config: UNetAdapterConfig | None = None) -> UNetFlowMap:
    """The adapter for ``config`` (the ``NETS`` registry's constructor)."""
    return UNetFlowMap(config)


def lora_targets(variant: str = "sdxl") -> tuple[str, ...]:
    """Regexes (``re.fullmatch`` over module names, as peft reads a string target) of the UNet
    layers LoRA adapts: attention projections, feed-forward, the transformer blocks' in/out
    projections and the resnets' convs. The same for both variants (their blocks share names)."""
    if variant not in VARIANTS:
        raise ValueError(f"unet adapter variant '{variant}' is not one of {VARIANTS}")
    return (
        r".*\.attn[12]\.to_q",
        r".*\.attn[12]\.to_k",
        r".*\.attn[12]\.to_v",
        r".*\.attn[12]\.to_out\.0",
        r".*\.ff\.net\.0\.proj",
        r".*\.ff\.net\.2",
        r".*\.attentions\.\d+\.proj_in",
        r".*\.attentions\.\d+\.proj_out",
        r".*\.resnets\.\d+\.conv[12]",
        r".*\.resnets\.\d+\.time_emb_proj",
    )


def lora_target_regex(variant: str = "sdxl") -> str:
    """:func:`lora_targets` as one regex, for ``LoRAConfig.targets``."""
    return "(?:" + "|".join(lora_targets(variant)) + ")"
