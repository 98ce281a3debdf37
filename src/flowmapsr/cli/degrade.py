"""``flowmapsr degrade``: make LR images from a folder of HR images with a degradation preset.

Writes ``OUT_DIR/<stem>.png`` for every readable image in ``HR_DIR`` (or the single file given)
and ``OUT_DIR/params.json`` with the parameters drawn for each. Each image's generator is seeded
from ``(seed, crc32(stem))``, so an image gets the same LR whatever else is in the folder.
The HR is cropped (bottom/right) to a multiple of the scale. Bad files get a one-line error and
the run goes on; the exit code is 1 if any image failed. Files are written atomically.
"""

from __future__ import annotations

import argparse

PRESETS = ("realesrgan", "mild", "bicubic", "resshift_test")  # shipped in data/degradations/presets


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "degrade",
        help="make LR images from HR images with a random degradation preset",
        description="Make LR images from a folder of HR images with a random degradation preset; "
        "writes OUT_DIR/<stem>.png and OUT_DIR/params.json (the parameters drawn per image).",
    )
    p.add_argument("hr_dir", metavar="HR_DIR", help="folder of HR images (or one image file)")
    p.add_argument(
        "-o",
        "--out",
        dest="out_dir",
        metavar="OUT_DIR",
        required=True,
        help="output folder for <stem>.png and params.json",
    )
    p.add_argument("--scale", type=int, choices=(2, 4, 8), default=4)
    p.add_argument(
        "--preset",
        default="realesrgan",
        help=f"one of {', '.join(PRESETS)} or a preset .yaml path (default realesrgan)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset value, e.g. --set second_order_prob=0.5 (repeatable)",
    )
    p.add_argument("--device", default="cpu", help="torch device for the filtering (default cpu)")
    p.add_argument("--recursive", action="store_true", help="also read images in sub-folders")
    return p


def run(args) -> int:
    import io
    import json
    import sys
    import zlib
    from pathlib import Path

    import torch
    from tqdm import tqdm

    from flowmapsr.atomic import atomic_write_bytes
    from flowmapsr.config import ConfigError, to_dict
    from flowmapsr.convert import unit_to_pil
    from flowmapsr.data.datasets import ImageReadError, list_images, read_image
    from flowmapsr.data.degradations import Degradation, seeded_generator

    hr_dir, out_dir = Path(args.hr_dir), Path(args.out_dir)
    try:
        deg = Degradation.from_preset(args.preset, overrides=args.overrides)
    except ConfigError as e:
        print(f"flowmapsr degrade: {e}", file=sys.stderr)
        return 2
    try:
        files = list_images(hr_dir, recursive=args.recursive)
    except FileNotFoundError as e:
        print(f"flowmapsr degrade: {e}", file=sys.stderr)
        return 2
    if not files:
        print(f"flowmapsr degrade: no images found in {hr_dir}", file=sys.stderr)
        return 2
    if hr_dir.is_dir() and out_dir.resolve() == hr_dir.resolve():
        print(f"flowmapsr degrade: OUT_DIR must differ from HR_DIR ({hr_dir})", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = {f.resolve() for f in files}
    device = torch.device(args.device)

    results: dict[str, dict] = {}
    failed: list[str] = []
    stems_done: dict[str, Path] = {}
    for path in tqdm(files, desc="degrade", unit="img", disable=None, file=sys.stderr):
        stem = path.stem
        target = out_dir / f"{stem}.png"
        try:
            if stem in stems_done:
                raise ImageReadError(f"{path}: same stem as {stems_done[stem]}; output would clash")
            if target.resolve() in inputs:
                raise ImageReadError(f"{path}: output {target} would overwrite an input")
            hr = read_image(path)
            s = args.scale
            h, w = (hr.shape[1] // s) * s, (hr.shape[2] // s) * s
            if h == 0 or w == 0:
                raise ImageReadError(f"{path}: {hr.shape[1]}x{hr.shape[2]} is smaller than x{s}")
            hr = hr[:, :h, :w].unsqueeze(0).to(device)
            g = seeded_generator(args.seed, zlib.crc32(stem.encode("utf-8")))
            lr, params = deg(hr, s, [g])
            buf = io.BytesIO()
            unit_to_pil(lr.cpu()).save(buf, format="PNG")
            atomic_write_bytes(target, buf.getvalue())
        except (ImageReadError, OSError, ValueError, RuntimeError) as e:
            msg = str(e) if str(path) in str(e) else f"{path}: {e}"
            tqdm.write(f"error: {msg}", file=sys.stderr)
            failed.append(msg)
            continue
        stems_done[stem] = path
        params[0]["source"] = str(path)
        results[stem] = params[0]

    summary = {
        "preset": deg.name,
        "scale": args.scale,
        "seed": args.seed,
        "overrides": list(args.overrides),
        "config": to_dict(deg.config),
        "images": results,
        "failed": failed,
    }
    atomic_write_bytes(out_dir / "params.json", (json.dumps(summary, indent=1) + "\n").encode())
    print(
        f"degraded {len(results)} of {len(files)} images into {out_dir}"
        + (f"; {len(failed)} failed" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0
