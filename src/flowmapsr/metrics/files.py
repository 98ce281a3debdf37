"""Image folders for evaluation: listing, pairing by name stem, loading, atomic writes.

Pairing: a prediction ``x.png`` goes with the reference whose stem is ``x``; failing that, stems
are compared with a trailing resolution tag removed (``_HR``, ``_LR``, ``_SR``, ``_x4``, ``_LRx4``
…), so the classic sets' ``img_001_SRF_4_LR.png`` / ``img_001_SRF_4_HR.png`` pair up too.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import torch
from PIL import Image

from flowmapsr.atomic import atomic_write_bytes
from flowmapsr.convert import uint8_to_unit
from flowmapsr.imageio import LIBRARY_MAX_PIXELS, read_image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_TAG = re.compile(r"[_\-.](?:hr|lr|sr|gt|x\d+|lrx\d+|hrx\d+|lr\d+|hr\d+)$", re.IGNORECASE)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted; ``NotADirectoryError`` if not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def base_stem(stem: str) -> str:
    """``img_001_SRF_4_HR`` → ``img_001_SRF_4``; stems without a tag come back unchanged."""
    return _TAG.sub("", stem)


def pair_by_stem(
    preds: list[Path], refs: list[Path]
) -> tuple[list[tuple[Path, Path]], list[Path], list[Path]]:
    """Match files by stem: ``(pairs, unmatched_preds, unmatched_refs)``; exact stems win."""
    exact = {p.stem: p for p in refs}
    loose: dict[str, list[Path]] = {}
    for p in refs:
        loose.setdefault(base_stem(p.stem), []).append(p)
    pairs, lonely, used = [], [], set()
    for p in preds:
        ref = exact.get(p.stem)
        if ref is None:
            cands = [r for r in loose.get(base_stem(p.stem), []) if r not in used]
            ref = cands[0] if len(cands) == 1 else None
        if ref is None or ref in used:
            lonely.append(p)
        else:
            used.add(ref)
            pairs.append((p, ref))
    return pairs, lonely, [r for r in refs if r not in used]


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """File → ``(1, 3, H, W)`` float32 in [0, 1] (greyscale and palette images become RGB).

    Raises ``ValueError`` (:class:`flowmapsr.imageio.ImageReadError`) naming the file when it
    cannot be decoded.
    """
    return load_image_info(path)[0]


def load_image_info(path: str | os.PathLike) -> tuple[torch.Tensor, bool]:
    """Like :func:`load_image`, plus whether the file is single-channel (greyscale).

    Decoded by :func:`flowmapsr.imageio.read_image`; 8-bit files give exactly ``k / 255``,
    16-bit and float files keep their precision (``k / 65535``, the float itself).
    """
    pic = read_image(path, max_pixels=LIBRARY_MAX_PIXELS)
    for note in pic.notes:
        warnings.warn(note, stacklevel=2)
    if pic.bits == 8:
        return uint8_to_unit(pic.rgb8()), pic.grey
    return torch.from_numpy(pic.unit()).permute(2, 0, 1).unsqueeze(0).contiguous(), pic.grey


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round ``[0, 1]`` images to the 8-bit grid (what saving a PNG and reading it back gives)."""
    return x.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_png(img: Image.Image | torch.Tensor, path: str | os.PathLike) -> None:
    """Save a PIL image or a ``(1, 3, H, W)`` [0, 1] tensor as PNG, atomically."""
    if isinstance(img, torch.Tensor):
        from flowmapsr.convert import unit_to_pil

        img = unit_to_pil(img)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
