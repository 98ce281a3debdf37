"""Does FluxSR's ADL see the small model's period-4 artefact? ADL at LoRA scales 0 … 1.

For each of the first ``--count`` RealSR LR images, a centre crop ``(1, 3, crop, crop)`` is
upscaled x4 by the shipped model (``src/flowmapsr/weights/default``, small net 64 ch × 8
blocks, 1 NFE, fp32) at each ``--scales`` LoRA scale, with the ``adl`` term's default layers
(``auto``: the residual blocks ``blocks.<i>``) hooked — the same tokens the training term reads
on the one-step sample. Printed per scale (means over crops):

- ``adl``: ADL (seed 003 Eq. 22–23), the mean over blocks of ``mean_i cos(A_i, Ā)``; tokens are
  the positions of the pixel-unshuffled feature map, so a pattern repeated every 4 pixels (one
  token = one 4 × 4 cell) is a component every token shares and pushes ADL up.
- ``adl_per_block``: the same per block.
- ``period4_fraction``: how much of the detail the model adds is exactly period-4. With
  ``r = out − source`` (luma-free: the mean of the three channels), ``P[a, b]`` = the mean of
  ``r[4i + a, 4j + b]`` over the cells (``r``'s mean removed); the fraction is
  ``energy(P tiled) / energy(r)`` — 0 for detail with no period-4 part, 1 for a pure one
  (by Parseval, the share of ``r``'s spectral energy in the 15 non-DC period-4 bins).
- ``period4_rms``: the RMS of ``P`` in 8-bit levels (the pattern's absolute strength: a share
  grows also when the model adds less detail overall); ``detail_rms``: the RMS of ``r``.
- ``period4_local_fraction``: the same share with ``P`` taken per 32 × 32 window (64 cells), so
  a pattern whose phase or sign changes across the image (along edges) still counts; detail
  with no period-4 part gives about 1/64 ≈ 0.016 here (the mean of 64 cells keeps 1/64 of
  uncorrelated energy).

    PYTHONPATH=src python benchmarks/adl_lora_scale.py --count 8 --crop 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flowmapsr.inference.pipeline import SRPipeline
from flowmapsr.objectives.adl import adl_loss, capture_tokens, token_similarity

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LR = REPO.parent.parent / "shared" / "data" / "bench" / "RealSR" / "LR"


def centre_crop(path: Path, crop: int) -> torch.Tensor:
    """``(1, 3, crop, crop)`` in ``[0, 1]`` from the image's centre."""
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    h, w = a.shape[:2]
    if min(h, w) < crop:
        raise SystemExit(f"{path}: {w}x{h} is smaller than the crop {crop}")
    y, x = (h - crop) // 2, (w - crop) // 2
    return torch.from_numpy(a[y : y + crop, x : x + crop].copy()).permute(2, 0, 1)[None]


def period4_stats(out: torch.Tensor, src: torch.Tensor, period: int = 4) -> tuple[float, ...]:
    """``(share, local share, pattern RMS, detail RMS)`` of the exactly period-``period`` part of
    ``out − src`` ``(1, 3, H, W)`` in ``[-1, 1]``; the RMS values in 8-bit levels."""
    r = (out - src).mean(dim=1)[0].double()  # (H, W)
    h, w = (r.shape[0] // period) * period, (r.shape[1] // period) * period
    r = r[:h, :w] - r[:h, :w].mean()
    cells = r.reshape(h // period, period, w // period, period)
    pattern = cells.mean(dim=(0, 2))  # (period, period): the mean over cells per phase
    tiled_energy = float(pattern.pow(2).sum()) * (h // period) * (w // period)
    share = tiled_energy / max(float(r.pow(2).sum()), 1e-30)
    # Per window: the cells of each 32 × 32 window averaged per phase, tiled back.
    win = 8 * period
    hw, ww = (h // win) * win, (w // win) * win
    loc = r[:hw, :ww].reshape(hw // win, 8, period, ww // win, 8, period).mean(dim=(1, 4))
    local_share = float(loc.pow(2).sum()) * 64 / max(float(r[:hw, :ww].pow(2).sum()), 1e-30)
    levels = 127.5  # [-1, 1] → 8-bit levels
    return (
        share,
        local_share,
        levels * float(pattern.pow(2).mean().sqrt()),
        levels * float(r.pow(2).mean().sqrt()),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--lr-dir", type=Path, default=DEFAULT_LR)
    p.add_argument("--model", type=Path, default=None, help="pipeline folder (default: built-in)")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--crop", type=int, default=64, help="LR crop side (output: 4x)")
    p.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.25])
    p.add_argument("--layers", default="auto")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    paths = sorted(a.lr_dir.glob("*.png"))[: a.count]
    if not paths:
        raise SystemExit(f"{a.lr_dir}: no PNG images")
    pipe = SRPipeline.from_pretrained(a.model).to(dtype=torch.float32)
    crops = [centre_crop(q, a.crop) for q in paths]
    side = a.crop * 4
    results = {}
    for scale in a.scales:
        pipe.set_lora_scale(scale)
        net = pipe.inference_net()  # the (merged) network sample() runs: hook that one
        adl, per_block, frac = [], [], []
        for lr in crops:
            src = pipe.make_source(lr, (side, side))
            with torch.no_grad(), capture_tokens(net, a.layers) as tokens:
                out = pipe.sample(src, steps=1, guidance=1.0)
            if not tokens:
                raise SystemExit("no tokens recorded: sample() ran another network")
            adl.append(float(adl_loss(tokens).mean()))
            per_block.append([float(token_similarity(t).mean()) for t in tokens])
            frac.append(period4_stats(out, src))
        results[f"{scale:g}"] = {
            "adl": float(np.mean(adl)),
            "adl_min": float(np.min(adl)),
            "adl_max": float(np.max(adl)),
            "adl_per_block": [round(v, 4) for v in np.mean(per_block, axis=0)],
            "period4_fraction": float(np.mean([f[0] for f in frac])),
            "period4_local_fraction": float(np.mean([f[1] for f in frac])),
            "period4_rms": float(np.mean([f[2] for f in frac])),
            "detail_rms": float(np.mean([f[3] for f in frac])),
        }
    print(
        json.dumps(
            {
                "model": str(a.model or "built-in (weights/default)"),
                "images": [q.name for q in paths],
                "crop_lr": a.crop,
                "nfe": 1,
                "layers": a.layers,
                "by_lora_scale": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
