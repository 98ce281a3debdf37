"""``flowmapsr latents build PRESET [key=value ...] --out DIR --count N``: a latent cache.

Draws ``--count`` fixed training samples exactly as the stage would (its data settings: roots,
crop size, scales, degradation, clean fraction, negatives, seed) and encodes their HR, source and
negative once with the stage's codec, storing the posteriors and the uint8 HR crops in
safetensors shards with a ``manifest.json`` (:mod:`flowmapsr.data.latents`). Train on it with the
same preset and ``data.kind=latents data.roots=[DIR]``. Resumable: a rerun with the same settings
keeps the finished shards. A terminal gets a progress bar, a log one line per shard.
"""

from __future__ import annotations

import argparse
import sys

from flowmapsr.cli.common import bounded


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "latents",
        help="cache a latent-codec stage's encoded training samples (then data.kind=latents)",
        description="Latent caches for latent-codec training stages.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    b = sub.add_parser(
        "build",
        help="draw N fixed samples of a stage and store their codec posteriors (resumable)",
        description="Draw --count fixed samples as the stage PRESET (with overrides) would, "
        "encode HR, source and negative once with its codec under no_grad, and write the "
        "posteriors (mean, and std for a sampling VAE) and the uint8 HR crops in safetensors "
        "shards with a manifest. Train with the same preset and data.kind=latents "
        "data.roots=[DIR]: each step still samples fresh latents, but the crop, scale and "
        "degradation of an entry are fixed. A rerun with the same settings finishes an "
        "interrupted build.",
    )
    b.add_argument("preset", help="preset name or YAML path (as for `flowmapsr train`)")
    b.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.crop_size=64")
    b.add_argument("--out", required=True, metavar="DIR", help="latents folder to write")
    b.add_argument("--count", type=bounded(int, 1, 10**8), required=True, help="entries to make")
    b.add_argument(
        "--batch", type=bounded(int, 1, 4096), default=8, help="entries per encoder call (8)"
    )
    b.add_argument(
        "--shard-size", type=bounded(int, 1, 10**6), default=256, help="entries per shard (256)"
    )
    b.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


def run(args) -> int:
    if getattr(args, "action", None) != "build":
        print("flowmapsr latents: choose an action: build", file=sys.stderr)
        return 2
    from flowmapsr.config import ConfigError
    from flowmapsr.data.latents import LatentsError, build_latents
    from flowmapsr.training.presets import resolve_config

    try:
        config = resolve_config(args.preset, args.overrides)
        out = build_latents(
            config,
            args.out,
            count=args.count,
            batch_size=args.batch,
            shard_size=args.shard_size,
            device=args.device,
        )
    except (LatentsError, ConfigError, FileNotFoundError) as err:
        print(f"flowmapsr latents: error: {err}", file=sys.stderr)
        return 2
    print(f"flowmapsr latents: {args.count} entries in {out}", file=sys.stderr)
    return 0
