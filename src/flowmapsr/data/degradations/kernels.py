"""Blur kernels of the Real-ESRGAN pipeline and their batched application.

Kernels (all ``(k, k)`` float64 on the CPU, normalised to sum 1, odd ``k``):

- bivariate Gaussian ``exp(-½ xᵀΣ⁻¹x)``, ``Σ = R(θ) diag(σx², σy²) R(θ)ᵀ`` (iso: σx = σy, θ = 0);
- generalised Gaussian ``exp(-½ (xᵀΣ⁻¹x)^β)``;
- plateau ``1 / ((xᵀΣ⁻¹x)^β + 1)``;
- sinc (ideal circular low-pass) ``ωc J1(ωc r) / (2π r)`` with the limit ``ωc² / 4π`` at r = 0.

The formulas and the parameter draws follow Real-ESRGAN (Wang et al. 2021, ``basicsr``
``degradations.py`` / ``realesrgan_dataset.py``); they are written here on torch because kornia
is not a dependency and the random draws must come from our per-sample ``torch.Generator``.
``filter2d`` applies one kernel per sample with a grouped ``conv2d`` (reflect padding, as
``basicsr.filter2D`` does), batched on the device of the images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from flowmapsr.data.degradations import sampling

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred integer coordinates ``(xx, yy)``, each ``(size, size)`` float64."""
    if size % 2 != 1 or size < 1:
        raise ValueError(f"kernel size must be a positive odd integer, got {size}")
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _mahalanobis(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """``xᵀΣ⁻¹x`` on the kernel grid, ``(size, size)``."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"sigmas must be > 0, got {sigma_x}, {sigma_y}")
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    # Rotate coordinates into the kernel's principal axes: Σ⁻¹ = R diag(1/σx², 1/σy²) Rᵀ.
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalise(k: torch.Tensor) -> torch.Tensor:
    return k / k.sum()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> torch.Tensor:
    """Anisotropic Gaussian, ``(size, size)`` float64 summing to 1."""
    return _normalise(torch.exp(-0.5 * _mahalanobis(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> torch.Tensor:
    """Generalised Gaussian ``exp(-½ d^β)``; β < 1 heavier tails, β > 1 flatter top."""
    return _normalise(torch.exp(-0.5 * _mahalanobis(size, sigma_x, sigma_y, theta).pow(beta)))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> torch.Tensor:
    """Plateau-shaped ``1 / (d^β + 1)``."""
    return _normalise(1.0 / (_mahalanobis(size, sigma_x, sigma_y, theta).pow(beta) + 1.0))


def sinc_kernel(size: int, omega_c: float, pad_to: int = 0) -> torch.Tensor:
    """Ideal circular low-pass (2-D sinc) with cut-off ``omega_c`` (radians/pixel), sum 1.

    Zero-padded to ``pad_to`` (odd, >= size) when given.
    """
    xx, yy = _grid(size)
    r = torch.sqrt(xx * xx + yy * yy)
    r_safe = torch.where(r == 0, torch.ones_like(r), r)
    k = omega_c * torch.special.bessel_j1(omega_c * r_safe) / (2 * math.pi * r_safe)
    k = torch.where(r == 0, torch.full_like(k, omega_c**2 / (4 * math.pi)), k)
    k = _normalise(k)
    return pad_kernel(k, pad_to) if pad_to else k


def delta_kernel(size: int = 1) -> torch.Tensor:
    """The identity kernel (a single 1 in the centre)."""
    k = torch.zeros(size, size, dtype=torch.float64)
    k[size // 2, size // 2] = 1.0
    return k


def pad_kernel(k: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a centred odd kernel to ``(size, size)`` (no-op when already that size)."""
    n = k.shape[-1]
    if size < n or (size - n) % 2:
        raise ValueError(f"cannot pad a {n}x{n} kernel to {size}x{size}")
    p = (size - n) // 2
    return F.pad(k, (p, p, p, p)) if p else k


def _beta(g: torch.Generator, low: float, high: float) -> float:
    """Shape β: as Real-ESRGAN, half the time below 1 and half above (when the range allows)."""
    if sampling.coin(g, 0.5):
        return (
            sampling.uniform(g, low, min(1.0, high)) if low < 1 else sampling.uniform(g, low, high)
        )
    return sampling.uniform(g, max(1.0, low), high) if high > 1 else sampling.uniform(g, low, high)


def draw_kernel(g: torch.Generator, cfg) -> dict:
    """Draw the parameters of one blur kernel from a ``KernelConfig``; returns a JSON-able dict.

    With probability ``cfg.sinc_prob`` a sinc kernel (ωc ∈ [π/3, π] for k < 13, [π/5, π]
    otherwise, as Real-ESRGAN), else a type from ``cfg.types`` / ``cfg.probs``.
    """
    size = int(sampling.choice(g, list(cfg.sizes)))
    if sampling.coin(g, cfg.sinc_prob):
        low = math.pi / 3 if size < 13 else math.pi / 5
        return {"type": "sinc", "size": size, "omega_c": sampling.uniform(g, low, math.pi)}
    kind = sampling.choice(g, list(cfg.types), list(cfg.probs))
    if kind not in KERNEL_TYPES:
        raise ValueError(f"unknown kernel type '{kind}'; known: {list(KERNEL_TYPES)}")
    sx = sampling.uniform(g, *cfg.sigma)
    if kind.endswith("aniso"):
        sy = sampling.uniform(g, *cfg.sigma)
        theta = sampling.uniform(g, -math.pi, math.pi)
    else:
        sy, theta = sx, 0.0
    p = {"type": kind, "size": size, "sigma_x": sx, "sigma_y": sy, "theta": theta}
    if kind.startswith("generalized"):
        p["beta"] = _beta(g, *cfg.betag)
    elif kind.startswith("plateau"):
        p["beta"] = _beta(g, *cfg.betap)
    return p


def make_kernel(p: dict) -> torch.Tensor:
    """The ``(size, size)`` float64 kernel described by a dict from :func:`draw_kernel`."""
    kind, size = p["type"], int(p["size"])
    if kind == "sinc":
        return sinc_kernel(size, p["omega_c"], pad_to=p.get("pad_to", 0))
    if kind == "delta":
        return delta_kernel(size)
    if kind in ("iso", "aniso"):
        return gaussian_kernel(size, p["sigma_x"], p["sigma_y"], p["theta"])
    if kind.startswith("generalized"):
        return generalized_gaussian_kernel(size, p["sigma_x"], p["sigma_y"], p["theta"], p["beta"])
    if kind.startswith("plateau"):
        return plateau_kernel(size, p["sigma_x"], p["sigma_y"], p["theta"], p["beta"])
    raise ValueError(f"unknown kernel type '{kind}'")


def _pad_mode(h: int, w: int, pad: int) -> str:
    # Reflect padding needs pad < size; very small intermediate images (x8 second stage) fall
    # back to edge replication instead of failing.
    return "reflect" if pad < h and pad < w else "replicate"


def filter2d(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each sample with its kernel: ``x`` (B, C, H, W), ``kernels`` (B, k, k) or (k, k).

    Reflect padding of ``k // 2`` (replicate when the image is smaller than that); one grouped
    conv2d for the whole batch on ``x``'s device and dtype.
    """
    b, c, h, w = x.shape
    if kernels.ndim == 2:
        kernels = kernels.expand(b, *kernels.shape)
    k = kernels.shape[-1]
    if kernels.shape[0] != b or kernels.shape[-2] != k or k % 2 != 1:
        raise ValueError(f"need (B={b}, k, k) odd kernels, got {tuple(kernels.shape)}")
    pad = k // 2
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode=_pad_mode(h, w, pad))
    weight = kernels.to(device=x.device, dtype=x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)
    out = F.conv2d(x.reshape(1, b * c, *x.shape[-2:]), weight, groups=b * c)
    return out.view(b, c, h, w)


def _separable_gaussian(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g1 = torch.exp(-0.5 * (ax / sigma) ** 2)
    g1 = (g1 / g1.sum()).to(device=x.device, dtype=x.dtype)
    b, c, h, w = x.shape
    pad = size // 2
    y = x.reshape(b * c, 1, h, w)
    y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode=_pad_mode(w, w, pad)), g1.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode=_pad_mode(h, h, pad)), g1.view(1, 1, -1, 1))
    return y.view(b, c, h, w)


def usm_sharpen(
    x: torch.Tensor, radius: int = 50, weight: float = 0.5, threshold: float = 10.0
) -> torch.Tensor:
    """Unsharp masking of ``(B, C, H, W)`` in [0, 1], as Real-ESRGAN's ``USMSharp``.

    Blur with a Gaussian of size ``2·radius + 1`` (σ from OpenCV's rule for σ = 0), add
    ``weight ×`` the residual where it exceeds ``threshold``/255, blended through a blurred mask.
    """
    size = 2 * radius + 1
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel(size, 0)
    blur = _separable_gaussian(x, size, sigma)
    residual = x - blur
    mask = (residual.abs() * 255 > threshold).to(x.dtype)
    soft = _separable_gaussian(mask, size, sigma)
    sharp = (x + weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * x
