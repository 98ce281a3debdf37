"""Bench report: markdown table, plots (matplotlib, optional) and a grid of zoomed crops (Pillow).

Input is the ``results.json`` dictionary ``flowmapsr bench`` writes: ``results["methods"]`` maps
a method label to ``{"nfe", "metrics": {...}, "sec_per_mp", "peak_rss_mb", ...}``.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from flowmapsr.convert import rgb_to_y, unit_to_pil
from flowmapsr.metrics.files import atomic_write_bytes, atomic_write_text
from flowmapsr.metrics.registry import create_metric

ARROWS = {True: "↓", False: "↑"}


def _lower_better(name: str) -> bool:
    try:
        return create_metric(name).lower_better
    except Exception:  # unavailable metrics never reach a table; be safe for odd names
        return False


def _fmt(v, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def markdown_table(results: dict) -> str:
    """One row per method: NFE, each metric mean (arrow = better direction), s/MP, peak RSS."""
    methods = results["methods"]
    names: list[str] = []
    for entry in methods.values():
        names += [n for n in entry["metrics"] if n not in names]
    digits = {"ssim": 4, "lpips": 4, "lpips-vgg": 4, "dists": 4}
    head = ["method", "NFE", *(f"{n.upper()} {ARROWS[_lower_better(n)]}" for n in names)]
    # Resource columns; one that no method has (e.g. results from an older version) is left out.
    extra = [
        (key, title, d)
        for key, title, d in (
            ("sec_per_mp", "s / output MP", 3),
            ("cpu_sec_per_mp", "CPU s / output MP", 3),
            ("peak_rss_mb", "peak RSS (MB)", 0),
        )
        if any(e.get(key) is not None for e in methods.values())
    ]
    head += [title for _, title, _ in extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, e in methods.items():
        row = [f"`{label}`", "–" if e.get("nfe") is None else str(e["nfe"])]
        row += [_fmt(e["metrics"].get(n), digits.get(n, 2)) for n in names]
        row += [_fmt(e.get(key), d) for key, _, d in extra]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def markdown_report(results: dict, plots: list[str], grid: str | None) -> str:
    s = results["settings"]
    out = [f"# Bench: {s.get('title') or Path(s['lr']).name}", ""]
    out.append(markdown_table(results))
    out.append("")
    out.append("## Settings")
    out.append("")
    for key in (
        "lr",
        "hr",
        "scale",
        "crop_border",
        "n_images",
        "threads",
        "cpu_count",
        "torch",
        "cpu",
        "timing",
        "memory",
        "command",
        "date",
    ):
        if s.get(key) is not None:
            out.append(f"- **{key}**: {s[key]}")
    if results.get("unavailable_metrics"):
        out += ["", "## Metrics not computed", ""]
        out += [f"- {reason}" for reason in results["unavailable_metrics"].values()]
    if results.get("failed_methods"):
        out += ["", "## Methods that did not run", ""]
        out += [f"- `{k}`: {v}" for k, v in results["failed_methods"].items()]
    errs = [(k, e) for k, v in results["methods"].items() for e in v.get("errors", [])]
    if errs:
        out += ["", "## Per-image errors", ""]
        out += [f"- `{k}`: {e}" for k, e in errs]
    if plots or grid:
        out += ["", "## Figures", ""]
        out += [f"![{Path(p).stem}]({p})" for p in plots]
        if grid:
            out.append(f"![zoomed crops]({grid})")
    return "\n".join(out) + "\n"


# -- plots -----------------------------------------------------------------------------------
def _savefig(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


KNOBS = {"steps": "NFE", "guidance": "ω", "lora_scale": "LoRA scale"}


def knob_sweeps(methods: dict) -> list[tuple[str, list[tuple[float, str]]]]:
    """flowmapsr runs that differ in one knob only, as ``(knob, [(value, label), ...])``.

    Knobs: NFE (``steps``), guidance ω and LoRA scale, read from each entry's resolved
    ``settings`` (so ``flowmapsr:steps=1`` and ``flowmapsr:steps=1,guidance=1`` are the same
    point when the model's default ω is 1). A sweep needs ≥ 2 distinct values; values sorted.
    """
    runs = {
        label: e["settings"]
        for label, e in methods.items()
        if e.get("kind") == "flowmapsr" and isinstance(e.get("settings"), dict)
    }
    sweeps = []
    for knob in KNOBS:
        groups: dict[tuple, dict[float, str]] = {}
        for label, st in runs.items():
            if st.get(knob) is None:
                continue
            rest = tuple(sorted((k, str(v)) for k, v in st.items() if k != knob))
            groups.setdefault(rest, {}).setdefault(float(st[knob]), label)
        for members in groups.values():
            if len(members) >= 2:
                sweeps.append((knob, sorted(members.items())))
    return sweeps


def make_plots(results: dict, out_dir: str | Path, report=print) -> list[str]:
    """Quality vs NFE, the perception–distortion planes (PSNR vs NIQE, PSNR vs LPIPS) and time.

    Returns the file names written (relative to ``out_dir``); none when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator, NullFormatter
    except ImportError:
        report("matplotlib is not installed: plots skipped (pip install flowmapsr[plots])")
        return []
    out_dir = Path(out_dir)
    methods = results["methods"]
    quality = [
        n
        for n in ("psnr", "niqe", "lpips", "dists")
        if any(e["metrics"].get(n) is not None for e in methods.values())
    ]
    written = []

    def points(key_x, metric):
        xs, ys, labels = [], [], []
        for label, e in methods.items():
            x = e.get(key_x) if key_x != "metric" else None
            y = e["metrics"].get(metric)
            if x is not None and y is not None:
                xs.append(x), ys.append(y), labels.append(label)
        return xs, ys, labels

    def annotate(ax, xs, ys, labels):
        for x, y, t in zip(xs, ys, labels):
            ax.scatter([x], [y], s=30)
            ax.annotate(t, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)

    if quality:
        # Quality against NFE; flowmapsr runs sharing their other options are joined by a line.
        fig, axes = plt.subplots(1, len(quality), figsize=(5 * len(quality), 3.6), squeeze=False)
        for ax, metric in zip(axes[0], quality):
            xs, ys, labels = points("nfe", metric)
            annotate(ax, xs, ys, labels)
            flows = sorted(
                (e["nfe"], e["metrics"][metric])
                for e in methods.values()
                if e["kind"] == "flowmapsr"
                and e.get("nfe") is not None
                and e["metrics"].get(metric) is not None
            )
            if len(flows) > 1:
                ax.plot(*zip(*flows), lw=1, alpha=0.6)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("network evaluations per image (NFE)")
            ax.set_ylabel(f"{metric.upper()} {ARROWS[_lower_better(metric)]}")
            ax.grid(alpha=0.3)
        fig.suptitle("quality against NFE (bicubic = 0, single-pass peers = 1)", fontsize=9)
        _savefig(fig, out_dir / "quality_vs_nfe.png")
        plt.close(fig)
        written.append("quality_vs_nfe.png")

        fig, axes = plt.subplots(1, len(quality), figsize=(5 * len(quality), 3.6), squeeze=False)
        for ax, metric in zip(axes[0], quality):
            xs, ys, labels = points("sec_per_mp", metric)
            annotate(ax, xs, ys, labels)
            if xs and min(xs) > 0:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap
            ax.set_xlabel("wall-clock seconds per output megapixel (log)")
            ax.set_ylabel(f"{metric.upper()} {ARROWS[_lower_better(metric)]}")
            ax.grid(alpha=0.3)
        fig.suptitle("quality against time", fontsize=9)
        _savefig(fig, out_dir / "quality_vs_time.png")
        plt.close(fig)
        written.append("quality_vs_time.png")

    # One perception–distortion plane per perception metric measured: PSNR against NIQE
    # (no reference) and against LPIPS (full reference, when its weights are present).
    planes = {"niqe": "perception_distortion.png", "lpips": "perception_distortion_lpips.png"}
    for pm, name in planes.items():
        if not {"psnr", pm} <= set(quality):
            continue
        fig, ax = plt.subplots(figsize=(6.5, 5))
        xs, ys, labels = [], [], []
        for label, e in methods.items():
            p, n = e["metrics"].get("psnr"), e["metrics"].get(pm)
            if p is not None and n is not None:
                xs.append(p), ys.append(n), labels.append(label)
        annotate(ax, xs, ys, labels)
        # Knob sweeps: a line per knob through the runs that differ only in it, arrow towards
        # the larger value, so the plot shows which way each knob moves the output.
        for k, (knob, members) in enumerate(knob_sweeps(methods)):
            pts = [
                (methods[lb]["metrics"].get("psnr"), methods[lb]["metrics"].get(pm), v)
                for v, lb in members
            ]
            pts = [p for p in pts if p[0] is not None and p[1] is not None]
            if len(pts) < 2:
                continue
            colour = f"C{k % 10}"
            vals = "→".join(f"{v:g}" for *_, v in pts)
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                "-",
                color=colour,
                lw=1.2,
                alpha=0.8,
                label=f"{KNOBS[knob]} {vals}",
            )
            for a, b in zip(pts, pts[1:]):
                ax.annotate(
                    "",
                    xy=b[:2],
                    xytext=a[:2],
                    arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.2},
                )
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, title="knob sweeps", title_fontsize=7)
        ax.set_xlabel("PSNR-Y (dB) ↑  (distortion)")
        ax.set_ylabel(f"{pm.upper()} ↓  (perception)")
        ax.set_title("perception–distortion plane (better: lower right)", fontsize=9)
        ax.grid(alpha=0.3)
        _savefig(fig, out_dir / name)
        plt.close(fig)
        written.append(name)
    if quality and not {"psnr", "niqe"} <= set(quality):
        report("perception–distortion plot skipped: needs both PSNR (a reference) and NIQE")
    return written


