"""JPEG compression round trip through OpenCV (libjpeg, 4:2:0 chroma), one image at a time.

Real-ESRGAN trains with a differentiable JPEG on the GPU; we need no gradient, so the real
codec on the CPU is both simpler and exact. The image goes through uint8 (as a saved file would).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from flowmapsr.data.degradations import sampling


def draw_jpeg(g: torch.Generator, cfg) -> dict | None:
    """Draw one JPEG step from a ``JpegConfig``: ``{"quality": int}`` or None (skipped)."""
    if not sampling.coin(g, cfg.prob):
        return None
    q = sampling.uniform(g, float(cfg.quality[0]), float(cfg.quality[1]))
    return {"quality": int(round(q))}


def jpeg_roundtrip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode ``(1, 3, H, W)`` in [0, 1] as JPEG at ``quality`` (1–100).

    Returns the decoded image on ``x``'s device and dtype, in [0, 1] (multiples of 1/255).
    """
    if x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"jpeg_roundtrip takes one RGB image (1, 3, H, W), got {tuple(x.shape)}")
    q = int(min(max(int(quality), 1), 100))
    rgb = x[0].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    bgr = np.ascontiguousarray(rgb.permute(1, 2, 0).cpu().numpy()[:, :, ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode a {bgr.shape} image as JPEG")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    out = torch.from_numpy(np.ascontiguousarray(dec)).permute(2, 0, 1).unsqueeze(0)
    return out.to(device=x.device, dtype=x.dtype).div_(255.0)


def apply_jpeg(x: torch.Tensor, p: dict | None) -> torch.Tensor:
    """Apply the JPEG step described by :func:`draw_jpeg` (identity for None)."""
    return x if p is None else jpeg_roundtrip(x, p["quality"])
