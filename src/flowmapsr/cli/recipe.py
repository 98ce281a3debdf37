"""``flowmapsr recipe NAME --output DIR``: run a chain of training stages; ``--list`` names them."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "recipe",
        help="run a multi-stage training recipe",
        description="Run the stages of a recipe in order (each from the previous stage's "
        "export); the final export is copied to DIR/final. Re-running resumes.",
    )
    p.add_argument("name", nargs="?", help="recipe name or YAML path (see --list)")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every stage")
    p.add_argument("--output", "-o", help="output folder")
    p.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="STAGE:key=value",
        help="an override for one stage (repeatable)",
    )
    p.add_argument("--list", action="store_true", help="list the shipped recipes")
    p.add_argument("--dry-run", action="store_true", help="print every stage's resolved config")
    return p


def run(args) -> int:
    import yaml

    from flowmapsr.config import ConfigError, to_dict
    from flowmapsr.training.presets import list_recipes, recipe_dict

    if args.list:
        for name in list_recipes():
            desc = recipe_dict(name).get("description", "")
            print(f"{name}\t{desc}")
        return 0
    if not args.name or not args.output:
        print("flowmapsr recipe: give a recipe NAME and --output DIR (see --list)", file=sys.stderr)
        return 2
    per_stage: dict[str, list[str]] = {}
    for item in args.stage:
        if ":" not in item:
            print(f"flowmapsr recipe: --stage '{item}' is not STAGE:key=value", file=sys.stderr)
            return 2
        name, kv = item.split(":", 1)
        per_stage.setdefault(name, []).append(kv)
    from flowmapsr.training.recipe import run_recipe, stage_configs

    try:
        configs = stage_configs(args.name, args.output, args.overrides, per_stage)
    except ConfigError as err:
        print(f"flowmapsr recipe: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(yaml.safe_dump([to_dict(c) for c in configs], sort_keys=False), end="")
        return 0
    import os

    try:
        run_recipe(
            args.name,
            args.output,
            args.overrides,
            per_stage,
            is_main=int(os.environ.get("RANK", "0")) == 0,
        )
    except (FileNotFoundError, ImportError, ValueError) as err:
        print(f"flowmapsr recipe: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run this command alone (`python -m flowmapsr.cli.recipe`), e.g. under accelerate launch."""
    from flowmapsr.cli.common import run_standalone

    return run_standalone("recipe", add_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
