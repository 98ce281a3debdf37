"""CPU cost of each perceptual loss term: forward + backward per training batch.

Each cell: the loss of a generated batch ``(B, 3, crop, crop)`` (requires grad, as the
generator's output does in the adversarial stage) against the HR batch, then ``backward``
to the generated batch. Losses: every kind of ``PerceptualConfig`` that has a network
(``sobel_l1`` stand-in, ``lpips`` alex / vgg, ``vgg`` features in Real-ESRGAN's style,
``tv_lpips``). Baseline in the same run: one ``fm`` training step of the default small
backbone (64 ch × 8 blocks; forward + backward + AdamW) on the same batch, so every figure is
also a ratio to it. Cells are interleaved round-robin and the median of ``--repeats`` rounds is
kept. Needs the weights (``flowmapsr weights fetch all``). Prints one JSON object.

    python benchmarks/perceptual_loss_cost.py --batch 16 --crop 128 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from flowmapsr.objectives.perceptual import PerceptualConfig, build_perceptual

LOSSES = {  # name: PerceptualConfig fields
    "sobel_l1": {"kind": "sobel_l1"},
    "lpips_alex": {"kind": "lpips", "lpips_net": "alex"},
    "lpips_vgg": {"kind": "lpips", "lpips_net": "vgg"},
    "vgg_features": {"kind": "vgg"},
    "tv_lpips_alex": {"kind": "tv_lpips", "lpips_net": "alex", "tv_gamma": 1.0},
}


def loss_cell(fields: dict, hr: torch.Tensor, fake: torch.Tensor, bf16: bool):
    module, desc = build_perceptual(PerceptualConfig(weight=1.0, fallback="none", **fields))
    if module is None:
        raise SystemExit(f"{fields['kind']}: {desc}")

    def step():
        x = fake.detach().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = module(x, hr).mean()
        loss.backward()

    return step, desc


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per cell per round")
    ap.add_argument("--repeats", type=int, default=3, help="rounds (median is kept)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="also time each loss under bf16 autocast")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(args.batch, 3, args.crop, args.crop, generator=g) * 2 - 1
    fake = (hr + 0.2 * torch.randn(hr.shape, generator=g)).clamp(-1, 1)

    # the same baseline step and timing loop as that benchmark
    from train_throughput import machine, make_cell, round_robin

    cells = {"baseline_fm_step": (make_cell("small", "fm", args.batch, args.crop, 0)[0], "")}
    for name, fields in LOSSES.items():
        cells[name] = loss_cell(fields, hr, fake, bf16=False)
        if args.bf16 and name != "sobel_l1":
            cells[name + "_bf16"] = loss_cell(fields, hr, fake, bf16=True)
    times = round_robin({k: step for k, (step, _) in cells.items()}, args.steps, args.repeats)
    base = statistics.median(times["baseline_fm_step"])
    result = {
        "benchmark": "perceptual_loss_cost",
        "machine": machine(),
        "batch": args.batch,
        "crop": args.crop,
        "baseline": "one fm training step of the small backbone (64x8), same batch, same run",
        "cells": {},
    }
    for key, (_, desc) in cells.items():
        sec = statistics.median(times[key])
        result["cells"][key] = {
            "what": desc or "fm step (forward + backward + AdamW)",
            "sec_per_batch": round(sec, 4),
            "ratio_to_fm_step": round(sec / base, 3),
        }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
