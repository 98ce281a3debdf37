"""``flowmapsr eval --pred DIR [--ref DIR]``: image-quality metrics of a folder of SR results.

Predictions are paired with references by file-name stem. Writes the means and per-image values
as JSON (``--json``) and/or CSV (``--csv``), atomically, and prints the means. Without ``--ref``
only no-reference metrics (NIQE) run. A file that cannot be paired or read gets a one-line
error; the others go on and the exit code is 1 at the end.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="PSNR/SSIM/NIQE (and LPIPS/DISTS/FID when available) of a folder of images",
        description=__doc__.split("\n\n")[0].replace("``", "'"),
    )
    p.add_argument("--pred", required=True, metavar="DIR", help="folder of SR outputs")
    p.add_argument("--ref", metavar="DIR", help="folder of references (HR); same name stems")
    p.add_argument("--scale", type=int, default=4, help="SR factor (default 4)")
    p.add_argument(
        "--crop-border",
        type=int,
        default=None,
        help="pixels cut from each side before PSNR/SSIM/NIQE (default: = --scale, the classic "
        "protocol; use 0 for real-world crops such as RealSR)",
    )
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated names (default psnr,ssim,niqe with --ref, + lpips,dists when "
        "their weights are fetched; niqe without); "
        "known: psnr, ssim, niqe, lpips, lpips-vgg, dists, fid",
    )
    p.add_argument("--json", metavar="FILE", help="write results as JSON")
    p.add_argument("--csv", metavar="FILE", help="write per-image values as CSV")
    return p


def _err(msg: str) -> None:
    print(f"flowmapsr eval: error: {msg}", file=sys.stderr)


def _say(msg: str) -> None:
    print(f"flowmapsr eval: {msg}", file=sys.stderr)


def to_csv(per_image: dict[str, dict], names: list[str], means: dict) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", *names])
    for stem, row in per_image.items():
        w.writerow([stem, *("" if row.get(n) is None else repr(row[n]) for n in names)])
    w.writerow(["mean", *("" if means.get(n) is None else repr(means[n]) for n in names)])
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    import json

    from flowmapsr.metrics.evaluate import evaluate_folders
    from flowmapsr.metrics.files import atomic_write_text
    from flowmapsr.metrics.registry import list_metrics

    names = None
    if args.metrics:
        names = [n.strip().lower() for n in args.metrics.split(",") if n.strip()]
        unknown = [n for n in names if n not in list_metrics()]
        if unknown:
            _err(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(list_metrics())}")
            return 2
    crop = args.scale if args.crop_border is None else args.crop_border
    if crop < 0 or args.scale < 1:
        _err("--crop-border must be ≥ 0 and --scale ≥ 1")
        return 2
    try:
        res = evaluate_folders(args.pred, args.ref, names, crop, args.scale, report=_say)
    except NotADirectoryError as err:
        _err(str(err))
        return 2
    out = res.to_dict()
    out["settings"] = {
        "pred": str(args.pred),
        "ref": None if args.ref is None else str(args.ref),
        "scale": args.scale,
        "crop_border": crop,
        "y_channel": "BT.601 (MATLAB rgb2ycbcr)",
        "n_images": len(res.per_image),
    }
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=2) + "\n")
    if args.csv:
        atomic_write_text(args.csv, to_csv(res.per_image, list(res.metrics), res.metrics))
    shown = ", ".join(
        f"{k} {'n/a' if v is None else format(v, '.4f')}" for k, v in res.metrics.items()
    )
    print(f"{len(res.per_image)} images: {shown}")
    if not res.per_image:
        _err(f"no images evaluated in {args.pred}")
        return 1
    return 1 if res.errors else 0
