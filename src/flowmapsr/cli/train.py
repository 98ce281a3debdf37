"""``flowmapsr train PRESET [key=value ...]``: one training stage (also under accelerate launch)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train one stage from a preset",
        description="Train one stage from a preset (a shipped name or a YAML file) with strict "
        "key=value overrides. Works under `accelerate launch` for multi-process runs.",
    )
    p.add_argument("preset", nargs="?", help="preset name or YAML path (see --list)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=100")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--list", action="store_true", help="list the shipped presets")
    return p


def run(args) -> int:
    import yaml

    from flowmapsr.config import ConfigError, to_dict
    from flowmapsr.training.presets import list_presets, resolve_config

    if args.list:
        print("\n".join(list_presets()))
        return 0
    if not args.preset:
        print("flowmapsr train: give a PRESET (see `flowmapsr train --list`)", file=sys.stderr)
        return 2
    try:
        config = resolve_config(args.preset, args.overrides)
    except ConfigError as err:
        print(f"flowmapsr train: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0
    from flowmapsr.training.trainer import train

    try:
        train(config)
    except (FileNotFoundError, ImportError, ValueError) as err:
        print(f"flowmapsr train: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run this command alone (`python -m flowmapsr.cli.train`), e.g. under accelerate launch."""
    from flowmapsr.cli.common import run_standalone

    return run_standalone("train", add_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
