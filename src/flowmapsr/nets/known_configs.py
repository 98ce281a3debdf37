"""Published architecture configs of the real-size backbones, their VAEs and text encoders.

The values are those of the ``config.json`` files in the public Hugging Face repositories
(diffusers layout), written out here so the architectures can be built without the weights —
on the meta device, to count parameters and size memory (benchmarks/backbone_memory.py), or
with random weights on a CPU to measure a forward / backward. Keys not given take the diffusers
/ transformers defaults, which the published files also use. Checked against the published
parameter counts: SDXL base 1.0 UNet 2.567 B, SD 2.1 UNet 865.9 M, FLUX.1-dev transformer
11.90 B (benchmarks/backbone_memory.py prints the counts).

- ``stabilityai/stable-diffusion-xl-base-1.0``: unet/, vae/, text_encoder/ (CLIP ViT-L),
  text_encoder_2/ (OpenCLIP ViT-bigG with projection).
- ``stabilityai/stable-diffusion-2-1-base``: unet/, vae/, text_encoder/ (OpenCLIP ViT-H, 23 of
  its 24 layers: SD 2 takes the penultimate layer's output).
- ``black-forest-labs/FLUX.1-dev``: transformer/, vae/ (16 latent channels, no quant convs),
  text_encoder/ (CLIP ViT-L), text_encoder_2/ (T5 v1.1 XXL encoder).

Each entry is ``(library, class name, config dict)``; :func:`build_meta` builds one.
"""

from __future__ import annotations

_SD_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
}

_CLIP_L = {  # openai/clip-vit-large-patch14 text tower (SDXL text_encoder, FLUX text_encoder)
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}

SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
}

SD21_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "norm_num_groups": 32,
}

FLUX_DEV_TRANSFORMER = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": True,
    "axes_dims_rope": [16, 56, 56],
}

KNOWN = {
    "sdxl": {
        "repo": "stabilityai/stable-diffusion-xl-base-1.0",
        "backbone": ("diffusers", "UNet2DConditionModel", SDXL_UNET),
        "vae": (
            "diffusers",
            "AutoencoderKL",
            {**_SD_VAE, "sample_size": 1024, "scaling_factor": 0.13025},
        ),
        "text_encoder": ("transformers", "CLIPTextModel", _CLIP_L),
        "text_encoder_2": (
            "transformers",
            "CLIPTextModelWithProjection",
            {
                "hidden_size": 1280,
                "intermediate_size": 5120,
                "num_hidden_layers": 32,
                "num_attention_heads": 20,
                "max_position_embeddings": 77,
                "vocab_size": 49408,
                "hidden_act": "gelu",
                "projection_dim": 1280,
            },
        ),
    },
    "sd21": {
        "repo": "stabilityai/stable-diffusion-2-1-base",
        "backbone": ("diffusers", "UNet2DConditionModel", SD21_UNET),
        "vae": (
            "diffusers",
            "AutoencoderKL",
            {**_SD_VAE, "sample_size": 768, "scaling_factor": 0.18215},
        ),
        "text_encoder": (
            "transformers",
            "CLIPTextModel",
            {
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 23,
                "num_attention_heads": 16,
                "max_position_embeddings": 77,
                "vocab_size": 49408,
                "hidden_act": "gelu",
                "projection_dim": 512,
            },
        ),
    },
    "flux": {
        "repo": "black-forest-labs/FLUX.1-dev",
        "backbone": ("diffusers", "FluxTransformer2DModel", FLUX_DEV_TRANSFORMER),
        "vae": (
            "diffusers",
            "AutoencoderKL",
            {
                **_SD_VAE,
                "latent_channels": 16,
                "sample_size": 1024,
                "scaling_factor": 0.3611,
                "shift_factor": 0.1159,
                "use_quant_conv": False,
                "use_post_quant_conv": False,
            },
        ),
        "text_encoder": ("transformers", "CLIPTextModel", _CLIP_L),
        "text_encoder_2": (
            "transformers",
            "T5EncoderModel",
            {
                "d_model": 4096,
                "d_ff": 10240,
                "d_kv": 64,
                "num_heads": 64,
                "num_layers": 24,
                "vocab_size": 32128,
                "feed_forward_proj": "gated-gelu",
                "relative_attention_num_buckets": 32,
                "relative_attention_max_distance": 128,
                "tie_word_embeddings": False,
            },
        ),
    },
}


def build(library: str, cls_name: str, config: dict):
    """The model ``cls_name`` of ``library`` ("diffusers" / "transformers") from ``config``,
    with weights on the current default device (random init)."""
    if library == "diffusers":
        import diffusers

        return getattr(diffusers, cls_name).from_config(config)
    import transformers

    cls = getattr(transformers, cls_name)
    cfg_cls = cls.config_class
    if cls_name.startswith("CLIPText"):
        cfg_cls = transformers.CLIPTextConfig
    return cls(cfg_cls(**config))


def build_meta(library: str, cls_name: str, config: dict):
    """:func:`build` without allocating weights (accelerate's ``init_empty_weights``: parameters
    on the meta device, shapes and dtypes exact) — enough to count them."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = build(library, cls_name, config)
    if hasattr(model, "tie_weights"):
        # transformers 5 ties shared weights (T5's encoder.embed_tokens = shared) in
        # from_pretrained, not in the constructor (and not inside init_empty_weights, whose
        # register_parameter hook re-wraps the tied tensor): untied, the 132 M-parameter T5
        # embedding would count twice (4.89 B instead of the checkpoint's 4.76 B).
        model.tie_weights()
    return model
