"""A CLIP image-quality alignment loss: pull images towards a positive-quality caption and away
from a negative one.

``CLIPQualityLoss(folder)(x)`` maps images ``(B, 3, H, W)`` in ``[-1, 1]`` to ``(B,)``:
``−log softmax(τ·[cos(e_x, e_pos), cos(e_x, e_neg)])_pos``, where ``e_x`` is CLIP's image
embedding of ``x`` (resized to the vision tower's size, CLIP-normalised) and ``e_pos`` /
``e_neg`` are the text embeddings of the two captions (computed once, frozen). ``τ`` is the
model's own logit scale. This is the antonym-prompt form of CLIP-IQA (Wang et al., AAAI 2023,
Eq. 1–2) used as a training loss, the role FlowSR's IQA alignment term plays. The paper does not
print its form: the captions (defaults: FlowSR's positive and negative prompts) and this
softmax form are our choice.

Only local folders are read (transformers ``CLIPModel`` and ``AutoTokenizer``,
``local_files_only``): no CLIP weights exist on our machines, so the FlowSR presets keep the
term off (weight 0) and the tests run it on a tiny random CLIP written to a folder. Written by
hand because no library ships CLIP-IQA as a differentiable loss on a local CLIP model.
Reference: Wang, Chan, Loy, "Exploring CLIP for Assessing the Look and Feel of Images", AAAI
2023, Eq. 1–2; FlowSR (Xu et al., ICCV 2025), "CLIP image-quality alignment loss".
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# OpenAI CLIP's preprocessing statistics, used when the folder has no preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class CLIPQualityLoss(nn.Module):
    """``(B, 3, H, W)`` in ``[-1, 1]`` → ``(B,)``; frozen CLIP, gradients reach the images."""

    def __init__(self, folder: str | Path, positive: str, negative: str):
        super().__init__()
        from transformers import AutoTokenizer, CLIPModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder (a local CLIP model)")
        try:
            model = CLIPModel.from_pretrained(folder, local_files_only=True)
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0]
            raise ValueError(f"{folder}: not a CLIP model folder ({first})") from None
        self.model = model.eval().requires_grad_(False)
        mean, std, size = CLIP_MEAN, CLIP_STD, model.config.vision_config.image_size
        pre = folder / "preprocessor_config.json"
        if pre.is_file():
            cfg = json.loads(pre.read_text(encoding="utf-8"))
            mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
        self.size = int(size)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        ids = tok([positive, negative], padding=True, return_tensors="pt")
        with torch.no_grad():
            text = self.model.get_text_features(**ids)
        self.register_buffer("text", F.normalize(_tensor(text), dim=-1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img = ((x.float() + 1) / 2).clamp(0, 1)
        img = F.interpolate(img, size=(self.size, self.size), mode="bicubic", align_corners=False)
        img = (img - self.mean) / self.std
        emb = F.normalize(_tensor(self.model.get_image_features(pixel_values=img)), dim=-1)
        logits = self.model.logit_scale.exp() * emb @ self.text.T  # (B, 2): pos, neg
        return -F.log_softmax(logits, dim=-1)[:, 0]


def _tensor(out) -> torch.Tensor:
    """transformers 5 may return a model output instead of a tensor from ``get_*_features``."""
    if isinstance(out, torch.Tensor):
        return out
    for key in ("pooler_output", "image_embeds", "text_embeds"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected CLIP features output {type(out).__name__}")
