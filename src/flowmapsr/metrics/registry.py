"""Metric registry in the style of pyiqa: ``create_metric(name, **kw)``.

Every metric takes images ``(B, 3, H, W)`` in ``[0, 1]`` and returns one value per image, shape
``(B,)`` float64. ``lower_better`` and ``full_reference`` say how to read and call it. A metric that
cannot run on this machine (package or pretrained weights missing) raises ``MetricUnavailable``
from ``create_metric`` with the reason: no number is ever made up.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class MetricUnavailable(RuntimeError):
    """The metric cannot run here; ``str(err)`` says why (missing package, missing weights)."""


class Metric:
    """Base class. Subclasses set the class attributes and implement ``compute``."""

    name: str = ""
    lower_better: bool = False
    full_reference: bool = True
    #: Set metrics (FID) compare two image *sets*; they accumulate with ``update`` instead.
    set_metric: bool = False

    #: Fidelity metrics accept ``grey`` (B,) bool: images that came from single-channel files.
    accepts_grey: bool = False

    def compute(self, pred: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(
        self, pred: torch.Tensor, ref: torch.Tensor | None = None, grey: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``pred`` (and ``ref`` for full-reference metrics) ``(B, 3, H, W)`` in [0, 1] → ``(B,)``.

        ``grey`` ``(B,)`` bool marks greyscale source files (see :mod:`flowmapsr.metrics.fidelity`);
        metrics without ``accepts_grey`` ignore it.
        """
        _check_images(pred, "pred")
        if self.full_reference:
            if ref is None:
                raise ValueError(f"{self.name} is full-reference: give ref")
            _check_images(ref, "ref")
            if ref.shape != pred.shape:
                raise ValueError(
                    f"{self.name}: pred {tuple(pred.shape)} and ref {tuple(ref.shape)} differ"
                )
        if self.accepts_grey:
            return self.compute(pred, ref, grey=grey)
        return self.compute(pred, ref)

    def __repr__(self) -> str:
        kind = "FR" if self.full_reference else "NR"
        arrow = "lower is better" if self.lower_better else "higher is better"
        return f"<metric {self.name} ({kind}, {arrow})>"


def _check_images(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what}: expected a (B, 3, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{what}: expected a float tensor in [0, 1], got {x.dtype}")


_REGISTRY: dict[str, Callable[..., Metric]] = {}


def register(name: str) -> Callable:
    """Class decorator: make ``create_metric(name, **kw)`` build ``cls(**kw)``."""

    def deco(factory: Callable[..., Metric]) -> Callable[..., Metric]:
        _REGISTRY[name] = factory
        return factory

    return deco


def list_metrics() -> list[str]:
    """Names that ``create_metric`` accepts (available here or not)."""
    _load_builtin()
    return sorted(_REGISTRY)


def create_metric(name: str, **kwargs) -> Metric:
    """Build the metric called ``name`` (e.g. ``psnr``, ``ssim``, ``niqe``, ``lpips``).

    Keyword arguments go to the metric (``crop_border=4`` …). Raises ``KeyError`` for an unknown
    name and ``MetricUnavailable`` when the metric cannot run on this machine.
    """
    _load_builtin()
    key = name.lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key](**kwargs)


def _load_builtin() -> None:
    # Importing the modules registers their metrics; done lazily so ``registry`` stays import-cheap.
    from flowmapsr.metrics import fidelity, learned, niqe  # noqa: F401
