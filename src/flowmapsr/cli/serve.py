"""``flowmapsr serve``: the upscaler as a local web page (Gradio), bound to localhost by default.

Ctrl-C and SIGTERM both stop it cleanly (exit code 0): the server closes and its result folder
is removed.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    from flowmapsr.cli.common import bounded
    from flowmapsr.cli.upscale import DEFAULT_MAX_MEGAPIXELS, PRECISION_CHOICES

    p = subparsers.add_parser(
        "serve",
        help="serve the upscaler as a web page (Gradio)",
        description="Serve a page to upload an image, set the knobs, compare and download.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--model", metavar="DIR", help="pipeline folder (default: built-in model)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="upload size limit (MB)")
    p.add_argument("--queue-size", type=int, default=8, help="requests allowed to wait")
    p.add_argument(
        "--max-pixels", type=int, default=4_000_000, help="largest input accepted (pixels)"
    )
    p.add_argument(
        "--max-megapixels",
        type=bounded(float, 0.01, 1e6, zero="no limit"),
        default=None,
        help="largest output accepted, in megapixels (default: the upscaler's, "
        f"{DEFAULT_MAX_MEGAPIXELS}; 0 = no limit)",
    )
    p.add_argument(
        "--max-seconds",
        type=bounded(float, 0.1, 1e9, zero="no limit"),
        default=None,
        help="refuse requests estimated to take longer, from the cost measured by this server "
        "(default 300; 0 = no limit)",
    )
    return p


def _err(msg: str) -> None:
    print(f"flowmapsr serve: error: {msg}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.queue_size < 1 or args.max_upload_mb <= 0 or args.max_pixels < 1:
        _err("--queue-size, --max-upload-mb and --max-pixels must be positive")
        return 2
    try:
        import gradio  # noqa: F401
    except ImportError:
        _err("needs gradio: pip install 'flowmapsr[serve]'")
        return 2
    from flowmapsr.cli.common import load_pipeline_or_none
    from flowmapsr.cli.upscale import _signals_as_interrupts
    from flowmapsr.serve.app import build_app, close_app, launch, web_ceiling

    pipe = load_pipeline_or_none("serve", args.model, args.device, args.precision)
    if pipe is None:
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"flowmapsr serve: note: listening on {args.host}, reachable from other machines")
    ceiling = web_ceiling(args.max_megapixels, args.max_seconds)
    app = build_app(pipe, max_pixels=args.max_pixels, queue_size=args.queue_size, ceiling=ceiling)
    try:
        # SIGTERM (systemd, docker stop, a CI timeout) stops the server like Ctrl-C: its default
        # action would end the process on the spot, leaving the result folder (users' images)
        # in the temp dir for good.
        with _signals_as_interrupts():
            launch(app, args.host, args.port, max_upload_mb=args.max_upload_mb, block=True)
    except KeyboardInterrupt:
        pass  # a stop that came before Gradio's own Ctrl-C handling (still starting): the same
    finally:
        close_app(app)  # the result folders go with the server, not only at interpreter exit
    return 0
