"""``flowmapsr bench``'s engine: run methods on an LR folder, time them, evaluate, report.

For each method (see :mod:`flowmapsr.peers.methods`): load it (load time recorded apart), run it
once on the first image untimed (warm-up: allocator, thread pools, lazy init), reset the peak-RSS
mark, then run every image. Only the method call is timed (``time.perf_counter``); reading,
8-bit rounding (outputs are compared as saved PNGs would be) and metrics are not.
``sec_per_mp`` = timed seconds / output megapixels (wall clock); ``cpu_sec_per_mp`` the same
with the process's CPU time. Outputs: ``results.json``, ``results.md``,
plots and ``crops.png`` in the output folder, all written atomically.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from flowmapsr.metrics import memory
from flowmapsr.metrics.evaluate import (
    DEFAULT_NR,
    align_reference,
    build_metrics,
    default_fr,
    evaluate_pair,
    summarise,
)
from flowmapsr.metrics.files import (
    atomic_write_text,
    list_images,
    load_image,
    load_image_info,
    pair_by_stem,
    quantize,
    save_png,
)
from flowmapsr.metrics.registry import create_metric
from flowmapsr.metrics.report import (
    crop_grid,
    make_plots,
    markdown_report,
    pick_crop,
    to_json_safe,
)


@dataclass
class BenchImage:
    stem: str
    lr: Path
    hr: Path | None


def collect_images(
    lr_dir: str | Path, hr_dir: str | Path | None, limit: int | None
) -> tuple[list[BenchImage], list[str]]:
    """LR files (sorted, first ``limit``) with their HR partners by stem → ``(images, errors)``."""
    lrs = list_images(lr_dir)
    if limit is not None:
        lrs = lrs[:limit]
    if hr_dir is None:
        return [BenchImage(p.stem, p, None) for p in lrs], []
    pairs, lonely, _ = pair_by_stem(lrs, list_images(hr_dir))
    errors = [f"{p}: no HR image with the same name stem in {hr_dir}" for p in lonely]
    return [BenchImage(lr.stem, lr, hr) for lr, hr in pairs], errors


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (less sensitive to a busy machine
    than wall time, which counts the time other processes hold the cores)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)


def grid_indices(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (first and last included)."""
    if n <= 0 or k <= 0:
        return []
    if k == 1 or n == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(min(k, n))})


