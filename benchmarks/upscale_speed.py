"""Upscaling speed and memory: seconds per output megapixel and peak RSS, against bicubic.

Prints one JSON object. Every measurement runs in a fresh child process, so its peak resident
memory (``ru_maxrss``) belongs to that measurement alone; bicubic (our MATLAB-style ``imresize``
and OpenCV's ``INTER_CUBIC``) is timed in the same child on the same input, and the reports
give ``ratio_vs_bicubic`` = flowmapsr time / bicubic time. Also reported:

* ``tiled_vs_untiled``: PSNR between tiled and untiled outputs, and the mean absolute error in a
  border band vs the interior (tiling must not leave worse borders);
* ``bf16``: PSNR of bf16 against fp32 outputs and the speed ratio;
* ``big``: the CLI's steps (read PNG → tiled upscale → write PNG) for a 2048² → 8192² x4 job,
  with the peak RSS of each phase.

The model is the built-in one when installed, else a random-weight small net of the default size
(``SmallNetConfig()``) whose zero-initialised layers are randomised too
(:mod:`flowmapsr.inference.random_model`), so tiles and precisions can disagree.

Usage: ``python benchmarks/upscale_speed.py [--quick] [--skip-big]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _load_pipe(model: str | None):
    from flowmapsr.inference.pipeline import SRPipeline
    from flowmapsr.inference.random_model import random_pipeline

    if model:
        return SRPipeline.from_pretrained(model), "folder"
    try:
        return SRPipeline.from_pretrained(None), "built-in"
    except FileNotFoundError:
        return random_pipeline({"type": "small"}, seed=0), "random-weights SmallNetConfig()"


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """``(1, 3, h, w)`` in [0, 1]: smooth regions, edges and fine texture."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(h // 16, 2), max(w // 16, 2), generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="nearest")
    img = torch.nn.functional.avg_pool2d(img, 3, 1, 1, count_include_pad=False)
    return (img + 0.05 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1)


