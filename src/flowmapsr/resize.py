"""MATLAB-compatible bicubic resize on tensors (``imresize`` semantics).

Written by hand because no maintained library does this on torch tensors: ``F.interpolate``'s
bicubic uses the Keys coefficient a = −0.75 and has no MATLAB-style antialiasing on downscale,
and OpenCV / Pillow work on one uint8 image at a time on the CPU. The published bicubic SR
baselines (Set5 28.42 dB, …) and most SR data pipelines use MATLAB's kernel (a = −0.5,
antialiased downscale with the kernel stretched by 1/scale, symmetric border handling), so this
module reproduces it, batched and on any device.
"""

from __future__ import annotations

import math

import torch


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic kernel with a = −0.5 (MATLAB's ``cubic``)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _axis_weights(
    in_len: int, out_len: int, scale: float, antialias: bool, device, dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(out_len, K)`` into the input axis and weights ``(out_len, K)`` (rows sum to 1)."""
    kernel_width = 4.0
    stretch = 1.0
    if scale < 1 and antialias:
        stretch = scale
        kernel_width = kernel_width / scale
    x = torch.arange(1, out_len + 1, device=device, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates (1-based)
    left = torch.floor(u - kernel_width / 2)
    k = int(math.ceil(kernel_width)) + 2
    idx = left.unsqueeze(1) + torch.arange(k, device=device, dtype=torch.float64).unsqueeze(0)
    w = stretch * _cubic(stretch * (u.unsqueeze(1) - idx))
    w = w / w.sum(dim=1, keepdim=True)
    # Symmetric ("mirror with edge repeat") border handling, as MATLAB does.
    idx0 = idx - 1  # 0-based
    period = 2 * in_len
    idx0 = torch.remainder(idx0, period)
    idx0 = torch.where(idx0 >= in_len, period - 1 - idx0, idx0)
    return idx0.long(), w.to(dtype)


def _mirror(i: torch.Tensor, n: int) -> torch.Tensor:
    """MATLAB's symmetric border rule for 0-based indices ``i`` into an axis of length ``n``."""
    period = 2 * n
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - 1 - i, i)


def _upscale_last_axis_int(x: torch.Tensor, s: int) -> torch.Tensor:
    """Exact integer upscale of the last axis by ``s`` as one ``conv1d`` with ``s`` phases.

    Output pixel ``s·m + p`` reads the same 4 input taps as pixel ``p`` shifted by ``m``, with
    the same weights, so after a 3-pixel symmetric pad every phase is a 7-tap filter and the
    phases interleave into the output. Same values as the gather path (up to rounding), ~3×
    faster on a CPU: it is the SR source of every inference and training step.
    """
    n = x.shape[-1]
    # Weights of the first s outputs (one period); later outputs repeat them, shifted.
    _, w = _axis_weights(n, s, float(s), False, x.device, torch.float64)
    pad = 3
    # Taps of output p (0 ≤ p < s), unmirrored: left_p + k; rebased onto the padded axis.
    x_pos = torch.arange(1, s + 1, device=x.device, dtype=torch.float64) / s + 0.5 * (1 - 1 / s)
    left = torch.floor(x_pos - 2.0).long() - 1  # 0-based first tap, before mirroring
    kern = torch.zeros(s, 1, 2 * pad + 1, device=x.device, dtype=torch.float64)
    for p in range(s):
        base = int(left[p]) + pad
        kern[p, 0, base : base + w.shape[1]] = w[p]
    src = _mirror(torch.arange(-pad, n + pad, device=x.device), n)
    lead = x.shape[:-1]
    xp = x[..., src].reshape(-1, 1, n + 2 * pad)
    out = torch.nn.functional.conv1d(xp, kern.to(x.dtype))  # (N, s, n)
    return out.transpose(1, 2).reshape(*lead, n * s)


def _resize_last_axis(x: torch.Tensor, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    in_len = x.shape[-1]
    s = out_len // in_len
    if s >= 2 and out_len == s * in_len and abs(scale - s) < 1e-12 and in_len >= 4:
        return _upscale_last_axis_int(x, s)
    idx, w = _axis_weights(in_len, out_len, scale, antialias, x.device, x.dtype)
    gathered = x[..., idx]  # (..., out_len, K)
    return (gathered * w).sum(dim=-1)


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` (any float range) like MATLAB ``imresize(x, scale, 'bicubic')``.

    Give either ``scale`` (output = ceil(input · scale)) or ``size = (H_out, W_out)``. With
    ``size``, each axis uses its own factor ``out / in``. Values are not clamped.
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    h, w = x.shape[-2:]
    if size is None:
        size = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
        sh = sw = float(scale)
    else:
        sh, sw = size[0] / h, size[1] / w
    orig_dtype = x.dtype
    if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    # Resize the axis that shrinks first: fewer operations for the second pass.
    if sh <= sw:
        x = _resize_last_axis(x.transpose(-1, -2), size[0], sh, antialias).transpose(-1, -2)
        x = _resize_last_axis(x, size[1], sw, antialias)
    else:
        x = _resize_last_axis(x, size[1], sw, antialias)
        x = _resize_last_axis(x.transpose(-1, -2), size[0], sh, antialias).transpose(-1, -2)
    return x.to(orig_dtype) if orig_dtype.is_floating_point else x


def upsample_source(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The SR source: the LR image resized to the HR size with bicubic (DESIGN.md §1)."""
    return imresize(lr, size=size)
