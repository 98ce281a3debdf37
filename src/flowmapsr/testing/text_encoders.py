"""Tiny random tokenizers and text encoders in a diffusers folder layout, for tests.

No CLIP, OpenCLIP or T5 weights exist on our machines, so the tests of the prompt bank's real
encoding path (:func:`flowmapsr.nets.prompt_bank.encode_prompts`) write these: a word-level
fast tokenizer (the ``tokenizers`` library, saved as a ``PreTrainedTokenizerFast`` that
``AutoTokenizer`` reads back) and randomly initialised transformers encoders of a few dozen
dimensions, in the subfolders the SD 2.1 / SDXL / FLUX pipelines use.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "a high-resolution 8k ultra-realistic image with sharp focus vibrant colors and natural "
    "lighting oil painting cartoon blur dirty messy low quality deformation resolution oversmooth"
).split()


def write_tokenizer(folder: Path, max_length: int) -> None:
    """A word-level tokenizer (punctuation split off) padding to ``max_length``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(dict.fromkeys(WORDS))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", model_max_length=max_length
    )
    fast.save_pretrained(folder)


def _clip(hidden: int, tokens: int, projection: int | None = None, seed: int = 0):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(
        vocab_size=len(WORDS) + 2,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=tokens,
        projection_dim=projection or hidden,
        pad_token_id=0,
        eos_token_id=2,  # legacy rule: the pooled token is the highest id's position
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def write_text_encoders(
    folder: str | Path, encoding: str, dim: int, pooled_dim: int | None, tokens: int
) -> Path:
    """Write tokenizer(s) and encoder(s) for ``encoding`` (``sd21`` | ``sdxl`` | ``flux``) whose
    outputs have token width ``dim`` and pooled width ``pooled_dim``, at length ``tokens``."""
    import torch
    from transformers import T5Config, T5EncoderModel

    folder = Path(folder)
    if encoding == "sd21":
        parts = {"": _clip(dim, tokens)}
    elif encoding == "sdxl":
        if dim % 2:
            raise ValueError("sdxl: the token width is two encoders' widths side by side (even)")
        parts = {"": _clip(dim // 2, tokens), "_2": _clip(dim // 2, tokens, pooled_dim, seed=1)}
    elif encoding == "flux":
        torch.manual_seed(2)
        t5 = T5EncoderModel(
            T5Config(
                vocab_size=len(WORDS) + 2,
                d_model=dim,
                d_kv=8,
                d_ff=2 * dim,
                num_layers=2,
                num_heads=2,
                pad_token_id=0,
            )
        )
        parts = {"": _clip(pooled_dim, 16), "_2": t5}
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    for suffix, model in parts.items():
        model.save_pretrained(folder / f"text_encoder{suffix}")
        length = 16 if (encoding == "flux" and suffix == "") else tokens
        write_tokenizer(folder / f"tokenizer{suffix}", length)
    return folder


def write_clip_model(folder: str | Path, image_size: int = 32) -> Path:
    """A tiny random ``CLIPModel`` (text and vision towers) with the word-level tokenizer, in one
    folder as a CLIP checkpoint is laid out (for the CLIP image-quality loss)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    folder = Path(folder)
    torch.manual_seed(3)
    text = {"vocab_size": len(WORDS) + 2, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32,
            "pad_token_id": 0, "eos_token_id": 2}  # fmt: skip
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
              "num_attention_heads": 2, "image_size": image_size, "patch_size": 8}  # fmt: skip
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(
        folder
    )
    write_tokenizer(folder, 32)
    return folder
