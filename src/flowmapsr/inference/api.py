"""The Python API: ``flowmapsr.upscale(image, scale=4, steps=1, ...)`` and its building blocks.

``upscale`` takes a PIL image or a numpy array and returns the same kind: PIL in → PIL out
(RGB, RGBA, L, LA, 16-bit grey ``I;16`` kept), array in → array out with the same dtype
(uint8, uint16 or float in ``[0, 1]``) and channel layout (``(H, W)``, ``(H, W, 3)``,
``(H, W, 4)``). :func:`upscale_picture` is the memory-bounded core shared with the CLI: the
model writes its output strip by strip straight into a uint8/uint16 array, so no full-resolution
float tensor exists (tiling.py); alpha is upscaled separately with bicubic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np
import torch

from flowmapsr.imageio import Picture, picture_from_pil, picture_to_pil
from flowmapsr.inference.pipeline import SRPipeline, model_scale_for, output_size
from flowmapsr.inference.precision import (  # noqa: F401  (re-exported: the API's names)
    PRECISION_CHOICES,
    PRECISIONS,
    bf16_fast_on_cpu,
    resolve_precision,
)

# BT.601 luma weights, as Pillow's RGB → L conversion uses.
_LUMA = (0.299, 0.587, 0.114)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' asked for, but CUDA is not available here")
    return dev


def load_pipeline(model=None, device="cpu", precision: str = "auto") -> SRPipeline:
    """A pipeline from a folder (None: the built-in model) on ``device`` in ``precision``
    (``auto``, ``fp32`` or ``bf16``; see :func:`resolve_precision`)."""
    if precision not in PRECISION_CHOICES:
        raise ValueError(
            f"unknown precision '{precision}' (choose from {', '.join(PRECISION_CHOICES)})"
        )
    pipe = SRPipeline.from_pretrained(model, device=resolve_device(device))
    return pipe.to(dtype=PRECISIONS[resolve_precision(precision, pipe)])


@functools.lru_cache(maxsize=2)
def _cached_pipeline(model: str | None, device: str, precision: str) -> SRPipeline:
    return load_pipeline(model, device, precision)


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of an ``(H, W[, C])`` uint8/uint16 array to ``size = (h, w)`` (area if
    shrinking, which avoids aliasing)."""
    h, w = size
    if a.shape[:2] == (h, w):
        return a
    shrink = h < a.shape[0] or w < a.shape[1]
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


@torch.no_grad()
def upscale_picture(
    pipe: SRPipeline,
    pic: Picture,
    scale: float = 4,
    steps: int | None = None,
    guidance: float | None = None,
    lora_scale: float | None = None,
    seed: int = 0,
    tile: int | None = None,
    overlap: int | None = None,
    color_fix: str = "none",
    on_tile: Callable[[int, int], None] | None = None,
    mode: str | None = None,
) -> Picture:
    """Upscale a :class:`Picture`; the result keeps its bit depth, grey-ness, alpha and ICC.

    ``mode``: ``fidelity``, ``balanced`` (None) or ``realism``, the model's measured settings;
    explicit ``steps`` / ``guidance`` / ``lora_scale`` override it."""
    h, w = pic.size
    # float pictures are [0, 1] already (imageio clipped them) and stay float32, unrounded.
    maxval = {8: 255.0, 16: 65535.0, 32: 1.0}[pic.bits]
    dtype = {8: np.uint8, 16: np.uint16, 32: np.float32}[pic.bits]
    color = pic.color if not pic.grey else pic.color[:, :, None]
    lr = torch.from_numpy(color.astype(np.float32)).permute(2, 0, 1).unsqueeze(0).div_(maxval)
    if pic.grey:
        lr = lr.expand(1, 3, h, w)
    ms = model_scale_for(scale, pipe.config.scales)
    shape = (h * ms, w * ms) if pic.grey else (h * ms, w * ms, 3)
    out = np.empty(shape, dtype=dtype)
    luma = torch.tensor(_LUMA).view(1, 3, 1, 1)

    def sink(y0: int, strip: torch.Tensor) -> None:
        if pic.grey:
            strip = (strip * luma).sum(dim=1, keepdim=True)
        q = strip[0].mul(maxval)
        q = (q if pic.bits == 32 else q.round_()).clamp_(0, maxval).permute(1, 2, 0)
        q = q.numpy().astype(dtype)
        out[y0 : y0 + q.shape[0]] = q[:, :, 0] if pic.grey else q

    pipe.upscale_to_sink(
        lr, ms, sink, steps, guidance, lora_scale, seed, tile, overlap, color_fix, on_tile,
        mode=mode,
    )  # fmt: skip
    del lr
    size = output_size(h, w, scale)
    result = _resize(out, size)
    alpha = None if pic.alpha is None else _resize(pic.alpha, size)
    return Picture(result, alpha, pic.icc)


