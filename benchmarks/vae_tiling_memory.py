"""Peak memory and time of a VAE decode, tiled against untiled (issue 14's notes).

The autoencoder has the architecture of the SD / SDXL VAE (``AutoencoderKL``: 128-256-512-512
channels, two resnets per level, f = 8, 4 latent channels, ~84 M parameters) with random
weights — the real weights are not on this machine, and memory and time do not depend on them.
Each run decodes a ``(1, 4, S/8, S/8)`` latent to an ``S × S`` image through
:class:`flowmapsr.codecs.VAECodec` in a fresh subprocess, so its peak resident memory
(``ru_maxrss``) is its own; the figure printed is the peak minus the resident memory just before
the decode (the model and torch are loaded by then), i.e. what the decode itself adds.

Run: ``OMP_NUM_THREADS=1 python benchmarks/vae_tiling_memory.py [--size 1024] [--tile 512]
[--overlap 64] [--compare] [--only untiled|tiled] [--dtype bfloat16]``; one JSON line per run.

Measured on the project's shared 2-core CPU machine, one thread (docs/bench/backbones/):
512² (``--tile 256``): untiled adds 970 MiB in 72.0 s, tiled 367 MiB in 149.4 s (an earlier,
busier run). 256² (``--tile 128 --overlap 32 --compare``): untiled 296 MiB / 9.1 s, tiled
94 MiB / 19.5 s, max abs difference 0.558 (mean 0.040). 1024² (``--tile 512 --compare``):
untiled 3843 MiB / 215.8 s, tiled 999 MiB / 322.5 s, max abs difference 0.172 (mean 0.010).
1536² untiled (``--only untiled``): 8641 MiB / 329.2 s. Untiled memory grows with the output
area; tiled stays about one tile's activations. 2048² in bf16 (``--size 2048 --tile 1024
--compare --dtype bfloat16``): untiled 9738 MiB / 790.2 s, tiled 2687 MiB / 1471.5 s, max abs
difference 0.109 (mean 0.008); in fp32 untiled would need more than the RAM this shared machine
leaves. The differences come from per-tile GroupNorm statistics
and mid-block attention (codecs/tiling.py), exaggerated by random weights.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_kib() -> int:
    """Current resident set size in KiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() // 1024


def _child(
    size: int, tile: int | None, overlap: int, save: str = "", dtype: str = "float32"
) -> None:
    import torch

    from flowmapsr.codecs import VAECodec, VAECodecConfig
    from flowmapsr.nets.known_configs import KNOWN

    torch.manual_seed(0)
    # The published SD 2.1 VAE config (the SD/SDXL VAE shape; the scaling factor is diffusers'
    # default 0.18215, as in the measurements above).
    codec = VAECodec(VAECodecConfig(vae=KNOWN["sd21"]["vae"][2])).eval()
    codec.to(getattr(torch, dtype))  # bfloat16: the codec as frozen_dtype=bfloat16 trains it
    z = torch.randn(1, 4, size // 8, size // 8)
    with torch.no_grad():
        codec.decode(torch.randn(1, 4, 8, 8))  # warm-up: kernels, allocator
        before = _rss_kib()
        t0 = time.perf_counter()
        y = codec.decode(z, tile=tile, overlap=overlap)
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if save:  # the decoded image, for the parent's tiled-vs-untiled comparison
        torch.save(y.float(), save)
    print(
        json.dumps(
            {
                "output": f"{y.shape[-2]}x{y.shape[-1]}",
                "tile": tile,
                "overlap": overlap if tile else None,
                "params_M": round(sum(p.numel() for p in codec.parameters()) / 1e6, 1),
                "decode_peak_extra_MiB": round((peak - before) / 1024),
                "process_peak_rss_MiB": round(peak / 1024),
                "seconds": round(seconds, 1),
                "threads": torch.get_num_threads(),
                "dtype": dtype,
            }
        ),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="output side in pixels")
    ap.add_argument("--tile", type=int, default=512, help="tile side in pixels")
    ap.add_argument("--overlap", type=int, default=64, help="overlap in pixels")
    ap.add_argument(
        "--compare",
        action="store_true",
        help="also print the max / mean absolute difference of the tiled and untiled images "
        "(both decode the same latent with the same seeded weights)",
    )
    ap.add_argument(
        "--only", choices=("untiled", "tiled"), help="run one of the two cases (no comparison)"
    )
    ap.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default="float32", help="VAE weights' dtype"
    )
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        size, tile, overlap = (int(v) for v in a.child[:3])
        _child(size, tile or None, overlap, a.child[3], a.child[4])
        return
    with tempfile.TemporaryDirectory() as tmp:
        saved = []
        tiles = {"untiled": (0,), "tiled": (a.tile,)}.get(a.only, (0, a.tile))
        for tile in tiles:
            out = str(Path(tmp) / f"tile{tile}.pt") if a.compare else ""
            cmd = [sys.executable, __file__, "--child", str(a.size), str(tile), str(a.overlap)]
            cmd += [out, a.dtype]
            subprocess.run(cmd, check=True)
            saved.append(out)
        if a.compare and len(saved) == 2:
            import torch

            untiled, tiled = (torch.load(f) for f in saved)
            diff = (tiled - untiled).abs()
            print(
                json.dumps(
                    {
                        "output": f"{a.size}x{a.size}",
                        "tile": a.tile,
                        "overlap": a.overlap,
                        "range": "[-1, 1]",
                        "max_abs_diff": round(float(diff.max()), 4),
                        "mean_abs_diff": round(float(diff.mean()), 4),
                        "dtype": a.dtype,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
