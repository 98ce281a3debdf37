"""``flowmapsr`` entry point: one sub-command per module in ``flowmapsr.cli``.

Each command module defines ``add_parser(subparsers)`` (cheap: no heavy imports) and
``run(args) -> int`` (the exit code). Heavy imports happen inside ``run`` so that
``flowmapsr --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from flowmapsr import __version__

# Sub-commands, in the order ``--help`` lists them.
COMMANDS = [
    "upscale",
    "degrade",
    "eval",
    "bench",
    "train",
    "recipe",
    "pairs",
    "latents",
    "export",
    "weights",
    "serve",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowmapsr",
        description="Fast diffusion-quality image super-resolution with flow maps.",
    )
    parser.add_argument("--version", action="version", version=f"flowmapsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"flowmapsr.cli.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before anything imports torch (OpenMP reads this once, when it loads): idle OpenMP threads
    # sleep instead of spinning. Under load (other processes on the cores) spinning threads made
    # upscaling 1.4–1.7× slower (issue 18). A value the user set wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse cannot intermix sub-commands with positionals: ``key=value`` overrides given
        # after an option (``recipe NAME --output DIR a=b``) arrive here and still belong to it.
        if isinstance(getattr(args, "overrides", None), list) and all(
            "=" in e and not e.startswith("-") for e in extra
        ):
            args.overrides = args.overrides + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("flowmapsr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
