"""Metrics that need pretrained backbones: LPIPS, DISTS (per image) and FID (per image set).

They run through their maintained packages (``lpips``, ``DISTS_pytorch``, ``torchmetrics`` with
``torch-fidelity``) and only when the backbone weights are already on the machine: the packages
would otherwise try to download them. ``create_metric`` raises ``MetricUnavailable`` naming what
is missing (a package, torchvision, or the weight file and where it was looked for), so a report
says "unavailable" instead of showing a number that was never measured.

Weights are looked for in ``$FLOWMAPSR_WEIGHTS_DIR`` and in torch hub's checkpoint folder
(``torch.hub.get_dir()/checkpoints``), under the file names the packages download to.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from flowmapsr.metrics.registry import Metric, MetricUnavailable, register

# File names under which torchvision / torch-fidelity cache these weights.
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"
VGG16_WEIGHTS = "vgg16-397923af.pth"
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


def _point_torch_hub_at(path: Path) -> None:
    # torchvision loads cached weights from <hub dir>/checkpoints; point it at the folder found.
    torch.hub.set_dir(str(path.parent.parent))
    if path.parent.name != "checkpoints":
        raise MetricUnavailable(
            f"weights at {path} must sit in a folder named 'checkpoints' for torchvision"
        )


@register("lpips")
class LPIPS(Metric):
    """LPIPS (Zhang et al. 2018), AlexNet variant, via the ``lpips`` package. Lower is better."""

    name = "lpips"
    lower_better = True
    full_reference = True

    def __init__(self, crop_border: int = 0):
        found = require("lpips", ["lpips", "torchvision"], [ALEXNET_WEIGHTS])
        _point_torch_hub_at(found[ALEXNET_WEIGHTS])
        import lpips

        self.crop_border = int(crop_border)
        self.net = lpips.LPIPS(net="alex", verbose=False).eval()

    @torch.no_grad()
    def compute(self, pred: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        c = self.crop_border
        if c > 0:
            pred, ref = pred[..., c:-c, c:-c], ref[..., c:-c, c:-c]
        return self.net(pred.float(), ref.float(), normalize=True).reshape(-1).double()


@register("dists")
class DISTS(Metric):
    """DISTS (Ding et al. 2020) through the ``DISTS_pytorch`` package. Lower is better."""

    name = "dists"
    lower_better = True
    full_reference = True

    def __init__(self, crop_border: int = 0):
        found = require("dists", ["DISTS_pytorch", "torchvision"], [VGG16_WEIGHTS])
        _point_torch_hub_at(found[VGG16_WEIGHTS])
        from DISTS_pytorch import DISTS as _DISTS

        self.crop_border = int(crop_border)
        self.net = _DISTS().eval()

    @torch.no_grad()
    def compute(self, pred: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        c = self.crop_border
        if c > 0:
            pred, ref = pred[..., c:-c, c:-c], ref[..., c:-c, c:-c]
        return self.net(ref.float(), pred.float(), batch_average=False).reshape(-1).double()


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
