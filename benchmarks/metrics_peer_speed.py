"""Speed of the ncnn peers against MATLAB-bicubic, interleaved in one run.

Times ``bicubic`` (the baseline), ``span`` and ``realesrgan`` on the same LR images (RealSR's
first LR crops, 128² → 512², when ``../shared/data`` is present; otherwise random smooth 128²
images), round-robin — image 1 with every method, then image 2 … — so a busy shared machine
slows every method alike. Reports median wall and CPU seconds per output megapixel and their
ratios to bicubic, the machine's load average, and the thread count. Prints one JSON object.

Run: ``python benchmarks/metrics_peer_speed.py [--images 4] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

import torch

from flowmapsr.metrics.files import list_images, load_image
from flowmapsr.peers.methods import build_method, parse_methods
from flowmapsr.resize import imresize

REALSR_LR = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench" / "RealSR" / "LR"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def inputs(n: int) -> tuple[list[torch.Tensor], str]:
    if REALSR_LR.is_dir():
        files = list_images(REALSR_LR)[:n]
        return [load_image(f) for f in files], f"{REALSR_LR} (first {len(files)})"
    g = torch.Generator().manual_seed(0)
    imgs = [imresize(torch.rand(1, 3, 16, 16, generator=g), size=(128, 128)).clamp(0, 1)]
    return imgs * n, "random smooth 128x128 (shared data absent)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default="bicubic,span,realesrgan")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    imgs, source = inputs(args.images)
    methods = [build_method(s) for s in parse_methods(args.methods)]
    for m in methods:  # warm-up
        m(imgs[0], 4)
    wall = {m.label: [] for m in methods}
    cpu = {m.label: [] for m in methods}
    load_before = os.getloadavg()[0]
    for img in imgs:
        mp = img.shape[-2] * img.shape[-1] * 16 / 1e6
        for m in methods:
            c, t = cpu_seconds(), time.perf_counter()
            with torch.inference_mode():
                m(img, 4)
            wall[m.label].append((time.perf_counter() - t) / mp)
            cpu[m.label].append((cpu_seconds() - c) / mp)
    base = methods[0].label
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        json.dumps(
            {
                "inputs": source,
                "threads": args.threads,
                "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "baseline": base,
                "sec_per_mp_median": {k: round(v, 4) for k, v in med.items()},
                "cpu_sec_per_mp_median": {k: round(v, 4) for k, v in cmed.items()},
                "wall_ratio_to_baseline": {k: round(v / med[base], 1) for k, v in med.items()},
                "cpu_ratio_to_baseline": {k: round(v / cmed[base], 1) for k, v in cmed.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
