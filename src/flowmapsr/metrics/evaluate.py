"""Evaluate folders of images: pair by stem, compute every requested metric, summarise.

Used by ``flowmapsr eval`` and ``flowmapsr bench``. A file that cannot be read, has no partner or
the wrong size is reported (one line naming it and why) and skipped; the caller decides the exit
code from ``EvalResult.errors``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from flowmapsr.metrics.files import list_images, load_image, load_image_info, pair_by_stem
from flowmapsr.metrics.registry import Metric, MetricUnavailable, create_metric

DEFAULT_FR = ("psnr", "ssim", "niqe")
#: Full-reference perceptual metrics added to the defaults when their weights are in the cache.
PERCEPTUAL_FR = ("lpips", "dists")


def default_fr() -> tuple[str, ...]:
    """``DEFAULT_FR`` plus LPIPS / DISTS where ``flowmapsr weights fetch`` has put their weights."""
    from flowmapsr.metrics.learned import DISTS, LPIPS
    from flowmapsr.pretrained.store import weight_path

    metrics = {m.name: m for m in (LPIPS, DISTS)}
    extra = [
        m for m in PERCEPTUAL_FR if all(weight_path(w).is_file() for w in metrics[m].weight_files)
    ]
    return DEFAULT_FR + tuple(extra)


DEFAULT_NR = ("niqe",)


@dataclass
class EvalResult:
    metrics: dict[str, float | None] = field(default_factory=dict)  # means over images
    per_image: dict[str, dict[str, float | None]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "metrics": self.metrics,
            "per_image": self.per_image,
            "errors": self.errors,
            "unavailable": self.unavailable,
        }


def build_metrics(
    names: list[str] | tuple[str, ...], crop_border: int, with_ref: bool
) -> tuple[dict[str, Metric], dict[str, str]]:
    """Create the named metrics → ``(ready, unavailable {name: reason})``.

    Without a reference, full-reference metrics are listed as unavailable (reason: no ``--ref``).
    Unknown names raise ``KeyError``.
    """
    ready, unavailable = {}, {}
    for name in names:
        try:
            metric = create_metric(name, crop_border=crop_border)
        except MetricUnavailable as err:
            unavailable[name] = str(err)
            continue
        if metric.full_reference and not with_ref:
            unavailable[name] = f"{name}: full-reference metric, no reference images given"
            continue
        ready[name] = metric
    return ready, unavailable


def align_reference(pred: torch.Tensor, ref: torch.Tensor, scale: int, what: str) -> torch.Tensor:
    """Crop ``ref`` to ``pred``'s size when it is larger by less than ``scale`` pixels per side.

    The classic sets' HR sizes need not be multiples of the scale ("modcrop"): the SR output is
    then ``scale·floor(H/scale)`` high and the reference's top-left part is compared. Any other
    mismatch is an error naming the file.
    """
    ph, pw = pred.shape[-2:]
    rh, rw = ref.shape[-2:]
    if (ph, pw) == (rh, rw):
        return ref
    if 0 <= rh - ph < max(scale, 1) and 0 <= rw - pw < max(scale, 1):
        return ref[..., :ph, :pw]
    raise ValueError(f"{what}: size {pw}x{ph} does not match the reference {rw}x{rh}")


def finite_or_none(v: float) -> float | None:
    """JSON has no inf/NaN: such values are written as null."""
    return float(v) if math.isfinite(v) else None


def summarise(per_image: dict[str, dict[str, float | None]], names: list[str]) -> dict:
    """Mean of each metric over the images that have a finite value for it."""
    out = {}
    for n in names:
        vals = [row[n] for row in per_image.values() if row.get(n) is not None]
        out[n] = sum(vals) / len(vals) if vals else None
    return out


def evaluate_pair(
    pred: torch.Tensor,
    ref: torch.Tensor | None,
    metrics: dict[str, Metric],
    errors: list[str] | None = None,
    where: str = "image",
    grey: bool = False,
) -> dict[str, float | None]:
    """All metrics of one image ``(1, 3, H, W)`` (``ref`` aligned already) → ``{name: value}``.

    A metric that rejects the image (e.g. NIQE on a picture smaller than two 96² blocks) gives
    ``None`` and appends ``"<where>: <reason>"`` to ``errors``; the other metrics still run.
    ``grey``: the reference is a single-channel file (fidelity metrics then compare grey values).
    """
    row = {}
    g = torch.tensor([bool(grey)])
    for name, m in metrics.items():
        try:
            if m.set_metric:
                m.update(pred, ref)
                continue
            value = m(pred, ref if m.full_reference else None, grey=g)[0]
            row[name] = finite_or_none(float(value))
        except ValueError as err:
            row[name] = None
            if errors is not None:
                errors.append(f"{where}: {name}: {err}")
    return row


def evaluate_folders(
    pred_dir: str | Path,
    ref_dir: str | Path | None,
    names: list[str] | tuple[str, ...] | None = None,
    crop_border: int = 0,
    scale: int = 4,
    report: Callable[[str], None] = print,
) -> EvalResult:
    """Evaluate every image in ``pred_dir`` (against ``ref_dir`` by stem when given)."""
    names = list(names or (default_fr() if ref_dir else DEFAULT_NR))
    metrics, unavailable = build_metrics(names, crop_border, ref_dir is not None)
    result = EvalResult(unavailable=unavailable)
    for reason in unavailable.values():
        report(f"metric unavailable: {reason}")
    preds = list_images(pred_dir)
    if ref_dir is not None:
        pairs, lonely, unused = pair_by_stem(preds, list_images(ref_dir))
        for p in lonely:
            result.errors.append(f"{p}: no reference image with the same name stem in {ref_dir}")
            report(result.errors[-1])
        for r in unused:
            report(f"note: {r}: reference without a prediction (ignored)")
    else:
        pairs = [(p, None) for p in preds]
    for pred_path, ref_path in pairs:
        try:
            pred = load_image(pred_path)
            ref, grey = None, False
            if ref_path is not None:
                ref, grey = load_image_info(ref_path)
                ref = align_reference(pred, ref, scale, str(pred_path))
            n_err = len(result.errors)
            result.per_image[pred_path.stem] = evaluate_pair(
                pred, ref, metrics, result.errors, str(pred_path), grey
            )
            for msg in result.errors[n_err:]:
                report(msg)
        except ValueError as err:
            msg = str(err) if str(pred_path) in str(err) else f"{pred_path}: {err}"
            result.errors.append(msg)
            report(msg)
    ready = [n for n in names if n in metrics]
    result.metrics = summarise(result.per_image, [n for n in ready if not metrics[n].set_metric])
    for n in ready:
        if metrics[n].set_metric:
            result.metrics[n] = finite_or_none(metrics[n].result()) if result.per_image else None
    return result