# -- crops -----------------------------------------------------------------------------------
def pick_crop(img: torch.Tensor, size: int) -> tuple[int, int, int]:
    """``(top, left, size)`` of the ``size``² window of ``img`` ``(1, 3, H, W)`` with most detail.

    Detail = mean absolute Y gradient; deterministic, so reruns show the same region.
    """
    h, w = img.shape[-2:]
    size = max(8, min(size, h, w))
    y = rgb_to_y(img.float())
    g = (y[..., 1:, :-1] - y[..., :-1, :-1]).abs() + (y[..., :-1, 1:] - y[..., :-1, :-1]).abs()
    stride = max(1, size // 4)
    energy = torch.nn.functional.avg_pool2d(g, size - 1, stride=stride)
    idx = int(torch.argmax(energy.flatten()))
    top, left = divmod(idx, energy.shape[-1])
    return top * stride, left * stride, size


def crop_grid(
    rows: list[tuple[str, list[tuple[str, torch.Tensor]]]], cell: int = 192
) -> Image.Image:
    """Rows of ``(row label, [(column label, crop (1, 3, h, w) in [0, 1]), ...])`` → one image.

    Crops are enlarged with nearest-neighbour (pixels stay visible) to ``cell`` px.
    """
    font = ImageFont.load_default()
    ncols = max(len(r[1]) for r in rows)
    head, gap = 18, 4
    width = ncols * (cell + gap) + gap
    height = head + len(rows) * (cell + head + gap) + gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, (label, _) in enumerate(rows[0][1]):
        draw.text((gap + c * (cell + gap) + 2, 3), _clip(label, cell), fill=(0, 0, 0), font=font)
    for r, (row_label, cells) in enumerate(rows):
        y0 = head + r * (cell + head + gap)
        draw.text((gap + 2, y0 + 2), _clip(row_label, width), fill=(60, 60, 60), font=font)
        for c, (_, crop) in enumerate(cells):
            tile = unit_to_pil(crop.clamp(0, 1)).resize((cell, cell), Image.NEAREST)
            canvas.paste(tile, (gap + c * (cell + gap), y0 + head))
    return canvas


def _clip(text: str, px: int) -> str:
    max_chars = max(4, px // 6)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def to_json_safe(obj):
    """Replace non-finite floats by None, recursively (JSON has no inf/NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json_safe(v) for v in obj]
    return obj


def write_markdown(path: str | Path, text: str) -> None:
    atomic_write_text(path, text)
