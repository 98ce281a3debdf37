"""NIQE: Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik, IEEE SPL 2013).

A no-reference score (lower is better): the distance between a multivariate Gaussian (MVG) fitted
to natural-scene-statistics features of the image's 96×96 blocks and the MVG of pristine images.

Steps, following the paper and the authors' MATLAB release (``computequality.m``):
1. Y channel (MATLAB ``rgb2ycbcr``) in [0, 255], rounded; borders cropped; cut to whole blocks.
2. At two scales (the image, then MATLAB-bicubic ×0.5): MSCN coefficients
   ``(I − μ) / (σ + 1)`` with a 7×7 Gaussian window (σ = 7/6) and replicated borders (Eq. 1).
3. Per block (96 px at scale 1, 48 at scale 2): an AGGD fit (shape α, mean spread) of the MSCN
   values, and of the products of neighbours along four orientations (α, mean, β_l, β_r) —
   18 features per scale, 36 in all (Eqs. 2–8). Shapes come from the moment-matching grid search
   over α ∈ [0.2, 10] in steps of 0.001, as in the release.
4. ``sqrt((ν1 − ν2)ᵀ ((Σ1 + Σ2) / 2)⁺ (ν1 − ν2))`` against the pristine model (Eq. 10).

Hand-written because no maintained package runs it here: pyiqa and BasicSR both require
torchvision (which this project must not import), and scikit-video is unmaintained. The pristine
parameters are public data shipped in ``metrics/data/niqe_pris_params.npz`` (see NOTICE.md there).
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import numpy as np
import torch
from scipy.ndimage import correlate
from scipy.special import gamma as gamma_fn

from flowmapsr.convert import rgb_to_y
from flowmapsr.metrics.registry import Metric, register
from flowmapsr.resize import imresize

BLOCK = 96


@functools.lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """``(mu (36,), cov (36, 36))`` of the pristine MVG, float64."""
    ref = resources.files("flowmapsr.metrics") / "data" / "niqe_pris_params.npz"
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as data:
        mu = data["mu_pris_param"].reshape(-1).astype(np.float64)
        return mu, data["cov_pris_param"].astype(np.float64)


@functools.lru_cache(maxsize=1)
def _gamma_grid() -> tuple[np.ndarray, np.ndarray]:
    """Shape grid ``α`` and ``r(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α))`` used to invert the moment ratio."""
    alphas = np.arange(0.2, 10.001, 0.001)
    r = gamma_fn(2.0 / alphas) ** 2 / (gamma_fn(1.0 / alphas) * gamma_fn(3.0 / alphas))
    return alphas, r


def niqe_window() -> np.ndarray:
    """The release's 7×7 Gaussian window, σ = 7/6, normalised (``fspecial('gaussian', 7, 7/6)``)."""
    ax = np.arange(7, dtype=np.float64) - 3.0
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * (7.0 / 6.0) ** 2))
    return g / g.sum()


def aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit of the values ``x`` → ``(α, β_left, β_right)``.

    NaNs come back when one side of zero is empty (the release behaves the same way; such
    blocks are dropped from the covariance and ignored in the mean).
    """
    x = x.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt(np.mean(x[x < 0] ** 2)) if np.any(x < 0) else np.nan
        right = np.sqrt(np.mean(x[x > 0] ** 2)) if np.any(x > 0) else np.nan
        g = left / right
        rhat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
        rhat_norm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    if not np.isfinite(rhat_norm):
        return math.nan, math.nan, math.nan
    alphas, r = _gamma_grid()
    alpha = float(alphas[np.argmin((r - rhat_norm) ** 2)])
    k = math.sqrt(math.gamma(1.0 / alpha) / math.gamma(3.0 / alpha))
    return alpha, float(left * k), float(right * k)


def block_features(block: np.ndarray) -> list[float]:
    """The 18 features of one MSCN block ``(h, w)``."""
    alpha, bl, br = aggd_fit(block)
    feats = [alpha, (bl + br) / 2.0]
    # Products with the neighbour right, below, below-right and below-left (circular shift,
    # as MATLAB's circshift in the release).
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        prod = block * np.roll(block, shift, axis=(0, 1))
        a, bl, br = aggd_fit(prod)
        mean = (br - bl) * (math.gamma(2.0 / a) / math.gamma(1.0 / a)) if np.isfinite(a) else np.nan
        feats.extend([a, mean, bl, br])
    return feats


def mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of ``img`` ``(H, W)`` float64."""
    mu = correlate(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(img * img, window, mode="nearest") - mu * mu))
    return (img - mu) / (sigma + 1.0)


def niqe_y(y: np.ndarray) -> float:
    """NIQE of one Y image ``(H, W)`` in [0, 255] (already rounded / cropped as wanted)."""
    h, w = y.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh * nw < 2:
        raise ValueError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, image is {h}x{w}")
    img = y[: nh * BLOCK, : nw * BLOCK].astype(np.float64)
    window = niqe_window()
    per_scale = []
    for scale in (1, 2):
        coeffs = mscn(img, window)
        b = BLOCK // scale
        feats = [
            block_features(coeffs[i * b : (i + 1) * b, j * b : (j + 1) * b])
            for j in range(nw)
            for i in range(nh)
        ]
        per_scale.append(np.asarray(feats, dtype=np.float64))
        if scale == 1:
            t = torch.from_numpy(img / 255.0)[None, None]
            img = imresize(t, scale=0.5)[0, 0].numpy() * 255.0
    feats = np.concatenate(per_scale, axis=1)  # (blocks, 36)
    mu_d = np.nanmean(feats, axis=0)
    cov_d = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False)
    mu_p, cov_p = pristine_model()
    diff = mu_p - mu_d
    dist = diff @ np.linalg.pinv((cov_p + cov_d) / 2.0) @ diff
    return float(np.sqrt(dist))


@register("niqe")
class NIQE(Metric):
    """NIQE on the Y channel; ``crop_border`` pixels cut from each side first. Lower is better."""

    name = "niqe"
    lower_better = True
    full_reference = False

    def __init__(self, crop_border: int = 0):
        self.crop_border = int(crop_border)

    def compute(self, pred: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        y = (rgb_to_y(pred.double()) * 255.0).round()[:, 0]
        c = self.crop_border
        if c > 0:
            y = y[:, c:-c, c:-c]
        return torch.tensor([niqe_y(im.cpu().numpy()) for im in y], dtype=torch.float64)
