"""A real-size SD 2.1 weights folder with random weights (no SD 2.1 weights exist here): the
published UNet and VAE configs (flowmapsr.nets.known_configs), float32 safetensors as the public
folder has them, and a small random CLIP text encoder of the right width (1024) for the bank."""

import sys
from pathlib import Path

import diffusers
import torch

from flowmapsr.nets.known_configs import KNOWN
from flowmapsr.testing.text_encoders import write_text_encoders

out = Path(sys.argv[1])
torch.manual_seed(0)
for part in ("backbone", "vae"):
    lib, cls, cfg = KNOWN["sd21"][part]
    m = getattr(diffusers, cls).from_config(cfg)
    print(part, cls, sum(p.numel() for p in m.parameters()))
    m.save_pretrained(out / ("unet" if part == "backbone" else "vae"))
    del m
(out / "model_index.json").write_text("{}")
write_text_encoders(out, "sd21", 1024, None, tokens=77)
