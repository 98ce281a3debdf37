"""The prompt bank of a text-conditioned backbone: the null / positive / negative prompts as
cached text-encoder outputs, looked up by the engine's prompt ids.

The engine names prompts by role — ``PROMPT_NULL``, ``PROMPT_POS``, ``PROMPT_NEG`` in
``Condition.prompt`` (guidance assigns them per sample, the pipeline asks for the positive one).
The small net learns one embedding per role (``nn.Embedding``). A diffusers backbone needs what
its text encoders output for a text; running CLIP / OpenCLIP / T5 at every step would cost more
than the backbone, and FlowMapSR / FlowSR / FluxSR use fixed prompts, so the adapters hold a
:class:`PromptBank`: the encoders' outputs for the three texts, computed once
(:func:`encode_prompts`) and stored as buffers — they travel in the model's weights file, and
an exported model needs no text encoder at inference. A :class:`PromptEmbeds` in
``Condition.prompt`` (any other text, encoded by the caller) bypasses the bank.

:func:`encode_prompts` reads the tokenizers and text encoders of a local diffusers folder with
transformers (``local_files_only``): SD 2.1 — ``text_encoder`` (OpenCLIP ViT-H as a
``CLIPTextModel``), tokens = last hidden state; SDXL — ``text_encoder`` + ``text_encoder_2``,
tokens = both penultimate hidden states concatenated, pooled = the second encoder's projected
embedding; FLUX — pooled = CLIP's pooled output, tokens = T5's last hidden state. These follow
how the diffusers pipelines of those models encode prompts. No such weights exist on our
machines: a tiny backbone (no ``pretrained``) gets seeded random stand-in embeddings instead, and
the tests write tiny random encoders to a folder to check the encoding path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from flowmapsr.flowmap import PROMPT_NEG, PROMPT_NULL, PROMPT_POS
from flowmapsr.nets.diffusers_common import PromptEmbeds, prompt_embeds

ROLES = {PROMPT_NULL: "null", PROMPT_POS: "pos", PROMPT_NEG: "neg"}
ENCODINGS = ("sd21", "sdxl", "flux")


@dataclass
class PromptTexts:
    """The texts of the three roles (defaults: FlowSR's positive and negative prompts)."""

    pos: str = (
        "A high-resolution, 8K, ultra-realistic image with sharp focus, vibrant colors, "
        "and natural lighting."
    )
    neg: str = (
        "oil painting, cartoon, blur, dirty, messy, low quality, deformation, low resolution, "
        "oversmooth"
    )
    null: str = ""


@dataclass
class PromptBankConfig:
    """Shapes of the bank (the backbone gives the embedding sizes) and where its texts come from.

    tokens: sequence length L of the cached token embeddings (CLIP pads to 77; T5 to 256/512).
    encoders: local diffusers folder with the tokenizers and text encoders (None: the backbone's
        ``pretrained`` folder; a tiny random backbone gets seeded random stand-ins).
    """

    tokens: int = 8
    encoders: str | None = None
    texts: PromptTexts = field(default_factory=PromptTexts)
    seed: int = 0  # random stand-ins (tiny backbones only)


class PromptBank(nn.Module):
    """Buffers ``tokens`` ``(3, L, D)`` and ``pooled`` ``(3, P)`` (if ``pooled_dim``), one row
    per role id; :meth:`lookup` gathers a batch of them. No attention mask: the SD, SDXL and FLUX
    pipelines attend to the padded prompt too, and so do the models trained with them."""

    def __init__(self, tokens: int, dim: int, pooled_dim: int | None = None):
        super().__init__()
        n = len(ROLES)
        self.register_buffer("tokens", torch.zeros(n, tokens, dim))
        self.register_buffer("pooled", torch.zeros(n, pooled_dim) if pooled_dim else None)

    def lookup(self, ids: torch.Tensor) -> PromptEmbeds:
        """``(B,)`` role ids → :class:`PromptEmbeds` of batch B."""
        ids = ids.to(self.tokens.device).long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(ROLES)):
            raise ValueError(f"prompt ids must be in {sorted(ROLES)} (null/pos/neg), got {ids}")
        pooled = None if self.pooled is None else self.pooled[ids]
        return PromptEmbeds(tokens=self.tokens[ids], pooled=pooled)

    @torch.no_grad()
    def fill(self, embeds: dict[int, PromptEmbeds]) -> None:
        """Store each role's encoder output (batch 1, or the bank's row shapes)."""
        for role, e in embeds.items():
            if e.tokens.shape[-2:] != self.tokens.shape[-2:]:
                raise ValueError(
                    f"prompt bank: {ROLES[role]} tokens {tuple(e.tokens.shape[-2:])}, the bank "
                    f"holds {tuple(self.tokens.shape[-2:])} (set prompts.tokens to the length)"
                )
            self.tokens[role] = e.tokens.reshape(self.tokens.shape[1:])
            if self.pooled is not None:
                if e.pooled is None:
                    raise ValueError(
                        f"prompt bank: the {ROLES[role]} prompt has no pooled embedding"
                    )
                self.pooled[role] = e.pooled.reshape(self.pooled.shape[1:])

    @torch.no_grad()
    def fill_random(self, seed: int) -> None:
        """Seeded random stand-ins for a tiny random backbone (no text encoder to run)."""
        g = torch.Generator().manual_seed(seed)
        self.tokens.copy_(torch.randn(self.tokens.shape, generator=g))
        if self.pooled is not None:
            self.pooled.copy_(torch.randn(self.pooled.shape, generator=g))