def _rss_mb() -> float:
    """Peak resident memory of this process since start (or since :func:`_reset_peak`), MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5) so phases can be measured."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _bicubic_times(lr: torch.Tensor, scale: int, repeats: int) -> dict:
    import cv2

    from flowmapsr.resize import imresize

    h, w = lr.shape[-2:]
    arr = (lr[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    t_torch, t_cv = math.inf, math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        imresize(lr, size=(h * scale, w * scale))
        t_torch = min(t_torch, time.perf_counter() - t0)
        t0 = time.perf_counter()
        cv2.resize(arr, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
        t_cv = min(t_cv, time.perf_counter() - t0)
    return {"imresize_s": t_torch, "opencv_s": t_cv}


def worker_speed(job: dict) -> dict:
    """One (size, NFE, tiled or not) measurement in this fresh process."""
    pipe, kind = _load_pipe(job.get("model"))
    if job.get("precision") == "bf16":
        pipe.to(dtype=torch.bfloat16)
    lr = _image(job["size"], job["size"])
    scale = job["scale"]
    # Warm up on a small input (allocator, oneDNN kernels) before timing.
    pipe.upscale_tensor(_image(32, 32), scale=scale, steps=job["steps"])
    rss_before = _current_mb()
    _reset_peak()
    best = math.inf
    for _ in range(job["repeats"]):
        t0 = time.perf_counter()
        out = pipe.upscale_tensor(
            lr, scale=scale, steps=job["steps"], tile=job["tile"], overlap=job["overlap"]
        )
        best = min(best, time.perf_counter() - t0)
        del out
    peak = _rss_mb()  # before bicubic, whose own temporaries would count otherwise
    mp = (job["size"] * scale) ** 2 / 1e6
    bic = _bicubic_times(lr, scale, job["repeats"])
    return {
        "model": kind,
        "s": best,
        "s_per_mp": best / mp,
        "output_mp": mp,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "bicubic_imresize_s_per_mp": bic["imresize_s"] / mp,
        "bicubic_opencv_s_per_mp": bic["opencv_s"] / mp,
        "ratio_vs_bicubic_imresize": best / bic["imresize_s"],
        "ratio_vs_bicubic_opencv": best / bic["opencv_s"],
    }


def _band_errors(a: torch.Tensor, b: torch.Tensor, band: int) -> tuple[float, float]:
    e = (a - b).abs()
    mask = torch.zeros_like(e, dtype=torch.bool)
    mask[..., :band, :] = mask[..., -band:, :] = True
    mask[..., :, :band] = mask[..., :, -band:] = True
    return float(e[mask].mean()), float(e[~mask].mean())


def worker_quality(job: dict) -> dict:
    """Tiled vs untiled PSNR and border/interior error; bf16 vs fp32 PSNR and speed."""
    pipe, kind = _load_pipe(job.get("model"))
    if pipe.config.source_noise == 0:
        pipe.config.source_noise = 0.05  # exercise the shared noise field too
    lr = _image(job["size"], job["size"], seed=1)
    untiled = pipe.upscale_tensor(lr, scale=4, seed=3)
    tiles = []
    for tile, overlap in job["tiles"]:
        tiled = pipe.upscale_tensor(lr, scale=4, seed=3, tile=tile, overlap=overlap)
        border, interior = _band_errors(tiled, untiled, band=32)
        tiles.append(
            {
                "tile": tile,
                "overlap": overlap,
                "psnr_db": _psnr(tiled, untiled),
                "border_mae": border,
                "interior_mae": interior,
                "identical": bool(torch.equal(tiled, untiled)),
            }
        )
    pipe.config.source_noise = 0.0
    lr = lr[..., : job["bf16_size"], : job["bf16_size"]]  # bf16 may be very slow on the CPU
    t0 = time.perf_counter()
    ref = pipe.upscale_tensor(lr, scale=4)
    t32 = time.perf_counter() - t0
    src = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)
    pipe.to(dtype=torch.bfloat16)
    pipe.upscale_tensor(_image(32, 32), scale=4)
    t0 = time.perf_counter()
    low = pipe.upscale_tensor(lr, scale=4)
    t16 = time.perf_counter() - t0
    return {
        "model": kind,
        "lr_size": job["size"],
        "tiled_vs_untiled": tiles,
        "bf16": {
            "lr_size": job["bf16_size"],
            "mkldnn_bf16_supported": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            "psnr_bf16_vs_fp32_db": _psnr(low, ref),
            "psnr_fp32_vs_bicubic_db": _psnr(ref, src),
            "fp32_s": t32,
            "bf16_s": t16,
            "speedup_bf16": t32 / t16,
        },
    }


def worker_big(job: dict) -> dict:
    """A big image through the CLI's own steps (read PNG → tiled upscale → write PNG), with the
    peak RSS of each phase (Linux peak-RSS resets) and of the whole process."""
    from PIL import Image

    from flowmapsr.cli.upscale import DEFAULT_OVERLAP
    from flowmapsr.imageio import read_image, write_image
    from flowmapsr.inference.api import upscale_picture

    tmp = Path(job["tmp"])
    pipe, kind = _load_pipe(job.get("model"))
    n = job["size"]
    arr = (_image(n, n)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp / "big.png")
    del arr
    base = _current_mb()
    _reset_peak()
    t0 = time.perf_counter()
    pic = read_image(tmp / "big.png", max_pixels=None)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = upscale_picture(pipe, pic, scale=4, tile=job["tile"], overlap=DEFAULT_OVERLAP)
    t_up = time.perf_counter() - t0
    del pic
    peak_upscale = _rss_mb()
    _reset_peak()
    t0 = time.perf_counter()
    write_image(tmp / "big_x4.png", res, consume=True)
    t_write = time.perf_counter() - t0
    h, w = res.size
    del res
    peak_write = _rss_mb()
    mp = h * w / 1e6
    return {
        "model": kind,
        "input": [n, n],
        "output": [w, h],
        "tile": job["tile"],
        "overlap": DEFAULT_OVERLAP,
        "read_s": t_read,
        "upscale_s": t_up,
        "write_png_s": t_write,
        "upscale_s_per_mp": t_up / mp,
        "rss_before_mb": base,
        "peak_rss_read_upscale_mb": peak_upscale,
        "peak_rss_write_mb": peak_write,
        "peak_rss_mb": max(peak_upscale, peak_write),
        "uint8_output_mb": h * w * 3 / 2**20,
        "float32_full_output_tensor_mb": h * w * 3 * 4 / 2**20,
    }


def _child(kind: str, job: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, json.dumps(job)]
    if job.get("threads"):
        cmd += ["--threads", str(job["threads"])]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="pipeline folder (default: built-in or random)")
    p.add_argument("--quick", action="store_true", help="small sizes only")
    p.add_argument("--skip-big", action="store_true", help="skip the 2048² → 8192² CLI job")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        kind, job = args.worker[0], json.loads(args.worker[1])
        fn = {"speed": worker_speed, "quality": worker_quality, "big": worker_big}[kind]
        print(json.dumps(fn(job)))
        return

    t_start = time.time()
    sizes = [64, 128] if args.quick else [128, 256, 512]
    speed = []
    for size in sizes:
        for steps in (1, 2, 4):
            if size == sizes[-1] and steps > 1 and not args.quick:
                continue  # NFE scaling is visible at the smaller sizes; keep the run short
            for tile in (None, 128):
                job = {
                    "model": args.model,
                    "size": size,
                    "scale": 4,
                    "steps": steps,
                    "tile": tile,
                    "overlap": 32 if tile else None,
                    "repeats": 2 if size <= 256 else 1,
                    "threads": args.threads,
                }
                speed.append(
                    {"lr_size": size, "steps": steps, "tile": tile, **_child("speed", job)}
                )
    quality = _child(
        "quality",
        {
            "model": args.model,
            "size": 96 if args.quick else 192,
            "tiles": [[64, 16], [48, 8]],
            "bf16_size": 32 if args.quick else 64,
            "threads": args.threads,
        },
    )
    out = {
        "benchmark": "upscale_speed",
        "device": "cpu",
        "torch_threads": args.threads or torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_at_start": os.getloadavg()[0],
        "scale": 4,
        "speed": speed,
        "quality": quality,
    }
    if not args.skip_big:
        with tempfile.TemporaryDirectory() as tmp:
            n = 256 if args.quick else 2048
            job = {"model": args.model, "size": n, "tile": 256, "tmp": tmp, "threads": args.threads}
            out["big"] = _child("big", job)
    out["load_avg_at_end"] = os.getloadavg()[0]
    out["wall_s"] = time.time() - t_start
    print(json.dumps(out))


if __name__ == "__main__":
    main()