def _picture_from_array(a: np.ndarray) -> tuple[Picture, Callable[[Picture], np.ndarray]]:
    """An array → (Picture, function turning the result back into the caller's layout)."""
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got {a.shape}")
    kind = a.dtype
    if kind == np.uint8 or kind == np.uint16:
        q = a
    elif np.issubdtype(kind, np.floating):
        q = (np.clip(a, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    else:
        raise ValueError(f"unsupported array dtype {kind} (uint8, uint16 or float in [0, 1])")
    squeeze = a.ndim == 3 and a.shape[2] == 1
    if squeeze:
        q = q[:, :, 0]
    if q.ndim == 2:
        pic = Picture(np.ascontiguousarray(q))
    elif q.shape[2] == 4:
        pic = Picture(np.ascontiguousarray(q[:, :, :3]), np.ascontiguousarray(q[:, :, 3]))
    else:
        pic = Picture(np.ascontiguousarray(q))

    def back(res: Picture) -> np.ndarray:
        arr = res.color if res.alpha is None else np.dstack([res.color, res.alpha])
        if squeeze:
            arr = arr[:, :, None]
        if np.issubdtype(kind, np.floating):
            return (arr.astype(np.float64) / 65535.0).astype(kind)
        return arr

    return pic, back


def upscale(
    image,
    scale: float = 4,
    steps: int | None = None,
    guidance: float | None = None,
    lora_scale: float | None = None,
    seed: int = 0,
    tile: int | None = None,
    overlap: int | None = None,
    color_fix: str = "none",
    model=None,
    device: str = "cpu",
    precision: str = "auto",
    pipeline: SRPipeline | None = None,
    mode: str | None = None,
):
    """Upscale a PIL image or numpy array by ``scale`` with ``steps`` network evaluations.

    ``model``: a pipeline folder (None: the built-in model); loaded once and cached. Or pass a
    loaded ``pipeline``. ``mode``: ``fidelity``, ``balanced`` (default) or ``realism``, the
    model's measured knob settings; ``steps``, ``guidance`` ω and ``lora_scale`` override them;
    ``tile``/``overlap`` in input pixels (None: untiled); ``color_fix``: none, wavelet, adain.
    Returns the same kind as ``image`` (see module docstring).
    """
    from PIL import Image

    if pipeline is None:
        key = None if model is None else str(model)
        pipeline = _cached_pipeline(key, str(resolve_device(device)), precision)
    kwargs = dict(
        scale=scale,
        steps=steps,
        guidance=guidance,
        lora_scale=lora_scale,
        seed=seed,
        tile=tile,
        overlap=overlap,
        color_fix=color_fix,
        mode=mode,
    )
    if isinstance(image, Image.Image):
        image.load()
        return picture_to_pil(upscale_picture(pipeline, picture_from_pil(image), **kwargs))
    if isinstance(image, np.ndarray):
        pic, back = _picture_from_array(image)
        return back(upscale_picture(pipeline, pic, **kwargs))
    raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