def resolve_prompt(bank: PromptBank, prompt, n: int, dtype: torch.dtype, who: str) -> PromptEmbeds:
    """``Condition.prompt`` for a text-conditioned backbone as :class:`PromptEmbeds` of batch
    ``n`` in ``dtype``: role ids (or None = null) through the bank, embeddings as given (checked
    by :func:`~flowmapsr.nets.diffusers_common.prompt_embeds`, which names ``who``)."""
    if prompt is None:
        prompt = torch.full((n,), PROMPT_NULL, dtype=torch.long, device=bank.tokens.device)
    if isinstance(prompt, torch.Tensor) and not prompt.is_floating_point():
        prompt = bank.lookup(prompt)
    return prompt_embeds(prompt, n, dtype, who)


def saved_bank_config(config: PromptBankConfig, bank: PromptBank) -> PromptBankConfig:
    """The bank's config as an exported model stores it: the cached length, no encoder folder
    (the encodings travel in the weights)."""
    return replace(config, tokens=bank.tokens.shape[1], encoders=None)


def _tokenize(folder: Path, subfolder: str, texts: list[str], max_length: int | None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, subfolder=subfolder, local_files_only=True)
    length = max_length or tok.model_max_length
    return tok(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")


@torch.no_grad()
def encode_prompts(
    folder: str | Path,
    encoding: str,
    texts: PromptTexts | None = None,
    max_length: int | None = None,
) -> dict[int, PromptEmbeds]:
    """Each role's text through the text encoders of the local diffusers ``folder``.

    ``encoding``: ``sd21`` | ``sdxl`` | ``flux`` (see the module docstring). ``max_length``: the
    token length (None: the tokenizer's ``model_max_length``; FLUX's T5 side defaults to 512).
    Returns role id → :class:`PromptEmbeds` of batch 1 in float32.
    """
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5EncoderModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one-off loads of a few files: no bars in our logs
    if encoding not in ENCODINGS:
        raise ValueError(f"prompt encoding must be one of {ENCODINGS}, got {encoding!r}")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (tokenizers and text encoders)")
    subs = ["tokenizer", "text_encoder"]
    if encoding != "sd21":
        subs += ["tokenizer_2", "text_encoder_2"]
    missing = [sub for sub in subs if not (folder / sub).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: no {', '.join(missing)} subfolder (the {encoding} text encoders)"
        )
    texts = texts or PromptTexts()
    roles = list(ROLES)
    batch = [getattr(texts, ROLES[r]) for r in roles]

    def load(cls, sub):
        return cls.from_pretrained(folder, subfolder=sub, local_files_only=True).eval()

    if encoding == "sd21":
        ids = _tokenize(folder, "tokenizer", batch, max_length).input_ids
        tokens, pooled = load(CLIPTextModel, "text_encoder")(ids).last_hidden_state, None
    elif encoding == "sdxl":
        ids1 = _tokenize(folder, "tokenizer", batch, max_length).input_ids
        ids2 = _tokenize(folder, "tokenizer_2", batch, max_length).input_ids
        out1 = load(CLIPTextModel, "text_encoder")(ids1, output_hidden_states=True)
        out2 = load(CLIPTextModelWithProjection, "text_encoder_2")(ids2, output_hidden_states=True)
        tokens = torch.cat([out1.hidden_states[-2], out2.hidden_states[-2]], -1)
        pooled = out2.text_embeds
    else:  # flux
        ids = _tokenize(folder, "tokenizer", batch, None).input_ids
        pooled = load(CLIPTextModel, "text_encoder")(ids).pooler_output
        t5 = _tokenize(folder, "tokenizer_2", batch, max_length or 512)
        tokens = load(T5EncoderModel, "text_encoder_2")(t5.input_ids).last_hidden_state
    return {
        role: PromptEmbeds(
            tokens=tokens[i : i + 1].float(),
            pooled=None if pooled is None else pooled[i : i + 1].float(),
        )
        for i, role in enumerate(roles)
    }


def build_bank(
    config: PromptBankConfig,
    dim: int,
    pooled_dim: int | None,
    pretrained: str | None,
    encoding: str,
) -> PromptBank:
    """The bank of an adapter: encoded from ``config.encoders`` (or the ``pretrained`` folder)
    when the backbone is pretrained, seeded random stand-ins for a tiny random backbone. A model
    loaded from a pipeline folder overwrites either with its saved buffers."""
    bank = PromptBank(config.tokens, dim, pooled_dim)
    folder = config.encoders or pretrained
    if pretrained is None and config.encoders is None:
        bank.fill_random(config.seed)
        return bank
    if folder is None or not Path(folder).expanduser().is_dir():
        raise ValueError(
            f"prompts.encoders: a local diffusers folder with the tokenizers and text encoders "
            f"is needed to encode the prompts (got {folder!r})"
        )
    try:
        embeds = encode_prompts(folder, encoding, config.texts, config.tokens)
    except (OSError, ValueError) as err:  # missing subfolders, files transformers cannot read
        first = str(err).strip().splitlines()[0]
        raise ValueError(
            f"prompts.encoders: {folder} lacks the {encoding} tokenizers / text encoders ({first})"
        ) from None
    bank.fill(embeds)
    return bank
