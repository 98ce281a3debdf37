"""Metrics that need pretrained backbones: LPIPS, DISTS (per image) and FID (per image set).

LPIPS (alex, vgg) and DISTS run on the project's plain-torch networks
(:mod:`flowmapsr.nets.perceptual`) with the weights ``flowmapsr weights fetch`` puts in the cache
(:mod:`flowmapsr.pretrained`). FID runs through ``torchmetrics`` with ``torch-fidelity`` and only
when the Inception weights are already on the machine: the packages would otherwise try to
download them. ``create_metric`` raises ``MetricUnavailable`` naming what
is missing (a package, torchvision, or the weight file and where it was looked for), so a report
says "unavailable" instead of showing a number that was never measured.

FID's weights are looked for in ``$FLOWMAPSR_WEIGHTS_DIR`` and in torch hub's checkpoint folder
(``torch.hub.get_dir()/checkpoints``), under the file name torch-fidelity downloads to.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from flowmapsr.metrics.registry import Metric, MetricUnavailable, register

# File name under which torch-fidelity caches its Inception weights.
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def weight_dirs() -> list[Path]:
    """Folders searched for pretrained weight files, in order."""
    dirs = []
    if os.environ.get("FLOWMAPSR_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["FLOWMAPSR_WEIGHTS_DIR"]))
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def find_weights(filename: str) -> Path | None:
    for d in weight_dirs():
        if (d / filename).is_file():
            return d / filename
    return None


def require(metric: str, packages: list[str], weights: list[str]) -> dict[str, Path]:
    """``MetricUnavailable`` unless every package imports and every weight file is found."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise MetricUnavailable(
            f"{metric}: needs the package(s) {', '.join(missing)}, not installed"
        )
    found, absent = {}, []
    for w in weights:
        path = find_weights(w)
        if path is None:
            absent.append(w)
        else:
            found[w] = path
    if absent:
        where = ", ".join(str(d) for d in weight_dirs())
        raise MetricUnavailable(
            f"{metric}: pretrained weights {', '.join(absent)} not found (looked in {where})"
        )
    return found


def _perceptual(build):
    """Build a perceptual net from the cached weights, or ``MetricUnavailable`` naming the fetch."""
    from flowmapsr.pretrained import WeightsMissing

    try:
        return build()
    except WeightsMissing as err:
        raise MetricUnavailable(str(err)) from None


class _PerceptualMetric(Metric):
    """Shared body: optional border crop, batched, on the images' device, float32."""

    lower_better = True
    full_reference = True
    #: inputs the net expects: "signed" = [-1, 1] (LPIPS), "unit" = [0, 1] (DISTS)
    value_range = "unit"
    #: cache files (:mod:`flowmapsr.pretrained.store`) the net is built from
    weight_files: tuple[str, ...] = ()

    def __init__(self, crop_border: int = 0):
        self.crop_border = int(crop_border)
        self.net = _perceptual(self.build)

    def build(self):
        raise NotImplementedError

    @torch.no_grad()
    def compute(self, pred: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        c = self.crop_border
        if c > 0:
            pred, ref = pred[..., c:-c, c:-c], ref[..., c:-c, c:-c]
        net = self.net.to(pred.device)
        pred, ref = pred.float(), ref.float()
        if self.value_range == "signed":
            pred, ref = pred * 2 - 1, ref * 2 - 1
        return net(pred, ref).reshape(-1).double().cpu()


@register("lpips")
class LPIPS(_PerceptualMetric):
    """LPIPS v0.1, AlexNet (the field's default column, as pyiqa's ``lpips``). Lower is better.

    Plain-torch network (:class:`flowmapsr.nets.perceptual.LPIPSNet`) on the weights from
    ``flowmapsr weights fetch lpips``.
    """

    name = "lpips"
    value_range = "signed"
    lpips_net = "alex"
    weight_files = ("alexnet",)

    def build(self):
        from flowmapsr.nets.perceptual import LPIPSNet

        return LPIPSNet(self.lpips_net)


@register("lpips-vgg")
class LPIPSVGG(LPIPS):
    """LPIPS v0.1 on VGG16. Lower is better."""

    name = "lpips-vgg"
    lpips_net = "vgg"
    weight_files = ("vgg16",)


@register("dists")
class DISTS(_PerceptualMetric):
    """DISTS (Ding et al. 2020) on the weights from ``flowmapsr weights fetch dists``."""

    name = "dists"
    weight_files = ("vgg16", "dists")

    def build(self):
        from flowmapsr.nets.perceptual import DISTSNet

        return DISTSNet()


@register("fid")
class FID(Metric):
    """FID (Heusel et al. 2017) between the predicted and the reference *sets*, via torchmetrics.

    A set metric: call ``update(pred, ref)`` per batch, then ``result()``; calling it on one batch
    gives that batch's FID repeated per image (meaningless for tiny batches; use the set form).
    """

    name = "fid"
    lower_better = True
    full_reference = True
    set_metric = True

    def __init__(self, crop_border: int = 0):
        found = require("fid", ["torchmetrics", "torch_fidelity"], [INCEPTION_WEIGHTS])
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.fid = FrechetInceptionDistance(
            feature=2048,
            normalize=True,
            feature_extractor_weights_path=str(found[INCEPTION_WEIGHTS]),
        )

    @torch.no_grad()
    def update(self, pred: torch.Tensor, ref: torch.Tensor) -> None:
        self.fid.update(ref.float(), real=True)
        self.fid.update(pred.float(), real=False)

    def result(self) -> float:
        return float(self.fid.compute())

    def compute(self, pred: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        self.fid.reset()
        self.update(pred, ref)
        return torch.full((pred.shape[0],), self.result(), dtype=torch.float64)