def run_bench(
    lr_dir: str | Path,
    hr_dir: str | Path | None,
    methods: str,
    out_dir: str | Path,
    scale: int = 4,
    crop_border: int = 0,
    metric_names: list[str] | None = None,
    limit: int | None = None,
    grid: int = 4,
    save_images: bool = False,
    report: Callable[[str], None] = print,
    command: str | None = None,
    title: str | None = None,
    grid_methods: str | None = None,
) -> tuple[dict, int]:
    """Run the bench; returns ``(results, number of errors)`` after writing the report files.

    ``grid_methods`` (same syntax as ``methods``): the methods shown in the crop grid, between
    the LR and HR columns (default: all of them).
    """
    from flowmapsr.peers.methods import build_method, parse_methods

    specs = parse_methods(methods)
    in_grid = {s.label for s in specs}
    if grid_methods:
        in_grid = {s.label for s in parse_methods(grid_methods)}
        missing = sorted(in_grid - {s.label for s in specs})
        if missing:
            raise ValueError(f"--grid-methods: not in --methods: {', '.join(missing)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, errors = collect_images(lr_dir, hr_dir, limit)
    for e in errors:
        report(e)
    if not images:
        raise FileNotFoundError(f"{lr_dir}: no images to bench")
    names = list(metric_names or (default_fr() if hr_dir else DEFAULT_NR))
    metrics, unavailable = build_metrics(names, crop_border, hr_dir is not None)
    for reason in unavailable.values():
        report(f"metric unavailable: {reason}")

    # Crop boxes for the grid: chosen on the HR (or, without HR, on the bicubic result).
    boxes: dict[int, tuple[int, int, int]] = {}
    for i in grid_indices(len(images), grid):
        try:
            lr = load_image(images[i].lr)
            ref = load_image(images[i].hr) if images[i].hr else None
            size = (lr.shape[-2] * scale, lr.shape[-1] * scale)
            if ref is None or ref.shape[-2] < size[0] or ref.shape[-1] < size[1]:
                from flowmapsr.resize import imresize

                ref = imresize(lr, scale=scale).clamp(0, 1)
            side = max(8 * scale, (min(size) // 4) // scale * scale)
            top, left, side = pick_crop(ref[..., : size[0], : size[1]], side)
            boxes[i] = (top // scale * scale, left // scale * scale, side)
        except ValueError as err:
            report(str(err))
    crops: dict[int, list[tuple[str, torch.Tensor]]] = {i: [] for i in boxes}
    for i, (top, left, side) in boxes.items():
        lr = load_image(images[i].lr)
        s = scale
        crops[i].append(
            ("LR (nearest)", lr[..., top // s : (top + side) // s, left // s : (left + side) // s])
        )

    results: dict = {
        "settings": {
            "title": title,
            "lr": str(lr_dir),
            "hr": None if hr_dir is None else str(hr_dir),
            "scale": scale,
            "crop_border": crop_border,
            "n_images": len(images),
            "metrics": names,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "cpu": _cpu_name(),
            "timing": "method call only (perf_counter), after one untimed warm-up image; "
            "sec_per_mp = seconds / output megapixels",
            "memory": None,
            "command": command,
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        },
        "methods": {},
        "failed_methods": {},
        "unavailable_metrics": unavailable,
        "input_errors": errors,
    }
    n_errors = len(errors)
    pipelines: dict = {}
    for spec in specs:
        label = spec.label
        t0 = time.perf_counter()
        try:
            method = build_method(spec, pipelines)
        except (FileNotFoundError, ImportError, ValueError, RuntimeError, OSError) as err:
            results["failed_methods"][label] = f"{type(err).__name__}: {err}"
            report(f"{label}: cannot run: {err}")
            n_errors += 1
            continue
        load_s = time.perf_counter() - t0
        entry = {
            "kind": spec.kind,
            "options": spec.options,
            "settings": method.settings,
            "nfe": method.nfe,
            "metrics": {},
            "sec_per_mp": None,
            "seconds": 0.0,
            "cpu_seconds": 0.0,
            "cpu_sec_per_mp": None,
            "megapixels": 0.0,
            "n_images": 0,
            "load_seconds": load_s,
            # The machine's 1-minute load average before and after: timings on a busy machine
            # are inflated, and this says how busy it was.
            "load_avg": [_loadavg(), None],
            "peak_rss_mb": None,
            "rss_before_mb": None,
            "errors": [],
            "per_image": {},
        }
        report(f"{label}: running on {len(images)} images")
        try:  # warm-up, untimed
            method(load_image(images[0].lr), scale)
        except (ValueError, RuntimeError) as err:
            report(f"{label}: warm-up failed: {err}")
        results["settings"]["memory"] = memory.reset_peak()
        entry["rss_before_mb"] = memory.current_rss_mb()
        for i, im in enumerate(tqdm(images, desc=label, unit="img", file=sys.stderr, disable=None)):
            where = str(im.lr)
            try:
                lr = load_image(im.lr)
                c, t = _cpu_seconds(), time.perf_counter()
                with torch.inference_mode():
                    out = method(lr, scale)
                dt, dc = time.perf_counter() - t, _cpu_seconds() - c
                expect = (lr.shape[-2] * scale, lr.shape[-1] * scale)
                if tuple(out.shape[-2:]) != expect:
                    raise ValueError(f"output {tuple(out.shape[-2:])}, expected {expect}")
                out = quantize(out.float())
                ref, grey = None, False
                if im.hr is not None:
                    ref, grey = load_image_info(im.hr)
                    ref = align_reference(out, ref, scale, where)
            except (ValueError, RuntimeError) as err:
                msg = f"{where}: {err}"
                entry["errors"].append(msg)
                report(f"{label}: {msg}")
                n_errors += 1
                continue
            entry["seconds"] += dt
            entry["cpu_seconds"] += dc
            entry["megapixels"] += out.shape[-2] * out.shape[-1] / 1e6
            entry["n_images"] += 1
            n_before = len(entry["errors"])
            entry["per_image"][im.stem] = evaluate_pair(
                out, ref, metrics, entry["errors"], where, grey
            )
            n_errors += len(entry["errors"]) - n_before
            if i in crops and label in in_grid:
                top, left, side = boxes[i]
                crops[i].append((label, out[..., top : top + side, left : left + side]))
            if save_images:
                save_png(out, out_dir / "images" / _safe_name(label) / f"{im.stem}.png")
        entry["peak_rss_mb"] = memory.peak_rss_mb()
        entry["load_avg"][1] = _loadavg()
        if entry["megapixels"] > 0:
            entry["sec_per_mp"] = entry["seconds"] / entry["megapixels"]
            entry["cpu_sec_per_mp"] = entry["cpu_seconds"] / entry["megapixels"]
        entry["metrics"] = summarise(entry["per_image"], [n for n in names if n in metrics])
        for n, m in list(metrics.items()):
            if m.set_metric:
                entry["metrics"][n] = m.result() if entry["n_images"] else None
                metrics[n] = create_metric(n, crop_border=crop_border)  # fresh accumulator
        results["methods"][label] = entry
        shown = ", ".join(f"{k} {v:.4f}" for k, v in entry["metrics"].items() if v is not None)
        spm = entry["sec_per_mp"]
        report(f"{label}: {shown}; {'n/a' if spm is None else f'{spm:.3f}'} s/MP")
        del method

    # HR column of the crop grid.
    for i in crops:
        if images[i].hr is not None:
            hr = load_image(images[i].hr)
            top, left, side = boxes[i]
            crops[i].append(("HR", hr[..., top : top + side, left : left + side]))

    results = to_json_safe(results)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1) + "\n")
    plots = make_plots(results, out_dir, report)
    grid_name = None
    # Rows where a method failed on that image would be ragged: keep the complete ones.
    full = max((len(c) for c in crops.values()), default=0)
    rows = [(images[i].stem, cells) for i, cells in crops.items() if len(cells) == full]
    if rows and full > 1:
        save_png(crop_grid(rows), out_dir / "crops.png")
        grid_name = "crops.png"
    atomic_write_text(out_dir / "results.md", markdown_report(results, plots, grid_name))
    return results, n_errors
