"""``flowmapsr export CKPT -o OUT``: a training checkpoint as a pipeline folder.

CKPT is a ``step-XXXXXXXX`` checkpoint folder, or a run folder (its latest checkpoint is used).
OUT can then be used like any model: ``flowmapsr upscale --model OUT``, ``flowmapsr bench
--methods flowmapsr:model=OUT``. The run itself is not touched.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="write a training checkpoint as a pipeline folder (model)",
        description="Write the generator of a training checkpoint (a step-XXXXXXXX folder, or a "
        "run folder: its latest checkpoint) as a pipeline folder that upscale and bench load.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint folder or run folder")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="pipeline folder to write")
    p.add_argument(
        "--weights",
        choices=("ema", "model"),
        default="ema",
        help="the EMA weights a finished stage exports (default) or the raw trained ones",
    )
    return p


def run(args) -> int:
    from flowmapsr.training.export import export_checkpoint

    try:
        out = export_checkpoint(args.checkpoint, args.out, weights=args.weights)
    except (FileNotFoundError, ValueError) as err:
        print(f"flowmapsr export: error: {err}", file=sys.stderr)
        return 1
    print(f"flowmapsr export: wrote {out}", file=sys.stderr)
    return 0
