"""``flowmapsr bench --lr DIR [--hr DIR] --methods ... --out DIR``: methods side by side.

Runs each method (``bicubic``, the ncnn peers ``realesrgan`` and ``span``, and
``flowmapsr:steps=N,...``) on every LR image, times it (seconds per output megapixel, peak RSS),
evaluates it (PSNR/SSIM against ``--hr``, NIQE) and writes ``results.json``, ``results.md``,
plots and a grid of zoomed crops to ``--out``. Failures are reported per method / per image and
make the exit code 1 at the end.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="run SR methods side by side: timing, metrics, table, plots, crops",
        description=__doc__.split("\n\n")[0].replace("``", "'"),
    )
    p.add_argument("--lr", required=True, metavar="DIR", help="folder of LR inputs")
    p.add_argument("--hr", metavar="DIR", help="folder of HR references (same name stems)")
    p.add_argument(
        "--methods",
        default="bicubic",
        help="comma-separated: bicubic, realesrgan, span, flowmapsr:steps=1, "
        "flowmapsr:steps=2,guidance=1.5,model=DIR ... (a KEY=VAL token continues the "
        "method before it; label=NAME on any method names it in the report; default: bicubic)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="report folder")
    p.add_argument("--scale", type=int, default=4, help="SR factor (default 4)")
    p.add_argument(
        "--crop-border",
        type=int,
        default=0,
        help="pixels cut from each side for the metrics (default 0, as for real-world crops; "
        "use the scale for Set5/Set14)",
    )
    p.add_argument(
        "--metrics",
        default=None,
        help="default psnr,ssim,niqe + lpips,dists when their weights are fetched "
        "(niqe without --hr)",
    )
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (sorted)")
    p.add_argument("--grid", type=int, default=4, help="images in the crop grid (default 4)")
    p.add_argument(
        "--grid-methods",
        default=None,
        help="methods shown in the crop grid, same syntax as --methods (default: all)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for every method")
    p.add_argument("--title", default=None, help="report title (default: the LR folder name)")
    p.add_argument("--save-images", action="store_true", help="also write OUT/images/<method>/")
    return p


def _err(msg: str) -> None:
    print(f"flowmapsr bench: {msg}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import torch

    from flowmapsr.metrics.bench import run_bench
    from flowmapsr.metrics.registry import list_metrics

    if args.scale < 1 or args.crop_border < 0 or (args.limit is not None and args.limit < 1):
        _err("error: need --scale ≥ 1, --crop-border ≥ 0 and --limit ≥ 1")
        return 2
    names = None
    if args.metrics:
        names = [n.strip().lower() for n in args.metrics.split(",") if n.strip()]
        unknown = [n for n in names if n not in list_metrics()]
        if unknown:
            _err(f"error: unknown metric(s) {', '.join(unknown)}")
            return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    from flowmapsr.peers.methods import parse_methods

    for flag, text in (("--methods", args.methods), ("--grid-methods", args.grid_methods)):
        try:
            if text is not None:
                parse_methods(text)
        except ValueError as err:
            _err(f"error: {flag}: {err}")
            return 2
    try:
        results, n_errors = run_bench(
            args.lr,
            args.hr,
            args.methods,
            args.out,
            scale=args.scale,
            crop_border=args.crop_border,
            metric_names=names,
            limit=args.limit,
            grid=args.grid,
            save_images=args.save_images,
            report=_err,
            title=args.title,
            grid_methods=args.grid_methods,
            command="flowmapsr " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None,
        )
    except (NotADirectoryError, FileNotFoundError) as err:
        _err(f"error: {err}")
        return 2
    except ValueError as err:  # run_bench checks its arguments before any work
        _err(f"error: {err}")
        return 2
    print(f"wrote {args.out}/results.json and results.md ({len(results['methods'])} methods)")
    return 1 if n_errors else 0
