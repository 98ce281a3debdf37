"""Pieces the command modules share: loading a pipeline with a one-line error, bounded numbers."""

from __future__ import annotations

import argparse
import math
import sys


def bounded(kind: type, lo: float = -math.inf, hi: float = math.inf, zero: str | None = None):
    """An argparse ``type``: a finite ``kind`` (int or float) in ``[lo, hi]``; ``zero`` (what 0
    means, e.g. "untiled") also allows 0. Anything else (``inf``, ``nan``, ``1e9``, negatives) is a
    one-line parse error before any work starts."""
    word = "an integer" if kind is int else "a number"
    if math.isinf(lo) and math.isinf(hi):
        allowed = f"a finite {word[2:] if kind is int else 'number'}"
    else:
        allowed = f"{word} in {lo:g}–{hi:g}" + (f", or 0 ({zero})" if zero else "")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got '{text}'") from None
        if not math.isfinite(value) or not (lo <= value <= hi or (zero and value == 0)):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got '{text}'")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid ... value" messages
    return parse


def load_pipeline_or_none(command: str, model, device: str, precision: str):
    """The pipeline at ``model`` (None: the built-in one), or None after a one-line error."""
    from flowmapsr.inference.api import load_pipeline
    from flowmapsr.inference.pipeline import BUILTIN_DIR

    def err(msg: str) -> None:
        print(f"flowmapsr {command}: error: {msg}", file=sys.stderr)

    try:
        return load_pipeline(model, device, precision)
    except FileNotFoundError as exc:
        if model is None:
            err(
                f"no built-in model is installed ({BUILTIN_DIR} is missing); "
                "pass --model DIR with a pipeline folder (config.json + model.safetensors)"
            )
        else:
            err(f"cannot load model: {exc}")
    except (ValueError, RuntimeError, OSError) as exc:
        err(f"cannot load model from {model or BUILTIN_DIR}: {exc}")
    return None


def run_standalone(command: str, add_parser, run, argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) as ``flowmapsr COMMAND ...`` and run it.

    For commands that are also started on their own (``python -m flowmapsr.cli.train`` under
    ``accelerate launch``), so that they parse exactly as under the ``flowmapsr`` dispatcher.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="flowmapsr")
    add_parser(parser.add_subparsers(dest="command"))
    return run(parser.parse_args([command, *(sys.argv[1:] if argv is None else argv)]))
