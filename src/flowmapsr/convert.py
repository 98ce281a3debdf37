"""Conversions between the library's image convention and files / metrics.

Inside the library images are float tensors ``(B, C, H, W)`` in ``[-1, 1]`` (DESIGN.md §1); files
and metrics use uint8 or ``[0, 1]``. Every conversion lives here so no module guesses a range.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def unit_to_model(x: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` → ``[-1, 1]``; any shape."""
    return x * 2.0 - 1.0


def model_to_unit(x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """``[-1, 1]`` → ``[0, 1]``; clamps by default (network outputs may overshoot)."""
    y = (x + 1.0) * 0.5
    return y.clamp(0.0, 1.0) if clamp else y


def uint8_to_unit(a: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` or ``(H, W)`` uint8 array → ``(1, C, H, W)`` float32 in ``[0, 1]``."""
    if a.ndim == 2:
        a = a[:, :, None]
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:  # e.g. np.asarray(PIL image); torch wants writable memory
        a = a.copy()
    t = torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)
    return t.unsqueeze(0)


def unit_to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` or ``(C, H, W)`` in ``[0, 1]`` → ``(H, W, C)`` uint8 (rounded, clamped)."""
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected a single image, got batch of {x.shape[0]}")
        x = x[0]
    a = x.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    return a.permute(1, 2, 0).cpu().numpy()


def pil_to_unit(img: Image.Image) -> torch.Tensor:
    """PIL image (converted to RGB) → ``(1, 3, H, W)`` float32 in ``[0, 1]``."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    return uint8_to_unit(np.asarray(img))


def unit_to_pil(x: torch.Tensor) -> Image.Image:
    """``(1, 3, H, W)`` in ``[0, 1]`` → RGB PIL image."""
    return Image.fromarray(unit_to_uint8(x))


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (Y of YCbCr, 16–235 scaled to [0, 1]) of ``(B, 3, H, W)`` in [0, 1].

    Returns ``(B, 1, H, W)`` in ``[16/255, 235/255]``: the convention of MATLAB ``rgb2ycbcr`` used
    by every published PSNR-Y / SSIM-Y table.
    """
    w = x.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).add(16.0).div(255.0)
