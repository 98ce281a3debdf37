"""Training step time of a latent-codec stage: encoding on the fly vs from a latent cache.

Builds a latent cache (``flowmapsr latents build``) of ``--count`` entries of the stage
``--preset`` into a temporary folder, then builds two trainers of the same stage in this
process — one encoding HR and source with the codec every step (``data.kind`` as the preset
says), one reading the cache (``data.kind=latents``) — and times their ``train_step`` calls
interleaved (A, B, A, B, ...; one warm-up step each), so load from other processes hits both
alike. ``--vae sd21`` swaps the tiny random autoencoder for the SD 2.1 VAE's architecture (83.7 M
parameters, random weights: the real encoder's cost). Prints one JSON object: median seconds per
step of each, their ratio, and the cache build time (diffusers' import excluded; building
the codec, and for a random one the network its weights follow, included).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/latent_cache.py --steps 10
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import diffusers  # noqa: F401  (imported before the timed build: its import takes seconds)
import torch

from flowmapsr.data.latents import build_latents
from flowmapsr.nets.known_configs import KNOWN
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.trainer import Trainer


def stage(preset: str, out: Path, vae: str, overrides: list[str]):
    cfg = resolve_config(preset, [f"output_dir={out}", "validation.every=0", *overrides])
    if vae == "sd21":
        cfg = replace(cfg, codec=replace(cfg.codec, vae=dict(KNOWN["sd21"]["vae"][2])))
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="tiny-sd21-flowmapsr")
    ap.add_argument("--vae", choices=["tiny", "sd21"], default="tiny")
    ap.add_argument("--count", type=int, default=32, help="cache entries")
    ap.add_argument("--steps", type=int, default=10, help="timed steps of each trainer")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the stage")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        live_cfg = stage(a.preset, tmp / "live", a.vae, a.overrides)
        t0 = time.perf_counter()
        build_latents(live_cfg, tmp / "cache", count=a.count, progress=False, log=lambda m: None)
        build_s = time.perf_counter() - t0
        on_cache = [*a.overrides, "data.kind=latents", f"data.roots=[{tmp / 'cache'}]"]
        cached_cfg = stage(a.preset, tmp / "cached", a.vae, on_cache)
        trainers = {"on_the_fly": Trainer(live_cfg), "cached": Trainer(cached_cfg)}
        times: dict[str, list[float]] = {k: [] for k in trainers}
        for t in trainers.values():
            t.train_step()  # warm-up: allocator, kernels
        for _ in range(a.steps):
            for name, t in trainers.items():
                t0 = time.perf_counter()
                t.train_step()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    c = live_cfg
    print(json.dumps({
        "preset": a.preset,
        "vae": a.vae,
        "codec_params_M": round(sum(p.numel() for p in trainers["cached"].codec.parameters())
                                / 1e6, 3),
        "batch": c.data.batch_size,
        "crop": c.data.crop_size,
        "objective": c.objective.name,
        "steps": a.steps,
        "sec_per_step_on_the_fly": round(med["on_the_fly"], 4),
        "sec_per_step_cached": round(med["cached"], 4),
        "ratio_on_the_fly_over_cached": round(med["on_the_fly"] / med["cached"], 3),
        "cache_entries": a.count,
        "cache_build_s": round(build_s, 2),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
