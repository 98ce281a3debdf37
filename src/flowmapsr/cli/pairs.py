"""``flowmapsr pairs generate``: offline (noise, image) pairs from a noise → image teacher.

Runs the teacher's ODE from ε for ``--steps`` Euler steps to z_0, decodes x_0, degrades it
(Real-ESRGAN pipeline by default) and encodes the upsampled LR to z_L; writes safetensors shards
of ``--shard-size`` pairs and a ``manifest.json`` into ``--output`` (FluxSR's offline pairs;
see :mod:`flowmapsr.data.pairs`). Resumable: a rerun with the same settings skips finished
shards. A terminal gets a progress bar, a log one line per shard.
"""

from __future__ import annotations

import argparse
import sys

from flowmapsr.cli.common import bounded


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "pairs",
        help="make offline teacher pairs (FluxSR): noise → teacher ODE → image → degraded LR",
        description="Offline (noise, image, LR) pairs from a noise → image teacher pipeline.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    g = sub.add_parser(
        "generate",
        help="run the teacher from seeded noise and write pair shards (resumable)",
        description="Run a noise → image teacher from seeded noise ε for --steps Euler steps "
        "to z_0, decode x_0, degrade it to an LR image, encode the upsampled LR to z_L, and "
        "write (ε, z_0, x_0, LR, z_L) in safetensors shards with a manifest. A rerun with the "
        "same settings finishes an interrupted run.",
    )
    g.add_argument("--teacher", required=True, metavar="DIR", help="teacher pipeline folder")
    g.add_argument("--output", required=True, metavar="DIR", help="pairs folder to write")
    g.add_argument("--count", type=bounded(int, 1, 10**7), required=True, help="pairs to make")
    g.add_argument("--size", type=bounded(int, 4, 8192), default=128, help="HR side (pixels)")
    g.add_argument("--scale", type=bounded(int, 1, 16), default=4, help="LR = HR / scale")
    g.add_argument(
        "--steps", type=bounded(int, 1, 10000), default=8, help="teacher Euler steps (default 8)"
    )
    g.add_argument("--seed", type=bounded(int, 0, 2**62), default=0)
    g.add_argument("--shard-size", type=bounded(int, 1, 10**6), default=64, help="pairs per shard")
    g.add_argument(
        "--degradation",
        default="realesrgan",
        help="degradation preset or .yaml path (default realesrgan)",
    )
    g.add_argument(
        "--batch-size", type=bounded(int, 1, 4096), default=8, help="pairs per teacher call"
    )
    g.add_argument(
        "--from-images",
        metavar="DIR",
        default=None,
        help="invert HR crops of these photos through the teacher (t = 0 → 1) instead of "
        "sampling from noise: pairs on the teacher's ODE whose images are photos (not in the "
        "FluxSR paper; for teachers too weak to generate images)",
    )
    g.add_argument(
        "--max-side",
        type=bounded(int, 0, 65536),
        default=0,
        help="--from-images: shrink photos to this longer side first (0 = as they are)",
    )
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


def run(args) -> int:
    if getattr(args, "action", None) != "generate":
        print("flowmapsr pairs: choose an action: generate", file=sys.stderr)
        return 2
    from flowmapsr.config import ConfigError
    from flowmapsr.data.pairs import PairsError, generate_pairs

    try:
        out = generate_pairs(
            args.teacher,
            args.output,
            count=args.count,
            size=args.size,
            scale=args.scale,
            steps=args.steps,
            seed=args.seed,
            shard_size=args.shard_size,
            degradation=args.degradation,
            device=args.device,
            batch_size=args.batch_size,
            images=args.from_images,
            max_side=args.max_side,
        )
    except (PairsError, ConfigError) as err:
        print(f"flowmapsr pairs: error: {err}", file=sys.stderr)
        return 2
    print(f"flowmapsr pairs: {args.count} pairs in {out}", file=sys.stderr)
    return 0
