"""Our ``realesrgan`` degradation against LR images made by another group's pipeline.

Reference: ``shared/data/bench/ImageNetVal_RealESRGANdeg`` (32 ImageNet crops, GT 256², LR 64²,
ResShift's test data made with its Real-ESRGAN-style pipeline). We degrade the same GT with our
preset for several seeds and compare, per LR image:

- fidelity: PSNR on the BT.601 Y channel between the bicubic-upsampled LR (MATLAB imresize,
  8-bit) and the GT, no border crop;
- sharpness: mean gradient magnitude of the LR's Y channel (forward differences, 0–255 units).

Acceptance: means agree within 1 dB and 15 %. Also times the pipeline (ms per image, batch of
16 × 256² HR, and 16 × 128²) against one training step of the small model (batch 16 × 128² HR,
forward + backward + Adam) measured in the same run. Prints one JSON object; writes the same
JSON and a side-by-side PNG to ``docs/degradations/`` (``--no-save`` to skip).

The reference was made with ResShift's *test* settings
(``configs/degradation_testing_realesrgan.yaml``: first order only, σ ≤ 0.8, JPEG ≥ 70), far
milder than Real-ESRGAN's training defaults, so both our ``realesrgan`` preset and the
``resshift_test`` preset (those published test settings) are compared.
Run: ``python benchmarks/degradation_stats.py [--seeds 5] [--preset NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from flowmapsr.convert import rgb_to_y
from flowmapsr.data.datasets import list_images, read_image
from flowmapsr.data.degradations import Degradation, seeded_generator
from flowmapsr.resize import imresize

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bench" / "ImageNetVal_RealESRGANdeg"
DOCS = ROOT / "docs" / "degradations"


def psnr_y(sr: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) on Y of ``(B, 3, H, W)`` in [0, 1], no border crop."""
    mse = (rgb_to_y(sr) - rgb_to_y(gt)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def sharpness(lr: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude of the Y channel (0–255 units), per image of ``(B, 3, h, w)``."""
    y = rgb_to_y(lr) * 255.0
    dx = y[..., :-1, 1:] - y[..., :-1, :-1]
    dy = y[..., 1:, :-1] - y[..., :-1, :-1]
    return (dx * dx + dy * dy).sqrt().flatten(1).mean(1)


def measure(lr: torch.Tensor, gt: torch.Tensor) -> tuple[list[float], list[float]]:
    up = imresize(lr, size=tuple(gt.shape[-2:])).clamp(0, 1)
    up = (up * 255).round() / 255  # as a saved bicubic PNG
    return psnr_y(up, gt).tolist(), sharpness(lr).tolist()


def describe(v: list[float]) -> dict:
    a = np.asarray(v, dtype=np.float64)
    q = np.quantile(a, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "n": int(a.size),
        "mean": round(float(a.mean()), 3),
        "std": round(float(a.std(ddof=1)), 3),
        "q05": round(float(q[0]), 3),
        "q25": round(float(q[1]), 3),
        "median": round(float(q[2]), 3),
        "q75": round(float(q[3]), 3),
        "q95": round(float(q[4]), 3),
    }


def load_pairs() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    gts = list_images(DATA / "HR", recursive=False)
    stems = [p.stem for p in gts]
    lr_files = {p.stem: p for p in list_images(DATA / "LR", recursive=False)}
    missing = [s for s in stems if s not in lr_files]
    if missing:
        raise SystemExit(f"{DATA}: no LR for {missing[:3]}...")
    gt = torch.stack([read_image(p) for p in gts])
    lr = torch.stack([read_image(lr_files[s]) for s in stems])
    return gt, lr, stems


def make_train_step():
    """One small-net training step (batch 16 × 128² HR, fwd + bwd + Adam) as a closure."""
    from flowmapsr.flowmap import Condition
    from flowmapsr.nets import build_net

    torch.manual_seed(0)
    net = build_net({"type": "small"})
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    b = 16
    hr = torch.rand(b, 3, 128, 128, generator=g) * 2 - 1
    src = torch.rand(b, 3, 128, 128, generator=g) * 2 - 1
    t = torch.rand(b, generator=g)
    cond = Condition(prompt=torch.ones(b, dtype=torch.long), omega=torch.ones(b), source=src)

    def step():
        xt = (1 - t.view(-1, 1, 1, 1)) * hr + t.view(-1, 1, 1, 1) * src
        u = net(xt, t, t, cond)
        loss = (u - (src - hr)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, sum(p.numel() for p in net.parameters())


def time_interleaved(jobs: dict, repeats: int) -> dict:
    """Median seconds of each job, run round-robin (one warm-up each) so that load from other
    processes on a shared machine hits all of them alike and their ratios stay meaningful."""
    for fn in jobs.values():
        fn(0)
    times = {k: [] for k in jobs}
    for r in range(repeats):
        for k, fn in jobs.items():
            t0 = time.perf_counter()
            fn(r + 1)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def side_by_side(gt, theirs, ours: dict, idx, path: Path) -> None:
    """Rows: images; columns: GT (256²), their LR, then each of ``ours`` (LR shown nearest ×4)."""
    cols = [("GT", gt), ("theirs (ResShift)", theirs)] + list(ours.items())
    tile, pad, head = 256, 6, 22
    canvas = Image.new(
        "RGB", (len(cols) * (tile + pad) + pad, len(idx) * (tile + pad) + pad + head), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for c, (name, _) in enumerate(cols):
        draw.text((pad + c * (tile + pad) + 4, 4), name, fill="black")
    for r, i in enumerate(idx):
        for c, (_, batch) in enumerate(cols):
            a = (batch[i].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            im = Image.fromarray(a).resize((tile, tile), Image.NEAREST)
            canvas.paste(im, (pad + c * (tile + pad), head + pad + r * (tile + pad)))
    tmp = path.with_suffix(".tmp.png")
    canvas.save(tmp)
    os.replace(tmp, path)


def compare(deg: Degradation, gt, theirs, ref_psnr, ref_sharp, seeds: int) -> tuple[dict, dict]:
    """Distributions of our LR (``seeds`` × the GT set) beside the reference's."""
    ours_psnr, ours_sharp, ours_by_seed = [], [], {}
    for seed in range(seeds):
        gens = [seeded_generator(seed, i) for i in range(gt.shape[0])]
        lr, _ = deg(gt, 4, gens)
        ours_by_seed[seed] = lr
        p, s = measure(lr, gt)
        ours_psnr += p
        ours_sharp += s
    d_psnr = statistics.fmean(ours_psnr) - statistics.fmean(ref_psnr)
    r_sharp = statistics.fmean(ours_sharp) / statistics.fmean(ref_sharp)
    block = {
        "psnr_y_bicubic_up_vs_gt_db": {
            "ours": describe(ours_psnr),
            "mean_diff_ours_minus_theirs_db": round(d_psnr, 3),
            "within_1db": abs(d_psnr) <= 1.0,
        },
        "lr_sharpness_mean_grad_y255": {
            "ours": describe(ours_sharp),
            "mean_ratio_ours_over_theirs": round(r_sharp, 3),
            "within_15pct": abs(r_sharp - 1.0) <= 0.15,
        },
    }
    return block, ours_by_seed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--preset",
        dest="presets",
        action="append",
        default=None,
        help="preset(s) to compare (repeatable; default realesrgan and resshift_test)",
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--speed-only", action="store_true", help="only the timing part (no save)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        # On a shared, oversubscribed machine OpenMP's busy-waiting makes 2 threads far slower
        # than 1 for both jobs; this lets the timing be taken either way.
        torch.set_num_threads(args.threads)
    presets = args.presets or ["realesrgan", "resshift_test"]
    if not DATA.is_dir():
        print(json.dumps({"skipped": f"{DATA} not found"}))
        return 0

    gt, theirs, stems = load_pairs()
    ref_psnr, ref_sharp = measure(theirs, gt)
    result = {
        "benchmark": "degradation_stats",
        "reference": str(DATA.relative_to(ROOT.parent)),
        "n_images": len(stems),
        "seeds": args.seeds,
        "theirs": {
            "psnr_y_bicubic_up_vs_gt_db": describe(ref_psnr),
            "lr_sharpness_mean_grad_y255": describe(ref_sharp),
        },
        "ours": {},
    }
    pictures = {}
    if args.speed_only:
        presets, args.no_save = presets[:1], True
        result.pop("theirs")
    for name in presets if not args.speed_only else []:
        deg = Degradation.from_preset(name)
        result["ours"][deg.name], pictures[deg.name] = compare(
            deg, gt, theirs, ref_psnr, ref_sharp, args.seeds
        )

    # Speed of the training preset (the first one) beside one small-net training step.
    deg = Degradation.from_preset(presets[0])
    hr256, hr128 = gt[:16].contiguous(), gt[:16, :, :128, :128].contiguous()
    step, n_params = make_train_step()
    sec = time_interleaved(
        {
            "deg256": lambda r: deg(hr256, 4, [seeded_generator(100 + r, i) for i in range(16)]),
            "deg128": lambda r: deg(hr128, 4, [seeded_generator(100 + r, i) for i in range(16)]),
            "step": lambda r: step(),
        },
        args.repeats,
    )
    result["speed"] = {
        "preset": deg.name,
        "torch_threads": torch.get_num_threads(),
        "cpu_load_avg_1min_at_end": round(os.getloadavg()[0], 2),
        "degrade_ms_per_image_batch16_256px": round(sec["deg256"] * 1000 / 16, 2),
        "degrade_ms_per_image_batch16_128px": round(sec["deg128"] * 1000 / 16, 2),
        "train_step_ms_small_net_batch16_128px": round(sec["step"] * 1000, 1),
        "small_net_params": n_params,
        "ratio_degrade_batch16_256px_over_train_step": round(sec["deg256"] / sec["step"], 3),
        "ratio_degrade_batch16_128px_over_train_step": round(sec["deg128"] / sec["step"], 3),
    }
    if not args.no_save:
        DOCS.mkdir(parents=True, exist_ok=True)
        idx = [0, 5, 11, 23][: len(stems)]
        pic = DOCS / "lr_side_by_side.png"
        columns = {f"ours: {n} (seed 0)": by_seed[0] for n, by_seed in pictures.items()}
        side_by_side(gt, theirs, columns, idx, pic)
        result["picture"] = str(pic.relative_to(ROOT))
        result["picture_rows"] = [stems[i] for i in idx]
        out = DOCS / "degradation_stats.json"
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, out)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
